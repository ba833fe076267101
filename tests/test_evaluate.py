"""scripts/evaluate.py and train.py --cv end to end on generated cells with the tiny backbone."""

import json
import logging
import shutil

import numpy as np
import pytest
from PIL import Image

from cervix_hf import CervixClassifier
from cervix_hf.errors import EvaluationError, LabelError
from cervix_hf.plots import PLOT_FILES
from scripts import evaluate as evaluate_script
from scripts import train as train_script
from tests.test_card import SECTIONS, check_card

TARGET = 0.95


@pytest.fixture(scope="module")
def evaluated(trained_model_dir, cells_dir, hub, tmp_path_factory):
    """A copy of the trained model, evaluated in place with --protocol seed and pushed."""
    model_dir = tmp_path_factory.mktemp("evaluated") / "model"
    shutil.copytree(trained_model_dir, model_dir)
    repo_id = "tester/evaluated-model"
    argv = [
        "--dataset",
        str(cells_dir),
        "--model",
        str(model_dir),
        "--folds",
        "3",
        "--protocol",
        "seed",
        "--c-selection",
        "fixed",
        "--target-sensitivity",
        str(TARGET),
        "--bootstrap",
        "300",
        "--no-progress",
        "--push-to-hub",
        repo_id,
    ]
    assert evaluate_script.main(argv) == 0
    return model_dir, repo_id


def test_evaluate_writes_cv_threshold_and_plots_into_the_model_directory(evaluated):
    model_dir, _ = evaluated
    metrics = json.loads((model_dir / "metrics.json").read_text())
    config = json.loads((model_dir / "config.json").read_text())
    assert config["metrics"] == metrics  # one truth in both files
    cv = metrics["cv"]
    assert cv["grouped"] and cv["n_splits"] == 3 and cv["n"] == 60 and cv["c_selection"] == "fixed"
    assert cv["ci"]["unit"] == "groups" and cv["ci"]["n_resamples"] == 300
    op = cv["operating_point"]
    assert config["decision_threshold"] == op["threshold"]
    assert op["target_sensitivity"] == TARGET and op["metrics"]["sensitivity"] >= TARGET
    for key in ("accuracy", "sensitivity", "specificity", "roc_auc", "brier", "ece"):
        low, high = cv["ci"]["pooled"][key]
        assert low <= cv["pooled"][key] <= high
    assert metrics["protocol_seed"]["grouping"] == "seed"
    assert metrics["protocol_seed"]["split"]["test_cells_with_cluster_in_train"] > 0
    assert "test" in metrics  # the held-out section stays
    for name in PLOT_FILES.values():
        with Image.open(model_dir / name) as im:
            assert im.format == "PNG" and im.width >= 300


def test_card_after_evaluation_shows_everything(evaluated):
    model_dir, _ = evaluated
    text = (model_dir / "README.md").read_text()
    metrics = json.loads((model_dir / "metrics.json").read_text())
    check_card(text, metrics)  # model-index numbers equal metrics.json
    for title in SECTIONS:
        assert f"\n{title}\n" in text
    body = text.split("---", 2)[2].strip().splitlines()
    assert "RANDOMLY INITIALISED" in "\n".join(body[:4]) and "SYNTHETIC" in "\n".join(body[:6])
    # the seed protocol and the grouped CV ran on the same data and both land in the card
    assert "original project's protocol (leaky)" in text
    assert "### Grouped cross-validation (the headline numbers)" in text
    for name in PLOT_FILES.values():
        assert f"]({name})" in text


def test_pushed_repo_holds_the_plots_and_the_card(evaluated, hub):
    model_dir, repo_id = evaluated
    files = hub.files(repo_id)
    assert set(PLOT_FILES.values()) <= set(files)
    assert files["README.md"].decode() == (model_dir / "README.md").read_text()
    assert f'from_pretrained("{repo_id}")' in files["README.md"].decode()


def test_predict_uses_the_operating_point(evaluated, raw_cells):
    model_dir, _ = evaluated
    model = CervixClassifier.from_pretrained(model_dir)
    paths = sorted(str(p) for p in raw_cells[0].rglob("CROPPED/*.bmp"))[::9]
    p = model.predict_proba(paths)[:, 1]
    t = model.config.decision_threshold
    assert t == model.config.metrics["cv"]["operating_point"]["threshold"]
    assert model.predict(paths) == ["Abnormal" if pi >= t else "Normal" for pi in p]


def test_train_cv_calibrated_in_one_command_and_pushed(
    cells_dir, hub, hub_repo_id, tmp_path, capsys
):
    out = tmp_path / "m"
    argv = [
        "--dataset",
        str(cells_dir),
        "--out",
        str(out),
        "--backbone",
        "test_resnet",
        "--no-pretrained",
        "--no-progress",
        "--cv",
        "2",
        "--calibrate",
        "--push-to-hub",
        hub_repo_id,
    ]
    assert train_script.main(argv) == 0
    sha = capsys.readouterr().out.strip().splitlines()[-1].split("@ ")[1]
    metrics = json.loads((out / "metrics.json").read_text())
    cv = metrics["cv"]
    assert cv["c_selection"] == "nested" and cv["calibration"] == "sigmoid"
    assert cv["operating_point"]["metrics"]["sensitivity"] >= 0.99
    config = json.loads((out / "config.json").read_text())
    assert config["head_params"]["calibration"]["method"] == "sigmoid"
    assert config["decision_threshold"] == cv["operating_point"]["threshold"]
    files = hub.files(hub_repo_id, revision=sha)
    assert set(PLOT_FILES.values()) <= set(files)
    model = CervixClassifier.from_pretrained(hub_repo_id, revision=sha)
    assert type(model.head).__name__ == "CalibratedClassifierCV"  # via the trusted list
    assert model.config.decision_threshold == cv["operating_point"]["threshold"]
    text = files["README.md"].decode()
    check_card(text, metrics)
    assert 'CalibratedClassifierCV(method="sigmoid")' in text


def test_user_errors(trained_model_dir, caplog):
    from cervix_hf.evaluation import EvalOptions, evaluate_model

    with pytest.raises(SystemExit) as exc:
        evaluate_script.main(["--dataset", "x", "--model", "y", "--target-sensitivity", "0"])
    assert exc.value.code == 2
    with caplog.at_level(logging.ERROR):
        assert evaluate_script.main(["--dataset", "x", "--model", str(trained_model_dir)]) == 2
    assert "dataset 'x'" in caplog.text.lower()
    model = CervixClassifier.from_pretrained(trained_model_dir)
    x = np.zeros((8, 3))
    y = np.array([0, 1] * 4)
    with pytest.raises(EvaluationError, match="training rows"):
        evaluate_model(model, x, y, None, opts=EvalOptions(calibrate="sigmoid"))
    with pytest.raises(LabelError, match="cell types"):
        evaluate_model(model, x, y, None, opts=EvalOptions(protocol="seed"))
    with pytest.raises(EvaluationError, match="protocol"):
        evaluate_model(model, x, y, None, opts=EvalOptions(protocol="leaky"))
