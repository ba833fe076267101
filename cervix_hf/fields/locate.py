"""What a cell locator returns, the interface it meets, and how a located cell is cropped.

A locator takes a field image (many cells) and returns one :class:`LocatedCell` per cell it
finds: the cytoplasm and nucleus regions, the bounding box and a crop cut the way SIPaKMeD's
``CROPPED/`` images are cut (:func:`crop_box`), so the single-cell model sees what it was
trained on. :class:`CellLocator` is the interface: the classical scikit-image locator
(:mod:`.classical`) meets it today; a learned segmenter (Cellpose, StarDist) can meet it later
and be chosen by ``LocatorParams.method``.

Crop convention (documented once, here): the crop is the cell's cytoplasm bounding box grown
on each side by ``crop_margin`` times the box's width (left, right) and height (top, bottom),
then grown around its centre to at least ``min_crop_side`` pixels per side, then clipped to
the field. It holds whatever lies there (neighbours included), as a crop cut from a cluster
image does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from PIL import Image

from .params import LocatorParams

#: A box ``(x0, y0, x1, y1)`` in field pixels, ``x1`` and ``y1`` exclusive.
Box = tuple[int, int, int, int]


@dataclass(frozen=True, eq=False)
class LocatedCell:
    """One cell found in a field (coordinates in field pixels).

    Attributes:
        id: 1-based number of the cell in the field, in reading order (top to bottom, then
            left to right, by the cell's centre).
        box: bounding box of the cytoplasm.
        cytoplasm: boolean mask of the cell (nucleus included) over ``box``.
        nucleus: boolean mask of its nucleus over ``box``; all False when none was found.
        crop_box: the box of :attr:`crop` (see :func:`crop_box`).
        crop: the RGB crop the single-cell model classifies.
    """

    id: int
    box: Box
    cytoplasm: np.ndarray
    nucleus: np.ndarray
    crop_box: Box
    crop: Image.Image

    @property
    def area(self) -> int:
        """Pixels of the cell."""
        return int(self.cytoplasm.sum())

    @property
    def nucleus_area(self) -> int:
        """Pixels of its nucleus (0 when none was found)."""
        return int(self.nucleus.sum())

    @property
    def centroid(self) -> tuple[float, float]:
        """``(x, y)`` centre of the cell's pixels."""
        return _centroid(self.cytoplasm, self.box)

    @property
    def nucleus_centroid(self) -> tuple[float, float] | None:
        """``(x, y)`` centre of the nucleus, or None."""
        return _centroid(self.nucleus, self.box) if self.nucleus.any() else None

    def cytoplasm_polygon(self) -> np.ndarray:
        """The cell's outline, ``(n, 2)`` of ``x, y`` field coordinates (pixel edges)."""
        return mask_outline(self.cytoplasm, self.box)

    def nucleus_polygon(self) -> np.ndarray | None:
        """The nucleus outline like :meth:`cytoplasm_polygon`, or None."""
        return mask_outline(self.nucleus, self.box) if self.nucleus.any() else None


class CellLocator(Protocol):
    """Finds the cells of a field image."""

    params: LocatorParams

    def locate(self, image: Image.Image) -> list[LocatedCell]:
        """Return the cells of an RGB field, in reading order, ids from 1.

        Raises:
            LocatorError: the field is larger than ``params.max_field_pixels``.
        """
        ...


def create_locator(params: LocatorParams | None = None) -> CellLocator:
    """The locator ``params.method`` names (default parameters when None)."""
    params = params or LocatorParams()
    # one method today; LocatorParams refuses unknown methods, so this is exhaustive
    from .classical import ClassicalLocator

    return ClassicalLocator(params)


def crop_box(box: Box, field_size: tuple[int, int], params: LocatorParams) -> Box:
    """The crop around a cell's bounding box, by the convention in the module docstring.

    Args:
        box: the cell's ``(x0, y0, x1, y1)``.
        field_size: ``(width, height)`` of the field.
        params: ``crop_margin`` and ``min_crop_side`` are used.
    """
    x0, y0, x1, y1 = box
    w, h = field_size
    mx = params.crop_margin * (x1 - x0)
    my = params.crop_margin * (y1 - y0)
    cx0, cx1 = _grow(x0 - mx, x1 + mx, params.min_crop_side)
    cy0, cy1 = _grow(y0 - my, y1 + my, params.min_crop_side)
    return (
        max(0, math.floor(cx0)),
        max(0, math.floor(cy0)),
        min(w, math.ceil(cx1)),
        min(h, math.ceil(cy1)),
    )


def _grow(lo: float, hi: float, side: float) -> tuple[float, float]:
    missing = side - (hi - lo)
    if missing > 0:
        return lo - missing / 2, hi + missing / 2
    return lo, hi


def _centroid(mask: np.ndarray, box: Box) -> tuple[float, float]:
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return (box[0] + mask.shape[1] / 2, box[1] + mask.shape[0] / 2)
    return (box[0] + float(xs.mean()) + 0.5, box[1] + float(ys.mean()) + 0.5)


def mask_outline(mask: np.ndarray, box: Box) -> np.ndarray:
    """Outline of the largest part of a mask, ``(n, 2)`` of ``x, y`` field coordinates.

    Traced half-way between the mask's edge pixels and their outside neighbours (marching
    squares), so filling the polygon gives back the mask's pixels up to corner cuts.
    """
    from skimage.measure import find_contours

    padded = np.pad(mask.astype(np.float32), 1)
    contours = find_contours(padded, 0.5)
    if not contours:
        return np.zeros((0, 2))
    longest = max(contours, key=len)  # (row, col) in padded coordinates
    return np.stack([longest[:, 1] - 1 + 0.5 + box[0], longest[:, 0] - 1 + 0.5 + box[1]], axis=1)
