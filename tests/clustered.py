"""Generated feature arrays with cluster images and cell types, for the evaluation tests."""

from __future__ import annotations

import numpy as np

from cervix_hf.evaluation.scoring import CellTypes
from cervix_hf.labels import CELL_TYPES, GROUPINGS

TYPE_LABELS = tuple(GROUPINGS["clinical"][t] for t in CELL_TYPES)
TYPE_POSITIVE = tuple(label == "Abnormal" for label in TYPE_LABELS)


def clustered(n_groups=40, per_group=(2, 6), d=6, seed=0, shift=1.2, cluster_sd=0.7):
    """Rows in cluster images of one cell type each; a cluster shares an offset.

    Returns:
        ``(x, y, groups, types)``: features, 0/1 labels (clinical grouping), cluster ids,
        cell-type indices into :data:`CELL_TYPES`.
    """
    rng = np.random.default_rng(seed)
    types_g = np.arange(n_groups) % 5
    rng.shuffle(types_g)
    sizes = rng.integers(per_group[0], per_group[1], size=n_groups)
    g = np.repeat(np.arange(n_groups), sizes)
    types = types_g[g]
    y = np.array(TYPE_POSITIVE)[types].astype(int)
    means = rng.normal(0, 0.5, size=(5, d))
    x = (
        means[types]
        + shift * y[:, None]
        + cluster_sd * rng.normal(size=(n_groups, d))[g]
        + rng.normal(size=(len(g), d))
    )
    return x, y, np.array([f"cluster{i:03d}" for i in g]), types


def cell_types(codes: np.ndarray) -> CellTypes:
    """The clinical grouping's view of cell-type codes."""
    return CellTypes(np.asarray(codes), CELL_TYPES, TYPE_LABELS, TYPE_POSITIVE)
