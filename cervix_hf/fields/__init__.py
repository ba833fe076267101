"""Whole-field analysis: locate every cell in a field of view, classify each, summarise.

Pipeline step after the single-cell model: a field image -> :class:`CellLocator` ->
:class:`LocatedCell` crops cut the way SIPaKMeD's ``CROPPED/`` images are -> the model's
``analyze`` -> a field summary. Torch-free (numpy, Pillow, SciPy, scikit-image), so the
app's web process can run it.

Modules: :mod:`.params` (the locator's parameters), :mod:`.locate` (the interface, the
located cell, the crop convention), :mod:`.classical` (the scikit-image locator) and
:mod:`.geometry` (polygons, masks, IoU matching).
"""

from __future__ import annotations

from .classical import ClassicalLocator
from .locate import Box, CellLocator, LocatedCell, create_locator, crop_box
from .params import METHODS, LocatorParams

__all__ = [
    "METHODS",
    "Box",
    "CellLocator",
    "ClassicalLocator",
    "LocatedCell",
    "LocatorParams",
    "create_locator",
    "crop_box",
]
