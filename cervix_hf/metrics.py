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
        (``specificity``) None without positives (negatives).
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
