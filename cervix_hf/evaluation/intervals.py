"""Intervals for figures measured on cells that come in cluster images.

Proportions (sensitivity, specificity, PPV, NPV, accuracy, per-type rates) get a
Clopper-Pearson interval on an *effective* sample size: the number of cells divided by the
design effect of the clustering (Korn & Graubard 1998). The variance that sets the design
effect is the usual linearised (ratio-estimator) variance over cluster images when the
threshold is fixed, or a bootstrap variance when the threshold is re-chosen in each resample.
With no error at all (a rate of 0 or 1) there is no variance to estimate; the design effect
then comes from the intra-cluster correlation of the scores behind the rate. Near 0 or 1,
where a percentile bootstrap collapses to a point, this interval stays honest;
``benchmarks/validate_evaluation.py`` measures its coverage against the alternatives.

Other figures (AUC, Brier, ECE, calibration slope and intercept) get percentile intervals
from a cluster bootstrap; an interval of zero width is returned with a note and a one-sided
bound instead of being shown bare.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from .report import Estimate, number

DEFAULT_LEVEL = 0.95


def unit_sums(values: np.ndarray, units: np.ndarray, n_units: int) -> np.ndarray:
    """Sum of ``values`` per cluster image (unit)."""
    return np.bincount(units, weights=np.asarray(values, dtype=float), minlength=n_units)


def clopper_pearson(x: float, n: float, level: float = DEFAULT_LEVEL) -> tuple[float, float]:
    """Two-sided Clopper-Pearson interval for ``x`` successes in ``n`` trials (real-valued)."""
    alpha = 1.0 - level
    low = float(stats.beta.ppf(alpha / 2, x, n - x + 1)) if x > 0 else 0.0
    high = float(stats.beta.ppf(1 - alpha / 2, x + 1, n - x)) if x < n else 1.0
    return low, high


def linearised_variance(x_c: np.ndarray, n_c: np.ndarray) -> float | None:
    """Variance of the ratio ``sum(x_c) / sum(n_c)`` over sampled clusters (with-replacement
    approximation); None with fewer than two clusters."""
    keep = n_c > 0
    x_c, n_c = x_c[keep], n_c[keep]
    g = len(n_c)
    if g < 2:
        return None
    total = n_c.sum()
    p = x_c.sum() / total
    return float(g / (g - 1) * np.sum((x_c - p * n_c) ** 2) / total**2)


def score_design_effect(values: np.ndarray, units: np.ndarray) -> float:
    """Design effect ``1 + (m - 1) * ICC`` of cells in cluster images, from a continuous score.

    ``ICC`` is the one-way ANOVA estimate of the intra-cluster correlation of ``values``
    (e.g. the logits of the cells a proportion is taken over), clipped to [0, 1], and ``m``
    the cell-weighted mean cluster size. A rate of threshold exceedances of a score is less
    correlated within clusters than the score itself, so this errs on the wide side. With
    fewer than two clusters or one cell per cluster it is ``m`` (whole clusters).
    """
    values = np.asarray(values, dtype=float)
    _, codes, sizes = np.unique(units, return_inverse=True, return_counts=True)
    n, g = len(values), len(sizes)
    m = float(np.sum(sizes.astype(float) ** 2) / n) if n else 1.0
    if g < 2 or n <= g:
        return max(m, 1.0)
    means = np.bincount(codes, weights=values) / sizes
    msb = np.sum(sizes * (means - values.mean()) ** 2) / (g - 1)
    msw = np.sum((values - means[codes]) ** 2) / (n - g)
    n0 = (n - np.sum(sizes.astype(float) ** 2) / n) / (g - 1)
    denom = msb + (n0 - 1) * msw
    icc = float(np.clip((msb - msw) / denom, 0.0, 1.0)) if denom > 0 else 1.0
    return 1.0 + (m - 1.0) * icc


def proportion(
    x_c: np.ndarray,
    n_c: np.ndarray,
    *,
    level: float = DEFAULT_LEVEL,
    variance: float | None = None,
    fallback_deff: float | None = None,
    method: str = "cp-ess",
) -> Estimate:
    """A proportion pooled over cells, with a Clopper-Pearson interval on the effective n.

    Args:
        x_c: successes per cluster image. n_c: cells per cluster image (trials).
        level: two-sided coverage.
        variance: the estimate's variance; None uses :func:`linearised_variance`.
        fallback_deff: the design effect to use when the proportion is 0 or 1 (no error to
            estimate a variance from), e.g. :func:`score_design_effect`; None counts every
            cluster image as one observation (``sum(n)^2 / sum(n^2)`` effective trials).
        method: the method key recorded in the estimate.
    """
    x_c = np.asarray(x_c, dtype=float)
    n_c = np.asarray(n_c, dtype=float)
    total = float(n_c.sum())
    if total <= 0:
        return Estimate(None, note="no cells to compute it on")
    p = float(x_c.sum() / total)
    g = int((n_c > 0).sum())
    var = linearised_variance(x_c, n_c) if variance is None else variance
    note = None
    if 0.0 < p < 1.0 and var is not None and var > 0:
        n_eff = p * (1.0 - p) / var
        if g > 1:  # Korn-Graubard: degrees of freedom of the cluster-level variance
            z = stats.norm.ppf(1 - (1 - level) / 2)
            n_eff *= (z / stats.t.ppf(1 - (1 - level) / 2, g - 1)) ** 2
        n_eff = min(n_eff, total)
    else:
        what = "error" if p in (0.0, 1.0) else "variance"
        if fallback_deff is not None:
            n_eff = total / max(fallback_deff, 1.0)
            note = (
                f"no {what} to estimate the clustering from: design effect "
                f"{max(fallback_deff, 1.0):.2f} from the scores' intra-cluster correlation"
            )
        else:
            n_eff = total**2 / float(np.sum(n_c**2))
            note = (
                f"no {what} to estimate the clustering from: each of the {g} cluster "
                "images counted as one observation"
            )
    low, high = clopper_pearson(p * n_eff, n_eff, level)
    return Estimate(p, low, high, method=method, note=note)


def percentile(values: np.ndarray, level: float = DEFAULT_LEVEL) -> tuple[float, float] | None:
    """Percentile interval of bootstrap replicates (NaN ignored); None without any."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if not len(v):
        return None
    alpha = (1.0 - level) / 2.0
    return float(np.quantile(v, alpha)), float(np.quantile(v, 1.0 - alpha))


def one_sided_bound(n_units: int, level: float = DEFAULT_LEVEL) -> float | None:
    """Exact one-sided lower bound of a rate after no failure among ``n_units`` independent
    units (Clopper-Pearson): ``(1 - level) ** (1 / n)``."""
    return float((1.0 - level) ** (1.0 / n_units)) if n_units > 0 else None


def bootstrap_estimate(
    value: float | None,
    replicates: np.ndarray,
    *,
    level: float = DEFAULT_LEVEL,
    perfect_units: int | None = None,
    what: str = "",
) -> Estimate:
    """A figure with its percentile bootstrap interval, never a bare zero-width one.

    Args:
        value: the point estimate. replicates: its bootstrap replicates.
        perfect_units: for a figure at its best possible value 1 (e.g. an AUC of 1), the
            number of independent units behind it, for a one-sided bound.
        what: the figure's name, for the notes.
    """
    value = number(value)
    if value is None:
        return Estimate(None, note=f"{what or 'it'} is undefined on these data")
    interval = percentile(replicates, level)
    valid = int(np.isfinite(np.asarray(replicates, dtype=float)).sum())
    if interval is None:
        return Estimate(value, note="undefined in every bootstrap resample", method="bootstrap")
    low, high = interval
    est = Estimate(value, low, high, method="bootstrap")
    if valid < 0.9 * len(replicates):
        est = Estimate(
            value,
            low,
            high,
            method="bootstrap",
            note=f"defined in only {valid} of {len(replicates)} resamples",
        )
    if est.zero_width:
        bound = one_sided_bound(perfect_units, level) if perfect_units and value >= 1.0 else None
        note = f"every resample gave {value:.3f}: the data hold nothing for the bootstrap to vary"
        if bound is not None:
            note += (
                f"; one-sided {round(100 * level)}% lower bound {bound:.3f} from no error "
                f"among {perfect_units} independent cluster image(s)"
            )
        return Estimate(value, low, high, method="bootstrap", note=note, bound=bound)
    return est
