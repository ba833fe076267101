"""Grouped cross-validation of the head recipe, the operating point, and nested CV.

Everything runs on cached backbone features:

* :func:`cross_validate` -- stratified K-fold CV grouped by cluster image; each fold's head
  is fitted on the other folds only (C chosen inside the training folds, or fixed).
* :func:`choose_operating_point` -- the threshold ``predict`` uses: chosen on out-of-fold
  predictions of the *training rows only* (grouped inner CV with the published head's C), so
  the held-out split never influences it.
* :func:`nested_cv` -- the generalisation estimate: in each outer fold, C is chosen by
  grouped CV on the outer training rows and reused for their inner out-of-fold predictions,
  which choose that fold's threshold; both are applied once to the outer fold. About
  ``folds x (|C grid| x inner folds + inner folds + 1)`` head fits per repeat; the outer test
  fold influences nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import EvaluationError
from ..head import C_GRID, build_head, fit_head
from ..split import folds_with_fallback, make_folds
from .bootstrap import FoldThresholdData
from .report import OperatingPoint
from .threshold import choose_threshold

logger = logging.getLogger(__name__)

DEFAULT_FOLDS = 5
CALIBRATION_METHODS: tuple[str, ...] = ("sigmoid", "isotonic")
C_SELECTIONS: tuple[str, ...] = ("nested", "fixed")


def positive_scores(head: Any, features: np.ndarray, positive: int = 1) -> np.ndarray:
    """P(positive) from a fitted classifier: the column of class ``positive`` in ``classes_``."""
    column = int(np.flatnonzero(np.asarray(head.classes_) == positive)[0])
    return head.predict_proba(features)[:, column]


def fit_calibrated_head(
    features: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray | None,
    *,
    c: float,
    method: str = "sigmoid",
    n_splits: int = DEFAULT_FOLDS,
    seed: int = 0,
    strata: np.ndarray | None = None,
) -> Any:
    """The head (fixed C) wrapped in ``CalibratedClassifierCV`` with grouped stratified folds.

    Each inner fold fits the head on the others and the calibrator on it; predictions average
    the per-fold calibrated heads (``ensemble=True``). The result holds only types that
    :data:`cervix_hf.head.EXTRA_TRUSTED_TYPES` or skops' defaults trust.

    Raises:
        EvaluationError: unknown method. SplitError: too few groups for two folds.
    """
    from sklearn.calibration import CalibratedClassifierCV

    if method not in CALIBRATION_METHODS:
        raise EvaluationError(
            f"Unknown calibration method {method!r}: choose one of {list(CALIBRATION_METHODS)}."
        )
    labels = np.asarray(labels)
    folds = folds_with_fallback(labels, groups, n_splits, seed, strata)
    calibrated = CalibratedClassifierCV(build_head(c, seed), method=method, cv=folds, ensemble=True)
    return calibrated.fit(features, labels)


@dataclass(frozen=True)
class FoldParams:
    """How one fold's head was made: its C, how C was chosen, inner folds, calibration."""

    c: float
    c_selection: str
    inner_folds: int
    calibration: str | None
    seconds: float


def fit_fold_head(
    features: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray | None,
    *,
    c: float | None,
    calibrate: str | None,
    n_splits: int,
    seed: int,
    c_grid: Sequence[float] = C_GRID,
    strata: np.ndarray | None = None,
) -> tuple[Any, FoldParams]:
    """One training fold's head: C chosen on these rows only (``c=None``) or fixed."""
    t0 = time.perf_counter()
    if c is None:
        head, params = fit_head(
            features, labels, groups, c_grid=c_grid, n_splits=n_splits, seed=seed
        )
        chosen, selection, inner = float(params["C"]), "nested", int(params["cv_folds"])
    else:
        head = build_head(c, seed).fit(features, labels)
        chosen, selection, inner = float(c), "fixed", 0
    if calibrate:
        head = fit_calibrated_head(
            features,
            labels,
            groups,
            c=chosen,
            method=calibrate,
            n_splits=n_splits,
            seed=seed,
            strata=strata,
        )
    return head, FoldParams(chosen, selection, inner, calibrate, time.perf_counter() - t0)


@dataclass(frozen=True)
class CVResult:
    """Out-of-fold predictions of a K-fold cross-validation.

    Attributes:
        oof: P(positive) of each row, by the head that did not see its fold.
        fold: the fold each row was tested in.
        folds: (train rows, test rows) of each fold.
        params: each fold's head parameters.
        grouped: whether folds were grouped by cluster image.
        seed: seed of the folds.
    """

    oof: np.ndarray
    fold: np.ndarray
    folds: list[tuple[np.ndarray, np.ndarray]]
    params: list[FoldParams]
    grouped: bool
    seed: int


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
    strata: np.ndarray | None = None,
    fewer_folds_ok: bool = False,
) -> CVResult:
    """Stratified K-fold CV, grouped by cluster image, giving out-of-fold P(positive).

    Args:
        features: (N, D) cached backbone features. labels: (N,) 0/1.
        groups: cluster image of each row; None splits per image (leaky).
        n_splits: folds. seed: seed of the folds and the solver.
        c: None chooses C inside each training fold by grouped CV over ``c_grid``; a number
            fixes it.
        calibrate: None, or a ``CalibratedClassifierCV`` method fitted inside each fold.
        strata: cell types to balance across folds.
        fewer_folds_ok: use fewer folds when the data cannot fill ``n_splits``.

    Raises:
        SplitError: when the data has too few groups per class for the folds.
    """
    labels = np.asarray(labels).astype(int)
    if fewer_folds_ok:
        folds = folds_with_fallback(labels, groups, n_splits, seed, strata)
    else:
        folds = make_folds(labels, groups, n_splits, seed, strata)
    oof = np.full(len(labels), np.nan)
    fold_of = np.full(len(labels), -1, dtype=int)
    params: list[FoldParams] = []
    for k, (tr, te) in enumerate(folds):
        head, p = fit_fold_head(
            features[tr],
            labels[tr],
            groups[tr] if groups is not None else None,
            c=c,
            calibrate=calibrate,
            n_splits=n_splits,
            seed=seed,
            c_grid=c_grid,
            strata=strata[tr] if strata is not None else None,
        )
        oof[te] = positive_scores(head, features[te])
        fold_of[te] = k
        params.append(p)
        logger.debug("CV fold %d/%d: C=%s (%.1f s)", k + 1, len(folds), p.c, p.seconds)
    return CVResult(oof, fold_of, folds, params, groups is not None, seed)


def choose_operating_point(
    features: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray | None,
    *,
    c: float,
    calibrate: str | None,
    target_sensitivity: float,
    n_splits: int = DEFAULT_FOLDS,
    seed: int = 0,
    strata: np.ndarray | None = None,
) -> tuple[OperatingPoint, CVResult]:
    """The threshold for the target sensitivity, from the training rows' out-of-fold scores.

    Pass only the rows the published head was fitted on: grouped CV with the head's own C
    (chosen on those rows) gives each an out-of-fold score, and the threshold is the largest
    that reaches the target on them.
    """
    cv = cross_validate(
        features,
        labels,
        groups,
        n_splits=n_splits,
        seed=seed,
        c=c,
        calibrate=calibrate,
        strata=strata,
        fewer_folds_ok=True,
    )
    y = np.asarray(labels).astype(int)
    t = choose_threshold(y, cv.oof, target_sensitivity)
    flagged = cv.oof >= t
    return (
        OperatingPoint(
            threshold=t,
            target_sensitivity=float(target_sensitivity),
            n=len(y),
            n_positive=int(y.sum()),
            n_groups=len(np.unique(groups)) if groups is not None else None,
            folds=len(cv.folds),
            c=float(c),
            calibration=calibrate,
            oof_sensitivity=float(flagged[y == 1].mean()),
            oof_specificity=float((~flagged[y == 0]).mean()) if (y == 0).any() else None,
        ),
        cv,
    )


@dataclass(frozen=True)
class OuterFold:
    """One outer fold of a nested CV: its rows, head parameters and chosen threshold."""

    train: np.ndarray
    test: np.ndarray
    params: FoldParams
    inner_folds: int
    threshold: float
    threshold_data: FoldThresholdData


@dataclass(frozen=True)
class NestedResult:
    """One repeat of :func:`nested_cv`: outer out-of-fold scores and the outer folds."""

    scores: np.ndarray
    folds: list[OuterFold]
    seed: int
    grouped: bool


def nested_cv(
    features: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray | None,
    *,
    target_sensitivity: float,
    n_splits: int = DEFAULT_FOLDS,
    seed: int = 0,
    c: float | None = None,
    calibrate: str | None = None,
    c_grid: Sequence[float] = C_GRID,
    strata: np.ndarray | None = None,
    units: np.ndarray | None = None,
) -> NestedResult:
    """Nested grouped CV of the whole recipe: head, C and operating point.

    Args:
        features, labels, groups, strata: the data (labels 0/1; strata: cell types).
        target_sensitivity: the threshold rule's target.
        n_splits: outer (and inner) folds. seed: fold seed.
        c: None chooses C on each outer training set; a number fixes it.
        calibrate: the recipe's calibration method, if any.
        units: cluster codes of the rows (for re-choosing thresholds in a bootstrap).

    Raises:
        SplitError: too few cluster images per class for the outer folds.
    """
    y = np.asarray(labels).astype(int)
    units = np.arange(len(y)) if units is None else units
    outer = make_folds(y, groups, n_splits, seed, strata)
    scores = np.full(len(y), np.nan)
    folds: list[OuterFold] = []
    for k, (tr, te) in enumerate(outer):
        g_tr = groups[tr] if groups is not None else None
        s_tr = strata[tr] if strata is not None else None
        head, params = fit_fold_head(
            features[tr],
            y[tr],
            g_tr,
            c=c,
            calibrate=calibrate,
            n_splits=n_splits,
            seed=seed,
            c_grid=c_grid,
            strata=s_tr,
        )
        inner = cross_validate(
            features[tr],
            y[tr],
            g_tr,
            n_splits=n_splits,
            seed=seed,
            c=params.c,
            calibrate=calibrate,
            strata=s_tr,
            fewer_folds_ok=True,
        )
        t = choose_threshold(y[tr], inner.oof, target_sensitivity)
        scores[te] = positive_scores(head, features[te])
        pos = y[tr] == 1
        folds.append(
            OuterFold(
                train=tr,
                test=te,
                params=params,
                inner_folds=len(inner.folds),
                threshold=t,
                threshold_data=FoldThresholdData(te, inner.oof[pos], units[tr][pos]),
            )
        )
        logger.info(
            "Nested CV fold %d/%d: C=%s, threshold %.4f (%.1f s)",
            k + 1,
            len(outer),
            params.c,
            t,
            params.seconds,
        )
    return NestedResult(scores, folds, seed, groups is not None)
