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
        "backbone.onnx",
    } <= names
    assert not any(n.endswith((".pkl", ".pickle", ".joblib")) for n in names)
    cfg = json.loads((trained_model_dir / "config.json").read_text())
    assert cfg["backbone"] == "test_resnet" and cfg["pretrained"] is False
    assert cfg["feature_dim"] == 96 and cfg["grouping"] == "clinical"
    assert cfg["synthetic_data"] is True and cfg["versions"]["timm"]
    from cervix_hf.artifacts import sha256_file

    assert cfg["backbone_onnx"]["sha256"] == sha256_file(trained_model_dir / "backbone.onnx")


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


def test_a_changed_backbone_onnx_is_refused_before_it_runs(trained_model_dir, tmp_path):
    bad = copy_model(trained_model_dir, tmp_path / "bad")
    onnx = bad / "backbone.onnx"
    data = bytearray(onnx.read_bytes())
    data[-100] ^= 0xFF  # one flipped byte in the weights
    onnx.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="does not match the SHA-256"):
        CervixClassifier.from_pretrained(bad)
    onnx.unlink()
    with pytest.raises(ModelLoadError, match="missing"):
        CervixClassifier.from_pretrained(bad)


def test_another_models_backbone_is_refused(trained_model_dir, tmp_path):
    from cervix_hf.predictor.export import serving_backbone

    other, _ = serving_backbone(
        create_backbone("test_resnet", pretrained=False, init_seed=3, device="cpu")
    )
    with pytest.raises(ConfigMismatchError, match=r"not this model's backbone\.onnx"):
        CervixClassifier.from_pretrained(trained_model_dir, backbone=other)


def test_a_model_saved_without_backbone_onnx_is_exported_on_load(
    trained_model_dir, cell_paths, tmp_path
):
    old = copy_model(trained_model_dir, tmp_path / "old")
    cfg = json.loads((old / "config.json").read_text())
    del cfg["backbone_onnx"]
    cfg["format_version"] = 1
    (old / "config.json").write_text(json.dumps(cfg))
    (old / "backbone.onnx").unlink()
    model = CervixClassifier.from_pretrained(old)
    reference = CervixClassifier.from_pretrained(trained_model_dir)
    np.testing.assert_allclose(
        model.predict_proba(cell_paths), reference.predict_proba(cell_paths), rtol=1e-5
    )
    assert model.config.backbone_onnx.sha256 == reference.config.backbone_onnx.sha256
    cfg["init_seed"] = 7  # other random weights than the head was trained on
    (old / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigMismatchError, match="other weights"):
        CervixClassifier.from_pretrained(old)


def test_predicting_imports_neither_torch_nor_timm(trained_model_dir, cell_paths):
    import subprocess
    import sys

    code = (
        "import sys; from cervix_hf.modeling import CervixClassifier; "
        f"m = CervixClassifier.from_pretrained({str(trained_model_dir)!r}); "
        f"r = m.analyze({cell_paths[:2]!r}); m.predict_proba({cell_paths[0]!r}); "
        "print(sorted(n for n in ('torch', 'timm', 'torchvision') if n in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_not_a_model_directory(tmp_path):
    with pytest.raises(ModelLoadError, match="not a cervix_hf model"):
        CervixClassifier.from_pretrained(tmp_path)


def test_hub_round_trip_at_pinned_commit(hub, hub_repo_id, trained_model_dir, cell_paths):
    model = CervixClassifier.from_pretrained(trained_model_dir)
    sha = model.push_to_hub(hub_repo_id)
    assert len(sha) == 40
    files = hub.files(hub_repo_id, revision=sha)
    assert {"head.skops", "config.json", "README.md", "cell_type_head.skops"} <= set(files)
    assert "backbone.onnx" in files
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


def test_analyze_runs_one_backbone_pass_per_batch_and_agrees_with_torch(trained_model_dir):
    from cervix_hf.features import backbone_for_config
    from cervix_hf.synthetic import make_cell

    model = CervixClassifier.from_pretrained(trained_model_dir)
    real, calls = model.backbone.feature_map, []

    def counting(batch):
        calls.append(len(batch))
        return real(batch)

    model.backbone.feature_map = counting
    rng = np.random.default_rng(5)
    cells = [make_cell(t, rng) for t in model.config.cell_types for _ in range(4)]
    results = model.analyze(cells)  # 20 images: 8 + 8 + 4, each image once
    assert calls == [8, 8, 4]
    first = results[0]  # probabilities, cell types, unusual score and heat map from that pass
    assert first.cell_types and first.novelty_score is not None and first.heatmap() is not None
    torch_backbone = backbone_for_config(model.config, device="cpu", engine="torch")
    reference = model.head.predict_proba(torch_backbone.embed(cells))[:, 1]
    np.testing.assert_allclose([r.p_positive for r in results], reference, atol=1e-5)
