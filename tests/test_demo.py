"""The offline demo model: built once in a child process from generated cells, then cached."""

import json
import logging

from cervix_hf.demo import demo_model_dir, load_demo_model


def test_demo_model_is_built_once_then_cached(tmp_path, caplog):
    with caplog.at_level(logging.INFO):
        first = load_demo_model(tmp_path, backbone="test_resnet", per_type=12)
    assert "Building the offline demo model" in caplog.text
    cfg = json.loads((demo_model_dir(tmp_path) / "config.json").read_text())
    assert cfg["pretrained"] is False and cfg["synthetic_data"] is True
    assert first.cell_type_head is not None and first.novelty is not None
    caplog.clear()
    with caplog.at_level(logging.INFO):
        second = load_demo_model(tmp_path, backbone="test_resnet", per_type=12)
    assert "Building the offline demo model" not in caplog.text
    assert second.config.backbone_onnx == first.config.backbone_onnx
    card = (demo_model_dir(tmp_path) / "README.md").read_text()
    assert "RANDOMLY INITIALISED" in card and "SYNTHETIC" in card
    assert not list(tmp_path.glob("cervix-demo-*"))  # the staging folder is gone


def test_a_stale_cached_demo_model_is_rebuilt(tmp_path, caplog):
    load_demo_model(tmp_path, backbone="test_resnet", per_type=12)
    onnx = demo_model_dir(tmp_path) / "backbone.onnx"
    onnx.write_bytes(onnx.read_bytes()[:-10])  # damaged on disk
    with caplog.at_level(logging.WARNING):
        model = load_demo_model(tmp_path, backbone="test_resnet", per_type=12)
    assert "Rebuilding the cached demo model" in caplog.text
    assert model.predict_proba(_cell()).shape == (1, 2)


def _cell():
    import numpy as np

    from cervix_hf.synthetic import make_cell

    return make_cell("Parabasal", np.random.default_rng(0))
