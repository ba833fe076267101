"""Shared script plumbing: error mapping, argument types, and flags every script reads alike."""

import importlib.util
import logging
from pathlib import Path

import pytest

from cervix_hf.cli import fraction, run
from cervix_hf.errors import DatasetLayoutError

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def _script(name):
    spec = importlib.util.spec_from_file_location(f"script_{name}", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_run_turns_our_errors_into_exit_code_2(caplog):
    def fails():
        raise DatasetLayoutError("no im_<Type> folders in /x")

    with caplog.at_level(logging.ERROR, logger="cervix_hf"):
        assert run(fails) == 2
    assert "no im_<Type> folders" in caplog.text
    assert run(lambda: 0) == 0


def test_run_lets_bugs_through():
    def bug():
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        run(bug)


def test_fraction_accepts_only_0_to_1():
    assert fraction("0.99") == 0.99 and fraction("1") == 1.0
    for bad in ("0", "1.5", "-0.1"):
        with pytest.raises(Exception, match="must be in"):
            fraction(bad)


RUNTIME = ["--batch-size", "4", "--device", "cpu", "--engine", "torch", "--cache-dir", "/c"]


@pytest.mark.parametrize(
    ("name", "required"),
    [
        ("train", ["--dataset", "d", "--out", "o"]),
        ("extract", ["--dataset", "d"]),
        ("evaluate", ["--dataset", "d", "--model", "m"]),
    ],
)
def test_scripts_read_the_shared_flags_alike(name, required):
    args = _script(name).parse_args([*required, *RUNTIME, "--no-progress", "-v"])
    assert (args.batch_size, args.device, args.engine, args.cache_dir) == (4, "cpu", "torch", "/c")
    assert args.progress is False and args.verbose is True
    assert args.dataset == "d" and args.revision is None and args.split is None
    defaults = _script(name).parse_args(required)
    assert defaults.batch_size is None and defaults.engine == "auto" and defaults.progress


@pytest.mark.parametrize("name", ["train", "extract"])
def test_backbone_flags(name):
    required = ["--dataset", "d"] + (["--out", "o"] if name == "train" else [])
    args = _script(name).parse_args(
        [*required, "--backbone", "test_resnet", "--no-pretrained", "--init-seed", "3"]
    )
    assert (args.backbone, args.pretrained, args.init_seed) == ("test_resnet", False, 3)
    assert args.grouping == "clinical"
    defaults = _script(name).parse_args(required)
    assert defaults.backbone == "resnet152.tv2_in1k" and defaults.pretrained is True


@pytest.mark.parametrize("name", ["train", "extract"])
def test_precision_flag_where_training_features_are_computed(name):
    required = ["--dataset", "d"] + (["--out", "o"] if name == "train" else [])
    assert _script(name).parse_args(required).precision == "fp32"  # the serving precision
    assert _script(name).parse_args([*required, "--precision", "auto"]).precision == "auto"
    with pytest.raises(SystemExit):
        _script(name).parse_args([*required, "--precision", "int8"])
    # evaluate recomputes a saved model's features at the precision the model records
    evaluate = _script("evaluate").parse_args(["--dataset", "d", "--model", "m"])
    assert not hasattr(evaluate, "precision")


def test_evaluation_flags_are_shared_by_train_and_evaluate():
    extra = ["--prevalence", "0.05", "--repeats", "3", "--target-sensitivity", "0.95"]
    for name, required in (
        ("train", ["--dataset", "d", "--out", "o", "--cv", "5"]),
        ("evaluate", ["--dataset", "d", "--model", "m"]),
    ):
        args = _script(name).parse_args([*required, *extra])
        assert (args.prevalence, args.repeats, args.target_sensitivity) == (0.05, 3, 0.95)
        defaults = _script(name).parse_args(required)
        assert defaults.prevalence is None and defaults.repeats == 1
    assert _script("evaluate").parse_args(["--dataset", "d", "--model", "m", "--external"]).external
    for bad in (["--prevalence", "1"], ["--prevalence", "0"], ["--repeats", "0"]):
        with pytest.raises(SystemExit):
            _script("evaluate").parse_args(["--dataset", "d", "--model", "m", *bad])
    with pytest.raises(SystemExit):  # evaluation flags without --cv
        _script("train").parse_args(["--dataset", "d", "--out", "o", "--repeats", "2"])
