"""Regions as (box, mask) pairs: polygons to masks, overlaps, and one-to-one matching by IoU.

Coordinates follow the ``.dat`` files: ``x, y`` in pixels with pixel ``(row, col)`` covering
``[col, col + 1) x [row, row + 1)``; a pixel belongs to a polygon when its centre does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .locate import Box


@dataclass(frozen=True, eq=False)
class Region:
    """A boolean ``mask`` over ``box`` (field coordinates, ``x1``/``y1`` exclusive)."""

    box: Box
    mask: np.ndarray

    @property
    def area(self) -> int:
        return int(self.mask.sum())


def polygon_region(points: np.ndarray, field_size: tuple[int, int]) -> Region:
    """Rasterise an ``(n, 2)`` ``x, y`` polygon, clipped to a field of ``(width, height)``."""
    from skimage.draw import polygon as fill_polygon

    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    w, h = field_size
    if len(pts) < 3:
        return Region((0, 0, 0, 0), np.zeros((0, 0), bool))
    x0 = max(0, math.floor(pts[:, 0].min()))
    y0 = max(0, math.floor(pts[:, 1].min()))
    x1 = min(w, math.ceil(pts[:, 0].max()) + 1)
    y1 = min(h, math.ceil(pts[:, 1].max()) + 1)
    if x0 >= x1 or y0 >= y1:
        return Region((0, 0, 0, 0), np.zeros((0, 0), bool))
    mask = np.zeros((y1 - y0, x1 - x0), bool)
    rr, cc = fill_polygon(pts[:, 1] - 0.5 - y0, pts[:, 0] - 0.5 - x0, shape=mask.shape)
    mask[rr, cc] = True
    return Region((x0, y0, x1, y1), mask)


def outline_box(points: np.ndarray, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The pixel box of an outline, clipped to the field."""
    w, h = size
    x0 = min(max(0, math.floor(points[:, 0].min())), w - 1)
    y0 = min(max(0, math.floor(points[:, 1].min())), h - 1)
    x1 = max(min(w, math.ceil(points[:, 0].max())), x0 + 1)
    y1 = max(min(h, math.ceil(points[:, 1].max())), y0 + 1)
    return (x0, y0, x1, y1)


def intersection(a: Region, b: Region) -> int:
    """Pixels in both regions."""
    x0, y0 = max(a.box[0], b.box[0]), max(a.box[1], b.box[1])
    x1, y1 = min(a.box[2], b.box[2]), min(a.box[3], b.box[3])
    if x0 >= x1 or y0 >= y1:
        return 0
    sa = a.mask[y0 - a.box[1] : y1 - a.box[1], x0 - a.box[0] : x1 - a.box[0]]
    sb = b.mask[y0 - b.box[1] : y1 - b.box[1], x0 - b.box[0] : x1 - b.box[0]]
    return int(np.count_nonzero(sa & sb))


def iou(a: Region, b: Region) -> float:
    """Intersection over union of two regions (0 when both are empty)."""
    inter = intersection(a, b)
    union = a.area + b.area - inter
    return inter / union if union else 0.0


def contains(region: Region, x: float, y: float) -> bool:
    """Whether the pixel holding point ``(x, y)`` belongs to the region."""
    c, r = math.floor(x) - region.box[0], math.floor(y) - region.box[1]
    return (
        0 <= r < region.mask.shape[0] and 0 <= c < region.mask.shape[1] and bool(region.mask[r, c])
    )


def match(
    predicted: list[Region], truth: list[Region], threshold: float = 0.5
) -> list[tuple[int, int, float]]:
    """One-to-one matches ``(predicted index, truth index, IoU)`` with IoU >= ``threshold``.

    Greedy by decreasing IoU (at ``threshold >= 0.5`` each region has at most one partner
    above it anyway, so greedy is optimal there).
    """
    pairs: list[tuple[float, int, int]] = []
    for i, p in enumerate(predicted):
        for j, t in enumerate(truth):
            value = iou(p, t)
            if value >= threshold and value > 0:
                pairs.append((value, i, j))
    pairs.sort(key=lambda v: (-v[0], v[1], v[2]))
    used_p: set[int] = set()
    used_t: set[int] = set()
    out: list[tuple[int, int, float]] = []
    for value, i, j in pairs:
        if i in used_p or j in used_t:
            continue
        used_p.add(i)
        used_t.add(j)
        out.append((i, j, value))
    return out
