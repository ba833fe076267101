"""The evaluation report: typed results that ``card.py``, ``plots.py`` and the CLIs read.

Statistics functions return these frozen dataclasses; ``metrics.json`` (and ``config.json``'s
``metrics``) hold :meth:`EvaluationReport.to_dict` under the key ``cv``, and
:func:`~cervix_hf.evaluation.serialise.report_from_metrics` reads it back into the same
types. Nothing downstream reads the JSON by string keys.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

#: Version of the report layout in ``metrics.json``; older layouts are not read back.
REPORT_FORMAT = 2
#: ``metrics.json`` key of the evaluation report (``save_pretrained`` draws its plots).
REPORT_KEY = "cv"
#: Below this many cluster images, cluster-level intervals are known to under-cover.
FEW_CLUSTERS = 50


def number(value: Any) -> float | None:
    """A finite float, or None (NaN and None become None)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class Estimate:
    """A figure with its interval.

    Attributes:
        value: the point estimate (None when undefined, e.g. sensitivity without positives).
        low, high: the interval (None when none could be computed; ``note`` says why).
        method: how the interval was computed (a key of :data:`INTERVAL_METHODS`).
        note: why there is no interval, or why it has zero width.
        bound: a one-sided 95% bound given with a zero-width interval.
    """

    value: float | None
    low: float | None = None
    high: float | None = None
    method: str | None = None
    note: str | None = None
    bound: float | None = None

    @property
    def zero_width(self) -> bool:
        """Whether the interval is a single point (it is then never shown bare)."""
        return self.low is not None and self.high is not None and self.high - self.low < 1e-12


#: Interval methods, as the card describes them.
INTERVAL_METHODS: dict[str, str] = {
    "cp-ess": (
        "Clopper-Pearson interval on the effective sample size, i.e. the number of cells "
        "divided by the design effect of the cluster images (Korn & Graubard 1998); with no "
        "error to estimate it from, the design effect comes from the intra-cluster "
        "correlation of the scores"
    ),
    "cp-ess-rechosen": (
        "Clopper-Pearson interval on the effective sample size implied by a cluster "
        "bootstrap in which each fold's threshold is re-chosen inside every resample, so the "
        "threshold's own variability is included"
    ),
    "bootstrap": "percentile bootstrap over cluster images",
    "paired-bootstrap": "paired percentile bootstrap over cluster images",
    "bonferroni": (
        "from the sensitivity and specificity intervals at level 1 - alpha/2 each "
        "(Bonferroni), so at least the nominal level"
    ),
}


@dataclass(frozen=True)
class Spread:
    """Mean, standard deviation and range of a figure over folds, repeats or split seeds."""

    mean: float
    sd: float
    min: float
    max: float
    n: int


@dataclass(frozen=True)
class Confusion:
    """Counts at a threshold (rows true, columns predicted)."""

    tn: int
    fp: int
    fn: int
    tp: int


@dataclass(frozen=True)
class AtThreshold:
    """Figures that depend on the decision threshold.

    Attributes:
        threshold: the threshold (None when each fold had its own: nested CV).
        n, n_positive, n_groups: images, positives and cluster images scored.
        confusion: counts at the threshold.
        ppv, npv: at the data's own share of positives.
        prevalence: a prevalence the user gave (``--prevalence``); ppv/npv_at_prevalence at it.
    """

    threshold: float | None
    n: int
    n_positive: int
    n_groups: int | None
    confusion: Confusion
    sensitivity: Estimate
    specificity: Estimate
    ppv: Estimate
    npv: Estimate
    accuracy: Estimate
    f1: float | None
    prevalence: float | None = None
    ppv_at_prevalence: Estimate | None = None
    npv_at_prevalence: Estimate | None = None


@dataclass(frozen=True)
class Scores:
    """Threshold-free figures: ranking and calibration."""

    roc_auc: Estimate
    brier: Estimate
    ece: Estimate
    calibration_slope: Estimate
    calibration_intercept: Estimate


@dataclass(frozen=True)
class TypeRow:
    """One cell type at the operating point: sensitivity (abnormal types) or false-positive
    rate (normal types)."""

    cell_type: str
    label: str
    measure: str
    n: int
    n_groups: int | None
    rate: Estimate


@dataclass(frozen=True)
class ReliabilityBin:
    """One equal-width bin of the reliability diagram."""

    low: float
    high: float
    n: int
    mean_predicted: float | None
    fraction_positive: float | None


@dataclass(frozen=True)
class DecisionCurve:
    """Net benefit against threshold probability, with the treat-all line."""

    label: str
    prevalence: float
    thresholds: list[float]
    model: list[float]
    treat_all: list[float]


@dataclass(frozen=True)
class Curves:
    """What the plots draw."""

    roc_fpr: list[float]
    roc_tpr: list[float]
    reliability: list[ReliabilityBin]
    decision: list[DecisionCurve]


@dataclass(frozen=True)
class Performance:
    """One set of predictions scored: at the operating point, threshold-free, per cell type."""

    at_threshold: AtThreshold
    scores: Scores
    per_type: list[TypeRow]
    curves: Curves


@dataclass(frozen=True)
class OperatingPoint:
    """How the decision threshold ``predict`` uses was chosen.

    Attributes:
        threshold: the threshold (``config.json``'s ``decision_threshold``).
        target_sensitivity: the sensitivity it reaches on the predictions it was chosen on.
        n, n_positive, n_groups: the training rows whose out-of-fold predictions chose it.
        folds: folds of that grouped CV. c: the head's C in them. calibration: its method.
        oof_sensitivity, oof_specificity: on those same predictions (optimistic).
    """

    threshold: float
    target_sensitivity: float
    n: int
    n_positive: int
    n_groups: int | None
    folds: int
    c: float
    calibration: str | None
    oof_sensitivity: float | None
    oof_specificity: float | None


@dataclass(frozen=True)
class FoldRow:
    """One outer fold of the nested CV."""

    repeat: int
    fold: int
    n: int
    n_positive: int
    n_groups: int | None
    c: float
    c_selection: str
    inner_folds: int
    threshold: float
    sensitivity: float | None
    specificity: float | None
    roc_auc: float | None


@dataclass(frozen=True)
class RepeatSpread:
    """Pooled nested-CV figures over repeats with different fold seeds."""

    sensitivity: Spread
    specificity: Spread
    roc_auc: Spread


@dataclass(frozen=True)
class NestedCV:
    """The recipe's generalisation estimate: nested grouped CV.

    In each outer fold, C is chosen by grouped CV on the outer training rows, the threshold
    on their inner out-of-fold predictions, and both are applied once to the outer fold.
    ``performance`` is the first repeat's, with thresholds re-chosen inside each bootstrap
    resample; ``repeat_spread`` summarises all repeats.
    """

    n_splits: int
    repeats: int
    seed: int
    grouped: bool
    c_selection: str
    calibration: str | None
    performance: Performance
    folds: list[FoldRow]
    repeat_spread: RepeatSpread | None


@dataclass(frozen=True)
class HeldOut:
    """The published head scored once on the untouched held-out split at its threshold."""

    n_train: int
    n_train_groups: int | None
    performance: Performance


@dataclass(frozen=True)
class CVFigures:
    """Pooled out-of-fold figures at threshold 0.5 (as the original project reported)."""

    accuracy: float
    sensitivity: float | None
    specificity: float | None
    roc_auc: float | None


@dataclass(frozen=True)
class SeedProtocol:
    """The original project's protocol, faithfully, next to grouped CV on the same head.

    Everything here is at threshold 0.5 (what that protocol reported), under the ``seed``
    grouping (Metaplastic counted Abnormal), on the seed's features (stretched resize), with
    its head (C=1, balanced, uncalibrated).
    """

    preprocessing: str
    head: str
    n: int
    n_positive: int
    n_groups: int | None
    split_seeds: int
    test_size: float
    split_accuracy: Spread
    split_sensitivity: Spread
    split_specificity: Spread
    split_leak: float | None
    n_splits: int
    per_cell_cv: CVFigures
    grouped_cv: CVFigures
    fold_leak: float | None
    inflation: Estimate


@dataclass(frozen=True)
class EvaluationReport:
    """Everything ``scripts/train.py --cv`` / ``scripts/evaluate.py`` measured on the training
    data (``metrics.json``'s ``cv``)."""

    origin: str
    dataset: str
    dataset_revision: str | None
    dataset_fingerprint: str | None
    grouping: str
    n: int
    n_positive: int
    n_groups: int | None
    target_sensitivity: float
    level: float
    n_resamples: int
    seed: int
    prevalence: float | None
    operating_point: OperatingPoint
    held_out: HeldOut | None
    nested: NestedCV
    seed_protocol: SeedProtocol | None
    plots: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    format: int = REPORT_FORMAT

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (read it back with :func:`.serialise.from_dict`)."""
        return dataclasses.asdict(self)

    def few_clusters(self) -> list[str]:
        """Which scored sets have fewer than :data:`FEW_CLUSTERS` cluster images."""
        out = []
        if self.n_groups is not None and self.n_groups < FEW_CLUSTERS:
            out.append(f"the whole dataset ({self.n_groups} cluster images)")
        held = self.held_out
        if held is not None:
            g = held.performance.at_threshold.n_groups
            if g is not None and g < FEW_CLUSTERS:
                out.append(f"the held-out split ({g} cluster images)")
        return out


@dataclass(frozen=True)
class ExternalReport:
    """The frozen published model scored on data it was not trained on.

    Attributes:
        dataset, dataset_revision, dataset_fingerprint: the data scored.
        labels: how its Normal/Abnormal labels were obtained.
        threshold: the model's stored threshold (unchanged by the evaluation).
        head_sha256: SHA-256 of the head file scored, so a card can tell a stale report.
        unusual_rate: share of its images the unusual-image detector flags.
    """

    dataset: str
    dataset_revision: str | None
    dataset_fingerprint: str
    labels: str
    threshold: float
    head_sha256: str
    performance: Performance
    unusual_rate: float | None
    level: float
    n_resamples: int
    seed: int
    prevalence: float | None
    format: int = REPORT_FORMAT

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (read it back with :func:`.serialise.from_dict`)."""
        return dataclasses.asdict(self)
