"""Tests of the locator evaluation (cervix_hf.fields.evaluate) against locators whose answer
is known: the truth itself, nothing, the truth plus a stray region."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cervix_hf.errors import LabelError
from cervix_hf.fields import LocatedCell, LocatorParams, crop_box
from cervix_hf.fields.evaluate import evaluate_locator
from cervix_hf.fields.geometry import polygon_region
from cervix_hf.sipakmed import CellOutline, FieldRecord
from tests.test_fields_analyze import DarknessModel

SQUARE = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])


def _record() -> FieldRecord:
    """A 300x200 field: two dark squares (Koilocytotic) and one light one (Parabasal)."""
    arr = np.full((200, 300, 3), 230, np.uint8)
    arr[20:80, 20:80] = 60
    arr[100:160, 200:260] = 70
    arr[120:170, 40:90] = 200
    cells = (
        CellOutline(1, "Koilocytotic", 20 + 60 * SQUARE, 40 + 10 * SQUARE),
        CellOutline(2, "Koilocytotic", [200, 100] + 60 * SQUARE, None),
        CellOutline(3, "Parabasal", [40, 120] + 50 * SQUARE, [60, 140] + 10 * SQUARE),
    )
    return FieldRecord("Koilocytotic/001", "Koilocytotic", Image.fromarray(arr), cells)


class TruthLocator:
    """Returns the annotated cells themselves, plus ``extra`` stray boxes."""

    def __init__(self, record: FieldRecord, extra: int = 0, nuclei: bool = True) -> None:
        self.params = LocatorParams(min_crop_side=1)
        self.record, self.extra, self.nuclei = record, extra, nuclei

    def locate(self, image: Image.Image) -> list[LocatedCell]:
        out = []
        for k, c in enumerate(self.record.cells, start=1):
            r = polygon_region(c.cytoplasm, image.size)
            nuc = np.zeros_like(r.mask)
            if self.nuclei and c.nucleus is not None:
                n = polygon_region(c.nucleus, image.size)
                nuc[
                    n.box[1] - r.box[1] : n.box[3] - r.box[1],
                    n.box[0] - r.box[0] : n.box[2] - r.box[0],
                ] = n.mask
            out.append(self._cell(k, r.box, r.mask, nuc, image))
        for k in range(self.extra):
            box = (250 + 5 * k, 10, 290, 40)
            mask = np.ones((box[3] - box[1], box[2] - box[0]), bool)
            out.append(self._cell(10 + k, box, mask, np.zeros_like(mask), image))
        return out

    def _cell(self, k, box, mask, nuc, image) -> LocatedCell:
        ys, xs = np.nonzero(mask)  # the tight box, as a locator reports it
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        box = (box[0] + int(x0), box[1] + int(y0), box[0] + int(x1), box[1] + int(y1))
        mask, nuc = mask[y0:y1, x0:x1], nuc[y0:y1, x0:x1]
        cb = crop_box(box, image.size, self.params)
        return LocatedCell(k, box, mask, nuc, cb, image.crop(cb))


class NothingLocator(TruthLocator):
    def locate(self, image: Image.Image) -> list[LocatedCell]:
        return []


def test_a_perfect_locator_scores_one() -> None:
    record = _record()
    report = evaluate_locator([record], TruthLocator(record))
    t = report.total
    assert (t.cells, t.found, t.false, t.nuclei, t.nuclei_hit) == (3, 3, 0, 2, 2)
    assert t.precision == t.recall == t.f1 == t.nucleus_hit_rate == 1.0
    assert t.mean_iou == 1.0
    assert report.per_type["Koilocytotic"].cells == 2 and report.per_type["Parabasal"].cells == 1
    assert report.end_to_end is None and report.fields == 1
    assert "| all | 3 | 3 | 0 | 1.000 | 1.000 | 1.000 | 1.000 | 1.000 |" in report.table()


def test_nothing_found_and_stray_regions() -> None:
    record = _record()
    nothing = evaluate_locator([record], NothingLocator(record)).total
    assert (nothing.found, nothing.recall, nothing.precision) == (0, 0.0, None)
    assert nothing.nucleus_hit_rate == 0.0
    stray = evaluate_locator([record], TruthLocator(record, extra=2, nuclei=False))
    assert stray.total.false == 2 and stray.total.precision == 3 / 5
    assert stray.per_type["Koilocytotic"].false == 2  # no overlap: the field's type
    assert stray.total.nuclei_hit == 0


def test_end_to_end_with_a_rule_we_can_check() -> None:
    record = _record()
    model = DarknessModel()  # dark crop -> flagged: the two Koilocytotic squares
    report = evaluate_locator([record], TruthLocator(record, extra=1), model)
    e = report.end_to_end
    assert model.calls == [4 + 3]  # located crops and reference crops, one batch per field
    assert e.compared == 3 and e.agreement == 1.0  # same boxes, same crops
    assert (e.located.tp, e.located.fn, e.located.tn, e.located.fp) == (2, 0, 1, 0)
    assert e.reference.to_dict() == e.located.to_dict()
    assert e.every_cell.sensitivity == 1.0 and e.every_cell.specificity == 1.0
    assert e.false_regions_flagged == 0  # the stray box is light background
    missed = evaluate_locator([record], NothingLocator(record), DarknessModel()).end_to_end
    assert missed.compared == 0 and missed.every_cell.sensitivity == 0.0
    assert missed.every_cell.specificity == 1.0
    assert "End to end (clinical grouping" in report.table()
    assert report.to_dict()["end_to_end"]["agreement"] == 1.0
    with pytest.raises(LabelError):
        evaluate_locator([record], TruthLocator(record), model, grouping="given")
