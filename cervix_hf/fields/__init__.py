"""Whole-field analysis: locate every cell in a field of view, classify each, summarise.

Pipeline step after the single-cell model: a field image -> :class:`CellLocator` ->
:class:`LocatedCell` crops cut the way SIPaKMeD's ``CROPPED/`` images are -> the model's
``analyze`` -> a field summary. Torch-free (numpy, Pillow, SciPy, scikit-image), so the
app's web process can run it.

Modules: :mod:`.params` (the locator's parameters), :mod:`.locate` (the interface, the
located cell, the crop convention), :mod:`.classical` (the scikit-image locator),
:mod:`.analyze` (:func:`analyze_field`: one field, one batched model call, summary, JSON,
CSV, overlay; :func:`looks_like_field` for a hint) and :mod:`.geometry` (polygons, masks,
IoU matching).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "analyze": (
        "CSV_HEADERS",
        "CellModel",
        "FieldAnalysis",
        "FieldCell",
        "analyze_field",
        "count_cells",
        "looks_like_field",
    ),
    "classical": ("ClassicalLocator",),
    "locate": ("Box", "CellLocator", "LocatedCell", "create_locator", "crop_box"),
    "params": ("METHODS", "LocatorParams"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    # loaded on first use: config.json's locator parameters (.params) need no scikit-image
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
