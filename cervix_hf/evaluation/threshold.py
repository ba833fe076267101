"""The operating point: the largest threshold that reaches a target sensitivity.

``predict`` says positive when ``p >= threshold``. On a list of scores the largest threshold
whose sensitivity reaches the target is the k-th largest positive score, k = ceil(target *
positives); :func:`weighted_thresholds` does the same for many weightings of the positives at
once (bootstrap resamples), so a threshold can be re-chosen inside every resample.
"""

from __future__ import annotations

import numpy as np

from ..errors import EvaluationError

DEFAULT_TARGET_SENSITIVITY = 0.99
_EPS = 1e-9


def check_target(target_sensitivity: float) -> None:
    """Raise :class:`EvaluationError` unless the target is in (0, 1]."""
    if not 0.0 < target_sensitivity <= 1.0:
        raise EvaluationError(f"Target sensitivity must be in (0, 1], got {target_sensitivity}.")


def choose_threshold(
    y_true: np.ndarray, p_positive: np.ndarray, target_sensitivity: float = 0.99
) -> float:
    """The largest threshold whose sensitivity on these predictions is at least the target.

    Raises:
        EvaluationError: target outside (0, 1], or no positives.
    """
    check_target(target_sensitivity)
    y = np.asarray(y_true).astype(int)
    scores = np.sort(np.asarray(p_positive, dtype=float)[y == 1])[::-1]
    if len(scores) == 0:
        raise EvaluationError("No positive (Abnormal) images: cannot choose a threshold.")
    k = max(1, int(np.ceil(target_sensitivity * len(scores) - _EPS)))
    return float(scores[k - 1])


def weighted_thresholds(
    positive_scores: np.ndarray, weights: np.ndarray, target_sensitivity: float
) -> np.ndarray:
    """:func:`choose_threshold` for each row of ``weights`` over the same positives.

    Args:
        positive_scores: (n,) scores of the positives.
        weights: (B, n) non-negative weight of each positive in each of B weightings (e.g.
            how often its cluster image was drawn); all ones gives :func:`choose_threshold`.
        target_sensitivity: the target, in (0, 1].

    Returns:
        (B,) thresholds; NaN for a row whose weights are all zero.
    """
    check_target(target_sensitivity)
    s = np.asarray(positive_scores, dtype=float)
    order = np.argsort(-s, kind="stable")
    cum = np.cumsum(np.asarray(weights, dtype=float)[:, order], axis=1)
    total = cum[:, -1] if cum.shape[1] else np.zeros(len(cum))
    # first position where the cumulative weight reaches target * total
    k = (cum < target_sensitivity * total[:, None] - _EPS).sum(axis=1)
    out = s[order][np.minimum(k, len(s) - 1)] if len(s) else np.full(len(cum), np.nan)
    return np.where(total > 0, out, np.nan)
