import json

import pytest

from cervix_hf.config import CervixConfig, OnnxFile
from cervix_hf.errors import ConfigMismatchError, ModelLoadError
from cervix_hf.features.precision import PrecisionRecord, serving_agreement
from cervix_hf.labels import CELL_TYPES


def make_config(**kw):
    base = dict(
        backbone="test_resnet",
        pretrained=False,
        weights_sha256="ab" * 32,
        data_config={
            "input_size": (3, 160, 160),
            "interpolation": "bilinear",
            "mean": (0.5, 0.5, 0.5),
            "std": (0.5, 0.5, 0.5),
            "crop_pct": 0.95,
            "crop_mode": "center",
        },
        feature_dim=96,
        init_seed=0,
    )
    base.update(kw)
    return CervixConfig(**base)


def test_json_round_trip(tmp_path):
    cfg = make_config(
        cell_types=CELL_TYPES,
        cell_type_head="types.skops",
        metrics={"test": {"accuracy": 0.5}},
        backbone_onnx=OnnxFile(sha256="cd" * 32, exported_with={"torch": "2.14.1"}),
        precision=PrecisionRecord("bf16", "torch", agreement=serving_agreement([0.2], [0.3], 0.5)),
    )
    cfg.to_json(tmp_path / "config.json")
    back = CervixConfig.from_json(tmp_path / "config.json")
    assert back.labels == ("Normal", "Abnormal")
    assert back.cell_types == CELL_TYPES
    assert back.backbone_onnx == cfg.backbone_onnx and back == cfg
    assert back.precision.agreement.max_abs_delta_p == pytest.approx(0.1)
    assert back.metrics == {"test": {"accuracy": 0.5}}
    assert back.positive_index == 1
    assert back.versions["torch"] == cfg.versions["torch"]
    assert back.to_dict() == json.loads((tmp_path / "config.json").read_text())


def test_config_is_frozen():
    cfg = make_config()
    with pytest.raises(AttributeError):
        cfg.feature_dim = 3  # type: ignore[misc]
    assert cfg.replace(feature_dim=3).feature_dim == 3


def test_unknown_and_missing_keys_are_refused(tmp_path):
    data = make_config().to_dict()
    with pytest.raises(ModelLoadError, match="does not know"):
        CervixConfig.from_dict({**data, "surprise": 1})
    del data["feature_dim"]
    with pytest.raises(ModelLoadError, match="feature_dim"):
        CervixConfig.from_dict(data)


def test_newer_format_and_bad_values_are_refused(tmp_path):
    data = make_config().to_dict()
    with pytest.raises(ModelLoadError, match="Upgrade"):
        CervixConfig.from_dict({**data, "format_version": 99})
    with pytest.raises(ConfigMismatchError, match="grouping"):
        make_config(grouping="strict")
    with pytest.raises(ConfigMismatchError, match="threshold"):
        make_config(decision_threshold=1.5)


def test_missing_or_broken_file(tmp_path):
    with pytest.raises(ModelLoadError, match="not a cervix_hf model"):
        CervixConfig.from_json(tmp_path / "config.json")
    (tmp_path / "config.json").write_text("{nope")
    with pytest.raises(ModelLoadError, match="not valid JSON"):
        CervixConfig.from_json(tmp_path / "config.json")


LIES = [
    # file names must stay plain names inside the model directory
    ({"head": "../../etc/passwd.skops"}, "head must be a plain file name"),
    ({"head": "/abs/head.skops"}, "head must be a plain file name"),
    ({"novelty_detector": "sub/novelty.skops", "novelty_threshold": 1.0}, "novelty_detector"),
    ({"head": "head.pkl"}, "ending in .skops"),
    ({"backbone_onnx": {"sha256": "cd" * 32, "file": "../model.onnx"}}, "backbone_onnx.file"),
    ({"backbone_onnx": {"sha256": "short"}}, "backbone_onnx.sha256"),
    ({"backbone_onnx": {"sha256": "cd" * 32, "extra": 1}}, "backbone_onnx has keys"),
    # swapped labels would flip the positive class
    ({"labels": ["Abnormal", "Normal"]}, "labels must be"),
    ({"labels": ["Normal", "Abnormal", "Other"]}, "labels must be"),
    ({"positive_label": "Normal"}, "labels must be"),
    ({"cell_types": list(reversed(CELL_TYPES)), "cell_type_head": "t.skops"}, "cell_types"),
    # wrong types name the field
    ({"feature_dim": "96"}, "feature_dim must be int"),
    ({"feature_dim": 96.0}, "feature_dim must be int"),
    ({"pretrained": "yes"}, "pretrained must be bool"),
    ({"decision_threshold": "0.5"}, "decision_threshold must be float"),
    ({"decision_threshold": float("nan")}, "decision_threshold must be float"),
    ({"metrics": []}, "metrics must be"),
    ({"versions": {"torch": 2}}, "versions must be"),
    # ranges
    ({"decision_threshold": -0.1}, "decision_threshold must be a number in"),
    ({"feature_dim": 0}, "feature_dim must be from 1"),
    ({"weights_sha256": "xyz"}, "weights_sha256"),
    (
        {"data_config": {"input_size": [3, 100000, 100000], "mean": [0.5] * 3, "std": [0.5] * 3}},
        "data_config.input_size",
    ),
    (
        {"data_config": {"input_size": [3, 64, 64], "mean": [0.5] * 3, "std": [0.0] * 3}},
        "data_config.std",
    ),
    (
        {
            "data_config": {
                "input_size": [3, 64, 64],
                "mean": [0.5] * 3,
                "std": [0.5] * 3,
                "crop_mode": "random",
            }
        },
        "data_config.crop_mode",
    ),
    (
        {
            "data_config": {
                "input_size": [3, 64, 64],
                "mean": [0.5] * 3,
                "std": [0.5] * 3,
                "evil": 1,
            }
        },
        "data_config must be",
    ),
    ({"novelty_detector": "n.skops", "novelty_threshold": -1.0}, "novelty_threshold"),
    ({"novelty_detector": "n.skops"}, "novelty_threshold"),
    ({"test_size": 1.5}, "test_size"),
    ({"format_version": 0}, "format_version"),
    ({"precision": {"training": "fp8", "training_engine": "torch"}}, "precision.training"),
    ({"precision": {"training": "fp32"}}, "precision.training_engine' is missing"),
    ({"locator": {"no_such_parameter": 1}}, "locator: unknown locator parameter"),
    ({"locator": []}, "locator must be"),
    (
        {"precision": {"training": "fp32", "training_engine": "onnx", "agreement": {"n": "x"}}},
        "precision.agreement",
    ),
]


@pytest.mark.parametrize("change, match", LIES, ids=[str(i) for i in range(len(LIES))])
def test_lying_configs_are_refused_naming_the_field(tmp_path, change, match):
    data = {**make_config().to_dict(), **change}
    (tmp_path / "config.json").write_text(json.dumps(data))
    with pytest.raises(ModelLoadError, match=match):
        CervixConfig.from_json(tmp_path / "config.json")


def test_oversized_and_non_object_files_are_refused(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("[1, 2]")
    with pytest.raises(ModelLoadError, match="JSON object"):
        CervixConfig.from_json(path)
    path.write_text(" " * (5 * 2**20) + "{}")
    with pytest.raises(ModelLoadError, match="over 4 MiB"):
        CervixConfig.from_json(path)
