"""Metrics for the binary task (Abnormal is the positive class) and its calibration."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

#: Equal-width probability bins of the reliability diagram and the ECE.
N_CALIBRATION_BINS = 10
#: Expected calibration error above which probabilities are called poorly calibrated.
ECE_WARNING = 0.05


def brier_score(y_true: np.ndarray, p_positive: np.ndarray) -> float:
    """Mean squared error of P(positive) against the 0/1 label (lower is better)."""
    y_true = np.asarray(y_true, dtype=float)
    p_positive = np.asarray(p_positive, dtype=float)
    return float(np.mean((p_positive - y_true) ** 2))


def binary_metrics(
    y_true: np.ndarray, p_positive: np.ndarray, threshold: float = 0.5
) -> dict[str, Any]:
    """Accuracy, precision, sensitivity, specificity, F1, ROC AUC, Brier and confusion matrix.

    Args:
        y_true: 0/1 labels (1 = positive, Abnormal).
        p_positive: predicted probability of the positive class.
        threshold: decision threshold on ``p_positive`` (positive when ``p >= threshold``).

    Returns:
        A JSON-ready dict; ``roc_auc`` is None when only one class is present, ``sensitivity``
        (``specificity``) None without positives (negatives), ``npv`` None without predicted
        negatives.
    """
    y_true = np.asarray(y_true).astype(int)
    p_positive = np.asarray(p_positive, dtype=float)
    y_pred = (p_positive >= threshold).astype(int)
    tn, fp, fn, tp = confusion_matrix(y_true, y_pred, labels=[0, 1]).ravel()
    both = len(np.unique(y_true)) == 2
    return {
        "n": len(y_true),
        "n_positive": int(y_true.sum()),
        "threshold": float(threshold),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "precision": float(precision_score(y_true, y_pred, zero_division=0)),
        "recall": float(recall_score(y_true, y_pred, zero_division=0)),
        "sensitivity": float(tp / (tp + fn)) if tp + fn else None,
        "specificity": float(tn / (tn + fp)) if tn + fp else None,
        "npv": float(tn / (tn + fn)) if tn + fn else None,
        "f1": float(f1_score(y_true, y_pred, zero_division=0)),
        "roc_auc": float(roc_auc_score(y_true, p_positive)) if both else None,
        "brier": brier_score(y_true, p_positive),
        "confusion_matrix": {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)},
    }


def calibration_bin_index(p_positive: np.ndarray, n_bins: int = N_CALIBRATION_BINS) -> np.ndarray:
    """Bin of each probability among ``n_bins`` equal-width bins of [0, 1] (1.0 in the last)."""
    p = np.asarray(p_positive, dtype=float)
    return np.clip((p * n_bins).astype(int), 0, n_bins - 1)


def reliability(
    y_true: np.ndarray, p_positive: np.ndarray, n_bins: int = N_CALIBRATION_BINS
) -> dict[str, Any]:
    """Reliability curve and expected calibration error (ECE) over equal-width bins.

    ECE is the count-weighted mean of ``|observed fraction positive - mean predicted|`` over
    the bins, i.e. ``sum_b |sum_{i in b} (y_i - p_i)| / N``.

    Returns:
        ``{"ece", "n_bins", "bins": [{"low", "high", "n", "mean_predicted",
        "fraction_positive"}]}``; empty bins have ``n == 0`` and None means.
    """
    y = np.asarray(y_true, dtype=float)
    p = np.asarray(p_positive, dtype=float)
    idx = calibration_bin_index(p, n_bins)
    counts = np.bincount(idx, minlength=n_bins)
    sum_p = np.bincount(idx, weights=p, minlength=n_bins)
    sum_y = np.bincount(idx, weights=y, minlength=n_bins)
    bins = [
        {
            "low": b / n_bins,
            "high": (b + 1) / n_bins,
            "n": int(counts[b]),
            "mean_predicted": float(sum_p[b] / counts[b]) if counts[b] else None,
            "fraction_positive": float(sum_y[b] / counts[b]) if counts[b] else None,
        }
        for b in range(n_bins)
    ]
    ece = float(np.abs(sum_y - sum_p).sum() / len(y)) if len(y) else None
    return {"ece": ece, "n_bins": n_bins, "bins": bins}


def roc_points(
    y_true: np.ndarray, p_positive: np.ndarray, decimals: int = 4
) -> dict[str, list[float]]:
    """ROC curve points (collinear points dropped), rounded for ``metrics.json``."""
    fpr, tpr, _ = roc_curve(np.asarray(y_true).astype(int), np.asarray(p_positive, dtype=float))
    return {
        "fpr": [round(float(v), decimals) for v in fpr],
        "tpr": [round(float(v), decimals) for v in tpr],
    }


def multiclass_metrics(y_true: np.ndarray, y_pred: np.ndarray, names: list[str]) -> dict[str, Any]:
    """Accuracy, macro F1 and the confusion matrix (rows true, columns predicted)."""
    labels = list(range(len(names)))
    return {
        "n": len(y_true),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(
            f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
        ),
        "classes": list(names),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def predictive_values(
    sensitivity: float, specificity: float, prevalence: float
) -> tuple[float | None, float | None]:
    """PPV and NPV at a prevalence, by Bayes' rule from sensitivity and specificity.

    Returns:
        ``(ppv, npv)``; None where the denominator is 0 (nothing predicted on that side).
    """
    flagged = sensitivity * prevalence + (1.0 - specificity) * (1.0 - prevalence)
    cleared = specificity * (1.0 - prevalence) + (1.0 - sensitivity) * prevalence
    ppv = sensitivity * prevalence / flagged if flagged > 0 else None
    npv = specificity * (1.0 - prevalence) / cleared if cleared > 0 else None
    return ppv, npv


#: Probabilities are clipped to [EPS, 1 - EPS] before taking their logit.
LOGIT_EPS = 1e-7
#: Newton steps of the calibration fits (they converge in < 10 on well-posed data).
NEWTON_STEPS = 30
#: A calibration slope beyond this is reported as not estimable (near-separated data).
MAX_SLOPE = 1e3


def logit(p: np.ndarray) -> np.ndarray:
    """``log(p / (1 - p))`` of probabilities clipped away from 0 and 1."""
    p = np.clip(np.asarray(p, dtype=float), LOGIT_EPS, 1.0 - LOGIT_EPS)
    return np.log(p) - np.log1p(-p)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def calibration_fit(
    y_true: np.ndarray, p_positive: np.ndarray, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Calibration slope and intercept (calibration-in-the-large), one per row of ``weights``.

    The slope is ``b`` in the logistic regression ``logit P(y=1) = a + b * logit(p)``; the
    intercept is ``a`` in ``logit P(y=1) = a + logit(p)`` (slope fixed at 1), as TRIPOD
    reports them: slope 1 and intercept 0 for calibrated probabilities, slope < 1 for
    predictions too extreme, intercept < 0 for risks overestimated on average.

    Args:
        y_true: 0/1 labels (N,). p_positive: predicted P(positive) (N,).
        weights: (B, N) case weights (e.g. bootstrap draw counts); None is one row of ones.

    Returns:
        ``(slopes, intercepts)``, each (B,); NaN where the fit is not defined: one class only,
        or the classes separated by the scores (the slope runs to infinity).
    """
    y = np.asarray(y_true, dtype=float)
    x = logit(p_positive)
    w = np.ones((1, len(y))) if weights is None else np.asarray(weights, dtype=float)
    has = w > 0
    pos_min = np.where(has & (y == 1), x, np.inf).min(1)
    neg_max = np.where(has & (y == 0), x, -np.inf).max(1)
    n_pos = (w * y).sum(1)
    n_neg = (w * (1 - y)).sum(1)
    both = (n_pos > 0) & (n_neg > 0)
    separated = neg_max <= pos_min  # (quasi-)separation: no finite maximum-likelihood slope
    active = both & ~separated
    # slope: Newton on (a, b) for every row at once
    a = np.zeros(len(w))
    b = np.ones(len(w))
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for _ in range(NEWTON_STEPS):
            mu = _sigmoid(a[:, None] + b[:, None] * x)
            r = w * (y - mu)
            v = w * mu * (1.0 - mu)
            g0, g1 = r.sum(1), (r * x).sum(1)
            h00, h01, h11 = v.sum(1), (v * x).sum(1), (v * x * x).sum(1)
            det = h00 * h11 - h01 * h01
            ok = det > 1e-12
            da = np.where(ok, (h11 * g0 - h01 * g1) / np.where(ok, det, 1.0), 0.0)
            db = np.where(ok, (h00 * g1 - h01 * g0) / np.where(ok, det, 1.0), 0.0)
            a, b = a + da, b + db
            if not np.nanmax((np.abs(da) + np.abs(db))[active], initial=0.0) > 1e-10:
                break
        mu = _sigmoid(a[:, None] + b[:, None] * x)
        r = w * (y - mu)
        converged = (np.abs(r.sum(1)) + np.abs((r * x).sum(1))) < 1e-6 * w.sum(1)
        slopes = np.where(active & converged & (np.abs(b) < MAX_SLOPE), b, np.nan)
        # intercept with slope 1 (offset): one-dimensional Newton
        c = np.zeros(len(w))
        for _ in range(NEWTON_STEPS):
            mu = _sigmoid(c[:, None] + x)
            g = (w * (y - mu)).sum(1)
            h = (w * mu * (1.0 - mu)).sum(1)
            dc = np.where(h > 1e-12, g / np.where(h > 1e-12, h, 1.0), 0.0)
            c = c + dc
            if not np.nanmax(np.abs(dc)[both], initial=0.0) > 1e-10:
                break
        g = (w * (y - _sigmoid(c[:, None] + x))).sum(1)
        intercepts = np.where(both & np.isfinite(c) & (np.abs(g) < 1e-6 * w.sum(1)), c, np.nan)
    return slopes, intercepts


def net_benefit(
    y_true: np.ndarray,
    p_positive: np.ndarray,
    thresholds: np.ndarray,
    prevalence: float | None = None,
) -> np.ndarray:
    """Net benefit of flagging ``p >= t`` at each threshold probability ``t`` (decision curve).

    ``NB(t) = sensitivity * pi - (1 - specificity) * (1 - pi) * t / (1 - t)`` with ``pi`` the
    data's share of positives (then it equals ``TP/N - FP/N * t/(1-t)``) or ``prevalence``.
    It reads the scores as risks: for uncalibrated probabilities it is what acting on them
    as if they were risks would give.
    """
    y = np.asarray(y_true).astype(int)
    p = np.asarray(p_positive, dtype=float)
    t = np.asarray(thresholds, dtype=float)
    pos, neg = p[y == 1], p[y == 0]
    pi = float(y.mean()) if prevalence is None else float(prevalence)
    sens = (pos[None, :] >= t[:, None]).mean(1) if len(pos) else np.zeros(len(t))
    fpr = (neg[None, :] >= t[:, None]).mean(1) if len(neg) else np.zeros(len(t))
    return sens * pi - fpr * (1.0 - pi) * t / (1.0 - t)
