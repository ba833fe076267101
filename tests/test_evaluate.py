"""scripts/evaluate.py and train.py --cv end to end on generated cells with the tiny backbone."""

import hashlib
import json
import logging
import shutil

import numpy as np
import pytest
from PIL import Image

from cervix_hf import CervixClassifier
from cervix_hf.errors import EvaluationError, LabelError
from cervix_hf.evaluation.serialise import report_from_metrics
from cervix_hf.plots import PLOT_FILES
from scripts import evaluate as evaluate_script
from scripts import train as train_script
from tests.test_card import SECTIONS, check_card, section

TARGET = 0.95


def evaluate(model_dir, dataset, *extra):
    argv = ["--dataset", str(dataset), "--model", str(model_dir), "--folds", "3"]
    argv += ["--bootstrap", "200", "--no-progress", *extra]
    assert evaluate_script.main(argv) == 0


@pytest.fixture(scope="module")
def evaluated(trained_model_dir, cells_dir, hub, tmp_path_factory):
    """A copy of the trained model, evaluated in place with --protocol seed and pushed."""
    model_dir = tmp_path_factory.mktemp("evaluated") / "model"
    shutil.copytree(trained_model_dir, model_dir)
    repo_id = "tester/evaluated-model"
    evaluate(
        model_dir,
        cells_dir,
        "--protocol",
        "seed",
        "--c-selection",
        "fixed",
        "--target-sensitivity",
        str(TARGET),
        "--prevalence",
        "0.1",
        "--repeats",
        "2",
        "--push-to-hub",
        repo_id,
    )
    return model_dir, repo_id


def snapshot(folder):
    """Path -> sha256 of every file under a folder."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_evaluate_writes_threshold_report_and_plots_into_the_model_directory(evaluated):
    model_dir, _ = evaluated
    metrics = json.loads((model_dir / "metrics.json").read_text())
    config = json.loads((model_dir / "config.json").read_text())
    assert config["metrics"] == metrics  # one truth in both files
    report = report_from_metrics(metrics)
    op = report.operating_point
    assert config["decision_threshold"] == op.threshold
    assert op.target_sensitivity == TARGET and op.oof_sensitivity >= TARGET
    assert op.n == metrics["train_size"]  # chosen on the training rows only
    held = report.held_out.performance.at_threshold
    assert held.threshold == op.threshold and held.n == metrics["test_size"]
    assert metrics["test"]["threshold"] == op.threshold  # the held-out figures too
    assert metrics["test"]["sensitivity"] == held.sensitivity.value
    nested = report.nested
    assert nested.n_splits == 3 and nested.repeats == 2 and nested.c_selection == "fixed"
    assert report.prevalence == 0.1 and held.ppv_at_prevalence is not None
    assert report.seed_protocol.n == metrics["train_size"] + metrics["test_size"]
    assert report.seed_protocol.split_seeds == 20
    for name in PLOT_FILES.values():
        with Image.open(model_dir / name) as im:
            assert im.format == "PNG" and im.width >= 300


def test_card_after_evaluation_shows_everything(evaluated):
    model_dir, _ = evaluated
    text = (model_dir / "README.md").read_text()
    metrics = json.loads((model_dir / "metrics.json").read_text())
    config = json.loads((model_dir / "config.json").read_text())
    check_card(text, metrics, config["decision_threshold"])
    for title in SECTIONS:
        assert f"\n{title}\n" in text
    body = text.split("---", 2)[2].strip().splitlines()
    assert "RANDOMLY INITIALISED" in "\n".join(body[:4]) and "SYNTHETIC" in "\n".join(body[:6])
    assert "**Which number is which:**" in text
    assert "re-run with `scripts/evaluate.py` on the training data itself" in text
    assert "### Per cell type" in text and "### Protocol comparison" in text
    assert "Over the 2 repeats" in text
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
    p = model.predict_proba(paths)[:, model.config.positive_index]
    t = model.config.decision_threshold
    assert t == report_from_metrics(model.config.metrics).operating_point.threshold
    assert model.predict(paths) == ["Abnormal" if pi >= t else "Normal" for pi in p]


@pytest.fixture(scope="module")
def other_cells(cells_dir, tmp_path_factory):
    """Half of the generated cells, saved as another dataset (another fingerprint)."""
    import datasets

    out = tmp_path_factory.mktemp("other") / "cells"
    ds = datasets.load_from_disk(str(cells_dir))
    ds.select(range(0, len(ds), 2)).save_to_disk(str(out))
    return out


def test_external_validation_leaves_the_model_unchanged(evaluated, other_cells, tmp_path, hub):
    model_dir = tmp_path / "model"
    shutil.copytree(evaluated[0], model_dir)
    before = snapshot(model_dir)
    repo_id = evaluated[1]
    head_on_hub = hub.files(repo_id)["head.skops"]
    evaluate(model_dir, other_cells, "--push-to-hub", repo_id)
    after = snapshot(model_dir)
    added = sorted(set(after) - set(before))
    assert len(added) == 1 and added[0].startswith("external/cells-")
    changed = sorted(k for k in before if before[k] != after[k])
    assert changed == ["README.md"]  # the card gains the section; nothing else moves
    report = json.loads((model_dir / added[0]).read_text())
    config = json.loads((model_dir / "config.json").read_text())
    assert report["threshold"] == config["decision_threshold"]
    assert report["dataset"] == str(other_cells)
    text = (model_dir / "README.md").read_text()
    external = section(text, "### External validation")
    assert f"`{other_cells}`" in external
    meta_names = [
        line.strip()
        for line in text.split("---")[1].splitlines()
        if line.strip().startswith("name:")
    ]
    assert f"name: {other_cells}" in meta_names
    files = hub.files(repo_id)
    assert files[added[0]] == (model_dir / added[0]).read_bytes()
    assert files["README.md"].decode() == text and files["head.skops"] == head_on_hub


def test_the_training_data_can_be_scored_as_external_data(evaluated, cells_dir, tmp_path):
    model_dir = tmp_path / "model"
    shutil.copytree(evaluated[0], model_dir)
    before = snapshot(model_dir)
    evaluate(model_dir, cells_dir, "--external")
    after = snapshot(model_dir)
    assert next(k for k in after if k not in before).startswith("external/")
    assert [k for k in before if before[k] != after[k]] == ["README.md"]


def test_re_evaluating_on_the_training_data_marks_external_reports_stale(
    evaluated, other_cells, cells_dir, tmp_path
):
    model_dir = tmp_path / "model"
    shutil.copytree(evaluated[0], model_dir)
    evaluate(model_dir, other_cells)
    evaluate(model_dir, cells_dir, "--target-sensitivity", "0.8")  # a new threshold
    text = (model_dir / "README.md").read_text()
    assert "Earlier external validations describe an earlier version" in text
    assert (model_dir / "external").is_dir()


@pytest.fixture(scope="module")
def more_cells(tmp_path_factory):
    """120 generated cells: enough cluster images to calibrate inside nested folds."""
    from cervix_hf.sipakmed import build_dataset
    from cervix_hf.synthetic import write_raw_sipakmed

    root = tmp_path_factory.mktemp("more")
    write_raw_sipakmed(root / "raw", per_type=24, seed=1)
    build_dataset(root / "raw").save_to_disk(str(root / "cells"))
    return root / "cells"


def test_train_cv_calibrated_in_one_command_and_pushed(
    more_cells, hub, hub_repo_id, tmp_path, capsys
):
    out = tmp_path / "m"
    argv = [
        "--dataset",
        str(more_cells),
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
    printed = capsys.readouterr().out
    sha = printed.strip().splitlines()[-1].split("@ ")[1]
    assert "published head, held-out split" in printed and "nested 2-fold" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    report = report_from_metrics(metrics)
    assert report.nested.c_selection == "nested" and report.nested.calibration == "sigmoid"
    assert report.operating_point.calibration == "sigmoid"
    assert report.origin == "scripts/train.py --cv"
    config = json.loads((out / "config.json").read_text())
    assert config["head_params"]["calibration"]["method"] == "sigmoid"
    assert config["decision_threshold"] == report.operating_point.threshold
    files = hub.files(hub_repo_id, revision=sha)
    assert set(PLOT_FILES.values()) <= set(files)
    model = CervixClassifier.from_pretrained(hub_repo_id, revision=sha)
    assert type(model.head).__name__ == "CalibratedClassifierCV"  # via the trusted list
    assert model.config.decision_threshold == report.operating_point.threshold
    text = files["README.md"].decode()
    check_card(text, metrics, config["decision_threshold"])
    assert 'CalibratedClassifierCV(method="sigmoid")' in text


def test_user_errors(trained_model_dir, caplog):
    from cervix_hf.evaluation import DataInfo, EvalOptions, evaluate_model

    with pytest.raises(SystemExit) as exc:
        evaluate_script.main(["--dataset", "x", "--model", "y", "--target-sensitivity", "0"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        evaluate_script.main(["--dataset", "x", "--model", "y", "--prevalence", "1"])
    with caplog.at_level(logging.ERROR):
        assert evaluate_script.main(["--dataset", "x", "--model", str(trained_model_dir)]) == 2
    assert "dataset 'x'" in caplog.text.lower()
    model = CervixClassifier.from_pretrained(trained_model_dir)
    x = np.zeros((8, 3))
    y = np.array([0, 1] * 4)
    where = {"train_rows": np.arange(8), "test_rows": None, "info": DataInfo("x")}
    with pytest.raises(LabelError, match="cell types"):
        evaluate_model(model, x, y, None, opts=EvalOptions(protocol="seed"), **where)
    with pytest.raises(EvaluationError, match="protocol"):
        evaluate_model(model, x, y, None, opts=EvalOptions(protocol="leaky"), **where)
