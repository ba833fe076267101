"""A model's backbone.onnx on ONNX Runtime: hash first, one copy of the weights, same answers."""

import hashlib

import numpy as np
import pytest

from cervix_hf.artifacts import sha256_file
from cervix_hf.errors import ConfigMismatchError, ModelLoadError
from cervix_hf.predictor.onnx_backbone import OnnxBackbone, spatial_mean, spatial_std

DATA_CONFIG = {
    "input_size": [3, 160, 160],
    "interpolation": "bilinear",
    "mean": [0.5, 0.5, 0.5],
    "std": [0.5, 0.5, 0.5],
    "crop_pct": 0.95,
    "crop_mode": "center",
}


def test_the_optimised_session_computes_what_the_plain_graph_computes(trained_model_dir):
    import onnxruntime as ort

    from cervix_hf.predictor.onnx_backbone import create_session

    path = trained_model_dir / "backbone.onnx"
    x = np.random.default_rng(0).normal(size=(3, 3, 160, 160)).astype(np.float32)
    plain = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (want,) = plain.run(None, {"pixel_values": x})
    (got,) = create_session(path, threads=1).run(None, {"pixel_values": x})
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def load(path, **kw):
    args = dict(sha256=sha256_file(path), name="test_resnet", data_config=DATA_CONFIG)
    args.update(feature_dim=96)
    args.update(kw)
    return OnnxBackbone.load(path, **args)


def test_pooling_is_the_spatial_mean_and_std_by_hand():
    fmap = np.arange(2 * 3 * 2 * 2, dtype=np.float32).reshape(2, 3, 2, 2)
    np.testing.assert_allclose(spatial_mean(fmap)[0], [1.5, 5.5, 9.5])
    np.testing.assert_allclose(spatial_std(fmap)[1], [np.sqrt(1.25)] * 3, rtol=1e-6)


def test_the_hash_is_checked_before_onnx_runtime_reads_the_file(trained_model_dir, tmp_path):
    path = tmp_path / "backbone.onnx"
    path.write_bytes(b"not a graph at all")
    with pytest.raises(ModelLoadError, match="does not match the SHA-256"):
        load(path, sha256="0" * 64)
    with pytest.raises(ModelLoadError, match="cannot be run by ONNX Runtime"):
        load(path, sha256=hashlib.sha256(b"not a graph at all").hexdigest())


def test_a_graph_of_another_width_is_refused(trained_model_dir):
    with pytest.raises(ConfigMismatchError, match="96-channel"):
        load(trained_model_dir / "backbone.onnx", feature_dim=2048)


def test_warm_up_and_embed(trained_model_dir):
    from PIL import Image

    backbone = load(trained_model_dir / "backbone.onnx", warm_up=True, threads=1)
    images = [Image.new("RGB", (50, 40), (200, 100, 150)), Image.new("RGB", (40, 50), (9, 9, 9))]
    feats = backbone.embed(images, batch_size=1)
    assert feats.shape == (2, 96) and feats.dtype == np.float32
    np.testing.assert_allclose(feats, backbone.embed(images, batch_size=2), rtol=1e-5)
