"""Tests of the cell locator's parameters (cervix_hf.fields.params)."""

from __future__ import annotations

import json

import pytest

from cervix_hf.errors import CervixError, LocatorError
from cervix_hf.fields import LocatorParams


def test_round_trip_through_json() -> None:
    params = LocatorParams(crop_margin=0.2, scale=1.5, nucleus_colour=(90, 80, 150))
    data = json.loads(json.dumps(params.to_dict()))
    again = LocatorParams.from_dict(data)
    assert again == params.replace(nucleus_colour=(90, 80, 150))
    assert again.to_dict() == data
    assert LocatorParams.from_dict({}) == LocatorParams()  # missing keys: defaults


def test_scale_applies_to_lengths_and_areas() -> None:
    p = LocatorParams(scale=2.0)
    assert p.px(10) == 20
    assert p.px2(10) == 40


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"method": "cellpose"}, "method 'cellpose' is not one of"),
        ({"crop_margin": -0.1}, r"crop_margin must be in \[0.0, 2.0\]"),
        ({"max_cells": 0}, "max_cells must be in"),
        ({"max_cells": 2.5}, "max_cells must be an integer"),
        ({"min_crop_side": True}, "min_crop_side must be an integer"),
        ({"smoothing": float("nan")}, "smoothing must be in"),
        ({"cytoplasm_od": "0.1"}, "cytoplasm_od must be a number"),
        ({"nucleus_od": 0.2, "nucleus_od_low": 0.3}, "nucleus_od_low .* must not exceed"),
        ({"nucleus_min_area": 50, "nucleus_max_area": 40}, "nucleus_min_area .* must not exceed"),
    ],
)
def test_bad_values_are_refused(changes: dict, match: str) -> None:
    with pytest.raises(LocatorError, match=match):
        LocatorParams(**changes)
    assert issubclass(LocatorError, CervixError)


def test_from_dict_refuses_unknown_keys_and_non_objects() -> None:
    with pytest.raises(LocatorError, match=r"unknown locator parameter\(s\) \['speed'\]"):
        LocatorParams.from_dict({"speed": 3})
    with pytest.raises(LocatorError, match="must be a JSON object, got list"):
        LocatorParams.from_dict([1, 2])  # type: ignore[arg-type]
