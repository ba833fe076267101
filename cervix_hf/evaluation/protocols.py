"""The original project's evaluation protocol, reproduced faithfully, beside grouped CV.

That project extracted features with a stretched ``Resize((224, 224))`` (no crop), counted
Metaplastic cells Abnormal, fitted ``LogisticRegression(C=1, class_weight="balanced")``
without calibration and reported accuracy at 0.5 from one random per-cell 80/20 split, with
cells of one cluster image on both sides. One split scatters a lot, so :func:`seed_protocol`
repeats it over many split seeds (mean, SD, range), and compares per-cell K-fold with
grouped K-fold CV of the same head on the same cells, with a paired cluster-bootstrap
interval for the difference: that difference is what the leak adds.
"""

from __future__ import annotations

import numpy as np

from ..errors import EvaluationError, LabelError
from ..head import build_head
from ..labels import CELL_TYPES, GROUPINGS, LABELS
from .bootstrap import draw_counts, unit_codes
from .cv import cross_validate, positive_scores
from .intervals import bootstrap_estimate
from .report import CVFigures, Estimate, SeedProtocol, Spread

#: timm data config whose eval transform is the seed's torchvision
#: ``Resize((224, 224))`` + ``ToTensor`` + ``Normalize(ImageNet mean, std)``: "squash" resizes
#: both edges to 224 / crop_pct = 224 (bilinear, aspect ratio not kept) and the centre crop
#: of 224 is then the whole image.
SEED_DATA_CONFIG: dict = {
    "input_size": (3, 224, 224),
    "interpolation": "bilinear",
    "mean": (0.485, 0.456, 0.406),
    "std": (0.229, 0.224, 0.225),
    "crop_pct": 1.0,
    "crop_mode": "squash",
}
SEED_PREPROCESSING = "stretched Resize((224, 224)), bilinear, no crop, ImageNet normalisation"
SEED_C = 1.0
SEED_HEAD = (
    'StandardScaler + LogisticRegression(C=1, class_weight="balanced"), uncalibrated, threshold 0.5'
)
SEED_SPLIT_SEEDS = 20
SEED_TEST_SIZE = 0.2


def seed_labels(cell_types: np.ndarray) -> np.ndarray:
    """0/1 labels of cell-type indices (into :data:`CELL_TYPES`) under the ``seed`` grouping."""
    mapping = np.array([LABELS.index(GROUPINGS["seed"][t]) for t in CELL_TYPES])
    return mapping[np.asarray(cell_types, dtype=int)]


def _spread(values: list[float | None]) -> Spread:
    v = np.array([x for x in values if x is not None], dtype=float)
    return Spread(
        mean=float(v.mean()),
        sd=float(v.std(ddof=1)) if len(v) > 1 else 0.0,
        min=float(v.min()),
        max=float(v.max()),
        n=len(v),
    )


def _figures(y: np.ndarray, p: np.ndarray) -> CVFigures:
    from ..metrics import binary_metrics

    m = binary_metrics(y, p, 0.5)
    return CVFigures(m["accuracy"], m["sensitivity"], m["specificity"], m["roc_auc"])


def seed_protocol(
    features: np.ndarray,
    cell_types: np.ndarray | None,
    groups: np.ndarray | None,
    *,
    n_splits: int = 5,
    seed: int = 0,
    split_seeds: int = SEED_SPLIT_SEEDS,
    test_size: float = SEED_TEST_SIZE,
    n_resamples: int = 2000,
    level: float = 0.95,
) -> SeedProtocol:
    """The original protocol on the seed's features, and what its leak adds.

    Args:
        features: (N, D) features from the seed's preprocessing (:data:`SEED_DATA_CONFIG`).
        cell_types: type index of each row (the seed grouping needs them).
        groups: cluster image of each row (for the grouped CV and the leak).
        n_splits: K of both K-fold CVs. seed: first split seed, and the fold seed.
        split_seeds: how many random per-cell splits. test_size: their held-out share.

    Raises:
        LabelError: no cell types. EvaluationError: no cluster images.
    """
    from sklearn.model_selection import train_test_split as sk_split

    if cell_types is None:
        raise LabelError(
            "--protocol seed needs the five SIPaKMeD cell types (the seed grouping counts "
            "Metaplastic Abnormal); this data has only Normal/Abnormal labels."
        )
    if groups is None:
        raise EvaluationError(
            "--protocol seed compares per-cell with grouped CV: the data needs cluster-image "
            "groups (a 'group' column)."
        )
    y = seed_labels(cell_types)
    g = np.asarray(groups)
    rows = np.arange(len(y))
    acc, sens, spec, leak = [], [], [], []
    for s in range(seed, seed + split_seeds):
        tr, te = sk_split(rows, test_size=test_size, random_state=s, stratify=y)
        head = build_head(SEED_C, s).fit(features[tr], y[tr])
        m = _figures(y[te], positive_scores(head, features[te]))
        acc.append(m.accuracy)
        sens.append(m.sensitivity)
        spec.append(m.specificity)
        leak.append(float(np.isin(g[te], g[tr]).mean()))
    per_cell = cross_validate(features, y, None, n_splits=n_splits, seed=seed, c=SEED_C)
    grouped = cross_validate(features, y, g, n_splits=n_splits, seed=seed, c=SEED_C)
    fold_leak = float(np.mean([np.isin(g[te], g[tr]).mean() for tr, te in per_cell.folds]))
    units, n_units, _ = unit_codes(g, len(y))
    return SeedProtocol(
        preprocessing=SEED_PREPROCESSING,
        head=SEED_HEAD,
        n=len(y),
        n_positive=int(y.sum()),
        n_groups=n_units,
        split_seeds=split_seeds,
        test_size=test_size,
        split_accuracy=_spread(acc),
        split_sensitivity=_spread(sens),
        split_specificity=_spread(spec),
        split_leak=float(np.mean(leak)),
        n_splits=len(per_cell.folds),
        per_cell_cv=_figures(y, per_cell.oof),
        grouped_cv=_figures(y, grouped.oof),
        fold_leak=fold_leak,
        inflation=paired_accuracy_difference(
            y, per_cell.oof, grouped.oof, units, n_units, n_resamples, seed, level
        ),
    )


def paired_accuracy_difference(
    y: np.ndarray,
    p_a: np.ndarray,
    p_b: np.ndarray,
    units: np.ndarray,
    n_units: int,
    n_resamples: int,
    seed: int,
    level: float,
) -> Estimate:
    """Accuracy of ``p_a`` minus accuracy of ``p_b`` (both at 0.5, same cells), with a paired
    percentile bootstrap over cluster images (each resample scores both on the same cells)."""
    diff = ((p_a >= 0.5) == (y == 1)).astype(float) - ((p_b >= 0.5) == (y == 1)).astype(float)
    d_u = np.bincount(units, weights=diff, minlength=n_units)
    n_u = np.bincount(units, minlength=n_units).astype(float)
    reps = np.concatenate([(c @ d_u) / (c @ n_u) for c in draw_counts(n_units, n_resamples, seed)])
    est = bootstrap_estimate(float(diff.mean()), reps, level=level, what="accuracy difference")
    return Estimate(est.value, est.low, est.high, "paired-bootstrap", est.note, est.bound)
