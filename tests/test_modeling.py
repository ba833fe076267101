import json
import shutil

import numpy as np
import pytest
import skops.io as sio
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from cervix_hf import CervixClassifier
from cervix_hf.errors import ConfigMismatchError, HubError, ModelLoadError, UntrustedHeadError
from cervix_hf.features import create_backbone


@pytest.fixture(scope="module")
def cell_paths(raw_cells):
    raw, _ = raw_cells
    return sorted(str(p) for p in raw.rglob("CROPPED/*.bmp"))[::7][:6]


def test_model_directory_is_complete(trained_model_dir):
    names = {p.name for p in trained_model_dir.iterdir()}
    assert {
        "head.skops",
        "cell_type_head.skops",
        "config.json",
        "README.md",
        "metrics.json",
    } <= names
    assert not any(n.endswith((".pkl", ".pickle", ".joblib")) for n in names)
    cfg = json.loads((trained_model_dir / "config.json").read_text())
    assert cfg["backbone"] == "test_resnet" and cfg["pretrained"] is False
    assert cfg["feature_dim"] == 96 and cfg["grouping"] == "clinical"
    assert cfg["synthetic_data"] is True and cfg["versions"]["timm"]


def test_local_round_trip_gives_identical_predictions(trained_model_dir, cell_paths, tmp_path):
    model = CervixClassifier.from_pretrained(trained_model_dir)
    proba = model.predict_proba(cell_paths)
    assert proba.shape == (len(cell_paths), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert model.classes_ == ("Normal", "Abnormal")
    model.save_pretrained(tmp_path / "copy")
    again = CervixClassifier.from_pretrained(tmp_path / "copy", backbone=model.backbone)
    np.testing.assert_array_equal(again.predict_proba(cell_paths), proba)
    expected = [
        "Abnormal" if p >= model.config.decision_threshold else "Normal" for p in proba[:, 1]
    ]
    assert model.predict(cell_paths) == expected
    assert model.predict_cell_type_proba(cell_paths).shape == (len(cell_paths), 5)
    single = model.predict_proba(cell_paths[0])  # one image, not a list
    np.testing.assert_allclose(single, proba[:1], rtol=1e-5)


def copy_model(src, dst):
    shutil.copytree(src, dst)
    return dst


def _flip(x):
    return -x


def test_untrusted_head_is_refused(trained_model_dir, tmp_path):
    bad = copy_model(trained_model_dir, tmp_path / "bad")
    head = sio.load(bad / "head.skops", trusted=[])
    evil = Pipeline([("f", FunctionTransformer(_flip)), ("head", head)])
    sio.dump(evil, bad / "head.skops")
    with pytest.raises(UntrustedHeadError, match="does not trust"):
        CervixClassifier.from_pretrained(bad)


def test_config_head_mismatch_is_refused(trained_model_dir, tmp_path):
    bad = copy_model(trained_model_dir, tmp_path / "bad")
    cfg = json.loads((bad / "config.json").read_text())
    cfg["feature_dim"] = 2048
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigMismatchError, match="96 features"):
        CervixClassifier.from_pretrained(bad)


def test_other_backbone_weights_are_refused(trained_model_dir, tmp_path):
    bad = copy_model(trained_model_dir, tmp_path / "bad")
    cfg = json.loads((bad / "config.json").read_text())
    cfg["init_seed"] = 7  # rebuilds a different random backbone than the head saw
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigMismatchError, match="other weights"):
        CervixClassifier.from_pretrained(bad)
    other = create_backbone("test_resnet", pretrained=False, init_seed=3, device="cpu")
    with pytest.raises(ConfigMismatchError, match="other weights"):
        CervixClassifier.from_pretrained(trained_model_dir, backbone=other)


def test_not_a_model_directory(tmp_path):
    with pytest.raises(ModelLoadError, match="not a cervix_hf model"):
        CervixClassifier.from_pretrained(tmp_path)


def test_hub_round_trip_at_pinned_commit(hub, hub_repo_id, trained_model_dir, cell_paths):
    model = CervixClassifier.from_pretrained(trained_model_dir)
    sha = model.push_to_hub(hub_repo_id)
    assert len(sha) == 40
    files = hub.files(hub_repo_id, revision=sha)
    assert {"head.skops", "config.json", "README.md", "cell_type_head.skops"} <= set(files)
    assert f'from_pretrained("{hub_repo_id}")' in files["README.md"].decode()
    assert hub.last_token == "hf_loopback_test_token"

    loaded = CervixClassifier.from_pretrained(hub_repo_id, revision=sha)
    assert loaded.source == {"repo_id": hub_repo_id, "revision": sha}
    np.testing.assert_array_equal(loaded.predict_proba(cell_paths), model.predict_proba(cell_paths))
    # a later push moves main, the pinned sha still gives the first model
    changed = CervixClassifier(
        model.config.replace(decision_threshold=0.9), model.backbone, model.head
    )
    sha2 = changed.push_to_hub(hub_repo_id)
    assert sha2 != sha
    assert CervixClassifier.from_pretrained(hub_repo_id).config.decision_threshold == 0.9
    pinned = CervixClassifier.from_pretrained(hub_repo_id, revision=sha)
    assert pinned.config.decision_threshold == model.config.decision_threshold


def test_hub_errors_are_clear(hub, hub_repo_id):
    with pytest.raises(HubError, match="not found"):
        CervixClassifier.from_pretrained("tester/does-not-exist")
    from huggingface_hub import HfApi

    HfApi().create_repo(hub_repo_id)  # exists, but holds no model
    with pytest.raises(HubError, match="not a cervix_hf model"):
        CervixClassifier.from_pretrained(hub_repo_id)
    with pytest.raises(HubError, match="does not exist"):
        CervixClassifier.from_pretrained(hub_repo_id, revision="no-such-branch")
