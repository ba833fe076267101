"""Held-out splits and CV folds, stratified by label (by cell type when known) and grouped by
cluster image.

Cells cut from the same cluster image are near-duplicates in stain, focus and background; a
split that puts some on each side leaks. Grouped splits keep every group on one side. When the
cell types are known, folds are stratified by type (which implies the label), so a held-out
split cannot lack a whole type such as Metaplastic.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from .errors import SplitError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Split:
    """Row indices of a train/test split (sorted), and whether groups were respected."""

    train: np.ndarray
    test: np.ndarray
    grouped: bool


def make_folds(
    labels: np.ndarray,
    groups: np.ndarray | None,
    n_splits: int,
    seed: int = 0,
    strata: np.ndarray | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified K folds, grouped when ``groups`` is given.

    The folds depend only on the multiset of (group, stratum) pairs and the seed, never on row
    order, so the same data read in another filesystem order gives the same split.

    Args:
        labels: class of each row; every fold keeps every class.
        groups: cluster image of each row, or None (per-row folds).
        n_splits: folds.
        seed: shuffling seed.
        strata: finer classes to balance across folds (the cell type of each row); when
            balancing them leaves a fold without a label, the folds fall back to the labels.

    Raises:
        SplitError: if a class has fewer members (or the data fewer groups) than folds.
    """
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    if len(classes) < 2:
        raise SplitError(f"Need at least two classes to split; found only {classes.tolist()}.")
    if counts.min() < n_splits:
        raise SplitError(
            f"The smallest class has {counts.min()} images, fewer than the {n_splits} folds: "
            "add data or use fewer folds."
        )
    if groups is not None:
        groups = np.asarray(groups)
        n_groups = {int(c): len(np.unique(groups[labels == c])) for c in classes}
        if min(n_groups.values()) < n_splits:
            raise SplitError(
                f"Groups per class {n_groups} are fewer than the {n_splits} folds: every "
                "fold needs whole groups of each class. Add data or use fewer folds."
            )
    if strata is not None:
        folds = _folds(np.asarray(strata), groups, n_splits, seed)
        if folds is not None and all(len(np.unique(labels[te])) == len(classes) for _, te in folds):
            return folds
        logger.debug("Stratifying by cell type left a fold without a label; using the labels")
    folds = _folds(labels, groups, n_splits, seed)
    if folds is None or any(len(np.unique(labels[te])) < len(classes) for _, te in folds):
        raise SplitError(
            "A fold lacks a class (too few groups of it); add data or use fewer folds."
        )
    return folds


def _folds(
    y: np.ndarray, groups: np.ndarray | None, n_splits: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """scikit-learn's stratified (group) K-fold on ``y``; None when it refuses the data."""
    x = np.zeros(len(y))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        try:
            if groups is not None:
                cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
                folds = list(cv.split(x, y, groups))
            else:
                cv = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
                folds = list(cv.split(x, y))
        except ValueError:
            return None
    return [(np.sort(tr), np.sort(te)) for tr, te in folds]


def feasible_folds(labels: np.ndarray, groups: np.ndarray | None, wanted: int) -> int:
    """The most folds (at most ``wanted``) the data allows: members (or groups) per class.

    Returns 0 when there are fewer than two classes.
    """
    labels = np.asarray(labels)
    per_class = [
        len(np.unique(np.asarray(groups)[labels == c]))
        if groups is not None
        else int((labels == c).sum())
        for c in np.unique(labels)
    ]
    return min(wanted, min(per_class)) if len(per_class) > 1 else 0


def folds_with_fallback(
    labels: np.ndarray,
    groups: np.ndarray | None,
    wanted: int,
    seed: int = 0,
    strata: np.ndarray | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified (grouped) folds, fewer than ``wanted`` when the data cannot fill them.

    Raises:
        SplitError: if not even two folds keep every class.
    """
    k = feasible_folds(labels, groups, wanted)
    while k >= 2:
        try:
            return make_folds(labels, groups, k, seed, strata)
        except SplitError:
            k -= 1
    raise SplitError(
        "Too few cluster images per class for a cross-validation (need 2 per class in every "
        "training fold); add data or use fewer folds."
    )


def train_test_split(
    labels: np.ndarray,
    groups: np.ndarray | None,
    test_size: float = 0.2,
    seed: int = 0,
    strata: np.ndarray | None = None,
) -> Split:
    """One stratified split, grouped by ``groups`` when given.

    The test part is one fold of ``round(1 / test_size)`` grouped stratified folds, so its
    share is close to, not exactly, ``test_size``. Without groups the split is per image and a
    warning is logged: cells from one cluster image may then sit on both sides. ``strata``
    (cell types) are balanced across the two sides as :func:`make_folds` does.
    """
    if not 0.0 < test_size < 1.0:
        raise SplitError(f"test_size must be between 0 and 1, got {test_size}.")
    n_splits = max(2, round(1.0 / test_size))
    if groups is None:
        logger.warning(
            "The data has no groups (cluster images): splitting per image. Cells cut from the "
            "same cluster image may sit on both sides, which inflates the held-out metrics."
        )
    train, test = make_folds(labels, groups, n_splits, seed, strata)[0]
    logger.info(
        "Split: %d train / %d test images (%.1f%% held out, %s)",
        len(train),
        len(test),
        100.0 * len(test) / len(labels),
        "grouped by cluster image" if groups is not None else "per image",
    )
    return Split(train=train, test=test, grouped=groups is not None)
