"""Tests of polygons, masks and IoU matching (cervix_hf.fields.geometry), on hand-counted shapes."""

from __future__ import annotations

import numpy as np

from cervix_hf.fields.geometry import Region, contains, intersection, iou, match, polygon_region


def _square(x0: float, y0: float, side: float) -> np.ndarray:
    return np.array([[x0, y0], [x0 + side, y0], [x0 + side, y0 + side], [x0, y0 + side]])


def test_square_covers_the_pixels_whose_centres_it_holds() -> None:
    r = polygon_region(_square(2, 3, 10), (50, 50))
    assert r.area == 100
    assert r.box[0] <= 2 and r.box[1] <= 3
    ys, xs = np.nonzero(r.mask)
    assert xs.min() + r.box[0] == 2 and xs.max() + r.box[0] == 11
    assert ys.min() + r.box[1] == 3 and ys.max() + r.box[1] == 12


def test_polygon_is_clipped_to_the_field() -> None:
    r = polygon_region(_square(-5, -5, 10), (50, 50))
    assert r.area == 25  # only the quarter inside
    outside = polygon_region(_square(100, 100, 10), (50, 50))
    assert outside.area == 0
    assert polygon_region(np.zeros((2, 2)), (50, 50)).area == 0


def test_iou_and_intersection_hand_counted() -> None:
    a = polygon_region(_square(0, 0, 10), (40, 40))
    b = polygon_region(_square(5, 0, 10), (40, 40))
    assert intersection(a, b) == 50
    assert iou(a, b) == 50 / 150
    assert iou(a, a) == 1.0
    far = polygon_region(_square(30, 30, 5), (40, 40))
    assert intersection(a, far) == 0 and iou(a, far) == 0.0
    empty = Region((0, 0, 0, 0), np.zeros((0, 0), bool))
    assert iou(empty, empty) == 0.0


def test_contains() -> None:
    r = polygon_region(_square(0, 0, 10), (40, 40))
    assert contains(r, 0.0, 0.0) and contains(r, 9.99, 9.99)
    assert not contains(r, 10.0, 5.0) and not contains(r, -0.5, 5.0)


def test_match_is_one_to_one_by_decreasing_iou() -> None:
    truth = [
        polygon_region(_square(0, 0, 10), (60, 60)),
        polygon_region(_square(30, 0, 10), (60, 60)),
    ]
    pred = [
        polygon_region(_square(1, 0, 10), (60, 60)),  # IoU 90/110 with truth 0
        polygon_region(
            _square(0, 1, 10), (60, 60)
        ),  # also overlaps truth 0 (90/110): loses the tie
        polygon_region(_square(36, 0, 10), (60, 60)),  # IoU 40/160 with truth 1: under 0.5
    ]
    assert match(pred, truth) == [(0, 0, 90 / 110)]
    assert match(pred, truth, threshold=0.2) == [(0, 0, 90 / 110), (2, 1, 40 / 160)]
    assert match([], truth) == [] and match(pred, []) == []
