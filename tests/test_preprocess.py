"""The torch-free preprocessing equals timm's create_transform, bit for bit."""

import numpy as np
import pytest
from PIL import Image

from cervix_hf.errors import ConfigMismatchError
from cervix_hf.predictor.preprocess import EvalTransform, stack


def _images():
    rng = np.random.default_rng(0)
    out = []
    for w, h in [
        (160, 160),
        (161, 97),
        (97, 161),
        (1, 1),
        (3, 250),
        (250, 3),
        (500, 333),
        (64, 64),
    ]:
        out.append(Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)))
    grey = Image.fromarray(rng.integers(0, 256, (120, 90), dtype=np.uint8), mode="L")
    out.append(grey.convert("RGB"))
    out.append(Image.new("RGB", (300, 200), (250, 10, 128)))
    return out


CONFIGS = [
    # ResNet152.tv2_in1k's and test_resnet's own configs
    {
        "input_size": (3, 224, 224),
        "interpolation": "bilinear",
        "mean": (0.485, 0.456, 0.406),
        "std": (0.229, 0.224, 0.225),
        "crop_pct": 0.965,
        "crop_mode": "center",
    },
    {
        "input_size": (3, 160, 160),
        "interpolation": "bilinear",
        "mean": (0.5, 0.5, 0.5),
        "std": (0.5, 0.5, 0.5),
        "crop_pct": 0.95,
        "crop_mode": "center",
    },
    # other modes and filters timm configs use
    {
        "input_size": (3, 96, 96),
        "interpolation": "bicubic",
        "mean": (0.485, 0.456, 0.406),
        "std": (0.229, 0.224, 0.225),
        "crop_pct": 1.0,
        "crop_mode": "squash",
    },
    {
        "input_size": (3, 96, 96),
        "interpolation": "bilinear",
        "mean": (0.481, 0.458, 0.408),
        "std": (0.269, 0.261, 0.276),
        "crop_pct": 1.0,
        "crop_mode": "border",
    },
    {
        "input_size": (3, 80, 112),
        "interpolation": "bicubic",
        "mean": (0.5, 0.4, 0.3),
        "std": (0.2, 0.3, 0.4),
        "crop_pct": 0.9,
        "crop_mode": "center",
    },
    {
        "input_size": (3, 64, 64),
        "interpolation": "lanczos",
        "mean": (0.5, 0.5, 0.5),
        "std": (0.5, 0.5, 0.5),
        "crop_pct": 0.875,
        "crop_mode": "center",
    },
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c['crop_mode']}-{c['input_size'][1:]}")
def test_matches_timm_create_transform(config):
    from timm.data import create_transform

    reference = create_transform(**config, is_training=False)
    ours = EvalTransform(config)
    for img in _images():
        want = reference(img).numpy()
        got = ours(img).pixels
        assert got.dtype == np.float32 and got.shape == want.shape
        assert np.abs(got - want).max() <= 1e-6, (config, img.size)


def test_view_is_the_crop_and_to_image_undoes_the_normalisation():
    ours = EvalTransform(CONFIGS[1])
    img = _images()[6]
    prepared = ours(img)
    assert prepared.view.size == (160, 160)
    back = np.asarray(ours.to_image(prepared.pixels), dtype=int)
    assert np.abs(back - np.asarray(prepared.view, dtype=int)).max() <= 1
    assert stack([prepared, prepared]).shape == (2, 3, 160, 160)


def test_hand_computed_pixel():
    # a flat 2x2 image, crop_pct 1: the output is the flat colour, normalised by hand
    config = {
        "input_size": (3, 2, 2),
        "interpolation": "bilinear",
        "mean": (0.5, 0.25, 0.0),
        "std": (0.5, 0.25, 1.0),
        "crop_pct": 1.0,
        "crop_mode": "center",
    }
    out = EvalTransform(config)(Image.new("RGB", (2, 2), (255, 0, 51))).pixels
    np.testing.assert_allclose(out[:, 0, 0], [1.0, -1.0, 0.2], rtol=1e-6)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"crop_mode": "random"}, "crop_mode"),
        ({"interpolation": "area"}, "interpolation"),
        ({"input_size": (1, 32, 32)}, "3 channels"),
        ({"crop_border_pixels": 2}, "cannot reproduce"),
    ],
)
def test_configs_it_cannot_reproduce_are_refused(change, match):
    with pytest.raises(ConfigMismatchError, match=match):
        EvalTransform({**CONFIGS[1], **change})
