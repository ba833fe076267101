"""Tests of whole-field analysis (cervix_hf.fields.analyze) on generated fields (SYNTHETIC)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from collections.abc import Sequence

import numpy as np
import pytest
from PIL import Image

from cervix_hf.analysis import CellAnalysis
from cervix_hf.errors import CervixError, ImageLoadError, LocatorError
from cervix_hf.fields import ClassicalLocator, LocatorParams
from cervix_hf.fields.analyze import (
    CSV_HEADERS,
    analyze_field,
    count_cells,
    looks_like_field,
    risk_colour,
)
from cervix_hf.synthetic import make_cell, make_field


class DarknessModel:
    """A stand-in with the model's interface: P(Abnormal) = how dark the crop is (a rule we
    can compute by hand), threshold 0.5; counts its calls."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def analyze(self, images: Sequence[Image.Image]) -> list[CellAnalysis]:
        self.calls.append(len(images))
        out = []
        for im in images:
            p = 1.0 - float(np.asarray(im.convert("L"), dtype=np.float32).mean()) / 255.0
            out.append(
                CellAnalysis(
                    probabilities={"Normal": 1 - p, "Abnormal": p},
                    p_positive=p,
                    decision="Abnormal" if p >= 0.5 else "Normal",
                    threshold=0.5,
                    cell_types={"Parabasal": 0.7, "Koilocytotic": 0.3},
                    novelty_score=0.5,
                    unusual=False,
                    contributions=None,
                    intercept=None,
                    view=im,
                )
            )
        return out


@pytest.fixture(scope="module")
def field_image() -> Image.Image:
    return make_field(["Parabasal", "Dyskeratotic"], np.random.default_rng(4), (600, 450)).image


def test_one_batched_call_cells_by_risk_and_summary(field_image: Image.Image) -> None:
    model = DarknessModel()
    result = analyze_field(model, field_image)
    located = ClassicalLocator().locate(field_image)
    assert model.calls == [len(located)] and len(located) >= 4
    p = [c.p_abnormal for c in result.cells]
    assert p == sorted(p, reverse=True)
    for c in result.cells:  # each answer belongs to its own crop
        crop = np.asarray(c.located.crop.convert("L"), dtype=np.float32)
        assert c.p_abnormal == pytest.approx(1 - crop.mean() / 255, abs=1e-6)
    s = result.summary()
    assert s["cells_found"] == len(located)
    assert s["cells_flagged"] == sum(x >= 0.5 for x in p) == result.n_flagged
    assert [h["id"] for h in s["highest_risk"]] == [c.id for c in result.cells[:3]]
    assert s["threshold"] == 0.5 and s["truncated"] is False
    assert s["locator_seconds"] > 0 and s["classify_seconds"] >= 0


def test_json_csv_and_overlay(field_image: Image.Image) -> None:
    result = analyze_field(DarknessModel(), field_image)
    data = json.loads(json.dumps(result.to_json()))
    assert data["field"] == {"width": 600, "height": 450}
    assert data["locator"] == LocatorParams().to_dict()
    first = data["cells"][0]
    assert first["id"] == result.cells[0].id and first["cell_type"] == "Parabasal"
    assert len(first["outline"]) > 10 and len(first["box"]) == 4
    rows = list(csv.reader(io.StringIO(result.to_csv())))
    assert tuple(rows[0]) == CSV_HEADERS and len(rows) == len(result.cells) + 1
    assert [int(r[0]) for r in rows[1:]] == [c.id for c in result.cells]
    picture = result.overlay()
    assert picture.size == field_image.size and picture.mode == "RGB"
    # the riskiest cell's outline is drawn in its colour
    top = result.cells[0]
    colour = np.array(risk_colour(top.p_abnormal))
    x0, y0, x1, y1 = top.box
    patch = np.asarray(picture)[y0:y1, x0:x1].reshape(-1, 3)
    assert (np.abs(patch.astype(int) - colour).sum(axis=1) == 0).sum() > 20


def test_risk_colour_ramp() -> None:
    assert risk_colour(0.0) == (0, 114, 178)
    assert risk_colour(0.5) == (230, 159, 0)
    assert risk_colour(1.0) == (213, 0, 0)
    assert risk_colour(2.0) == risk_colour(1.0) and risk_colour(float("nan")) == risk_colour(0)


def test_empty_field_and_upload_limits(tmp_path) -> None:
    blank = Image.new("RGB", (400, 300), (230, 225, 235))
    result = analyze_field(DarknessModel(), blank)
    assert result.cells == () and result.threshold is None
    assert result.summary()["cells_found"] == 0 and result.to_csv().count("\n") == 1
    with pytest.raises(ImageLoadError, match="not an image"):
        analyze_field(DarknessModel(), b"definitely not an image")
    with pytest.raises(ImageLoadError, match="over the limit"):
        analyze_field(DarknessModel(), blank, max_pixels=100_000)
    with pytest.raises(LocatorError, match="over the locator's limit"):
        analyze_field(
            DarknessModel(), blank, ClassicalLocator(LocatorParams(max_field_pixels=1000))
        )
    path = tmp_path / "field.png"
    blank.save(path)
    assert analyze_field(DarknessModel(), str(path)).cells == ()


def test_a_model_that_answers_for_the_wrong_number_of_crops(field_image: Image.Image) -> None:
    class Broken(DarknessModel):
        def analyze(self, images):
            return super().analyze(images)[:-1]

    with pytest.raises(CervixError, match="answers for"):
        analyze_field(Broken(), field_image)


def test_truncated_at_max_cells(field_image: Image.Image) -> None:
    locator = ClassicalLocator(LocatorParams(max_cells=2))
    result = analyze_field(DarknessModel(), field_image, locator)
    assert len(result.cells) == 2 and result.summary()["truncated"] is True


def test_field_hint_counts_whole_cells() -> None:
    field = make_field("Parabasal", np.random.default_rng(8), (1000, 800))
    assert count_cells(field.image) >= 8 and looks_like_field(field.image)
    rng = np.random.default_rng(1)
    single = [looks_like_field(make_cell("Superficial-Intermediate", rng)) for _ in range(10)]
    assert sum(single) <= 1
    assert not looks_like_field(Image.new("RGB", (300, 300), "white"))


def test_the_field_analysis_imports_no_torch() -> None:
    code = (
        "import sys, cervix_hf.fields, cervix_hf.fields.analyze, cervix_hf.fields.classical;"
        "bad = [m for m in ('torch', 'timm', 'sklearn', 'gradio') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_with_the_trained_model(trained_model_dir, field_image: Image.Image) -> None:
    from cervix_hf import CervixClassifier

    model = CervixClassifier.from_pretrained(trained_model_dir)
    result = analyze_field(model, field_image)
    assert result.cells
    direct = model.analyze([c.located.crop for c in result.cells])
    for c, d in zip(result.cells, direct, strict=True):
        assert c.p_abnormal == pytest.approx(d.p_positive, abs=1e-5)
        assert c.decision == d.decision and c.cell_type in model.config.cell_types
    assert result.threshold == model.config.decision_threshold
