"""timm's evaluation transform in Pillow and numpy, so serving needs neither torch nor timm.

:class:`EvalTransform` reproduces ``timm.data.create_transform(**data_config,
is_training=False)`` for the data configs timm resolves for image models (``crop_mode``
``center``, ``squash`` or ``border``; no ``crop_border_pixels``): the same Pillow resize call
with the same output size, the same centre crop (or pad), then ``/ 255`` and
``(x - mean) / std`` in float32. tests/test_preprocess.py compares it with timm on varied
images (sizes, modes, aspect ratios, every crop mode); the outputs are bit-identical.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from ..config_schema import CROP_MODES
from ..errors import ConfigMismatchError

#: timm interpolation names -> Pillow resampling filters (as torchvision maps them for PIL).
INTERPOLATIONS: dict[str, Image.Resampling] = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
    "lanczos": Image.Resampling.LANCZOS,
}
DEFAULT_CROP_PCT = 0.875  # timm's default when a config has none


@dataclass(frozen=True)
class Prepared:
    """One image ready for the backbone.

    Attributes:
        pixels: (3, H, W) float32, normalised as the model expects.
        view: the crop the backbone sees (RGB, H x W), before normalisation.
    """

    pixels: np.ndarray
    view: Image.Image


def _center_crop_or_pad(
    img: Image.Image, size: tuple[int, int], fill: tuple[int, int, int]
) -> Image.Image:
    """torchvision's ``center_crop`` (and timm's ``center_crop_or_pad``) on a PIL image."""
    crop_h, crop_w = size
    width, height = img.size
    if crop_w > width or crop_h > height:
        left = (crop_w - width) // 2 if crop_w > width else 0
        top = (crop_h - height) // 2 if crop_h > height else 0
        right = (crop_w - width + 1) // 2 if crop_w > width else 0
        bottom = (crop_h - height + 1) // 2 if crop_h > height else 0
        padded = Image.new(img.mode, (width + left + right, height + top + bottom), fill)
        padded.paste(img, (left, top))
        img = padded
        width, height = img.size
        if (crop_w, crop_h) == (width, height):
            return img
    top = round((height - crop_h) / 2.0)
    left = round((width - crop_w) / 2.0)
    return img.crop((left, top, left + crop_w, top + crop_h))


class EvalTransform:
    """A timm evaluation transform from its data config, in Pillow + numpy.

    Args:
        data_config: ``input_size`` (3, H, W), ``interpolation``, ``mean``, ``std``,
            ``crop_pct`` and ``crop_mode``, as ``timm.data.resolve_model_data_config`` gives.

    Raises:
        ConfigMismatchError: a config this transform cannot reproduce exactly.
    """

    def __init__(self, data_config: Mapping[str, Any]) -> None:
        unknown = sorted(
            set(data_config)
            - {"input_size", "interpolation", "mean", "std"}
            - {
                "crop_pct",
                "crop_mode",
            }
        )
        if unknown:
            raise ConfigMismatchError(
                f"data_config has keys the torch-free preprocessing cannot reproduce: {unknown}."
            )
        channels, height, width = (int(v) for v in data_config["input_size"])
        if channels != 3:
            raise ConfigMismatchError(
                f"data_config input_size must have 3 channels, got {channels}."
            )
        interpolation = data_config.get("interpolation", "bilinear")
        if interpolation not in INTERPOLATIONS:
            raise ConfigMismatchError(
                f"data_config interpolation {interpolation!r} is not one of {list(INTERPOLATIONS)}."
            )
        crop_mode = data_config.get("crop_mode") or "center"
        if crop_mode not in CROP_MODES:
            raise ConfigMismatchError(
                f"data_config crop_mode {crop_mode!r} is not one of {list(CROP_MODES)}."
            )
        self.size = (height, width)
        self.resample = INTERPOLATIONS[interpolation]
        self.crop_mode = crop_mode
        self.crop_pct = float(data_config.get("crop_pct") or DEFAULT_CROP_PCT)
        self.scale_size = (
            math.floor(height / self.crop_pct),
            math.floor(width / self.crop_pct),
        )
        mean = np.asarray(data_config["mean"], dtype=np.float32)
        std = np.asarray(data_config["std"], dtype=np.float32)
        self.mean = mean.reshape(3, 1, 1)
        self.std = std.reshape(3, 1, 1)
        self.fill = tuple(round(255 * float(v)) for v in data_config["mean"])

    def _resized_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) after the resize step, computed as torchvision and timm do."""
        scale_h, scale_w = self.scale_size
        if self.crop_mode == "squash":
            return scale_w, scale_h
        if self.crop_mode == "center" and scale_h == scale_w:
            # torchvision Resize(int): the shorter side becomes scale, the other int(...)
            short, long = (width, height) if width <= height else (height, width)
            new_short, new_long = scale_h, int(scale_h * long / short)
            return (new_short, new_long) if width <= height else (new_long, new_short)
        # timm ResizeKeepRatio: longest=1 for "border", 0 (shorter side) for "center"
        longest = 1.0 if self.crop_mode == "border" else 0.0
        ratio_h, ratio_w = height / scale_h, width / scale_w
        ratio = max(ratio_h, ratio_w) * longest + min(ratio_h, ratio_w) * (1.0 - longest)
        return round(width / ratio), round(height / ratio)

    def crop(self, image: Image.Image) -> Image.Image:
        """The RGB crop the backbone sees (resize, then centre crop or pad)."""
        image = image if image.mode == "RGB" else image.convert("RGB")
        size = self._resized_size(*image.size)
        if size != image.size:
            image = image.resize(size, self.resample)
        fill = self.fill if self.crop_mode == "border" else (0, 0, 0)
        return _center_crop_or_pad(image, self.size, fill)

    def normalize(self, view: Image.Image) -> np.ndarray:
        """(3, H, W) float32: ``/ 255`` then ``(x - mean) / std``, as torchvision does."""
        x = np.asarray(view, dtype=np.uint8).transpose(2, 0, 1).astype(np.float32)
        x /= np.float32(255)
        x -= self.mean
        x /= self.std
        return x

    def __call__(self, image: Image.Image) -> Prepared:
        """Crop and normalise one RGB image."""
        view = self.crop(image)
        return Prepared(pixels=self.normalize(view), view=view)

    def to_image(self, pixels: np.ndarray) -> Image.Image:
        """Undo the normalisation of (3, H, W) pixels (the crop, up to rounding)."""
        x = np.clip((pixels * self.std + self.mean) * 255.0, 0, 255)
        return Image.fromarray(np.rint(x).astype(np.uint8).transpose(1, 2, 0))


def stack(prepared: Sequence[Prepared]) -> np.ndarray:
    """(N, 3, H, W) float32 batch of prepared images."""
    return np.ascontiguousarray(np.stack([p.pixels for p in prepared]))
