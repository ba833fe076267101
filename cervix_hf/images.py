"""One image loader for training and serving: any reasonable upload becomes an RGB image.

:func:`load_image` takes a path, raw bytes, a PIL image, a numpy array or a ``datasets`` image
dict and returns a new, fully loaded RGB image that shares nothing with its source. Whatever
a user can get wrong raises :class:`~cervix_hf.errors.ImageLoadError` with a message that
says what is wrong; Pillow's and numpy's own exceptions never escape.

Behaviour:

* Formats: PNG, JPEG, BMP, TIFF, GIF, WebP and PNM (PPM/PGM/PBM); anything else is refused
  without being opened (container formats such as ICO decode their contents when opened).
* Refused **before decoding**: files over ``max_bytes``; images whose header declares more
  than ``max_pixels`` pixels (Pillow's own decompression-bomb error becomes our error and its
  warning is silenced, so the limit here is the one that counts); images more elongated than
  ``MAX_ASPECT_RATIO`` : 1. The last is deliberate: 1x1 and, say, 200x2 load, but 10000x2 is
  refused, because the model's transform resizes the *shorter* side to ~256 pixels, which
  would turn a 40 KB 10000x2 upload into a ~1.3 million x 256 (~1 GB) image.
* Empty, truncated, damaged and non-image files, ``None`` and unsupported types: our error.
* EXIF orientation is applied; animated images (GIF, APNG, WebP) give their first frame.
* Alpha (RGBA, LA, PA, palette or greyscale with transparency) is composited on **white**.
* Palette, CMYK, 1-bit, YCbCr, HSV and LAB images are converted by Pillow.
* Integer images are rescaled from their bit depth, never clipped: 16-bit data (Pillow's
  ``I;16*`` modes, 16-bit PGM, ``uint16`` arrays) maps v -> round(v / 257), so
  65535 -> 255 and 32768 -> 128, even when the values happen to stay below 256. Where no bit
  depth is known (mode ``I``, other integer arrays) the range decides: within 0..255 as is,
  within 0..65535 as 16-bit, otherwise min-max. 16-bit transparency (``tRNS``) is ignored.
* Float images (mode ``F``, float arrays): within [0, 1] scaled to [0, 255]; within [0, 255]
  taken as 8-bit values (so ``np.asarray(img, dtype=float)`` round-trips); otherwise min-max.
  NaN or infinite values are refused. Boolean arrays map to 0 / 255.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageLoadError

logger = logging.getLogger(__name__)

MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_PIXELS = 40_000_000  # far above any cell crop; below Pillow's own bomb threshold
MAX_ASPECT_RATIO = 100  # longer side / shorter side; see the module docstring
#: Pillow formats we open. Others are refused unopened: some (ICO, ICNS) decode their embedded
#: images inside ``Image.open``, before any size check could run.
FORMATS: tuple[str, ...] = ("PNG", "JPEG", "BMP", "TIFF", "GIF", "WEBP", "PPM")
_CONVERT_ELEMENTS = 1 << 20  # values converted to uint8 at a time (bounds the float copies)
ImageInput = str | os.PathLike | bytes | Image.Image | np.ndarray | dict

_HINT = "Upload a single-cell image (PNG, JPEG, TIFF or BMP)."


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n:,} bytes"


def _check_size(name: str, width: int, height: int, max_pixels: int, when: str) -> None:
    """Refuse empty, too large or too elongated images from their declared size."""
    if width < 1 or height < 1:
        raise ImageLoadError(f"{name}: the image is {width}x{height}, it has no pixels.")
    if width * height > max_pixels:
        raise ImageLoadError(
            f"{name}: {width}x{height} is {width * height:,} pixels, over the limit of "
            f"{max_pixels:,}{when}. {_HINT}"
        )
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise ImageLoadError(
            f"{name}: {width}x{height} is too elongated for a cell image (aspect ratio over "
            f"{MAX_ASPECT_RATIO}:1){when}. Crop around one cell."
        )


def _read_file(path: Path, max_bytes: int) -> bytes:
    """Read at most ``max_bytes`` from ``path``; a larger file is refused unread."""
    try:
        with path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            data = f.read(max_bytes + 1)
    except FileNotFoundError:
        raise ImageLoadError(f"{path.name}: no such file.") from None
    except IsADirectoryError:
        raise ImageLoadError(f"{path.name}: is a folder, not an image file.") from None
    except OSError:
        raise ImageLoadError(f"{path.name}: the file cannot be read.") from None
    if len(data) > max_bytes:
        raise ImageLoadError(
            f"{path.name}: the file is {_size(max(size, len(data)))}, over the "
            f"{_size(max_bytes)} limit. {_HINT}"
        )
    return data


def _to_uint8(arr: np.ndarray, bits: int | None) -> np.ndarray:
    """Rescale one array to uint8 from its bit depth, else from its range (see module doc).

    Converted a block of rows at a time, so no float copy of a large image is ever whole.
    """
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if bits is None and arr.dtype.kind == "u" and arr.dtype.itemsize == 2:
        bits = 16
    lo, hi = float(arr.min()), float(arr.max())  # NaN and inf propagate: no copy needed
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ImageLoadError("The image holds NaN or infinite values.")
    offset = 0.0
    if bits is not None:
        top = 2.0**bits - 1
    elif arr.dtype.kind == "f" and lo >= 0 and hi <= 1:
        top = 1.0
    elif lo >= 0 and hi <= 255:
        top = 255.0
    elif arr.dtype.kind in "iu" and lo >= 0 and hi <= 65535:
        top = 65535.0
    else:  # min-max; a constant image becomes black
        offset, top = lo, max(hi - lo, 1e-12)
    out = np.empty(arr.shape, dtype=np.uint8)
    per_row = max(1, arr[:1].size)
    step = max(1, _CONVERT_ELEMENTS // per_row)
    for start in range(0, arr.shape[0], step):
        values = arr[start : start + step].astype(np.float64)
        if offset:
            values -= offset
        values /= top
        values *= 255.0
        values += 0.5
        np.clip(values, 0, 255, out=values)
        np.floor(values, out=values)
        out[start : start + step] = values
    return out


def _from_array(arr: np.ndarray, bits: int | None = None) -> Image.Image:
    """An (H, W) or (H, W, 1|2|3|4) array of any numeric dtype as an RGB image."""
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (2, 3, 4)):
        hint = " (channels first? use arr.transpose(1, 2, 0))" if arr.ndim == 3 else ""
        raise ImageLoadError(
            f"An array of shape {arr.shape} is not an image: expected (H, W) or "
            f"(H, W, C) with C = 1, 2, 3 or 4{hint}."
        )
    if arr.dtype.kind not in "biuf":
        raise ImageLoadError(f"An array of dtype {arr.dtype} is not an image.")
    if arr.ndim == 3 and arr.shape[2] in (2, 4):  # colour and alpha scale independently
        colour, alpha = _to_uint8(arr[:, :, :-1], bits), _to_uint8(arr[:, :, -1:], bits)
        merged = np.concatenate([colour, alpha], axis=2)
        return _flatten(Image.fromarray(np.ascontiguousarray(merged)))
    return Image.fromarray(np.ascontiguousarray(_to_uint8(arr, bits))).convert("RGB")


def _flatten(img: Image.Image) -> Image.Image:
    """Alpha-composite on white (a transparent background is slide background, not black)."""
    rgba = img.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def _to_rgb(img: Image.Image) -> Image.Image:
    """First frame, EXIF orientation applied, converted to a new RGB image."""
    if getattr(img, "is_animated", False) and img.tell() != 0:
        img.seek(0)
    img.load()
    # Pillow scales 9-16-bit PGM to 0..65535 but gives it mode "I", which has no bit depth
    bits = 16 if img.mode.startswith("I;16") or (img.mode == "I" and img.format == "PPM") else None
    # a broken EXIF block must not make the pixels unreadable; the orientation stays as stored
    with contextlib.suppress(OSError, ValueError, SyntaxError, KeyError, TypeError):
        img = ImageOps.exif_transpose(img)
    if img.mode in ("F", "I") or img.mode.startswith("I;16"):
        return _from_array(np.asarray(img), bits)
    if img.has_transparency_data:
        return _flatten(img)
    return img.convert("RGB")


def _decode(img: Image.Image, name: str, max_pixels: int) -> Image.Image:
    """Check the declared size, then decode and convert; any Pillow failure is our error."""
    _check_size(name, img.width, img.height, max_pixels, " (refused before decoding)")
    try:
        return _to_rgb(img)
    except ImageLoadError as exc:
        raise ImageLoadError(f"{name}: {exc}") from None
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(f"{name}: refused as a decompression bomb ({exc}).") from None
    # Pillow raises many types on malformed data (OSError, SyntaxError, EOFError, struct.error,
    # IndexError, MemoryError, ...); a public upload gets our message, the log the details.
    except Exception:
        logger.debug("Decoding %s failed", name, exc_info=True)
        raise ImageLoadError(f"{name}: the image is damaged or truncated. {_HINT}") from None


def _open(data: bytes, name: str, max_pixels: int) -> Image.Image:
    """Decode encoded bytes; the header is checked before any pixel is decoded."""
    with warnings.catch_warnings():
        # our max_pixels is the limit; Pillow's warning would fire on sizes we refuse anyway
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            opened = Image.open(io.BytesIO(data), formats=FORMATS)
        except UnidentifiedImageError:
            raise ImageLoadError(
                f"{name}: not an image file we can read (PNG, JPEG, TIFF, BMP, GIF, WebP or "
                "PNM). Upload a single-cell image in one of those formats."
            ) from None
        except Image.DecompressionBombError:
            pillow = Image.MAX_IMAGE_PIXELS
            limit = max_pixels if pillow is None else min(max_pixels, 2 * pillow)
            raise ImageLoadError(
                f"{name}: declares more than {limit:,} pixels, over the limit "
                f"(refused before decoding). {_HINT}"
            ) from None
        except Exception:  # see _decode
            logger.debug("Opening %s failed", name, exc_info=True)
            raise ImageLoadError(f"{name}: the image is damaged or truncated. {_HINT}") from None
        with opened as img:
            return _decode(img, name, max_pixels)


def load_image(
    src: ImageInput, *, max_bytes: int = MAX_FILE_BYTES, max_pixels: int = MAX_PIXELS
) -> Image.Image:
    """Open any supported input as an RGB PIL image.

    Args:
        src: a path, raw bytes, a PIL image (an animated one is rewound to its first frame),
            a numpy array (H, W[, 1|2|3|4]) of uint8, uint16, other integers, float or bool,
            or a ``datasets`` image dict (``{"bytes": ..., "path": ...}``; the path is read
            when bytes is None).
        max_bytes: refuse encoded files larger than this, without reading them.
        max_pixels: refuse images with more pixels than this (checked before decoding).

    Returns:
        A new RGB image, fully loaded and independent of the source.

    Raises:
        ImageLoadError: with a message that says what is wrong with the input.
    """
    if src is None or (isinstance(src, str) and not src.strip()):
        raise ImageLoadError("No image given: upload a single-cell image (PNG, JPEG, TIFF or BMP).")
    if isinstance(src, np.ndarray):
        if src.ndim >= 2:
            _check_size("array", src.shape[1], src.shape[0], max_pixels, "")
        return _from_array(src)
    if isinstance(src, Image.Image):
        return _decode(src, "image", max_pixels)
    name = "image"
    if isinstance(src, dict):
        data = src.get("bytes")
        path = src.get("path")
        name = Path(path).name if path else name
        if data is None:
            if not path:
                raise ImageLoadError("Image record has neither bytes nor a path.")
            data = _read_file(Path(path), max_bytes)
        elif not isinstance(data, (bytes, bytearray, memoryview)):
            raise ImageLoadError(f"Image record's bytes is a {type(data).__name__}, not bytes.")
    elif isinstance(src, (bytes, bytearray, memoryview)):
        data = src
    elif isinstance(src, (str, os.PathLike)):
        name = Path(src).name
        data = _read_file(Path(src), max_bytes)
    else:
        raise ImageLoadError(f"Cannot read an image from a {type(src).__name__}. {_HINT}")
    data = bytes(data)
    if len(data) == 0:
        raise ImageLoadError(f"{name}: the file is empty. {_HINT}")
    if len(data) > max_bytes:
        raise ImageLoadError(
            f"{name}: {_size(len(data))} is over the {_size(max_bytes)} limit. {_HINT}"
        )
    return _open(data, name, max_pixels)
