"""scripts/train.py end to end on generated cells with the tiny backbone."""

import json
import logging

import numpy as np

from cervix_hf import CervixClassifier
from scripts import train as train_script


def test_metrics_are_sane_and_well_above_chance(trained_model_dir):
    m = json.loads((trained_model_dir / "metrics.json").read_text())
    test = m["test"]
    assert m["split_grouped"] is True
    assert test["n"] == m["test_size"] and m["train_size"] + m["test_size"] == 60
    cm = test["confusion_matrix"]
    assert cm["tn"] + cm["fp"] + cm["fn"] + cm["tp"] == test["n"]
    for key in ("accuracy", "precision", "recall", "sensitivity", "specificity", "f1", "roc_auc"):
        assert 0.0 <= test[key] <= 1.0
    # generated cells differ by type, so even a random-init tiny backbone separates them
    assert test["accuracy"] >= 0.75 and test["roc_auc"] >= 0.8
    assert m["test_cell_type"]["accuracy"] > 0.4  # five classes: chance is 0.2
    cfg = json.loads((trained_model_dir / "config.json").read_text())
    assert cfg["metrics"] == m


def test_retraining_reuses_cached_features(cells_dir, trained_model_dir, tmp_path, caplog):
    argv = [
        "--dataset",
        str(cells_dir),
        "--out",
        str(tmp_path / "m2"),
        "--backbone",
        "test_resnet",
        "--no-pretrained",
        "--no-progress",
        "--grouping",
        "seed",
    ]
    with caplog.at_level(logging.INFO):
        assert train_script.main(argv) == 0
    assert "Feature cache hit" in caplog.text
    cfg = json.loads((tmp_path / "m2" / "config.json").read_text())
    assert cfg["grouping"] == "seed" and cfg["cell_type_head"] is None


def test_saved_model_loads_with_the_same_predictions(trained_model_dir, cells_dir):
    import datasets

    ds = datasets.load_from_disk(str(cells_dir)).select(range(5))
    model = CervixClassifier.from_pretrained(trained_model_dir)
    a = model.predict_proba([r["image"] for r in ds])
    b = CervixClassifier.from_pretrained(trained_model_dir).predict_proba([r["image"] for r in ds])
    np.testing.assert_array_equal(a, b)


def test_push_to_hub_from_the_cli(hub, hub_repo_id, cells_dir, tmp_path, capsys):
    argv = [
        "--dataset",
        str(cells_dir),
        "--out",
        str(tmp_path / "m"),
        "--backbone",
        "test_resnet",
        "--no-pretrained",
        "--no-progress",
        "--push-to-hub",
        hub_repo_id,
    ]
    assert train_script.main(argv) == 0
    out = capsys.readouterr().out
    sha = out.strip().splitlines()[-1].split("@ ")[1]
    assert (
        CervixClassifier.from_pretrained(hub_repo_id, revision=sha).config.backbone == "test_resnet"
    )


def test_user_errors_exit_2_with_one_line(tmp_path, caplog):
    (tmp_path / "empty").mkdir()
    argv = ["--dataset", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "m")]
    (tmp_path / "nope.csv").write_text("x")
    with caplog.at_level(logging.ERROR):
        assert train_script.main(argv) == 2
    assert "is a file" in caplog.text
