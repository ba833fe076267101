"""Honest evaluation: grouped cross-validation, bootstrap intervals, operating point, calibration.

Everything runs on cached backbone features, so the backbone runs once per dataset:

* :func:`cross_validate` -- stratified K-fold CV grouped by cluster image; each fold's head is
  fitted on the other folds only (C chosen inside the training folds, or fixed).
* :func:`bootstrap_intervals` -- percentile 95% intervals by resampling cluster images (not
  cells) with replacement, vectorised with numpy.
* :func:`choose_threshold` -- the largest threshold whose out-of-fold sensitivity reaches a
  target (the operating point).
* :func:`fit_calibrated_head` -- the head wrapped in ``CalibratedClassifierCV`` with grouped
  folds (loadable through skops with the trusted list of :mod:`cervix_hf.head`).
* :func:`seed_protocol` -- the original project's leaky protocol on the same data.
* :func:`evaluate_model` / :func:`evaluate_directory` -- all of it for a model, written into
  its directory (``metrics.json`` ``cv`` section, threshold in ``config.json``, plots, card).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import EvaluationError, LabelError
from .head import C_GRID, build_head, fit_head
from .labels import CELL_TYPES, GROUPINGS, LABELS
from .metrics import (
    ECE_WARNING,
    N_CALIBRATION_BINS,
    binary_metrics,
    calibration_bin_index,
    reliability,
    roc_points,
)
from .split import folds_with_fallback, make_folds, train_test_split

if TYPE_CHECKING:
    from .modeling import CervixClassifier

logger = logging.getLogger(__name__)

DEFAULT_FOLDS = 5
DEFAULT_TARGET_SENSITIVITY = 0.99
DEFAULT_RESAMPLES = 2000
DEFAULT_LEVEL = 0.95
CALIBRATION_METHODS: tuple[str, ...] = ("sigmoid", "isotonic")
PROTOCOLS: tuple[str, ...] = ("grouped", "seed")
C_SELECTIONS: tuple[str, ...] = ("nested", "fixed")
#: Metrics with bootstrap intervals, in the order the card shows them.
INTERVAL_METRICS: tuple[str, ...] = (
    "accuracy",
    "sensitivity",
    "specificity",
    "precision",
    "f1",
    "roc_auc",
    "brier",
    "ece",
)


# -- cross-validation ------------------------------------------------------------------------


@dataclass(frozen=True)
class CVResult:
    """Out-of-fold predictions of a K-fold cross-validation.

    Attributes:
        oof: P(positive) of each row, predicted by the head that did not see its fold.
        fold: the fold each row was tested in.
        folds: (train rows, test rows) of each fold.
        fold_params: the head's parameters per fold (C, how it was chosen, calibration).
        grouped: whether folds were grouped by cluster image.
        seed: seed of the folds.
    """

    oof: np.ndarray
    fold: np.ndarray
    folds: list[tuple[np.ndarray, np.ndarray]]
    fold_params: list[dict[str, Any]]
    grouped: bool
    seed: int


def fit_calibrated_head(
    features: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray | None,
    *,
    c: float,
    method: str = "sigmoid",
    n_splits: int = DEFAULT_FOLDS,
    seed: int = 0,
) -> Any:
    """The head (fixed C) wrapped in ``CalibratedClassifierCV`` with grouped stratified folds.

    Each inner fold fits the head on the others and the calibrator on it; predictions average
    the per-fold calibrated heads (``ensemble=True``). The result holds only types that
    :data:`cervix_hf.artifacts.EXTRA_TRUSTED_TYPES` or skops' defaults trust.

    Raises:
        EvaluationError: unknown method. SplitError: too few groups for two folds.
    """
    from sklearn.calibration import CalibratedClassifierCV

    if method not in CALIBRATION_METHODS:
        raise EvaluationError(
            f"Unknown calibration method {method!r}: choose one of {list(CALIBRATION_METHODS)}."
        )
    labels = np.asarray(labels)
    folds = folds_with_fallback(labels, groups, n_splits, seed)
    calibrated = CalibratedClassifierCV(build_head(c, seed), method=method, cv=folds, ensemble=True)
    return calibrated.fit(features, labels)


def _fit_fold_head(
    features: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray | None,
    *,
    c: float | None,
    calibrate: str | None,
    n_splits: int,
    seed: int,
    c_grid: Sequence[float] = C_GRID,
) -> tuple[Any, dict[str, Any]]:
    """One training fold's head: C chosen on these rows only (nested) or fixed."""
    if c is None:
        # fit_head uses as many inner folds as the rows allow (cervix_hf.split)
        head, params = fit_head(
            features, labels, groups, c_grid=c_grid, n_splits=n_splits, seed=seed
        )
        out = {"C": params["C"], "c_selection": "nested", "inner_folds": params["cv_folds"]}
    else:
        head = build_head(c, seed).fit(features, labels)
        out = {"C": float(c), "c_selection": "fixed"}
    if calibrate:
        head = fit_calibrated_head(
            features, labels, groups, c=out["C"], method=calibrate, n_splits=n_splits, seed=seed
        )
        out["calibration"] = calibrate
    return head, out


def cross_validate(
    features: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray | None,
    *,
    n_splits: int = DEFAULT_FOLDS,
    seed: int = 0,
    c: float | None = None,
    calibrate: str | None = None,
    c_grid: Sequence[float] = C_GRID,
) -> CVResult:
    """Stratified K-fold CV, grouped by cluster image, giving out-of-fold P(positive).

    Args:
        features: (N, D) cached backbone features. labels: (N,) 0/1.
        groups: cluster image of each row; None splits per image (leaky; logged).
        n_splits: folds.
        seed: seed of the folds and the solver.
        c: None chooses C inside each training fold by grouped CV over ``c_grid``
            (nested: the test fold never influences it); a number fixes C.
        calibrate: None, or a ``CalibratedClassifierCV`` method fitted inside each training
            fold with grouped inner folds.

    Raises:
        SplitError: when the data has too few groups per class for ``n_splits`` folds.
    """
    labels = np.asarray(labels).astype(int)
    groups = np.asarray(groups) if groups is not None else None
    if groups is None:
        logger.warning(
            "No groups (cluster images): cross-validating per image. Cells from one cluster "
            "image may sit in training and test folds, which inflates the metrics."
        )
    folds = make_folds(labels, groups, n_splits, seed)
    oof = np.full(len(labels), np.nan)
    fold_of = np.full(len(labels), -1, dtype=int)
    params: list[dict[str, Any]] = []
    for k, (tr, te) in enumerate(folds):
        t0 = time.perf_counter()
        head, p = _fit_fold_head(
            features[tr],
            labels[tr],
            groups[tr] if groups is not None else None,
            c=c,
            calibrate=calibrate,
            n_splits=n_splits,
            seed=seed,
            c_grid=c_grid,
        )
        oof[te] = head.predict_proba(features[te])[:, 1]
        fold_of[te] = k
        p["seconds"] = round(time.perf_counter() - t0, 3)
        params.append(p)
        logger.info(
            "CV fold %d/%d: %d train / %d test images, C=%s (%.1f s)",
            k + 1,
            len(folds),
            len(tr),
            len(te),
            p["C"],
            p["seconds"],
        )
    return CVResult(oof, fold_of, folds, params, groups is not None, seed)


# -- bootstrap -------------------------------------------------------------------------------


class _Resampler:
    """What the weighted metrics need, precomputed once per set of predictions.

    Every metric but the AUC is a ratio of sums over cells, so it is computed from per-unit
    (group) sums and the draw counts: ``counts (B, G) @ per_unit (G, k)``. The AUC needs the
    cells' order: for each positive, the drawn weight of negatives scored below it (a cumsum
    over the negatives sorted by score) plus half of those tied with it.
    """

    def __init__(self, y: np.ndarray, p: np.ndarray, units: np.ndarray, threshold: float):
        n_units = int(units.max()) + 1 if len(units) else 0
        pos = y == 1
        pred = p >= threshold
        bins = calibration_bin_index(p)

        def per_unit(values: np.ndarray) -> np.ndarray:
            return np.bincount(units, weights=values.astype(float), minlength=n_units)

        self.stats = np.stack(
            [
                per_unit(pos),  # positives
                per_unit(~pos),  # negatives
                per_unit(pos & pred),  # true positives
                per_unit(~pos & pred),  # false positives
                per_unit((p - y) ** 2),  # squared errors (Brier)
            ],
            axis=1,
        )
        gap = np.zeros((n_units, N_CALIBRATION_BINS))
        np.add.at(gap, (units, bins), y - p)  # sum of (y - p) per unit and bin (ECE)
        self.gap = gap
        neg_order = np.argsort(p[~pos], kind="mergesort")
        neg_scores = p[~pos][neg_order]
        self.neg_units = units[~pos][neg_order]
        self.pos_units = units[pos]
        self.below = np.searchsorted(neg_scores, p[pos], side="left")
        self.upto = np.searchsorted(neg_scores, p[pos], side="right")
        self.ties = bool((self.upto > self.below).any())


def _weighted_metrics(r: _Resampler, counts: np.ndarray) -> dict[str, np.ndarray]:
    """Binary metrics for each row of unit draw counts ``counts`` (B, G).

    Undefined values are NaN (sensitivity without positives, ...); precision and F1 are 0
    without predicted positives, as in :func:`~cervix_hf.metrics.binary_metrics`.
    """
    n_pos, n_neg, tp, fp, sq = (counts @ r.stats).T
    total = n_pos + n_neg
    fn = n_pos - tp
    tn = n_neg - fp
    with np.errstate(divide="ignore", invalid="ignore"):
        out = {
            "accuracy": (tp + tn) / total,
            "sensitivity": np.where(n_pos > 0, tp / n_pos, np.nan),
            "specificity": np.where(n_neg > 0, tn / n_neg, np.nan),
            "precision": np.where(tp + fp > 0, tp / (tp + fp), 0.0),
            "f1": np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0),
            "brier": sq / total,
            "ece": np.abs(counts @ r.gap).sum(1) / total,
        }
        cum_neg = np.zeros((len(counts), len(r.neg_units) + 1))
        np.cumsum(counts[:, r.neg_units], axis=1, out=cum_neg[:, 1:])
        below = cum_neg[:, r.below]
        if r.ties:
            below += 0.5 * (cum_neg[:, r.upto] - below)
        pairs = (counts[:, r.pos_units] * below).sum(1)
        out["roc_auc"] = np.where((n_pos > 0) & (n_neg > 0), pairs / (n_pos * n_neg), np.nan)
    return out


def bootstrap_intervals(
    y_true: np.ndarray,
    p_positive: np.ndarray,
    groups: np.ndarray | None,
    *,
    threshold: float = 0.5,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
    chunk: int = 250,
) -> dict[str, Any]:
    """Percentile bootstrap intervals of the binary metrics, resampling groups.

    Each resample draws as many cluster images as there are, with replacement, and takes all
    their cells (a cell drawn twice counts twice); the metrics are computed on those cells'
    predictions. Without groups, cells are resampled (and the result says so).

    Args:
        y_true: 0/1 labels. p_positive: P(positive), e.g. pooled out-of-fold predictions.
        groups: cluster image of each cell, or None.
        threshold: decision threshold for the threshold-dependent metrics (it is held fixed,
            so the interval leaves out the uncertainty of choosing it).
        n_resamples: bootstrap resamples. seed: their seed. level: interval coverage.
        chunk: resamples computed at once (bounds memory to ``chunk * N`` floats).

    Returns:
        ``{"unit": "groups"|"cells", "n_units", "n_resamples", "level", "seed", "threshold",
        "estimate": {metric: value}, "intervals": {metric: [low, high]}, "n_valid":
        {metric: resamples where it was defined}}``.
    """
    y = np.asarray(y_true).astype(int)
    p = np.asarray(p_positive, dtype=float)
    if groups is not None:
        _, units = np.unique(np.asarray(groups), return_inverse=True)
        unit_name = "groups"
    else:
        units = np.arange(len(y))
        unit_name = "cells"
    n_units = int(units.max()) + 1 if len(units) else 0
    r = _Resampler(y, p, units, threshold)
    estimate = {k: float(v[0]) for k, v in _weighted_metrics(r, np.ones((1, n_units))).items()}
    rng = np.random.default_rng(seed)
    values: dict[str, list[np.ndarray]] = {k: [] for k in estimate}
    for start in range(0, n_resamples, chunk):
        b = min(chunk, n_resamples - start)
        draws = rng.integers(0, n_units, size=(b, n_units))
        flat = (draws + np.arange(b)[:, None] * n_units).ravel()
        counts = np.bincount(flat, minlength=b * n_units).reshape(b, n_units)
        for k, v in _weighted_metrics(r, counts.astype(float)).items():
            values[k].append(v)
    alpha = (1.0 - level) / 2.0
    intervals: dict[str, list[float] | None] = {}
    n_valid: dict[str, int] = {}
    for k, chunks in values.items():
        v = np.concatenate(chunks)
        ok = v[~np.isnan(v)]
        n_valid[k] = len(ok)
        intervals[k] = (
            [float(np.quantile(ok, alpha)), float(np.quantile(ok, 1.0 - alpha))]
            if len(ok)
            else None
        )
    return {
        "unit": unit_name,
        "n_units": n_units,
        "n_resamples": n_resamples,
        "level": level,
        "seed": seed,
        "threshold": float(threshold),
        "estimate": {k: (None if np.isnan(v) else v) for k, v in estimate.items()},
        "intervals": intervals,
        "n_valid": n_valid,
    }


# -- operating point -------------------------------------------------------------------------


def choose_threshold(
    y_true: np.ndarray, p_positive: np.ndarray, target_sensitivity: float = 0.99
) -> float:
    """The largest threshold whose sensitivity on these predictions is at least the target.

    With ``predict`` saying positive when ``p >= threshold``, that is the k-th largest score
    of the positives, k = ceil(target * positives): any higher threshold loses one of them.
    Specificity is then as high as the target allows.

    Raises:
        EvaluationError: target outside (0, 1], or no positives.
    """
    if not 0.0 < target_sensitivity <= 1.0:
        raise EvaluationError(f"Target sensitivity must be in (0, 1], got {target_sensitivity}.")
    y = np.asarray(y_true).astype(int)
    scores = np.sort(np.asarray(p_positive, dtype=float)[y == 1])[::-1]
    if len(scores) == 0:
        raise EvaluationError("No positive (Abnormal) images: cannot choose a threshold.")
    k = max(1, int(np.ceil(target_sensitivity * len(scores) - 1e-9)))
    return float(scores[k - 1])


def operating_point(
    y_true: np.ndarray, p_positive: np.ndarray, target_sensitivity: float = 0.99
) -> dict[str, Any]:
    """The threshold of :func:`choose_threshold`, its metrics, and what it costs vs 0.5."""
    t = choose_threshold(y_true, p_positive, target_sensitivity)
    at = binary_metrics(y_true, p_positive, t)
    default = binary_metrics(y_true, p_positive, 0.5)
    cost = None
    if at["specificity"] is not None and default["specificity"] is not None:
        cost = default["specificity"] - at["specificity"]
    return {
        "threshold": t,
        "target_sensitivity": float(target_sensitivity),
        "chosen_on": "out-of-fold predictions (the same ones these metrics are computed on)",
        "metrics": at,
        "specificity_cost_vs_0_5": cost,
    }


# -- summaries -------------------------------------------------------------------------------


def _spread(values: Sequence[float | None]) -> dict[str, float] | None:
    v = np.array([x for x in values if x is not None], dtype=float)
    if not len(v):
        return None
    return {
        "mean": float(v.mean()),
        "sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
        "min": float(v.min()),
        "max": float(v.max()),
    }


def cv_summary(
    labels: np.ndarray,
    groups: np.ndarray | None,
    cv: CVResult,
    *,
    target_sensitivity: float = DEFAULT_TARGET_SENSITIVITY,
    n_resamples: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
) -> dict[str, Any]:
    """The JSON-ready ``cv`` section: per-fold, pooled, intervals, operating point, calibration.

    Pooled metrics are computed on all out-of-fold predictions at threshold 0.5; the
    operating point's at its threshold. Intervals resample cluster images (cells without
    groups), with the same resamples for both thresholds.
    """
    y = np.asarray(labels).astype(int)
    folds = []
    for k, (_, te) in enumerate(cv.folds):
        m = binary_metrics(y[te], cv.oof[te])
        m.update(
            fold=k,
            n_groups=len(np.unique(groups[te])) if groups is not None else None,
            ece=reliability(y[te], cv.oof[te])["ece"],
            **{key: v for key, v in cv.fold_params[k].items() if key != "seconds"},
        )
        folds.append(m)
    pooled = binary_metrics(y, cv.oof)
    calib = reliability(y, cv.oof)
    pooled["ece"] = calib["ece"]
    op = operating_point(y, cv.oof, target_sensitivity)
    op["metrics"]["ece"] = calib["ece"]
    boot = {
        "pooled": bootstrap_intervals(
            y, cv.oof, groups, threshold=0.5, n_resamples=n_resamples, seed=cv.seed, level=level
        ),
        "operating_point": bootstrap_intervals(
            y,
            cv.oof,
            groups,
            threshold=op["threshold"],
            n_resamples=n_resamples,
            seed=cv.seed,
            level=level,
        ),
    }
    return {
        "n_splits": len(cv.folds),
        "seed": cv.seed,
        "grouped": cv.grouped,
        "n": len(y),
        "n_positive": int(y.sum()),
        "n_groups": len(np.unique(groups)) if groups is not None else None,
        "folds": folds,
        "fold_spread": {
            key: spread
            for key in INTERVAL_METRICS
            if (spread := _spread([f[key] for f in folds])) is not None
        },
        "pooled": pooled,
        "operating_point": op,
        "reliability": calib,
        "roc_curve": roc_points(y, cv.oof),
        "ci": {
            "method": (
                "percentile bootstrap over cluster images (groups)"
                if groups is not None
                else "percentile bootstrap over cells (the data has no groups)"
            ),
            "unit": boot["pooled"]["unit"],
            "n_units": boot["pooled"]["n_units"],
            "n_resamples": n_resamples,
            "level": level,
            "seed": cv.seed,
            "pooled": boot["pooled"]["intervals"],
            "operating_point": boot["operating_point"]["intervals"],
        },
    }


def seed_labels(cell_types: np.ndarray) -> np.ndarray:
    """0/1 labels of cell-type indices (into :data:`CELL_TYPES`) under the ``seed`` grouping."""
    mapping = np.array([LABELS.index(GROUPINGS["seed"][t]) for t in CELL_TYPES])
    return mapping[np.asarray(cell_types, dtype=int)]


def seed_protocol(
    features: np.ndarray,
    cell_types: np.ndarray,
    groups: np.ndarray | None,
    *,
    seed: int = 0,
    test_size: float = 0.2,
    n_splits: int = DEFAULT_FOLDS,
    c: float | None = None,
    calibrate: str | None = None,
    c_grid: Sequence[float] = C_GRID,
    n_resamples: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
) -> dict[str, Any]:
    """The original project's protocol next to a grouped CV under the same grouping.

    ``split``: ``seed`` grouping (Metaplastic counted Abnormal), one random per-cell split
    (stratified by label, ``test_size`` held out), the head fitted on the rest with C chosen by
    per-cell CV (as that protocol would), metrics at 0.5 with intervals over cells (as it
    treats cells as independent). ``grouped_cv``: the same grouping, grouped K-fold CV. The
    difference between the two is what the leaky split adds; ``test_cells_with_cluster_in_train``
    measures the leak.
    """
    from sklearn.model_selection import train_test_split as sk_split

    y = seed_labels(cell_types)
    rows = np.arange(len(y))
    tr, te = sk_split(rows, test_size=test_size, random_state=seed, stratify=y)
    tr, te = np.sort(tr), np.sort(te)
    head, _ = _fit_fold_head(
        features[tr],
        y[tr],
        None,
        c=c,
        calibrate=calibrate,
        n_splits=n_splits,
        seed=seed,
        c_grid=c_grid,
    )
    p = head.predict_proba(features[te])[:, 1]
    leak = None
    if groups is not None:
        g = np.asarray(groups)
        leak = float(np.isin(g[te], g[tr]).mean())
    cv = cross_validate(
        features,
        y,
        groups,
        n_splits=n_splits,
        seed=seed,
        c=c,
        calibrate=calibrate,
        c_grid=c_grid,
    )
    pooled = binary_metrics(y, cv.oof)
    pooled["ece"] = reliability(y, cv.oof)["ece"]
    test = binary_metrics(y[te], p)
    test["ece"] = reliability(y[te], p)["ece"]
    return {
        "grouping": "seed",
        "split": {
            "description": (
                f"one random per-cell {round(100 * (1 - test_size))}/{round(100 * test_size)} "
                f"split (stratified by label, seed {seed}), cluster images ignored"
            ),
            "train_size": len(tr),
            "test_size": len(te),
            "test_cells_with_cluster_in_train": leak,
            "test": test,
            "ci": bootstrap_intervals(
                y[te], p, None, n_resamples=n_resamples, seed=seed, level=level
            )["intervals"],
            "ci_unit": "cells",
        },
        "grouped_cv": {
            "description": f"stratified {len(cv.folds)}-fold CV grouped by cluster image",
            "n_splits": len(cv.folds),
            "grouped": cv.grouped,
            "pooled": pooled,
            "ci": bootstrap_intervals(
                y, cv.oof, groups, n_resamples=n_resamples, seed=seed, level=level
            )["intervals"],
            "ci_unit": "groups" if groups is not None else "cells",
        },
    }


def summary_lines(metrics: dict[str, Any]) -> list[str]:
    """A few human-readable lines about ``metrics["cv"]`` (and the seed protocol) for a CLI."""
    cv = metrics["cv"]
    ci = cv["ci"]

    def show(m: dict[str, Any], intervals: dict[str, Any] | None, keys: Sequence[str]) -> str:
        parts = []
        for key in keys:
            value = m.get(key)
            interval = (intervals or {}).get(key)
            text = "n/a" if value is None else f"{value:.3f}"
            if value is not None and interval:
                text += f" [{interval[0]:.3f}, {interval[1]:.3f}]"
            parts.append(f"{key} {text}")
        return ", ".join(parts)

    keys = ("accuracy", "sensitivity", "specificity", "roc_auc")
    op = cv["operating_point"]
    lines = [
        f"{cv['n_splits']}-fold CV {'grouped by cluster image' if cv['grouped'] else 'per image'}"
        f", pooled out-of-fold at 0.5 (95% CI over {ci['unit']}): "
        + show(cv["pooled"], ci["pooled"], keys),
        f"operating point {op['threshold']:.4f} (target sensitivity {op['target_sensitivity']}, "
        "chosen and scored on the same out-of-fold predictions: optimistic): "
        + show(op["metrics"], ci["operating_point"], ("sensitivity", "specificity")),
        "calibration: " + show(cv["pooled"], ci["pooled"], ("ece", "brier")),
    ]
    seed = metrics.get("protocol_seed")
    if seed:
        lines.append(
            "seed protocol (per-cell split, CI over cells): "
            + show(seed["split"]["test"], seed["split"]["ci"], keys)
        )
        lines.append(
            "seed grouping, grouped CV: "
            + show(seed["grouped_cv"]["pooled"], seed["grouped_cv"]["ci"], keys)
        )
    return lines


# -- a model ---------------------------------------------------------------------------------


@dataclass
class EvalOptions:
    """Options of :func:`evaluate_model` (the flags of ``scripts/evaluate.py``).

    Attributes:
        folds: CV folds. seed: seed of the folds, the heads and the bootstrap.
        target_sensitivity: the operating point's target on out-of-fold predictions.
        calibrate: None or a ``CalibratedClassifierCV`` method; the published head is then
            refitted calibrated on the model's training rows.
        protocol: ``grouped`` (grouped CV only) or ``seed`` (also the original protocol).
        c_selection: ``nested`` (C chosen inside each training fold) or ``fixed`` (the
            model's C in every fold).
        n_resamples: bootstrap resamples. level: interval coverage.
    """

    folds: int = DEFAULT_FOLDS
    seed: int = 0
    target_sensitivity: float = DEFAULT_TARGET_SENSITIVITY
    calibrate: str | None = None
    protocol: str = "grouped"
    c_selection: str = "nested"
    n_resamples: int = DEFAULT_RESAMPLES
    level: float = DEFAULT_LEVEL

    def check(self) -> None:
        """Raise :class:`EvaluationError` for values out of range."""
        if self.protocol not in PROTOCOLS:
            raise EvaluationError(f"protocol must be one of {list(PROTOCOLS)}.")
        if self.c_selection not in C_SELECTIONS:
            raise EvaluationError(f"c_selection must be one of {list(C_SELECTIONS)}.")
        if self.calibrate is not None and self.calibrate not in CALIBRATION_METHODS:
            raise EvaluationError(f"calibrate must be one of {list(CALIBRATION_METHODS)}.")
        if self.folds < 2:
            raise EvaluationError(f"Need at least 2 folds, got {self.folds}.")
        if not 0.0 < self.target_sensitivity <= 1.0:
            raise EvaluationError(
                f"Target sensitivity must be in (0, 1], got {self.target_sensitivity}."
            )
        if self.n_resamples < 100:
            raise EvaluationError("Use at least 100 bootstrap resamples.")


def evaluate_model(
    model: CervixClassifier,
    features: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray | None,
    *,
    opts: EvalOptions | None = None,
    cell_types: np.ndarray | None = None,
    train_rows: np.ndarray | None = None,
    test_rows: np.ndarray | None = None,
    dataset: str | None = None,
    same_data: bool = True,
) -> CervixClassifier:
    """Cross-validate a model's recipe on its data and return the model with the results.

    The returned model's config has ``decision_threshold`` at the operating point and its
    ``metrics`` gain ``cv`` (and ``protocol_seed`` with ``protocol="seed"``). With
    ``opts.calibrate`` the head is replaced by a calibrated one fitted on ``train_rows`` (the
    rows the original head saw) and the held-out ``test`` metrics are recomputed with it.

    Args:
        model: the trained model (its C, grouping and calibration define the recipe).
        features, labels, groups: the whole dataset, as cached features.
        cell_types: cell-type indices, needed by the seed protocol.
        train_rows, test_rows: the model's training / held-out rows (for ``calibrate``).
        dataset: where the data came from (recorded). same_data: whether it is the data the
            model was trained on.

    Raises:
        EvaluationError, SplitError, LabelError: with what to change.
    """
    from .modeling import CervixClassifier

    opts = opts or EvalOptions()
    opts.check()
    cfg = model.config
    t0 = time.perf_counter()
    labels = np.asarray(labels).astype(int)
    c_model = cfg.head_params.get("C")
    if opts.c_selection == "fixed" and c_model is None:
        raise EvaluationError("c_selection='fixed' needs the model's C in head_params.")
    c = float(c_model) if opts.c_selection == "fixed" else None
    scores = cfg.head_params.get("cv_scores")
    c_grid = tuple(float(v) for v in scores) if scores else C_GRID  # the model's own grid
    previous = (cfg.head_params.get("calibration") or {}).get("method")
    method = opts.calibrate or previous
    if opts.calibrate and train_rows is None:
        raise EvaluationError(
            "Calibrating needs the model's training rows: evaluate on the data it was trained "
            "on (same dataset and revision)."
        )
    if opts.protocol == "seed" and cell_types is None:
        raise LabelError(
            "--protocol seed needs the five SIPaKMeD cell types (the seed grouping counts "
            "Metaplastic Abnormal); this data has only Normal/Abnormal labels."
        )
    cv = cross_validate(
        features,
        labels,
        groups,
        n_splits=opts.folds,
        seed=opts.seed,
        c=c,
        calibrate=method,
        c_grid=c_grid,
    )
    section = cv_summary(
        labels,
        groups,
        cv,
        target_sensitivity=opts.target_sensitivity,
        n_resamples=opts.n_resamples,
        level=opts.level,
    )
    section.update(
        {
            "protocol": "grouped",
            "grouping": cfg.grouping,
            "c_selection": opts.c_selection,
            "c_grid": list(c_grid),
            "c_model": c_model,
            "calibration": method,
            "dataset": dataset or cfg.dataset,
            "same_data_as_training": bool(same_data),
        }
    )
    from .plots import PLOT_FILES

    section["plots"] = dict(PLOT_FILES)
    metrics = dict(cfg.metrics)
    metrics["cv"] = section
    head = model.head
    head_params = dict(cfg.head_params)
    if opts.calibrate:
        rows = np.asarray(train_rows)
        head = fit_calibrated_head(
            features[rows],
            labels[rows],
            groups[rows] if groups is not None else None,
            c=float(c_model if c_model is not None else 1.0),
            method=opts.calibrate,
            n_splits=opts.folds,
            seed=opts.seed,
        )
        head_params["calibration"] = {
            "method": opts.calibrate,
            "folds": len(head.calibrated_classifiers_),
            "grouped": groups is not None,
            "fitted_on": f"the model's training split ({len(rows)} images)",
        }
        if test_rows is not None and len(test_rows):
            te = np.asarray(test_rows)
            metrics["test"] = binary_metrics(labels[te], head.predict_proba(features[te])[:, 1])
    if opts.protocol == "seed":
        metrics["protocol_seed"] = seed_protocol(
            features,
            cell_types,
            groups,
            seed=opts.seed,
            test_size=0.2,
            n_splits=opts.folds,
            c=c,
            calibrate=method,
            c_grid=c_grid,
            n_resamples=opts.n_resamples,
            level=opts.level,
        )
    else:
        metrics.pop("protocol_seed", None)
    section["seconds"] = round(time.perf_counter() - t0, 2)
    op = section["operating_point"]
    pooled = section["pooled"]
    logger.info(
        "Grouped %d-fold CV (pooled out-of-fold, threshold 0.5): accuracy %.4f, sensitivity %s, "
        "specificity %s, ROC AUC %s, Brier %.4f, ECE %.4f",
        section["n_splits"],
        pooled["accuracy"],
        pooled["sensitivity"],
        pooled["specificity"],
        pooled["roc_auc"],
        pooled["brier"],
        pooled["ece"],
    )
    logger.info(
        "Operating point: threshold %.4f for sensitivity >= %s gives sensitivity %s, "
        "specificity %s (out-of-fold, optimistic)",
        op["threshold"],
        op["target_sensitivity"],
        op["metrics"]["sensitivity"],
        op["metrics"]["specificity"],
    )
    spec = op["metrics"]["specificity"]
    if spec is not None and spec < 0.1:
        logger.warning(
            "The operating point flags %.0f%% of Normal images: on this data the target "
            "sensitivity %s is only reached by flagging (almost) everything.",
            100 * (1 - spec),
            op["target_sensitivity"],
        )
    if pooled["ece"] is not None and pooled["ece"] > ECE_WARNING and not method:
        logger.warning(
            "ECE %.3f > %.2f: the probabilities are poorly calibrated; consider --calibrate.",
            pooled["ece"],
            ECE_WARNING,
        )
    config = cfg.replace(
        decision_threshold=op["threshold"], metrics=metrics, head_params=head_params
    )
    return CervixClassifier(
        config,
        model.backbone,
        head,
        model.cell_type_head,
        novelty=getattr(model, "novelty", None),
        source=model.source,
    )


def push_directory(directory: str | Path, repo_id: str, *, private: bool = False) -> str:
    """Upload a saved model directory (plots included) in one commit; returns its sha."""
    from . import hub

    return hub.upload_dir(
        directory,
        repo_id,
        private=private,
        commit_message="Upload cervix_hf model with grouped-CV evaluation",
    )


def evaluate_and_save(
    model: CervixClassifier,
    features: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray | None,
    opts: EvalOptions,
    *,
    out: str | Path,
    cell_types: np.ndarray | None = None,
    train_rows: np.ndarray | None = None,
    test_rows: np.ndarray | None = None,
    dataset: str | None = None,
    same_data: bool = True,
    push_to_hub: str | None = None,
    private: bool = False,
) -> tuple[CervixClassifier, str | None]:
    """:func:`evaluate_model`, then ``save_pretrained`` into ``out`` and optionally push.

    Returns:
        The evaluated model and the commit sha of the push (None without one).
    """
    model = evaluate_model(
        model,
        features,
        labels,
        groups,
        opts=opts,
        cell_types=cell_types,
        train_rows=train_rows,
        test_rows=test_rows,
        dataset=dataset,
        same_data=same_data,
    )
    model.save_pretrained(out, repo_id=push_to_hub)
    commit = push_directory(out, push_to_hub, private=private) if push_to_hub else None
    return model, commit


@dataclass
class EvaluateResult:
    """What :func:`evaluate_directory` produced."""

    model: CervixClassifier
    out: Path
    metrics: dict[str, Any]
    commit: str | None


def evaluate_directory(
    model_dir: str | Path,
    dataset: str,
    opts: EvalOptions | None = None,
    *,
    revision: str | None = None,
    split: str | None = None,
    cache_dir: str | None = None,
    batch_size: int | None = None,
    device: str | None = None,
    engine: str = "auto",
    progress: bool = True,
    push_to_hub: str | None = None,
    private: bool = False,
) -> EvaluateResult:
    """Evaluate a saved model on its dataset and update its directory in place.

    Loads the model (checking its backbone), loads the data with the model's grouping, reuses
    (or computes once) the cached features, runs :func:`evaluate_model`, re-saves the
    directory (``metrics.json``, ``config.json``, ``README.md``, plots) and optionally
    pushes it.

    Raises:
        EvaluationError: the data is labelled differently from the model's training data.
    """
    from .data import load_cells
    from .features import backbone_for_config, dataset_features
    from .modeling import CervixClassifier

    opts = opts or EvalOptions()
    opts.check()
    model_dir = Path(model_dir)
    model = CervixClassifier.from_pretrained(model_dir)
    cfg = model.config
    backbone = backbone_for_config(cfg, device=device, engine=engine)
    data = load_cells(dataset, revision=revision, split=split, grouping=cfg.grouping)
    if data.grouping != cfg.grouping:
        raise EvaluationError(
            f"The model was trained with grouping {cfg.grouping!r} but {dataset} gives "
            f"{data.grouping!r} labels; evaluate on data labelled like its training data."
        )
    ds = data.dataset
    columns = ds.select_columns(
        [col for col in ("label", "cell_type", "group") if col in ds.column_names]
    ).with_format("numpy")
    labels = np.asarray(columns["label"], dtype=int)
    groups = np.asarray(columns["group"]).astype(str) if data.has_groups else None
    cell_types = np.asarray(columns["cell_type"], dtype=int) if data.has_cell_types else None
    feats = dataset_features(
        backbone,
        ds,
        cache_dir=cache_dir,
        batch_size=batch_size,
        progress=progress,
        fingerprint=data.fingerprint,
    )
    same = data.fingerprint == cfg.dataset_fingerprint
    if not same:
        logger.warning(
            "%s is not the data this model was trained on (fingerprint %s, model: %s): the CV "
            "describes the training recipe on this data, and the threshold comes from it.",
            dataset,
            data.fingerprint,
            cfg.dataset_fingerprint,
        )
    train_rows = test_rows = None
    if same:
        if cfg.test_size:
            held = train_test_split(labels, groups, cfg.test_size, cfg.split_seed or 0)
            train_rows, test_rows = held.train, held.test
        else:
            train_rows = np.arange(len(labels))
    model, commit = evaluate_and_save(
        model,
        feats,
        labels,
        groups,
        opts,
        out=model_dir,
        cell_types=cell_types,
        train_rows=train_rows,
        test_rows=test_rows,
        dataset=data.source,
        same_data=same,
        push_to_hub=push_to_hub,
        private=private,
    )
    return EvaluateResult(model, model_dir, model.config.metrics, commit)
