import numpy as np
import pytest
import torch
from PIL import Image

from cervix_hf.errors import ModelLoadError
from cervix_hf.features import Backbone, create_backbone, dataset_features, weights_fingerprint


def cell_images(n, size=(70, 60)):
    rng = np.random.default_rng(0)
    return [
        Image.fromarray(rng.integers(0, 255, (*size[::-1], 3), dtype=np.uint8)) for _ in range(n)
    ]


def test_tiny_backbone_features_and_preprocessing(tiny_backbone):
    assert tiny_backbone.feature_dim == 96
    # preprocessing comes from timm's own data config for the model, not hand-copied values
    assert tiny_backbone.data_config["input_size"] == (3, 160, 160)
    batch = tiny_backbone.preprocess(cell_images(3))
    assert batch.shape == (3, 3, 160, 160)
    feats = tiny_backbone.embed(cell_images(5), batch_size=2)
    assert feats.shape == (5, 96) and feats.dtype == np.float32
    # pooled features are the spatial mean of the last feature map (the heat map relies on it)
    fmap = tiny_backbone.feature_map(batch)
    np.testing.assert_allclose(
        tiny_backbone.pool(fmap).numpy(), fmap.mean(dim=(2, 3)).numpy(), rtol=1e-5, atol=1e-6
    )


def test_random_init_is_reproducible_from_its_seed(tiny_backbone):
    from cervix_hf.features.backbone import _random_weights_file

    # the second build loads the cached random weights (meta-device model, no init)
    assert _random_weights_file("test_resnet", 0).exists()
    again = create_backbone("test_resnet", pretrained=False, init_seed=0, device="cpu")
    other = create_backbone("test_resnet", pretrained=False, init_seed=1, device="cpu")
    assert again.weights_sha256 == tiny_backbone.weights_sha256
    assert other.weights_sha256 != tiny_backbone.weights_sha256
    imgs = cell_images(2)
    np.testing.assert_array_equal(again.embed(imgs), tiny_backbone.embed(imgs))
    assert torch.random.initial_seed() is not None  # global RNG untouched by fork_rng


def test_fingerprint_sees_any_weight_change():
    model = torch.nn.Linear(3, 2)
    before = weights_fingerprint(model)
    with torch.no_grad():
        model.bias[0] += 1e-6
    assert weights_fingerprint(model) != before


def test_unknown_backbone_is_our_error():
    with pytest.raises(ModelLoadError, match="does not know"):
        create_backbone("no_such_net_v9", pretrained=False)


def test_dataset_features_cached_and_backbone_not_rerun(
    tiny_backbone, cells_dir, tmp_path, monkeypatch
):
    import datasets

    ds = datasets.load_from_disk(str(cells_dir))
    first = dataset_features(tiny_backbone, ds, cache_dir=tmp_path, batch_size=8, progress=False)
    assert first.shape == (len(ds), 96)
    calls = []

    def counting_stats(self, batch):
        calls.append(len(batch))
        zeros = np.zeros((len(batch), self.feature_dim), np.float32)
        return zeros, zeros

    monkeypatch.setattr(Backbone, "stats", counting_stats)
    second = dataset_features(tiny_backbone, ds, cache_dir=tmp_path, progress=False)
    assert calls == []
    np.testing.assert_array_equal(first, second)
    # another backbone (other weights) misses the cache and runs
    other = create_backbone("test_resnet", pretrained=False, init_seed=5, device="cpu")
    dataset_features(other, ds, cache_dir=tmp_path, batch_size=16, progress=False)
    assert sum(calls) == len(ds)
    assert not list(tmp_path.rglob("*.partial"))


def test_failed_extraction_leaves_no_cache_entry(tiny_backbone, cells_dir, tmp_path, monkeypatch):
    import datasets

    ds = datasets.load_from_disk(str(cells_dir)).select(range(4))

    def broken(self, batch):
        raise RuntimeError("boom")

    monkeypatch.setattr(Backbone, "stats", broken)
    with pytest.raises(RuntimeError, match="boom"):
        dataset_features(tiny_backbone, ds, cache_dir=tmp_path, progress=False)
    assert not list(tmp_path.rglob("*.npy*"))


def test_features_match_direct_embedding(tiny_backbone, cells_dir, tmp_path):
    import datasets

    ds = datasets.load_from_disk(str(cells_dir)).select(range(6))
    cached = dataset_features(tiny_backbone, ds, cache_dir=tmp_path, batch_size=4, progress=False)
    direct = tiny_backbone.embed([r["image"] for r in ds])
    np.testing.assert_allclose(cached, direct, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_real_resnet152_architecture_gives_2048_features(tmp_path):
    backbone = create_backbone("resnet152.tv2_in1k", pretrained=False, device="cpu")
    assert backbone.data_config["input_size"] == (3, 224, 224)
    import datasets

    ds = datasets.Dataset.from_dict(
        {"image": cell_images(2)}, features=datasets.Features({"image": datasets.Image()})
    )
    feats = dataset_features(backbone, ds, cache_dir=tmp_path, progress=False)
    assert feats.shape == (2, 2048)
    assert np.isfinite(feats).all() and not np.allclose(feats[0], feats[1])
    calls = []
    backbone.__class__ = type("Counting", (Backbone,), {"stats": lambda s, b: calls.append(b)})
    again = dataset_features(backbone, ds, cache_dir=tmp_path, progress=False)
    assert calls == []  # second run is a cache hit: the backbone is not called
    np.testing.assert_array_equal(feats, again)


# -- what a backbone must be: NCHW, mean-pooled ----------------------------------------------


def test_feature_map_check_accepts_a_mean_pooled_nchw_backbone(tiny_backbone):
    from cervix_hf.features import check_feature_map

    assert tiny_backbone.feature_map_size == (5, 5)
    size = tiny_backbone.data_config["input_size"]
    assert check_feature_map(tiny_backbone.model, "test_resnet", size, torch.device("cpu")) == (
        5,
        5,
    )


@pytest.mark.parametrize(
    ("name", "kwargs", "says"),
    [
        ("test_resnet", {"global_pool": "max"}, "does not mean-pool"),  # NCHW, max-pooled
        ("test_resnet", {"global_pool": "avgmax"}, "does not mean-pool"),
        ("test_vit", {}, "not NCHW"),  # tokens (N, 1 + h*w, C): class-token pooled
        ("test_mambaout", {}, "not NCHW"),  # NHWC (N, h, w, C)
    ],
)
def test_feature_map_check_refuses_other_layouts_and_poolings(name, kwargs, says):
    import timm

    from cervix_hf.features import check_feature_map

    model = timm.create_model(name, pretrained=False, num_classes=0, **kwargs).eval()
    size = timm.data.resolve_model_data_config(model)["input_size"]
    with pytest.raises(ModelLoadError, match=says) as info:
        check_feature_map(model, name, size, torch.device("cpu"))
    message = str(info.value)
    assert repr(name) in message and "NCHW" in message and "heat map" in message


def test_create_backbone_refuses_a_backbone_the_heat_map_cannot_explain(tmp_path):
    with pytest.raises(ModelLoadError, match=r"'test_vit'.*not NCHW"):
        create_backbone("test_vit", pretrained=False, device="cpu", cache_dir=tmp_path)
    assert not (tmp_path / "onnx").exists()  # refused before anything is exported


def test_every_public_name_is_importable_from_the_package():
    import cervix_hf.features as features

    for name in features.__all__:
        assert getattr(features, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        features.nothing_here  # noqa: B018
