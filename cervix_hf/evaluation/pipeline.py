"""All the statistics of one evaluation, on features in memory: a pure function.

:func:`evaluate_features` takes the data (features, labels, cluster images, cell types), the
published head and the rows it was fitted on, and returns an :class:`EvaluationResult`: the
typed :class:`~cervix_hf.evaluation.report.EvaluationReport` plus the raw predictions behind
it (``benchmarks/validate_evaluation.py`` reads both). It saves nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import EvaluationError, LabelError
from ..head import C_GRID
from ..metrics import binary_metrics
from .bootstrap import DEFAULT_RESAMPLES, unit_codes
from .cv import (
    C_SELECTIONS,
    CALIBRATION_METHODS,
    DEFAULT_FOLDS,
    CVResult,
    NestedResult,
    choose_operating_point,
    nested_cv,
)
from .intervals import DEFAULT_LEVEL
from .protocols import SEED_SPLIT_SEEDS, seed_protocol
from .report import (
    EvaluationReport,
    FoldRow,
    HeldOut,
    NestedCV,
    RepeatSpread,
    Spread,
)
from .scoring import CellTypes, Scoring, score_fixed, score_nested
from .threshold import DEFAULT_TARGET_SENSITIVITY, check_target

logger = logging.getLogger(__name__)

PROTOCOLS: tuple[str, ...] = ("grouped", "seed")


@dataclass
class EvalOptions:
    """Options of an evaluation (the flags of ``scripts/evaluate.py`` and ``train.py --cv``).

    Attributes:
        folds: CV folds (outer and inner). seed: seed of the folds, heads and bootstrap.
        target_sensitivity: the operating point's target.
        calibrate: None or a ``CalibratedClassifierCV`` method for the published head.
        protocol: ``grouped``, or ``seed`` to add the original project's protocol.
        c_selection: ``nested`` (C chosen inside each outer training set) or ``fixed`` (the
            published C everywhere: faster, mildly optimistic).
        n_resamples: bootstrap resamples. level: interval coverage.
        prevalence: a prevalence for PPV / NPV and the decision curve (None: the data's).
        repeats: nested CV repeats with different fold seeds.
        split_seeds: random per-cell splits of the seed protocol.
    """

    folds: int = DEFAULT_FOLDS
    seed: int = 0
    target_sensitivity: float = DEFAULT_TARGET_SENSITIVITY
    calibrate: str | None = None
    protocol: str = "grouped"
    c_selection: str = "nested"
    n_resamples: int = DEFAULT_RESAMPLES
    level: float = DEFAULT_LEVEL
    prevalence: float | None = None
    repeats: int = 1
    split_seeds: int = SEED_SPLIT_SEEDS

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
        check_target(self.target_sensitivity)
        if self.n_resamples < 100:
            raise EvaluationError("Use at least 100 bootstrap resamples.")
        if self.prevalence is not None and not 0.0 < self.prevalence < 1.0:
            raise EvaluationError(f"Prevalence must be in (0, 1), got {self.prevalence}.")
        if self.repeats < 1:
            raise EvaluationError(f"Repeats must be at least 1, got {self.repeats}.")
        if self.split_seeds < 2:
            raise EvaluationError("The seed protocol needs at least 2 split seeds.")

    def scoring(self) -> Scoring:
        """How figures are scored (level, resamples, seed, prevalence)."""
        return Scoring(self.level, self.n_resamples, self.seed, self.prevalence)


@dataclass(frozen=True)
class EvalData:
    """The data, as features: labels 0/1 (1 = positive), cluster images, cell types."""

    features: np.ndarray
    y: np.ndarray
    groups: np.ndarray | None
    types: CellTypes | None = None


@dataclass(frozen=True)
class Published:
    """The published head and the rows it was fitted on.

    Attributes:
        head: the fitted head (calibrated already when the recipe calibrates).
        column: its positive column in ``predict_proba`` (the model's positive index).
        c: its C (chosen on ``train_rows``). calibration: its calibration method or None.
        train_rows: the rows it was fitted on. test_rows: the untouched held-out rows.
    """

    head: Any
    column: int
    c: float
    calibration: str | None
    train_rows: np.ndarray
    test_rows: np.ndarray | None


@dataclass(frozen=True)
class DataInfo:
    """Where the data came from, for the report."""

    dataset: str
    revision: str | None = None
    fingerprint: str | None = None
    grouping: str = "clinical"


@dataclass(frozen=True)
class EvaluationResult:
    """The report and the predictions behind it."""

    report: EvaluationReport
    threshold_cv: CVResult
    held_out_scores: np.ndarray | None
    nested: list[NestedResult]


def _spread(values: Sequence[float | None]) -> Spread:
    v = np.array([x for x in values if x is not None], dtype=float)
    if not len(v):
        return Spread(float("nan"), 0.0, float("nan"), float("nan"), 0)
    return Spread(
        float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0, v.min(), v.max(), len(v)
    )


def _pooled_at_fold_thresholds(y: np.ndarray, run: NestedResult) -> dict[str, Any]:
    flagged = np.zeros(len(y), dtype=bool)
    for f in run.folds:
        flagged[f.test] = run.scores[f.test] >= f.threshold
    m = binary_metrics(y, flagged.astype(float), 0.5)
    m["roc_auc"] = binary_metrics(y, run.scores)["roc_auc"]
    return m


def evaluate_features(
    data: EvalData,
    published: Published,
    opts: EvalOptions,
    info: DataInfo,
    *,
    c_grid: Sequence[float] = C_GRID,
    seed_features: np.ndarray | None = None,
    origin: str = "scripts/evaluate.py",
) -> EvaluationResult:
    """Operating point, held-out score of the published head, nested CV, seed protocol.

    1. The threshold for the target sensitivity is chosen on out-of-fold predictions of the
       training rows only (grouped CV with the published C).
    2. The published head is scored once on the held-out rows at that threshold.
    3. Nested grouped CV over all rows estimates what the recipe (C choice, head, threshold
       rule) achieves on new cluster images, with the threshold's variability in the
       intervals; repeated ``opts.repeats`` times with other fold seeds.
    4. With ``opts.protocol == "seed"`` and ``seed_features``: the original protocol.

    Raises:
        EvaluationError, SplitError, LabelError: with what to change.
    """
    opts.check()
    t0 = time.perf_counter()
    x, y, groups = data.features, np.asarray(data.y).astype(int), data.groups
    if opts.protocol == "seed":
        if data.types is None:
            raise LabelError(
                "--protocol seed needs the five SIPaKMeD cell types (the seed grouping counts "
                "Metaplastic Abnormal); this data has only Normal/Abnormal labels."
            )
        if groups is None or seed_features is None:
            raise EvaluationError(
                "--protocol seed needs cluster-image groups and the seed's features "
                "(seed_features) to compare per-cell with grouped CV."
            )
    how = opts.scoring()
    strata = data.types.codes if data.types is not None else None
    tr = published.train_rows
    op, threshold_cv = choose_operating_point(
        x[tr],
        y[tr],
        groups[tr] if groups is not None else None,
        c=published.c,
        calibrate=published.calibration,
        target_sensitivity=opts.target_sensitivity,
        n_splits=opts.folds,
        seed=opts.seed,
        strata=strata[tr] if strata is not None else None,
    )
    logger.info(
        "Operating point: threshold %.4f (sensitivity >= %s on %d training rows' out-of-fold "
        "predictions)",
        op.threshold,
        opts.target_sensitivity,
        op.n,
    )
    held, p_test = None, None
    te = published.test_rows
    if te is not None and len(te):
        p_test = published.head.predict_proba(x[te])[:, published.column]
        units, n_units, _ = unit_codes(groups[te] if groups is not None else None, len(te))
        held = HeldOut(
            n_train=len(tr),
            n_train_groups=len(np.unique(groups[tr])) if groups is not None else None,
            performance=score_fixed(
                y[te],
                p_test,
                units,
                n_units,
                op.threshold,
                how=how,
                types=data.types.select(te) if data.types is not None else None,
            ),
        )
    units, n_units, _ = unit_codes(groups, len(y))
    runs = [
        nested_cv(
            x,
            y,
            groups,
            target_sensitivity=opts.target_sensitivity,
            n_splits=opts.folds,
            seed=opts.seed + r,
            c=published.c if opts.c_selection == "fixed" else None,
            calibrate=published.calibration,
            c_grid=c_grid,
            strata=strata,
            units=units,
        )
        for r in range(opts.repeats)
    ]
    first = runs[0]
    performance = score_nested(
        y,
        first.scores,
        units,
        n_units,
        [f.threshold_data for f in first.folds],
        [f.threshold for f in first.folds],
        opts.target_sensitivity,
        how=how,
        types=data.types,
    )
    rows = []
    for r, run in enumerate(runs):
        for k, f in enumerate(run.folds):
            m = binary_metrics(y[f.test], run.scores[f.test], f.threshold)
            rows.append(
                FoldRow(
                    repeat=r,
                    fold=k,
                    n=len(f.test),
                    n_positive=int(y[f.test].sum()),
                    n_groups=len(np.unique(groups[f.test])) if groups is not None else None,
                    c=f.params.c,
                    c_selection=f.params.c_selection,
                    inner_folds=f.inner_folds,
                    threshold=f.threshold,
                    sensitivity=m["sensitivity"],
                    specificity=m["specificity"],
                    roc_auc=m["roc_auc"],
                )
            )
    spread = None
    if len(runs) > 1:
        pooled = [_pooled_at_fold_thresholds(y, run) for run in runs]
        spread = RepeatSpread(
            sensitivity=_spread([m["sensitivity"] for m in pooled]),
            specificity=_spread([m["specificity"] for m in pooled]),
            roc_auc=_spread([m["roc_auc"] for m in pooled]),
        )
    nested = NestedCV(
        n_splits=len(first.folds),
        repeats=len(runs),
        seed=opts.seed,
        grouped=first.grouped,
        c_selection=opts.c_selection,
        calibration=published.calibration,
        performance=performance,
        folds=rows,
        repeat_spread=spread,
    )
    seed_report = None
    if opts.protocol == "seed" and seed_features is not None and data.types is not None:
        seed_report = seed_protocol(
            seed_features,
            data.types.codes,
            groups,
            n_splits=opts.folds,
            seed=opts.seed,
            split_seeds=opts.split_seeds,
            n_resamples=opts.n_resamples,
            level=opts.level,
        )
    report = EvaluationReport(
        origin=origin,
        dataset=info.dataset,
        dataset_revision=info.revision,
        dataset_fingerprint=info.fingerprint,
        grouping=info.grouping,
        n=len(y),
        n_positive=int(y.sum()),
        n_groups=n_units if groups is not None else None,
        target_sensitivity=float(opts.target_sensitivity),
        level=opts.level,
        n_resamples=opts.n_resamples,
        seed=opts.seed,
        prevalence=opts.prevalence,
        operating_point=op,
        held_out=held,
        nested=nested,
        seed_protocol=seed_report,
        seconds=round(time.perf_counter() - t0, 2),
    )
    return EvaluationResult(report, threshold_cv, p_test, runs)
