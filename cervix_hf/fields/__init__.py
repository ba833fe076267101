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

from .analyze import (
    CSV_HEADERS,
    CellModel,
    FieldAnalysis,
    FieldCell,
    analyze_field,
    count_cells,
    looks_like_field,
)
from .classical import ClassicalLocator
from .locate import Box, CellLocator, LocatedCell, create_locator, crop_box
from .params import METHODS, LocatorParams

__all__ = [
    "CSV_HEADERS",
    "METHODS",
    "Box",
    "CellLocator",
    "CellModel",
    "ClassicalLocator",
    "FieldAnalysis",
    "FieldCell",
    "LocatedCell",
    "LocatorParams",
    "analyze_field",
    "count_cells",
    "create_locator",
    "crop_box",
    "looks_like_field",
]
