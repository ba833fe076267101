"""Exact heat map of the linear head's logit over the backbone's last feature map.

The pooled feature vector is the spatial mean of the last feature map ``F`` (C, h, w), and
``StandardScaler`` + ``LogisticRegression`` are affine, so with ``a = coef / scale`` and
``c = intercept - a . mean``::

    logit = a . mean_ij F[:, i, j] + c = mean_ij (a . F[:, i, j]) + c

The map ``M[i, j] = a . F[:, i, j]`` is each location's contribution: its mean plus the
intercept ``c`` is the logit, exactly. One forward pass, no gradients.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler


def linear_form(head: Any) -> tuple[np.ndarray, float] | None:
    """``(a, c)`` with ``logit = a . x + c`` for a scaler + logistic-regression head.

    For a ``CalibratedClassifierCV`` over such pipelines, the form of their mean logit (the
    evidence before calibration, which is monotone in it per fold). None for other heads.
    """
    fitted = getattr(head, "calibrated_classifiers_", None)
    if fitted is not None:
        forms = [linear_form(getattr(cc, "estimator", None)) for cc in fitted]
        if not forms or any(f is None for f in forms):
            return None
        return np.mean([f[0] for f in forms], axis=0), float(np.mean([f[1] for f in forms]))
    if not isinstance(head, Pipeline):
        return None
    steps = [est for _, est in head.steps if est != "passthrough"]
    if not steps or not isinstance(steps[-1], LogisticRegression) or steps[-1].coef_.shape[0] != 1:
        return None
    a = steps[-1].coef_[0].astype(np.float64)
    c = float(steps[-1].intercept_[0])
    for step in reversed(steps[:-1]):
        if not isinstance(step, StandardScaler):
            return None
        scale = step.scale_ if step.scale_ is not None else np.ones_like(a)
        mean = step.mean_ if step.mean_ is not None else np.zeros_like(a)
        a = a / scale
        c = c - float(a @ mean)
    return a, c


def contribution_maps(feature_maps: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Per-location logit contributions (N, h, w) from feature maps (N, C, h, w)."""
    return np.einsum("nchw,c->nhw", feature_maps.astype(np.float64), a)
