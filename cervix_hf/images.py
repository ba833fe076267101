"""One image loader for training and serving: any reasonable upload becomes an RGB image.

EXIF orientation is applied, 16-bit and float images are rescaled (not clipped), alpha is
composited on white, palette/CMYK/LA/1-bit modes are converted, animated images give their
first frame. Files over a size limit and decompression bombs are refused before decoding;
empty, truncated and non-image files raise :class:`~cervix_hf.errors.ImageLoadError`.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageLoadError

MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_PIXELS = 40_000_000  # far above any cell crop; below Pillow's own bomb threshold
ImageInput = str | os.PathLike | bytes | Image.Image | np.ndarray | dict


def _read_bytes(src: str | os.PathLike, max_bytes: int) -> bytes:
    path = Path(src)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ImageLoadError(f"{path}: no such file.") from None
    if size > max_bytes:
        raise ImageLoadError(
            f"{path.name}: file is {size / 2**20:.1f} MiB, over the {max_bytes / 2**20:.0f} MiB "
            "limit. Upload a single-cell crop."
        )
    return path.read_bytes()


def _to_rgb_from_array(arr: np.ndarray) -> Image.Image:
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ImageLoadError(f"Array of shape {arr.shape} is not an image (H, W[, 3|4]).")
    if arr.size == 0:
        raise ImageLoadError("Empty image array.")
    if arr.dtype != np.uint8:
        arr = arr.astype(np.float64)
        if not np.all(np.isfinite(arr)):
            raise ImageLoadError("Image holds NaN or infinite values.")
        lo, hi = float(arr.min()), float(arr.max())
        if np.issubdtype(np.asarray(arr).dtype, np.floating) and lo >= 0.0 and hi <= 1.0:
            scale_lo, scale_hi = 0.0, 1.0
        elif lo >= 0 and hi <= 255:
            scale_lo, scale_hi = 0.0, 255.0
        elif lo >= 0 and hi <= 65535:
            scale_lo, scale_hi = 0.0, 65535.0
        else:
            scale_lo, scale_hi = lo, hi if hi > lo else lo + 1.0
        arr = np.clip((arr - scale_lo) / (scale_hi - scale_lo) * 255.0 + 0.5, 0, 255)
        arr = arr.astype(np.uint8)
    if arr.ndim == 3 and arr.shape[2] == 4:
        return _composite(Image.fromarray(arr, "RGBA"))
    if arr.ndim == 2:
        return Image.fromarray(arr, "L").convert("RGB")
    return Image.fromarray(arr, "RGB")


def _composite(img: Image.Image) -> Image.Image:
    """Alpha-composite on white (transparent background is slide background, not black)."""
    rgba = img.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def _normalise(img: Image.Image) -> Image.Image:
    if getattr(img, "is_animated", False):
        img.seek(0)
    # a broken EXIF block must not make the pixels unreadable; the orientation stays as stored
    with contextlib.suppress(OSError, ValueError, SyntaxError):
        img = ImageOps.exif_transpose(img)
    mode = img.mode
    if mode == "RGB":
        return img.copy()
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return _to_rgb_from_array(np.asarray(img))
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info):
        return _composite(img)
    return img.convert("RGB")


def load_image(
    src: ImageInput, *, max_bytes: int = MAX_FILE_BYTES, max_pixels: int = MAX_PIXELS
) -> Image.Image:
    """Open any supported input as an RGB PIL image.

    Args:
        src: a path, raw bytes, a PIL image, a numpy array (H, W[, C]), or a
            ``datasets`` image dict (``{"bytes": ..., "path": ...}``).
        max_bytes: refuse encoded files larger than this.
        max_pixels: refuse images with more pixels than this (checked before decoding).

    Returns:
        A new RGB image, fully loaded.

    Raises:
        ImageLoadError: with a message that says what is wrong with the input.
    """
    if src is None:
        raise ImageLoadError("No image given: upload a single-cell image.")
    if isinstance(src, Image.Image):
        if src.width * src.height > max_pixels:
            raise ImageLoadError(f"Image is {src.width}x{src.height}, over {max_pixels} pixels.")
        return _normalise(src)
    if isinstance(src, np.ndarray):
        return _to_rgb_from_array(src)
    name = "image"
    if isinstance(src, dict):
        data: Any = src.get("bytes")
        name = Path(src.get("path") or name).name
        if data is None:
            if not src.get("path"):
                raise ImageLoadError("Image record has neither bytes nor a path.")
            data = _read_bytes(src["path"], max_bytes)
    elif isinstance(src, (bytes, bytearray, memoryview)):
        data = bytes(src)
    elif isinstance(src, (str, os.PathLike)):
        name = Path(src).name
        data = _read_bytes(src, max_bytes)
    else:
        raise ImageLoadError(f"Cannot read an image from a {type(src).__name__}.")
    if len(data) == 0:
        raise ImageLoadError(f"{name}: the file is empty.")
    if len(data) > max_bytes:
        raise ImageLoadError(
            f"{name}: {len(data) / 2**20:.1f} MiB is over the {max_bytes / 2**20:.0f} MiB limit."
        )
    try:
        img = Image.open(io.BytesIO(data))
        if img.width * img.height > max_pixels:
            raise ImageLoadError(
                f"{name}: declares {img.width}x{img.height} pixels, over the limit of "
                f"{max_pixels}; refused before decoding."
            )
        img.load()
    except ImageLoadError:
        raise
    except UnidentifiedImageError:
        raise ImageLoadError(f"{name}: not an image file Pillow can read.") from None
    except Image.DecompressionBombError:
        raise ImageLoadError(f"{name}: refused as a possible decompression bomb.") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageLoadError(f"{name}: the image is damaged or truncated ({exc}).") from None
    return _normalise(img)
