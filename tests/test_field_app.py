"""Whole fields in the app: /analyze_field, the Field tab, the /predict hint, fields in a batch."""

import csv

import numpy as np
import pytest
from PIL import Image

from cervix_hf.webapp.field import FIELD_HINT_MIN_SIDE


@pytest.fixture(scope="module")
def field_path(tmp_path_factory):
    from cervix_hf.synthetic import make_field

    field = make_field(
        ["Koilocytotic", "Parabasal"], np.random.default_rng(3), size=(900, 700), n_cells=6
    )
    path = tmp_path_factory.mktemp("field") / "field.png"
    field.image.save(path)
    return str(path)


@pytest.fixture(scope="module")
def client(served):
    from gradio_client import Client

    return Client(served[0], verbose=False)


def test_analyze_field_lists_every_located_cell_by_risk(client, served, field_path):
    from gradio_client import handle_file

    from cervix_hf.fields import analyze_field, create_locator

    _, model, _ = served
    answer = client.predict(handle_file(field_path), api_name="/analyze_field")
    local = analyze_field(model, field_path, create_locator(model.config.locator))
    assert answer["summary"]["cells_found"] == len(local.cells) >= 2
    ps = [c["p_abnormal"] for c in answer["cells"]]
    assert ps == sorted(ps, reverse=True)
    assert ps == pytest.approx([round(c.p_abnormal, 6) for c in local.cells], abs=1e-5)
    flagged = sum(p >= model.config.decision_threshold for p in ps)
    assert answer["summary"]["cells_flagged"] == flagged
    assert {"caveat", "disclaimer", "model", "field", "locator"} <= set(answer)
    assert "not a diagnostic device" in answer["disclaimer"]


def test_the_field_tab_draws_tabulates_and_writes_a_csv(served, field_path):
    from cervix_hf.webapp import AppFiles, field_page
    from cervix_hf.webapp.field import create_locator

    _, model, _ = served
    files = AppFiles(prune_every=0)
    try:
        page = field_page(model, create_locator(model), field_path, files)
        assert Image.open(page.overlay).size == Image.open(field_path).size
        assert "cells found" in page.summary and "tuned on generated fields" in page.summary
        with open(page.csv_path, newline="") as fh:
            rows = list(csv.reader(fh))
        assert len(rows) == len(page.rows) + 1 == page.details["summary"]["cells_found"] + 1
    finally:
        files.close()


def test_predict_says_when_an_image_holds_several_cells(client, served, field_path, tmp_path):
    from gradio_client import handle_file

    hinted = client.predict(handle_file(field_path), api_name="/predict")
    assert hinted["field_hint"]["cells_found"] >= 2
    assert "/analyze_field" in hinted["field_hint"]["message"]
    _, _, examples = served
    single = client.predict(handle_file(examples[2]), api_name="/predict")
    assert single["field_hint"] is None  # a single-cell crop is not even checked
    assert max(Image.open(examples[2]).size) < FIELD_HINT_MIN_SIDE


def test_a_batch_gives_each_cell_of_a_field_its_row(served, field_path):
    from cervix_hf.webapp import AppFiles, predict_batch

    _, model, examples = served
    files = AppFiles(prune_every=0)
    try:
        rows = predict_batch(model, [examples[0], field_path], files).rows
    finally:
        files.close()
    assert rows[0][0] == "synthetic_Superficial-Intermediate.png"
    cell_rows = [r for r in rows if r[0].startswith("field.png#")]
    assert len(cell_rows) >= 2 and len(rows) == 1 + len(cell_rows)
    assert all(r[4] == "" and 0 <= r[1] <= 1 for r in cell_rows)


def test_a_field_the_locator_refuses_is_one_clear_row(served, field_path, tmp_path):
    from cervix_hf.webapp import AppFiles, predict_batch

    _, model, _ = served
    big = tmp_path / "huge.png"  # the field blown up to ~18 Mpx: over the locator's 8 Mpx
    Image.open(field_path).resize((4800, 3733), Image.Resampling.NEAREST).save(big)
    files = AppFiles(prune_every=0)
    try:
        (row,) = predict_batch(model, [str(big)], files).rows
    finally:
        files.close()
    assert row[0] == "huge.png" and row[1] is None and "pixels" in row[4]
