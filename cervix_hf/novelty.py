"""Unusual-image detector: is an image unlike the training cells?

Each image is described by two views of the backbone's last feature map: its spatial mean
(the pooled features the head sees) and its spatial standard deviation (texture: a blank image
has almost none, noise a lot). Each half is L2-normalised and the score is the distance to the
nearest training cell, relative to a threshold set on leave-one-cluster-out distances: each
training cell's distance to the nearest training cell of *another* cluster image, which is
what a cell of a new cluster image meets (its own cluster's near-duplicates are not there).
About 99% of those score at or under the threshold; the held-out cells, whose clusters played
no part, give the flagged rate to report. The detector
is a ``Pipeline(ColumnTransformer(Normalizer, Normalizer), NearestNeighbors)`` -- scikit-learn
types only, so skops loads it with no extra trust.

Images with almost no contrast (blank, flat) are also flagged: a cell crop never is one.
"""

from __future__ import annotations

import logging

import numpy as np
from PIL import Image
from sklearn.compose import ColumnTransformer
from sklearn.neighbors import NearestNeighbors
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import Normalizer

logger = logging.getLogger(__name__)

DEFAULT_QUANTILE = 0.99
BLANK_STD = 2.0  # grey levels; a real cell crop is far above this


def fit_novelty(
    train_stats: np.ndarray,
    groups: np.ndarray | None = None,
    *,
    quantile: float = DEFAULT_QUANTILE,
) -> tuple[Pipeline, float]:
    """Fit the detector on training cells and set its threshold.

    Args:
        train_stats: (N, 2C) rows of ``[spatial mean, spatial std]`` of the feature map.
        groups: cluster image of each row; the threshold comes from each cell's distance to
            the nearest cell of another cluster image. Without groups: the nearest other
            cell (leave-one-out), which cells of the same cluster image make too small.
        quantile: share of those distances at or under the threshold.

    Returns:
        The fitted pipeline and the distance threshold (flag when the score is above it).

    Raises:
        ValueError: ``groups`` of another length than ``train_stats``.
    """
    c = train_stats.shape[1] // 2
    detector = Pipeline(
        [
            (
                "halves",
                ColumnTransformer(
                    [
                        ("mean", Normalizer(), list(range(c))),
                        ("spread", Normalizer(), list(range(c, 2 * c))),
                    ]
                ),
            ),
            ("neighbours", NearestNeighbors(n_neighbors=1)),
        ]
    ).fit(train_stats)
    scores = held_out_distances(detector, train_stats, groups)
    threshold = float(np.quantile(scores, quantile, method="higher"))
    logger.info(
        "Unusual-image detector: threshold %.4f (%.0f%% quantile of %d %s distances)",
        threshold,
        100 * quantile,
        len(scores),
        "leave-one-cluster-out" if groups is not None else "leave-one-out",
    )
    return detector, threshold


def held_out_distances(
    detector: Pipeline, train_stats: np.ndarray, groups: np.ndarray | None
) -> np.ndarray:
    """Each training cell's distance to its nearest training cell outside its own cluster
    image (``groups``), or outside itself without groups."""
    n = len(train_stats)
    if groups is None:
        groups = np.arange(n)
    groups = np.asarray(groups)
    if len(groups) != n:
        raise ValueError(f"groups has {len(groups)} entries for {n} training rows.")
    _, codes, sizes = np.unique(groups, return_inverse=True, return_counts=True)
    if len(sizes) < 2:
        raise ValueError("Leave-one-cluster-out distances need at least two cluster images.")
    # the nearest other-cluster cell is among the first (largest cluster size + 1) neighbours
    k = min(n, int(sizes.max()) + 1)
    dist, idx = detector[-1].kneighbors(_halves(detector, train_stats), n_neighbors=k)
    other = codes[idx] != codes[:, None]
    first = other.argmax(axis=1)
    return dist[np.arange(n), first]


def novelty_scores(detector: Pipeline, stats: np.ndarray) -> np.ndarray:
    """Distance of each row to its nearest training cell (larger: more unusual)."""
    return detector[-1].kneighbors(_halves(detector, stats))[0][:, 0]


def _halves(detector: Pipeline, stats: np.ndarray) -> np.ndarray:
    """``detector[:-1].transform(stats)``, without ColumnTransformer's per-call check of its
    2 x C column lists (~10 ms per request for ResNet152's 2 x 2048 columns)."""
    pre = detector[:-1]
    ct = pre[0] if len(pre) == 1 else None
    if not isinstance(ct, ColumnTransformer) or ct.remainder != "drop":
        return pre.transform(stats)
    parts = []
    for name, transformer, columns in ct.transformers_:
        if name == "remainder":
            continue
        if not isinstance(transformer, Normalizer) or not isinstance(columns, list):
            return pre.transform(stats)
        parts.append(transformer.transform(np.asarray(stats)[:, columns]))
    return np.hstack(parts)


def is_blank(image: Image.Image) -> bool:
    """True for an image with almost no contrast (a flat or empty picture)."""
    return float(np.asarray(image.convert("L"), dtype=np.float32).std()) < BLANK_STD
