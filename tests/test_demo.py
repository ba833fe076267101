"""The offline demo model: trained once from generated cells, then loaded from the cache."""

import json
import logging

from cervix_hf.demo import demo_model_dir, load_demo_model


def test_demo_model_is_trained_once_then_cached(tmp_path, caplog):
    with caplog.at_level(logging.INFO):
        first = load_demo_model(tmp_path, backbone="test_resnet", per_type=12)
    assert "Training the offline demo model" in caplog.text
    cfg = json.loads((demo_model_dir(tmp_path) / "config.json").read_text())
    assert cfg["pretrained"] is False and cfg["synthetic_data"] is True
    assert first.cell_type_head is not None and first.novelty is not None
    caplog.clear()
    with caplog.at_level(logging.INFO):
        second = load_demo_model(tmp_path, backbone="test_resnet", per_type=12)
    assert "Training the offline demo model" not in caplog.text
    assert second.config.weights_sha256 == first.config.weights_sha256
    card = (demo_model_dir(tmp_path) / "README.md").read_text()
    assert "RANDOMLY INITIALISED" in card and "SYNTHETIC" in card


def test_a_stale_cached_demo_model_is_rebuilt(tmp_path, caplog):
    load_demo_model(tmp_path, backbone="test_resnet", per_type=12)
    path = demo_model_dir(tmp_path) / "config.json"
    cfg = json.loads(path.read_text())
    cfg["weights_sha256"] = "0" * 64  # as if a library upgrade changed the random backbone
    path.write_text(json.dumps(cfg))
    with caplog.at_level(logging.WARNING):
        model = load_demo_model(tmp_path, backbone="test_resnet", per_type=12)
    assert "Rebuilding the cached demo model" in caplog.text
    assert model.config.weights_sha256 != "0" * 64
