"""scripts/evaluate_locator.py as a user runs it, on generated fields (SYNTHETIC data)."""

from __future__ import annotations

import json
import logging

import pytest

from scripts import evaluate_locator


@pytest.fixture(scope="module")
def fields_tree(tmp_path_factory: pytest.TempPathFactory):
    from cervix_hf.synthetic import write_raw_fields

    out = tmp_path_factory.mktemp("fields") / "raw"
    write_raw_fields(out, per_type=1, seed=5, size=(400, 320))
    return out


def test_table_and_json_with_a_model(fields_tree, trained_model_dir, tmp_path, capsys):
    out = tmp_path / "report.json"
    import shutil

    model = shutil.copytree(trained_model_dir, tmp_path / "model")  # the run writes into it
    argv = ["--fields", str(fields_tree), "--model", str(model), "--json", str(out)]
    assert evaluate_locator.main([*argv, "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "Detection at IoU >= 0.5 (5 fields" in text
    assert "| all |" in text and "| located (found cells) |" in text
    report = json.loads(out.read_text())
    assert report["fields"] == 5 and report["grouping"] == "clinical"
    assert report["total"]["cells"] > 5
    e2e = report["end_to_end"]
    assert e2e["compared"] == report["total"]["found"]
    assert 0.0 <= e2e["agreement"] <= 1.0


def test_saved_fields_dataset_limit_and_params(fields_tree, tmp_path, capsys):
    from cervix_hf.sipakmed import build_fields_dataset

    saved = tmp_path / "saved"
    build_fields_dataset(fields_tree).save_to_disk(str(saved))
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"cell_min_area": 600}))
    argv = ["--fields", str(saved), "--limit", "2", "--locator-params", str(params)]
    assert evaluate_locator.main([*argv, "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "(2 fields" in text and "End to end" not in text


def test_bad_inputs_exit_2_with_a_message(fields_tree, tmp_path, caplog):
    with caplog.at_level(logging.ERROR):
        assert evaluate_locator.main(["--fields", str(tmp_path), "--no-progress"]) == 2
    assert "no cluster image with cell outlines" in caplog.text
    bad = tmp_path / "bad.json"
    bad.write_text('{"speed": 1}')
    with caplog.at_level(logging.ERROR):
        argv = ["--fields", str(fields_tree), "--locator-params", str(bad), "--no-progress"]
        assert evaluate_locator.main(argv) == 2
    assert "unknown locator parameter(s) ['speed']" in caplog.text
    bad.write_text("{not json")
    with caplog.at_level(logging.ERROR):
        assert evaluate_locator.main(argv) == 2
    assert "cannot read locator parameters" in caplog.text and "Traceback" not in caplog.text
    with pytest.raises(SystemExit):
        evaluate_locator.main(["--fields", str(tmp_path), "--iou", "1.5"])


def test_a_local_models_card_shows_its_locator_evaluation(tmp_path, trained_model_dir):
    import shutil

    from cervix_hf.synthetic import write_raw_fields

    model = shutil.copytree(trained_model_dir, tmp_path / "model")
    assert "has not been measured for this\nmodel" in (model / "README.md").read_text()
    fields = tmp_path / "fields"
    write_raw_fields(fields, per_type=1, seed=2)
    argv = ["--fields", str(fields), "--model", str(model), "--no-progress"]
    assert evaluate_locator.main(argv) == 0
    card = (model / "README.md").read_text()
    assert "Measured with `scripts/evaluate_locator.py` on `fields`" in card
    assert "SYNTHETIC generated fields" in card and "| all |" in card
    assert (model / "locator_evaluation.json").is_file()
