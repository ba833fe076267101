"""Cluster bootstrap: resample cluster images (not cells) with replacement, vectorised.

A resample is a vector of draw counts per cluster image; every cell of a cluster drawn twice
counts twice. Figures are computed for many resamples at once from those counts:

* :func:`draw_counts` -- the resamples, in chunks (memory bounded by ``chunk x cells``);
* :class:`ScoreResampler` -- AUC, Brier, ECE and calibration slope / intercept of fixed
  predictions (threshold-free);
* :func:`rechosen_flags` -- for nested CV, which cells each resample flags when every outer
  fold's threshold is re-chosen on its own inner out-of-fold predictions, weighted by the
  same draw counts (the threshold's own variability).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from ..metrics import N_CALIBRATION_BINS, calibration_bin_index, calibration_fit
from .threshold import weighted_thresholds

DEFAULT_RESAMPLES = 2000
CHUNK = 250


def unit_codes(groups: np.ndarray | None, n: int) -> tuple[np.ndarray, int, str]:
    """Integer cluster code of each row, the number of clusters, and the unit's name.

    Without groups every cell is its own unit (and the name says so).
    """
    if groups is None:
        return np.arange(n), n, "cells"
    _, codes = np.unique(np.asarray(groups), return_inverse=True)
    return codes, int(codes.max()) + 1 if n else 0, "cluster images"


def draw_counts(
    n_units: int, n_resamples: int, seed: int, chunk: int = CHUNK
) -> Iterator[np.ndarray]:
    """Draw counts (b, n_units) of ``n_resamples`` bootstrap resamples, ``chunk`` at a time."""
    rng = np.random.default_rng(seed)
    for start in range(0, n_resamples, chunk):
        b = min(chunk, n_resamples - start)
        draws = rng.integers(0, n_units, size=(b, n_units))
        flat = (draws + np.arange(b)[:, None] * n_units).ravel()
        yield np.bincount(flat, minlength=b * n_units).reshape(b, n_units).astype(float)


class ScoreResampler:
    """Threshold-free figures of fixed predictions for many resamples at once.

    Brier and ECE are ratios of per-unit sums (``counts @ per_unit``). The AUC needs the
    cells' order: for each positive, the drawn weight of negatives scored below it (a cumsum
    over the negatives sorted by score) plus half of those tied with it. The calibration fit
    runs Newton's method on all resamples together.
    """

    NAMES = ("roc_auc", "brier", "ece", "calibration_slope", "calibration_intercept")

    def __init__(self, y: np.ndarray, p: np.ndarray, units: np.ndarray, n_units: int):
        self.y = np.asarray(y).astype(int)
        self.p = np.asarray(p, dtype=float)
        self.units = units
        pos = self.y == 1
        self.per_unit = np.stack(
            [
                np.bincount(units, weights=pos.astype(float), minlength=n_units),
                np.bincount(units, weights=(~pos).astype(float), minlength=n_units),
                np.bincount(units, weights=(self.p - self.y) ** 2, minlength=n_units),
            ],
            axis=1,
        )
        gap = np.zeros((n_units, N_CALIBRATION_BINS))
        np.add.at(gap, (units, calibration_bin_index(self.p)), self.y - self.p)
        self.gap = gap
        neg_order = np.argsort(self.p[~pos], kind="mergesort")
        neg_scores = self.p[~pos][neg_order]
        self.neg_units = units[~pos][neg_order]
        self.pos_units = units[pos]
        self.below = np.searchsorted(neg_scores, self.p[pos], side="left")
        self.upto = np.searchsorted(neg_scores, self.p[pos], side="right")
        self.ties = bool((self.upto > self.below).any())

    def __call__(self, counts: np.ndarray) -> dict[str, np.ndarray]:
        """The figures for each row of draw counts (b, n_units); NaN where undefined."""
        n_pos, n_neg, sq = (counts @ self.per_unit).T
        total = n_pos + n_neg
        with np.errstate(divide="ignore", invalid="ignore"):
            out = {"brier": sq / total, "ece": np.abs(counts @ self.gap).sum(1) / total}
            cum_neg = np.zeros((len(counts), len(self.neg_units) + 1))
            np.cumsum(counts[:, self.neg_units], axis=1, out=cum_neg[:, 1:])
            below = cum_neg[:, self.below]
            if self.ties:
                below += 0.5 * (cum_neg[:, self.upto] - below)
            pairs = (counts[:, self.pos_units] * below).sum(1)
            out["roc_auc"] = np.where((n_pos > 0) & (n_neg > 0), pairs / (n_pos * n_neg), np.nan)
        slope, intercept = calibration_fit(self.y, self.p, counts[:, self.units])
        out["calibration_slope"] = slope
        out["calibration_intercept"] = intercept
        return out


def score_replicates(
    y: np.ndarray, p: np.ndarray, units: np.ndarray, n_units: int, n_resamples: int, seed: int
) -> dict[str, np.ndarray]:
    """Bootstrap replicates of the threshold-free figures (see :class:`ScoreResampler`)."""
    resampler = ScoreResampler(y, p, units, n_units)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ScoreResampler.NAMES}
    for counts in draw_counts(n_units, n_resamples, seed):
        for k, v in resampler(counts).items():
            parts[k].append(v)
    return {k: np.concatenate(v) for k, v in parts.items()}


@dataclass(frozen=True)
class FoldThresholdData:
    """What re-choosing one outer fold's threshold needs.

    Attributes:
        test_rows: the outer fold's rows (indices into the data).
        inner_positive_scores: inner out-of-fold scores of the outer training positives.
        inner_positive_units: their cluster codes.
    """

    test_rows: np.ndarray
    inner_positive_scores: np.ndarray
    inner_positive_units: np.ndarray


def rechosen_flags(
    scores: np.ndarray,
    folds: Sequence[FoldThresholdData],
    counts: np.ndarray,
    target_sensitivity: float,
) -> np.ndarray:
    """Which cells each resample flags, every fold's threshold re-chosen in the resample.

    Args:
        scores: (N,) outer out-of-fold scores (each row tested in exactly one fold).
        folds: the outer folds.
        counts: (b, n_units) draw counts of the resamples.
        target_sensitivity: the threshold rule's target.

    Returns:
        (b, N) booleans; a fold whose inner positives were not drawn at all flags nothing
        (and is rare: it needs every positive cluster of its training rows left out).
    """
    flags = np.zeros((len(counts), len(scores)), dtype=bool)
    for fold in folds:
        t = weighted_thresholds(
            fold.inner_positive_scores, counts[:, fold.inner_positive_units], target_sensitivity
        )
        with np.errstate(invalid="ignore"):
            flags[:, fold.test_rows] = scores[fold.test_rows][None, :] >= t[:, None]
    return flags
