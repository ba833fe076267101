import json

import pytest

from cervix_hf.config import CervixConfig
from cervix_hf.errors import ConfigMismatchError, ModelLoadError


def make_config(**kw):
    base = dict(
        backbone="test_resnet",
        pretrained=False,
        weights_sha256="ab" * 32,
        data_config={"input_size": (3, 160, 160), "mean": (0.5, 0.5, 0.5)},
        feature_dim=96,
        init_seed=0,
    )
    base.update(kw)
    return CervixConfig(**base)


def test_json_round_trip(tmp_path):
    cfg = make_config(cell_types=("a", "b"), metrics={"test": {"accuracy": 0.5}})
    cfg.to_json(tmp_path / "config.json")
    back = CervixConfig.from_json(tmp_path / "config.json")
    assert back.labels == ("Normal", "Abnormal")
    assert back.cell_types == ("a", "b")
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
