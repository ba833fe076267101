"""The model process behind app.py: same answers as in-process, clear errors, clean stops."""

import numpy as np
import pytest
from PIL import Image

from cervix_hf.errors import ModelLoadError
from cervix_hf.serving import check_revision, start_model_process


@pytest.fixture(scope="module")
def remote(trained_model_dir):
    pending = start_model_process(str(trained_model_dir), None)
    model, info = pending.wait()
    yield model, info
    model.close()


def test_answers_like_the_model_in_process(remote, served):
    from cervix_hf.modeling import CervixClassifier

    model, info = remote
    local = CervixClassifier.from_pretrained(served[1].source["path"])
    examples = [Image.open(p).convert("RGB") for p in served[2][:3]]
    got, want = model.analyze(examples), local.analyze(examples)
    assert [r.decision for r in got] == [r.decision for r in want]
    for g, w in zip(got, want, strict=True):
        assert g.probabilities == pytest.approx(w.probabilities, rel=1e-5)
        np.testing.assert_allclose(g.contributions, w.contributions, rtol=1e-4, atol=1e-6)
        assert g.cell_types == pytest.approx(w.cell_types, rel=1e-5)
        assert g.unusual == w.unusual and g.view.size == w.view.size
    assert model.config == local.config and model.source == local.source
    assert (model.has_cell_types, model.logit_name) == (local.has_cell_types, local.logit_name)
    assert not info.demo and info.source == served[1].source["path"]


def test_the_page_runs_on_the_model_process(remote, served):
    from cervix_hf.webapp import HeatmapFiles, predict_one

    model, _ = remote
    label, decision, heat, types, details = predict_one(model, served[2][0], HeatmapFiles())
    local = served[1].analyze([served[2][0]])[0]
    assert label == pytest.approx(local.probabilities, rel=1e-5)
    assert local.cell_types and types == pytest.approx(local.cell_types, rel=1e-5)
    assert "Decision" in decision and Image.open(heat).size == local.view.size
    assert details["heatmap"]["of"] == "logit"


def test_a_model_that_cannot_load_stops_with_its_reason(tmp_path):
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    pending = start_model_process(str(empty), None)
    with pytest.raises(ModelLoadError, match=r"config\.json"):
        pending.wait()
    assert not pending._process.is_alive()


def test_bad_revision_fails_before_any_process_starts():
    with pytest.raises(ModelLoadError, match="40-character"):
        start_model_process("tester/model", "main")
    assert check_revision("b" * 40) == "b" * 40


def test_a_stopped_model_process_gives_a_clear_error(trained_model_dir):
    model, _ = start_model_process(str(trained_model_dir), None).wait()
    model._process.terminate()
    model._process.join(10)
    with pytest.raises(ModelLoadError, match="model process stopped"):
        model.analyze([Image.new("RGB", (64, 64), (200, 120, 160))])
    model.close()
