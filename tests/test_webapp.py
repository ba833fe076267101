"""The Gradio app, driven as programs use it: gradio_client against a loopback server."""

import concurrent.futures
import csv
import zipfile

import numpy as np
import pytest
from PIL import Image

from cervix_hf.errors import ModelLoadError
from cervix_hf.webapp import check_revision


@pytest.fixture(scope="module")
def client(served):
    from gradio_client import Client

    return Client(served[0], verbose=False)


def test_predict_returns_the_documented_structure(client, served):
    from gradio_client import handle_file

    _, model, examples = served
    label, decision, heat, types, details = client.predict(
        handle_file(examples[3]), api_name="/predict"
    )
    assert {c["label"] for c in label["confidences"]} == {"Normal", "Abnormal"}
    assert label["label"] == details["label"] in ("Normal", "Abnormal")
    assert "Decision" in decision
    assert Image.open(heat).size == (160, 160)
    assert {c["label"] for c in types["confidences"]} == set(model.config.cell_types)
    expected = model.predict_proba([examples[3]])[0, 1]
    assert details["p_abnormal"] == pytest.approx(expected, rel=1e-4)
    assert isinstance(details["unusual"], bool) and details["novelty_score"] > 0
    assert details["threshold"] == model.config.decision_threshold
    assert "not a diagnostic device" in details["disclaimer"]


def test_bad_file_gives_a_readable_error(client, tmp_path):
    from gradio_client import handle_file

    bad = tmp_path / "notes.png"
    bad.write_text("this is not an image")
    with pytest.raises(Exception, match="not an image"):
        client.predict(handle_file(str(bad)), api_name="/predict")


def test_batch_table_csv_and_per_file_errors(client, served, tmp_path):
    from gradio_client import handle_file

    _, model, examples = served
    zpath = tmp_path / "cells.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.write(examples[0], "a/first.png")
        zf.writestr("broken.png", b"\x89PNG truncated")
    empty = tmp_path / "empty.bmp"
    empty.write_bytes(b"")
    table, csv_file = client.predict(
        [handle_file(examples[1]), handle_file(str(zpath)), handle_file(str(empty))],
        api_name="/predict_batch",
    )
    rows = table["data"]
    assert table["headers"] == ["file", "p_abnormal", "decision", "unusual", "error"]
    by_name = {r[0]: r for r in rows}
    assert set(by_name) == {
        "synthetic_Parabasal.png",
        "cells.zip/a/first.png",
        "cells.zip/broken.png",
        "empty.bmp",
    }
    good = by_name["cells.zip/a/first.png"]
    assert good[1] == pytest.approx(model.predict_proba([examples[0]])[0, 1], rel=1e-4)
    assert good[4] == ""
    assert "empty" in by_name["empty.bmp"][4] and by_name["empty.bmp"][1] is None
    assert by_name["cells.zip/broken.png"][4]
    with open(csv_file, newline="") as fh:
        csv_rows = list(csv.reader(fh))
    assert csv_rows[0] == table["headers"] and len(csv_rows) == len(rows) + 1


def test_unusual_images_are_flagged_through_the_api(client, tmp_path):
    from gradio_client import handle_file

    noise = tmp_path / "noise.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)).save(noise)
    _, decision, _, _, details = client.predict(handle_file(str(noise)), api_name="/predict")
    assert details["unusual"] is True and "Unusual image" in decision


def test_concurrent_callers(served):
    from gradio_client import Client, handle_file

    url, _, examples = served

    def caller(i):
        c = Client(url, verbose=False)
        out = []
        for j in range(25):
            *_, details = c.predict(handle_file(examples[(i + j) % 5]), api_name="/predict")
            out.append(details)
        return out

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = [d for r in pool.map(caller, range(8)) for d in r]
    assert len(results) == 200
    assert all(
        0.0 <= d["p_abnormal"] <= 1.0 and d["label"] in ("Normal", "Abnormal") for d in results
    )


def test_revision_must_be_a_full_sha():
    assert check_revision(None) is None
    assert check_revision("a" * 40) == "a" * 40
    for bad in ("main", "abc123", "A" * 40):
        with pytest.raises(ModelLoadError, match="40-character"):
            check_revision(bad)
