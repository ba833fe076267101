"""Parameters of the cell locator: one frozen dataclass, checked, saved as a plain dict.

A model that serves whole fields records them in its ``config.json`` (``CervixConfig.locator``),
so the field analysis a user runs is the one that was evaluated. Lengths and areas are in
pixels of the generated fields (cells 45-160 px across); ``scale`` multiplies every length
(areas by ``scale**2``) for fields taken at another magnification.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

from ..errors import LocatorError

#: Locator methods :func:`cervix_hf.fields.create_locator` knows.
METHODS: tuple[str, ...] = ("classical",)


@dataclass(frozen=True)
class LocatorParams:
    """How cells are found in a field and cut out for the single-cell model.

    Attributes:
        method: the locator (``"classical"``: scikit-image, CPU, offline).
        crop_margin: each crop is the cell's bounding box grown by this fraction of the box's
            width (left and right) and height (top and bottom), as SIPaKMeD's ``CROPPED/``
            images are cut around a cell; the generated crops use 0.05-0.175 (mid-point 0.1).
        min_crop_side: a crop narrower or lower than this grows around the cell to it.
        max_field_pixels: larger fields are refused (the locator's memory grows with the
            pixels; README, Performance).
        max_cells: at most this many cells are returned (the largest), to bound the work
            of classifying them.
        scale: multiplies every length below (areas by its square).
        smoothing: Gaussian sigma (px) applied before the thresholds.
        background_window: px; the background is fit on a grid this coarse.
        cytoplasm_od: summed optical density (over R, G, B, relative to the background) above
            which a pixel counts as stained.
        nucleus_od: a nucleus is at least this much darker (optical density of its brightest
            channel) than the cytoplasm around it; ``nucleus_od_low`` bounds its extent.
        nucleus_radius: px; about the largest nucleus radius (how far around a nucleus its
            cytoplasm is measured).
        nucleus_min_area, nucleus_max_area: px²; nucleus candidates outside are dropped.
        nucleus_min_solidity: nucleus candidates less convex than this are dropped (rims,
            edges of overlaps).
        nucleus_colour: the colour (R, G, B) a layer of nuclear stain shows over white; a
            candidate must owe at least ``nucleus_colour_share`` of its extra density to it
            (rather than to more of the cytoplasm around it, as where cells overlap), unless
            its contrast reaches ``nucleus_sure_od``.
        seed_min_area: px²; smaller nuclei count as nuclei but start no cell (debris specks).
        min_cytoplasm_ratio: a seed whose watershed region is under this many times its own
            area is dropped and its region shared out (overlaps of two cells, grains).
        compactness: the watershed's compactness (regions grow evenly where borders are weak).
        cell_min_edge: regions whose outer border's mean gradient is below this are dropped
            (a darker patch of background has no sharp border).
        cell_min_area: px²; smaller stained regions are not cells.
    """

    method: str = "classical"
    crop_margin: float = 0.1
    min_crop_side: int = 64
    max_field_pixels: int = 8_000_000
    max_cells: int = 300
    scale: float = 1.0
    smoothing: float = 1.0
    background_window: int = 8
    cytoplasm_od: float = 0.12
    nucleus_od: float = 0.35
    nucleus_od_low: float = 0.1
    nucleus_radius: int = 28
    nucleus_min_area: int = 12
    nucleus_max_area: int = 2500
    seed_min_area: int = 45
    nucleus_min_solidity: float = 0.8
    cell_min_area: int = 800
    min_cytoplasm_ratio: float = 4.0
    nucleus_colour: tuple[int, int, int] = (95, 80, 140)
    nucleus_colour_share: float = 0.5
    nucleus_sure_od: float = 1.0
    compactness: float = 0.03
    cell_min_edge: float = 0.03

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise LocatorError(f"locator method {self.method!r} is not one of {list(METHODS)}.")
        checks: list[tuple[str, float, float]] = [
            ("crop_margin", 0.0, 2.0),
            ("min_crop_side", 1, 4096),
            ("max_field_pixels", 1, 200_000_000),
            ("max_cells", 1, 100_000),
            ("scale", 0.05, 20.0),
            ("smoothing", 0.0, 10.0),
            ("background_window", 2, 64),
            ("cytoplasm_od", 0.0, 10.0),
            ("nucleus_od", 0.0, 10.0),
            ("nucleus_od_low", 0.0, 10.0),
            ("nucleus_radius", 1, 500),
            ("nucleus_min_area", 1, 10_000_000),
            ("nucleus_max_area", 1, 10_000_000),
            ("seed_min_area", 1, 10_000_000),
            ("nucleus_min_solidity", 0.0, 1.0),
            ("cell_min_area", 1, 100_000_000),
            ("min_cytoplasm_ratio", 0.0, 100.0),
            ("nucleus_colour_share", 0.0, 1.0),
            ("nucleus_sure_od", 0.0, 10.0),
            ("compactness", 0.0, 1000.0),
            ("cell_min_edge", 0.0, 10.0),
        ]
        for name, lo, hi in checks:
            value = getattr(self, name)
            want_int = isinstance(lo, int) and isinstance(hi, int)
            ok_type = isinstance(value, int) if want_int else isinstance(value, (int, float))
            if isinstance(value, bool) or not ok_type:
                kind = "an integer" if want_int else "a number"
                raise LocatorError(f"locator {name} must be {kind}, got {value!r}.")
            if not (math.isfinite(value) and lo <= value <= hi):
                raise LocatorError(f"locator {name} must be in [{lo}, {hi}], got {value!r}.")
        colour = self.nucleus_colour
        if (
            not isinstance(colour, (tuple, list))
            or len(colour) != 3
            or not all(
                isinstance(c, int) and not isinstance(c, bool) and 1 <= c <= 255 for c in colour
            )
        ):
            raise LocatorError(
                "locator nucleus_colour must be three integers in [1, 255] (R, G, B), "
                f"got {colour!r}."
            )
        object.__setattr__(self, "nucleus_colour", tuple(colour))
        if self.nucleus_od_low > self.nucleus_od:
            raise LocatorError(
                f"locator nucleus_od_low ({self.nucleus_od_low}) must not exceed nucleus_od "
                f"({self.nucleus_od})."
            )
        if self.nucleus_min_area > self.nucleus_max_area:
            raise LocatorError(
                f"locator nucleus_min_area ({self.nucleus_min_area}) must not exceed "
                f"nucleus_max_area ({self.nucleus_max_area})."
            )

    def px(self, length: float) -> float:
        """A length in pixels of this field (``scale`` applied)."""
        return length * self.scale

    def px2(self, area: float) -> float:
        """An area in pixels² of this field (``scale**2`` applied)."""
        return area * self.scale * self.scale

    def replace(self, **changes: Any) -> LocatorParams:
        """A copy with some fields changed (checked again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists), what ``config.json`` stores."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LocatorParams:
        """Rebuild from :meth:`to_dict` output; missing keys take their defaults.

        Raises:
            LocatorError: ``data`` is not a dict, holds an unknown key or a bad value.
        """
        if not isinstance(data, dict):
            raise LocatorError(
                f"locator parameters must be a JSON object, got {type(data).__name__}."
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise LocatorError(
                f"unknown locator parameter(s) {unknown}; known: {sorted(known)} "
                "(was the config written by a newer cervix_hf?)."
            )
        return cls(**data)
