"""Score one set of predictions into a :class:`~cervix_hf.evaluation.report.Performance`.

* :func:`score_fixed` -- predictions at one fixed threshold (the published head on the
  held-out split, or on external data): proportions with Clopper-Pearson intervals on the
  effective sample size, threshold-free figures with a cluster bootstrap.
* :func:`score_nested` -- nested-CV predictions, each fold at its own threshold; the
  proportions' intervals come from a cluster bootstrap that re-chooses every fold's threshold
  inside each resample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..metrics import calibration_fit, logit, net_benefit, reliability, roc_points
from .bootstrap import FoldThresholdData, draw_counts, rechosen_flags, score_replicates
from .intervals import bootstrap_estimate, proportion, score_design_effect, unit_sums
from .report import (
    AtThreshold,
    Confusion,
    Curves,
    DecisionCurve,
    Estimate,
    Performance,
    ReliabilityBin,
    Scores,
    TypeRow,
    number,
)

DECISION_THRESHOLDS = np.round(np.arange(0.01, 1.0, 0.01), 2)


@dataclass(frozen=True)
class CellTypes:
    """Cell types of the scored rows and what each counts as.

    Attributes:
        codes: (N,) index of each row's type into ``names``.
        names: type names. labels: the label each type counts as (e.g. ``Abnormal``).
        positive: whether each type counts as positive.
    """

    codes: np.ndarray
    names: tuple[str, ...]
    labels: tuple[str, ...]
    positive: tuple[bool, ...]

    def select(self, rows: np.ndarray) -> CellTypes:
        """The same types for a subset of rows."""
        return CellTypes(self.codes[rows], self.names, self.labels, self.positive)


@dataclass(frozen=True)
class Scoring:
    """How to score: interval level, resamples, seed, and a user's prevalence."""

    level: float = 0.95
    n_resamples: int = 2000
    seed: int = 0
    prevalence: float | None = None


def _proportions(y: np.ndarray, flagged: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Success and trial indicators per cell of each proportion at the threshold."""
    pos, neg = y == 1, y == 0
    return {
        "sensitivity": (flagged & pos, pos),
        "specificity": (~flagged & neg, neg),
        "ppv": (flagged & pos, flagged),
        "npv": (~flagged & neg, ~flagged),
        "accuracy": (flagged == pos, np.ones_like(pos)),
    }


def _deff(trials: np.ndarray, logits: np.ndarray, units: np.ndarray) -> float | None:
    """Design effect of the cells in ``trials`` from their scores (see
    :func:`~cervix_hf.evaluation.intervals.score_design_effect`)."""
    return score_design_effect(logits[trials], units[trials]) if trials.any() else None


def _at_threshold(
    y: np.ndarray,
    flagged: np.ndarray,
    logits: np.ndarray,
    units: np.ndarray,
    n_units: int,
    threshold: float | None,
    how: Scoring,
    replicates: dict[str, np.ndarray] | None,
    method: str,
) -> AtThreshold:
    """Figures at the threshold; ``replicates`` (bootstrap values per proportion) replace the
    linearised variance when given (thresholds re-chosen per resample)."""
    est: dict[str, Estimate] = {}
    bonferroni: dict[str, Estimate] = {}
    for name, (succ, trials) in _proportions(y, flagged).items():
        x_c = unit_sums(succ, units, n_units)
        n_c = unit_sums(trials, units, n_units)
        var = None
        if replicates is not None:
            v = replicates[name][np.isfinite(replicates[name])]
            var = float(v.var(ddof=1)) if len(v) > 1 else None
        deff = _deff(trials, logits, units)
        est[name] = proportion(
            x_c, n_c, level=how.level, variance=var, fallback_deff=deff, method=method
        )
        if name in ("sensitivity", "specificity") and how.prevalence is not None:
            bonferroni[name] = proportion(
                x_c,
                n_c,
                level=1 - (1 - how.level) / 2,
                variance=var,
                fallback_deff=deff,
                method=method,
            )
    tp = int((flagged & (y == 1)).sum())
    fp = int((flagged & (y == 0)).sum())
    fn = int((~flagged & (y == 1)).sum())
    tn = int((~flagged & (y == 0)).sum())
    ppv_p = npv_p = None
    if how.prevalence is not None:
        ppv_p, npv_p = _at_prevalence(
            est["sensitivity"], est["specificity"], bonferroni, how.prevalence
        )
    return AtThreshold(
        threshold=threshold,
        n=len(y),
        n_positive=int(y.sum()),
        n_groups=int((np.bincount(units, minlength=n_units) > 0).sum()),
        confusion=Confusion(tn=tn, fp=fp, fn=fn, tp=tp),
        sensitivity=est["sensitivity"],
        specificity=est["specificity"],
        ppv=est["ppv"],
        npv=est["npv"],
        accuracy=est["accuracy"],
        f1=number(2 * tp / (2 * tp + fp + fn)) if 2 * tp + fp + fn else None,
        prevalence=how.prevalence,
        ppv_at_prevalence=ppv_p,
        npv_at_prevalence=npv_p,
    )


def _at_prevalence(
    sens: Estimate, spec: Estimate, wide: dict[str, Estimate], prevalence: float
) -> tuple[Estimate, Estimate]:
    """PPV and NPV at a prevalence, with Bonferroni intervals from sensitivity and
    specificity (PPV and NPV rise with both, so the corners bound them)."""
    from ..metrics import predictive_values

    if sens.value is None or spec.value is None:
        none = Estimate(None, note="needs both classes")
        return none, none
    ppv, npv = predictive_values(sens.value, spec.value, prevalence)
    s, c = wide["sensitivity"], wide["specificity"]
    low = predictive_values(s.low, c.low, prevalence)  # type: ignore[arg-type]
    high = predictive_values(s.high, c.high, prevalence)  # type: ignore[arg-type]
    return (
        Estimate(number(ppv), number(low[0]), number(high[0]), method="bonferroni"),
        Estimate(number(npv), number(low[1]), number(high[1]), method="bonferroni"),
    )


def _scores(y: np.ndarray, p: np.ndarray, units: np.ndarray, n_units: int, how: Scoring) -> Scores:
    """Threshold-free figures with percentile cluster-bootstrap intervals."""
    from ..metrics import binary_metrics

    reps = score_replicates(y, p, units, n_units, how.n_resamples, how.seed)
    m = binary_metrics(y, p)
    slope, intercept = calibration_fit(y, p)
    pos_groups = len(np.unique(units[y == 1]))
    neg_groups = len(np.unique(units[y == 0]))
    values = {
        "roc_auc": m["roc_auc"],
        "brier": m["brier"],
        "ece": reliability(y, p)["ece"],
        "calibration_slope": slope[0],
        "calibration_intercept": intercept[0],
    }
    out = {
        k: bootstrap_estimate(
            v,
            reps[k],
            level=how.level,
            perfect_units=min(pos_groups, neg_groups) if k == "roc_auc" else None,
            what=k.replace("_", " "),
        )
        for k, v in values.items()
    }
    if values["calibration_slope"] is None or not np.isfinite(values["calibration_slope"]):
        out["calibration_slope"] = Estimate(
            None, note="not estimable: the scores separate the classes (or one class only)"
        )
    return Scores(**out)


def _per_type(
    flagged: np.ndarray,
    logits: np.ndarray,
    units: np.ndarray,
    n_units: int,
    types: CellTypes | None,
    how: Scoring,
    replicates: dict[str, np.ndarray] | None,
    method: str,
) -> list[TypeRow]:
    """Sensitivity per abnormal type and false-positive rate per normal type (the flagged
    share of each type's cells); ``replicates["type:<i>"]`` set the variance when given."""
    if types is None:
        return []
    rows = []
    for code, name in enumerate(types.names):
        mask = types.codes == code
        if not mask.any():
            continue
        var = None
        if replicates is not None:
            r = replicates[f"type:{code}"]
            r = r[np.isfinite(r)]
            var = float(r.var(ddof=1)) if len(r) > 1 else None
        rows.append(
            TypeRow(
                cell_type=name,
                label=types.labels[code],
                measure="sensitivity" if types.positive[code] else "false-positive rate",
                n=int(mask.sum()),
                n_groups=len(np.unique(units[mask])),
                rate=proportion(
                    unit_sums(flagged & mask, units, n_units),
                    unit_sums(mask, units, n_units),
                    level=how.level,
                    variance=var,
                    fallback_deff=_deff(mask, logits, units),
                    method=method,
                ),
            )
        )
    return rows


def _curves(y: np.ndarray, p: np.ndarray, prevalence: float | None) -> Curves:
    roc = roc_points(y, p) if len(np.unique(y)) == 2 else {"fpr": [], "tpr": []}
    bins = [ReliabilityBin(**b) for b in reliability(y, p)["bins"]]
    t = DECISION_THRESHOLDS
    curves = []
    pis = [(f"data prevalence {y.mean():.3f}", float(y.mean()))]
    if prevalence is not None:
        pis.append((f"prevalence {prevalence:g} (--prevalence)", float(prevalence)))
    for label, pi in pis:
        curves.append(
            DecisionCurve(
                label=label,
                prevalence=pi,
                thresholds=[float(v) for v in t],
                model=[round(float(v), 6) for v in net_benefit(y, p, t, pi)],
                treat_all=[round(float(v), 6) for v in pi - (1 - pi) * t / (1 - t)],
            )
        )
    return Curves(roc["fpr"], roc["tpr"], bins, curves)


def score_fixed(
    y: np.ndarray,
    p: np.ndarray,
    units: np.ndarray,
    n_units: int,
    threshold: float,
    *,
    how: Scoring,
    types: CellTypes | None = None,
) -> Performance:
    """Predictions scored at one fixed threshold (nothing here was chosen on them).

    Args:
        y: 0/1 labels. p: P(positive). units, n_units: cluster code of each row.
        threshold: positive when ``p >= threshold``.
        how: level, resamples, seed, prevalence. types: cell types, for per-type rows.
    """
    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=float)
    flagged = p >= threshold
    z = logit(p)
    return Performance(
        at_threshold=_at_threshold(y, flagged, z, units, n_units, threshold, how, None, "cp-ess"),
        scores=_scores(y, p, units, n_units, how),
        per_type=_per_type(flagged, z, units, n_units, types, how, None, "cp-ess"),
        curves=_curves(y, p, how.prevalence),
    )


def nested_replicates(
    y: np.ndarray,
    scores: np.ndarray,
    units: np.ndarray,
    n_units: int,
    folds: Sequence[FoldThresholdData],
    target_sensitivity: float,
    how: Scoring,
    masks: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Bootstrap replicates of the proportions with every fold's threshold re-chosen.

    Returns replicates of sensitivity, specificity, ppv, npv, accuracy and, for each entry
    of ``masks``, the flagged share of the masked cells.
    """
    pos, neg = y == 1, y == 0
    out: dict[str, list[np.ndarray]] = {}

    def add(name: str, value: np.ndarray) -> None:
        out.setdefault(name, []).append(value)

    for counts in draw_counts(n_units, how.n_resamples, how.seed):
        w = counts[:, units]
        f = rechosen_flags(scores, folds, counts, target_sensitivity)
        with np.errstate(invalid="ignore", divide="ignore"):
            wf = w * f
            add("sensitivity", (wf * pos).sum(1) / (w * pos).sum(1))
            add("specificity", ((w - wf) * neg).sum(1) / (w * neg).sum(1))
            add("ppv", (wf * pos).sum(1) / wf.sum(1))
            add("npv", ((w - wf) * neg).sum(1) / (w - wf).sum(1))
            add("accuracy", ((wf * pos) + (w - wf) * neg).sum(1) / w.sum(1))
            for name, mask in (masks or {}).items():
                add(name, (wf * mask).sum(1) / (w * mask).sum(1))
    return {k: np.concatenate(v) for k, v in out.items()}


def score_nested(
    y: np.ndarray,
    scores: np.ndarray,
    units: np.ndarray,
    n_units: int,
    folds: Sequence[FoldThresholdData],
    thresholds: Sequence[float],
    target_sensitivity: float,
    *,
    how: Scoring,
    types: CellTypes | None = None,
) -> Performance:
    """Nested-CV predictions, each outer fold at its own threshold.

    The proportions' intervals use the variance of a cluster bootstrap in which each fold's
    threshold is re-chosen on its inner out-of-fold predictions, weighted by the resample.
    """
    y = np.asarray(y).astype(int)
    scores = np.asarray(scores, dtype=float)
    flagged = np.zeros(len(y), dtype=bool)
    for fold, t in zip(folds, thresholds, strict=True):
        flagged[fold.test_rows] = scores[fold.test_rows] >= t
    masks = {}
    if types is not None:
        masks = {f"type:{i}": types.codes == i for i in range(len(types.names))}
    reps = nested_replicates(y, scores, units, n_units, folds, target_sensitivity, how, masks=masks)
    method = "cp-ess-rechosen"
    z = logit(scores)
    at = _at_threshold(y, flagged, z, units, n_units, None, how, reps, method)
    per_type = _per_type(flagged, z, units, n_units, types, how, reps, method)
    return Performance(
        at_threshold=at,
        scores=_scores(y, scores, units, n_units, how),
        per_type=per_type,
        curves=_curves(y, scores, how.prevalence),
    )
