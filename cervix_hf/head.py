"""The scikit-learn head: ``Pipeline(StandardScaler, LogisticRegression)``, saved with skops.

Heads are never pickled. Loading goes through ``skops.io.load`` with an explicit list of
trusted types; a file holding anything else is refused.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import skops.io as sio
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from .errors import ConfigMismatchError, ModelLoadError, SplitError, UntrustedHeadError
from .split import folds_with_fallback

logger = logging.getLogger(__name__)

C_GRID: tuple[float, ...] = (0.0001, 0.001, 0.01, 0.1, 1.0)
# Types a head file may hold beyond those skops trusts by default (scikit-learn's own
# estimators, numpy arrays, builtins). Anything else is refused at load.
EXTRA_TRUSTED_TYPES: tuple[str, ...] = (
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
)


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


def save_head(head: Any, path: str | Path) -> None:
    """Write an estimator with skops (never pickle)."""
    sio.dump(head, Path(path))


def load_head(path: str | Path) -> Any:
    """Load a skops head, trusting only scikit-learn's types and :data:`EXTRA_TRUSTED_TYPES`.

    Raises:
        ModelLoadError: the file is missing or not a skops file.
        UntrustedHeadError: the file holds types outside the trusted list.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"Head file {path} is missing.")
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:  # skops raises zipfile/JSON/Key errors for foreign files
        raise ModelLoadError(f"{path.name} is not a readable skops file ({exc}).") from None
    refused = sorted(set(untrusted) - set(EXTRA_TRUSTED_TYPES))
    if refused:
        raise UntrustedHeadError(
            f"{path.name} holds types cervix_hf does not trust: {refused}. It was not loaded. "
            "Only scikit-learn estimators are allowed in a head; retrain with cervix_hf or "
            "inspect the file with skops.io.get_untrusted_types before trusting it yourself."
        )
    return sio.load(path, trusted=[t for t in untrusted if t in EXTRA_TRUSTED_TYPES])


def check_head(head: Any, *, feature_dim: int, classes: Sequence[str], name: str) -> None:
    """Check a loaded head against the config.

    Raises:
        ConfigMismatchError: wrong estimator, feature count or classes.
    """
    for attr in ("predict_proba", "n_features_in_", "classes_"):
        if not hasattr(head, attr):
            raise ConfigMismatchError(f"{name} is not a fitted classifier (no {attr}).")
    if int(head.n_features_in_) != int(feature_dim):
        raise ConfigMismatchError(
            f"{name} takes {head.n_features_in_} features but config.json says the backbone "
            f"gives {feature_dim}: the head was trained on another backbone."
        )
    expected = list(range(len(classes)))
    if [int(c) for c in head.classes_] != expected:
        raise ConfigMismatchError(
            f"{name} has classes {list(head.classes_)}, expected indices {expected} for "
            f"{list(classes)} as in config.json."
        )
