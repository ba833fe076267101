"""The scikit-learn head: ``Pipeline(StandardScaler, LogisticRegression)``, C chosen by CV.

Heads are saved and loaded by :mod:`cervix_hf.artifacts` (skops, never pickle).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from .errors import SplitError
from .split import folds_with_fallback

logger = logging.getLogger(__name__)

C_GRID: tuple[float, ...] = (0.0001, 0.001, 0.01, 0.1, 1.0)


def build_head(c: float = 1.0, seed: int = 0) -> Pipeline:
    """An unfitted ``StandardScaler`` + balanced ``LogisticRegression`` pipeline."""
    return Pipeline(
        [
            ("scaler", StandardScaler()),
            (
                "classifier",
                LogisticRegression(C=c, class_weight="balanced", max_iter=5000, random_state=seed),
            ),
        ]
    )


def fit_head(
    features: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray | None = None,
    *,
    c_grid: Sequence[float] = C_GRID,
    n_splits: int = 5,
    seed: int = 0,
    scoring: str | None = None,
) -> tuple[Pipeline, dict[str, Any]]:
    """Fit the head, picking C by (grouped) stratified CV on the given training data.

    Args:
        features: (N, D) training features. labels: (N,) class indices.
        groups: cluster-image ids; CV folds keep each group on one side.
        c_grid: inverse regularisation strengths to try.
        n_splits: CV folds (reduced when the data is too small for it).
        seed: random state of the folds and the solver.
        scoring: scikit-learn scorer; default ROC AUC for two classes, balanced accuracy else.

    Returns:
        The pipeline refitted on all given data, and a dict of the search's parameters and
        mean CV scores per C (for the config and the log).
    """
    labels = np.asarray(labels)
    n_classes = len(np.unique(labels))
    scoring = scoring or ("roc_auc" if n_classes == 2 else "balanced_accuracy")
    params: dict[str, Any] = {"class_weight": "balanced", "scoring": scoring}
    if len(c_grid) == 1:
        c = float(c_grid[0])
        head = build_head(c, seed).fit(features, labels)
        params.update({"C": c, "cv_folds": 0})
        return head, params
    try:
        folds = folds_with_fallback(labels, groups, n_splits, seed)
    except SplitError:
        logger.warning("Too little data to cross-validate C; using C=1.0.")
        head = build_head(1.0, seed).fit(features, labels)
        params.update({"C": 1.0, "cv_folds": 0})
        return head, params
    folds_n = len(folds)
    search = GridSearchCV(
        build_head(seed=seed),
        {"classifier__C": list(c_grid)},
        scoring=scoring,
        cv=folds,
        refit=True,
        n_jobs=1,
    )
    search.fit(features, labels)
    scores = {
        str(c): round(float(s), 4)
        for c, s in zip(c_grid, search.cv_results_["mean_test_score"], strict=True)
    }
    best_c = float(search.best_params_["classifier__C"])
    logger.info(
        "Head: C=%s chosen by %d-fold %s CV (%s per C: %s)",
        best_c,
        folds_n,
        "grouped" if groups is not None else "stratified",
        scoring,
        scores,
    )
    params.update(
        {"C": best_c, "cv_folds": folds_n, "cv_grouped": groups is not None, "cv_scores": scores}
    )
    return search.best_estimator_, params
