"""Analyse a whole field: locate its cells, classify them in one batch, summarise.

Torch-free (numpy, Pillow, scikit-image): the model is anything with the single-cell model's
``analyze(images) -> list[CellAnalysis]`` (:class:`CellModel`), so the app's web process can
call this with the model running elsewhere. The field is read by
:func:`cervix_hf.images.load_image`, with the same upload limits as a single image.
"""

from __future__ import annotations

import csv
import io
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image, ImageDraw

from ..analysis import CellAnalysis
from ..errors import CervixError
from ..images import MAX_FILE_BYTES, MAX_PIXELS, ImageInput, load_image
from .locate import Box, CellLocator, LocatedCell, create_locator
from .params import LocatorParams

#: Columns of :meth:`FieldAnalysis.csv_rows` (one row per cell, highest risk first).
CSV_HEADERS: tuple[str, ...] = (
    "cell",
    "x0",
    "y0",
    "x1",
    "y1",
    "area_px",
    "p_abnormal",
    "decision",
    "cell_type",
    "unusual",
    "novelty_score",
)


class CellModel(Protocol):
    """What field analysis needs from a model: the single-cell model's batched analysis."""

    def analyze(self, images: Sequence[ImageInput]) -> list[CellAnalysis]:
        """One :class:`CellAnalysis` per image, in order."""
        ...


@dataclass(frozen=True, eq=False)
class FieldCell:
    """One located cell and what the model says about its crop.

    ``p_abnormal`` is the model's P(positive class) for the crop, ``flagged`` whether it is at
    or above the model's threshold (``decision`` is then the positive label); ``cell_type``
    is the most likely of the five types (None without that head).
    """

    located: LocatedCell
    analysis: CellAnalysis

    @property
    def id(self) -> int:
        return self.located.id

    @property
    def box(self) -> Box:
        return self.located.box

    @property
    def p_abnormal(self) -> float:
        return self.analysis.p_positive

    @property
    def decision(self) -> str:
        return self.analysis.decision

    @property
    def flagged(self) -> bool:
        return self.analysis.p_positive >= self.analysis.threshold

    @property
    def cell_type(self) -> str | None:
        types = self.analysis.cell_types
        return max(types, key=types.__getitem__) if types else None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (outlines as ``[[x, y], ...]`` in field pixels)."""
        nucleus = self.located.nucleus_polygon()
        return {
            "id": self.id,
            "box": list(self.box),
            "crop_box": list(self.located.crop_box),
            "area_px": self.located.area,
            "p_abnormal": round(self.p_abnormal, 6),
            "decision": self.decision,
            "flagged": self.flagged,
            "cell_type": self.cell_type,
            "cell_types": self.analysis.cell_types,
            "unusual": self.analysis.unusual,
            "novelty_score": self.analysis.novelty_score,
            "outline": _points(self.located.cytoplasm_polygon()),
            "nucleus_outline": _points(nucleus) if nucleus is not None else None,
        }


@dataclass(frozen=True, eq=False)
class FieldAnalysis:
    """The cells of one field, highest risk first, and a summary.

    Attributes:
        image: the field as read (RGB).
        cells: every located cell with the model's answer, by decreasing ``p_abnormal``.
        threshold: the model's decision threshold (None when no cell was found).
        locator_seconds, classify_seconds: time spent finding the cells and classifying
            their crops (one batched call of the model).
        truncated: the locator stopped at ``params.max_cells``.
        params: the locator's parameters.
    """

    image: Image.Image
    cells: tuple[FieldCell, ...]
    threshold: float | None
    locator_seconds: float
    classify_seconds: float
    truncated: bool
    params: LocatorParams = field(default_factory=LocatorParams)

    @property
    def n_flagged(self) -> int:
        """Cells at or above the model's threshold."""
        return sum(c.flagged for c in self.cells)

    def highest_risk(self, k: int = 3) -> tuple[FieldCell, ...]:
        """The ``k`` cells with the highest P(Abnormal)."""
        return self.cells[:k]

    def summary(self) -> dict[str, Any]:
        """Cells found and flagged, the highest-risk cells, and the timings."""
        return {
            "cells_found": len(self.cells),
            "cells_flagged": self.n_flagged,
            "cells_unusual": sum(bool(c.analysis.unusual) for c in self.cells),
            "threshold": self.threshold,
            "highest_risk": [
                {"id": c.id, "p_abnormal": round(c.p_abnormal, 6), "decision": c.decision}
                for c in self.highest_risk()
            ],
            "truncated": self.truncated,
            "locator_seconds": round(self.locator_seconds, 4),
            "classify_seconds": round(self.classify_seconds, 4),
        }

    def to_json(self) -> dict[str, Any]:
        """The answer of the API: summary, field size, locator parameters and every cell."""
        return {
            "summary": self.summary(),
            "field": {"width": self.image.width, "height": self.image.height},
            "locator": self.params.to_dict(),
            "cells": [c.to_json() for c in self.cells],
        }

    def csv_rows(self) -> list[list[Any]]:
        """One row per cell in :data:`CSV_HEADERS` order, highest risk first."""
        return [
            [
                c.id,
                *c.box,
                c.located.area,
                round(c.p_abnormal, 6),
                c.decision,
                c.cell_type or "",
                "" if c.analysis.unusual is None else c.analysis.unusual,
                "" if c.analysis.novelty_score is None else round(c.analysis.novelty_score, 4),
            ]
            for c in self.cells
        ]

    def to_csv(self, path: str | Path | None = None) -> str:
        """The table as CSV text (with a header row); also written to ``path`` if given."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(CSV_HEADERS)
        writer.writerows(self.csv_rows())
        text = buf.getvalue()
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    def overlay(self, width: int | None = None, labels: bool = True) -> Image.Image:
        """The field with each cell outlined in its P(Abnormal) colour (see
        :func:`risk_colour`; flagged cells thicker) and numbered; a colour bar at the
        bottom. ``width`` (px, default ``max(2, side / 400)``) is the outline's width."""
        return draw_overlay(self.image, self.cells, width=width, labels=labels)


def analyze_field(
    model: CellModel,
    image: ImageInput,
    locator: CellLocator | None = None,
    *,
    max_bytes: int = MAX_FILE_BYTES,
    max_pixels: int = MAX_PIXELS,
) -> FieldAnalysis:
    """Locate every cell of a field, classify the crops in one batch, and summarise.

    Args:
        model: anything with ``analyze(images) -> list[CellAnalysis]`` (a
            ``CervixClassifier``, or a proxy to one in another process).
        image: the field (path, bytes, PIL image, array or ``datasets`` image dict).
        locator: how cells are found (default: the classical locator, default parameters).
        max_bytes, max_pixels: upload limits, as for a single image.

    Raises:
        ImageLoadError: the input is not a readable image or is over the limits.
        LocatorError: the field is over the locator's ``max_field_pixels``.
        CervixError: the model answered for a different number of crops.
    """
    img = load_image(image, max_bytes=max_bytes, max_pixels=max_pixels)
    locator = locator or create_locator()
    t0 = time.perf_counter()
    located = locator.locate(img)
    t1 = time.perf_counter()
    analyses = model.analyze([c.crop for c in located]) if located else []
    t2 = time.perf_counter()
    if len(analyses) != len(located):
        raise CervixError(
            f"the model returned {len(analyses)} answers for {len(located)} cell crops."
        )
    cells = sorted(
        (FieldCell(c, a) for c, a in zip(located, analyses, strict=True)),
        key=lambda fc: (-fc.p_abnormal, fc.id),
    )
    return FieldAnalysis(
        image=img,
        cells=tuple(cells),
        threshold=analyses[0].threshold if analyses else None,
        locator_seconds=t1 - t0,
        classify_seconds=t2 - t1,
        truncated=len(located) >= locator.params.max_cells,
        params=locator.params,
    )


def count_cells(
    image: Image.Image, params: LocatorParams | None = None, max_side: int = 400
) -> int:
    """How many whole cells an image seems to hold, cheaply (a hint, not an analysis).

    The image is shrunk so that its longer side is at most ``max_side`` (the locator's
    lengths shrink with it) and cells touching the border are not counted, so a single-cell
    crop with a neighbour cut by its edge counts 1. Tens of milliseconds.
    """
    params = params or LocatorParams()
    rgb = image.convert("RGB") if image.mode != "RGB" else image
    factor = min(1.0, max_side / max(rgb.size))
    if factor < 1.0:
        size = (max(1, round(rgb.width * factor)), max(1, round(rgb.height * factor)))
        rgb = rgb.resize(size, Image.Resampling.BOX)
        params = params.replace(scale=max(0.05, params.scale * factor))
    cells = create_locator(params).locate(rgb)
    w, h = rgb.size
    return sum(
        c.box[0] > 0 and c.box[1] > 0 and c.box[2] < w and c.box[3] < h and c.nucleus_area > 0
        for c in cells
    )


def looks_like_field(image: Image.Image, params: LocatorParams | None = None) -> bool:
    """Whether an image seems to hold several whole cells (see :func:`count_cells`)."""
    return count_cells(image, params) >= 2


# --------------------------------------------------------------------------- drawing

_LOW = np.array([0.0, 114.0, 178.0])  # blue: P(Abnormal) 0
_MID = np.array([230.0, 159.0, 0.0])  # orange: 0.5
_HIGH = np.array([213.0, 0.0, 0.0])  # red: 1


def risk_colour(p: float) -> tuple[int, int, int]:
    """Outline colour for P(Abnormal) ``p``: blue (0) through orange (0.5) to red (1)."""
    p = min(1.0, max(0.0, float(p))) if math.isfinite(p) else 0.0
    c = _LOW + (_MID - _LOW) * (p / 0.5) if p <= 0.5 else _MID + (_HIGH - _MID) * ((p - 0.5) / 0.5)
    r, g, b = (round(float(v)) for v in c)
    return (r, g, b)


def draw_overlay(
    image: Image.Image,
    cells: Sequence[FieldCell],
    width: int | None = None,
    labels: bool = True,
) -> Image.Image:
    """See :meth:`FieldAnalysis.overlay`."""
    from scipy.ndimage import binary_dilation, binary_erosion

    out = np.array(image.convert("RGB"))
    h, w = out.shape[:2]
    width = width or max(2, round(max(w, h) / 400))
    for c in sorted(cells, key=lambda fc: fc.p_abnormal):  # riskiest drawn last, on top
        x0, y0, x1, y1 = c.box
        pad = width + 1
        px0, py0 = max(0, x0 - pad), max(0, y0 - pad)
        px1, py1 = min(w, x1 + pad), min(h, y1 + pad)
        mask = np.zeros((py1 - py0, px1 - px0), bool)
        mask[y0 - py0 : y1 - py0, x0 - px0 : x1 - px0] = c.located.cytoplasm
        edge = mask & ~binary_erosion(mask)
        thick = width + (1 if c.flagged else 0)
        if thick > 1:
            edge = binary_dilation(edge, iterations=thick - 1)
        out[py0:py1, px0:px1][edge] = risk_colour(c.p_abnormal)
    canvas = Image.fromarray(out)
    draw = ImageDraw.Draw(canvas)
    if labels:
        for c in cells:
            text = str(c.id)
            tx, ty = c.box[0] + 2, c.box[1] + 2
            left, top, right, bottom = draw.textbbox((tx, ty), text)
            draw.rectangle((left - 1, top - 1, right + 1, bottom + 1), fill=(255, 255, 255))
            draw.text((tx, ty), text, fill=risk_colour(c.p_abnormal))
    _colour_bar(draw, w, h)
    return canvas


def _colour_bar(draw: ImageDraw.ImageDraw, w: int, h: int) -> None:
    """A small P(Abnormal) colour bar in the bottom-left corner."""
    bw, bh = min(160, w // 3), max(4, min(10, h // 40))
    if bw < 20 or h < 4 * bh:
        return
    y1 = h - 4
    y0 = y1 - bh
    for i in range(bw):
        draw.line((4 + i, y0, 4 + i, y1), fill=risk_colour(i / (bw - 1)))
    draw.text((4, y0 - 12), "P(Abnormal) 0", fill=(0, 0, 0))
    draw.text((4 + bw - 6, y0 - 12), "1", fill=(0, 0, 0))


def _points(poly: np.ndarray) -> list[list[float]]:
    return [[round(float(x), 1), round(float(y), 1)] for x, y in poly]


__all__ = [
    "CSV_HEADERS",
    "CellModel",
    "FieldAnalysis",
    "FieldCell",
    "analyze_field",
    "count_cells",
    "draw_overlay",
    "looks_like_field",
    "risk_colour",
]
