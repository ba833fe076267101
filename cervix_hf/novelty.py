"""Unusual-image detector: is an image unlike the training cells?

Each image is described by two views of the backbone's last feature map: its spatial mean
(the pooled features the head sees) and its spatial standard deviation (texture: a blank image
has almost none, noise a lot). Each half is L2-normalised and the score is the distance to the
nearest training cell, relative to a threshold set so that about 99% of cells not used for
fitting (held-out cells and leave-one-out training cells) score at or under it. The detector
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
    train_stats: np.ndarray, heldout_stats: np.ndarray, *, quantile: float = DEFAULT_QUANTILE
) -> tuple[Pipeline, float]:
    """Fit the detector on training cells and set its threshold.

    Args:
        train_stats: (N, 2C) rows of ``[spatial mean, spatial std]`` of the feature map.
        heldout_stats: (M, 2C) the same for cells not used for fitting.
        quantile: share of non-fitted cells that must score at or under the threshold.

    Returns:
        The fitted pipeline and the distance threshold (flag when the score is above it).
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
    # leave-one-out distances of the training cells: their nearest *other* training cell
    loo = detector[-1].kneighbors(detector[:-1].transform(train_stats), n_neighbors=2)[0][:, 1]
    scores = np.concatenate([loo, novelty_scores(detector, heldout_stats)])
    threshold = float(np.quantile(scores, quantile, method="higher"))
    logger.info(
        "Unusual-image detector: threshold %.4f (%.0f%% quantile of %d cells not fitted on)",
        threshold,
        100 * quantile,
        len(scores),
    )
    return detector, threshold


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
