"""Tests of the cell locator (cervix_hf.fields.locate, cervix_hf.fields.classical).

Fields are drawn here by hand (discs of cytoplasm with a nucleus, Beer-Lambert staining) so
the truth is known exactly, and with the synthetic generator (SYNTHETIC, not medical data).
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from cervix_hf.errors import LocatorError
from cervix_hf.fields import ClassicalLocator, LocatedCell, LocatorParams, create_locator, crop_box
from cervix_hf.fields.geometry import Region, iou, polygon_region

BG = np.array([228.0, 222.0, 232.0])
PINK = np.array([242.0, 165.0, 185.0])
CYAN = np.array([105.0, 170.0, 168.0])
NUCLEUS = np.array([70.0, 55.0, 110.0])


def _disc(size: tuple[int, int], cx: float, cy: float, r: float) -> np.ndarray:
    m = Image.new("L", size, 0)
    ImageDraw.Draw(m).ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
    return np.asarray(m, dtype=np.float32) / 255.0


def draw_field(
    size: tuple[int, int], cells: list[tuple[float, float, float, np.ndarray]], seed: int = 0
) -> tuple[Image.Image, list[np.ndarray]]:
    """Cells ``(cx, cy, radius, colour)``, nucleus at the centre (radius / 4); returns the
    image and each cell's disc mask (the truth)."""
    od = np.zeros((size[1], size[0], 3), np.float32)
    masks = []
    for cx, cy, r, colour in cells:
        cyt = _disc(size, cx, cy, r)
        nuc = _disc(size, cx, cy, r / 4)
        od += cyt[..., None] * 0.9 * np.log(colour / 255.0)
        od += nuc[..., None] * 1.1 * np.log(NUCLEUS / 255.0)
        masks.append(cyt > 0.5)
    rng = np.random.default_rng(seed)
    img = BG * np.exp(od) + rng.normal(0, 2.0, od.shape)
    return Image.fromarray(np.clip(np.rint(img), 0, 255).astype(np.uint8)), masks


def _best_iou(cells: list[LocatedCell], truth: np.ndarray) -> float:
    region = Region((0, 0, truth.shape[1], truth.shape[0]), truth)
    return max((iou(Region(c.box, c.cytoplasm), region) for c in cells), default=0.0)


def test_separate_and_touching_cells_are_found_one_each() -> None:
    cells = [(90, 90, 45, PINK), (172, 92, 42, CYAN), (300, 200, 50, PINK)]  # first two touch
    image, truth = draw_field((400, 300), cells)
    found = ClassicalLocator().locate(image)
    assert len(found) == 3
    for mask in truth:
        assert _best_iou(found, mask) > 0.85
    for cell, (cx, cy, _, _) in zip(found, cells, strict=True):  # reading order
        nx, ny = cell.nucleus_centroid
        assert abs(nx - cx) < 2 and abs(ny - cy) < 2
        assert [c.id for c in found] == [1, 2, 3]


def test_overlapping_cells_of_one_colour_are_split_at_their_nuclei() -> None:
    cells = [(100, 100, 50, PINK), (175, 110, 50, PINK)]  # overlap by a quarter of a diameter
    image, truth = draw_field((300, 220), cells)
    found = ClassicalLocator().locate(image)
    assert len(found) == 2
    for mask in truth:
        assert _best_iou(found, mask) > 0.7


def test_empty_and_blank_fields_have_no_cells() -> None:
    image, _ = draw_field((500, 400), [])
    assert ClassicalLocator().locate(image) == []
    assert ClassicalLocator().locate(Image.new("RGB", (300, 200), (255, 255, 255))) == []
    assert ClassicalLocator().locate(Image.new("RGB", (300, 200), (0, 0, 0))) == []


@pytest.mark.parametrize("size", [(1, 1), (3, 3), (10, 10), (40, 6), (6, 300)])
def test_tiny_fields(size: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    cells = ClassicalLocator().locate(image)
    assert isinstance(cells, list)
    for c in cells:
        assert 0 <= c.box[0] < c.box[2] <= size[0] and 0 <= c.box[1] < c.box[3] <= size[1]


def test_a_single_cell_crop_given_as_a_field() -> None:
    from cervix_hf.synthetic.render import render_cell

    hits = 0
    for k, cell_type in enumerate(["Superficial-Intermediate", "Parabasal", "Koilocytotic"] * 2):
        rendered = render_cell(cell_type, np.random.default_rng([5, k]))
        truth = polygon_region(rendered.cyt_polygon, rendered.image.size)
        found = ClassicalLocator().locate(rendered.image)
        best = max((iou(Region(c.box, c.cytoplasm), truth) for c in found), default=0.0)
        hits += best >= 0.5
    assert hits >= 5  # the crop's own cell, found in (nearly) every crop


def test_field_over_the_pixel_limit_is_refused() -> None:
    image, _ = draw_field((200, 100), [(100, 50, 30, PINK)])
    with pytest.raises(LocatorError, match=r"200x100 = 20,000 pixels, over .* limit of 19,999"):
        ClassicalLocator(LocatorParams(max_field_pixels=19_999)).locate(image)


def test_huge_field_is_refused_before_any_work() -> None:
    huge = Image.new("RGB", (4100, 4000))  # 16.4 Mpx, over the default 8 Mpx
    with pytest.raises(LocatorError, match="4100x4000 = 16,400,000 pixels"):
        ClassicalLocator().locate(huge)


def test_not_an_image() -> None:
    with pytest.raises(LocatorError, match="takes a PIL image, not a ndarray"):
        ClassicalLocator().locate(np.zeros((10, 10, 3), np.uint8))  # type: ignore[arg-type]


def test_other_image_modes_are_converted() -> None:
    image, _ = draw_field((300, 200), [(150, 100, 45, PINK)])
    assert len(ClassicalLocator().locate(image.convert("L"))) == 1
    assert len(ClassicalLocator().locate(image.convert("RGBA"))) == 1


def test_max_cells_keeps_the_largest() -> None:
    cells = [(60, 60, 30, PINK), (200, 60, 45, PINK), (330, 60, 38, PINK)]
    image, _ = draw_field((400, 130), cells)
    found = ClassicalLocator(LocatorParams(max_cells=2)).locate(image)
    assert len(found) == 2
    assert sorted(round(c.centroid[0] / 10) for c in found) == [20, 33]


def test_located_cell_geometry_and_crop() -> None:
    image, _ = draw_field((300, 200), [(120, 90, 40, CYAN)])
    (cell,) = ClassicalLocator().locate(image)
    assert cell.area == int(cell.cytoplasm.sum()) and 0 < cell.nucleus_area < cell.area
    assert cell.crop.size == (
        cell.crop_box[2] - cell.crop_box[0],
        cell.crop_box[3] - cell.crop_box[1],
    )
    assert cell.crop.tobytes() == image.crop(cell.crop_box).tobytes()
    refilled = polygon_region(cell.cytoplasm_polygon(), image.size)
    assert iou(refilled, Region(cell.box, cell.cytoplasm)) > 0.97
    assert cell.nucleus_polygon() is not None and len(cell.cytoplasm_polygon()) > 20


def test_crop_box_convention_hand_computed() -> None:
    p = LocatorParams(crop_margin=0.1, min_crop_side=64)
    # 100 x 50 box: 10 px each side in x, 5 in y -> 120 x 60, then grown to 64 high
    assert crop_box((10, 20, 110, 70), (500, 500), p) == (0, 13, 120, 77)
    # clipped at the field's edge
    assert crop_box((450, 450, 500, 500), (500, 500), p) == (443, 443, 500, 500)
    assert crop_box((10, 20, 110, 70), (500, 500), p.replace(crop_margin=0.0, min_crop_side=1)) == (
        10,
        20,
        110,
        70,
    )


def test_create_locator_gives_the_classical_one() -> None:
    params = LocatorParams(cell_min_area=500)
    locator = create_locator(params)
    assert isinstance(locator, ClassicalLocator) and locator.params is params


def test_generated_field_with_touching_and_overlapping_cells() -> None:
    from cervix_hf.fields.geometry import match
    from cervix_hf.synthetic.fields import make_field

    field = make_field("Parabasal", np.random.default_rng([11, 1, 1]), size=(600, 450), n_cells=10)
    found = ClassicalLocator().locate(field.image)
    truth = [polygon_region(p, field.image.size) for p in field.cytoplasm]
    matched = match([Region(c.box, c.cytoplasm) for c in found], truth)
    assert len(matched) >= 0.7 * len(truth)
    assert len(matched) >= 0.7 * len(found)
