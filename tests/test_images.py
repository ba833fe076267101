"""The shared image loader against a corpus of awkward inputs, all generated here.

Each case either gives a correct RGB image (mode, size and pixels that prove the conversion)
or raises our ImageLoadError with a telling message; no other exception may escape.
"""

from __future__ import annotations

import gc
import io
import struct
import time
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageFile

from cervix_hf.errors import ImageLoadError
from cervix_hf.images import MAX_ASPECT_RATIO, load_image

RED, GREEN, BLUE, WHITE, BLACK = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255,) * 3, (0,) * 3


def encode(img: Image.Image, fmt: str = "PNG", **kw: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def crafted_png(
    width: int, height: int, depth: int, colour: int, rows: bytes | None = None, extra: bytes = b""
) -> bytes:
    """A PNG written byte by byte (valid CRCs); without ``rows`` it has a header and no pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    idat = _chunk(b"IDAT", zlib.compress(rows)) if rows is not None else b""
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + extra + idat + _chunk(b"IEND", b"")


def grey16_row(values: list[int]) -> bytes:
    return b"\x00" + struct.pack(f">{len(values)}H", *values)


def row_image(values: Any, dtype: Any) -> Image.Image:
    return Image.fromarray(np.array([values], dtype=dtype))


def palette_image(transparent: bool) -> bytes:
    img = Image.new("P", (2, 1), 0)
    img.putpalette([255, 0, 0, 0, 255, 0])
    img.putpixel((1, 0), 1)
    return encode(img, transparency=0) if transparent else encode(img)


def one_bit() -> bytes:
    img = Image.new("1", (2, 1), 0)
    img.putpixel((1, 0), 1)
    return encode(img)


def two_pixels(mode: str, first: Any, second: Any, fmt: str = "PNG", **kw: Any) -> bytes:
    img = Image.new(mode, (2, 1), first)
    img.putpixel((1, 0), second)
    return encode(img, fmt, **kw)


def animated(fmt: str, **kw: Any) -> bytes:
    frames = [Image.new("RGB", (4, 4), colour) for colour in (RED, BLUE, GREEN)]
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:], **kw)


def exif_rotated_jpeg() -> bytes:
    """32x16 blue JPEG, red 8x8 block top-left, EXIF orientation 6 (display rotated 90° CW)."""
    img = Image.new("RGB", (32, 16), BLUE)
    img.paste(RED, (0, 0, 8, 8))
    exif = Image.Exif()
    exif[274] = 6
    return encode(img, "JPEG", quality=95, exif=exif)


def noisy(fmt: str) -> bytes:
    rng = np.random.default_rng(0)
    return encode(Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)), fmt)


@dataclass
class Ok:
    """A correct RGB image of ``size`` whose pixels at the given (x, y) are within ``tol``."""

    size: tuple[int, int]
    pixels: dict[tuple[int, int], tuple[int, int, int]] = field(default_factory=dict)
    tol: int = 0


@dataclass
class Err:
    """Our ImageLoadError, with ``match`` in its message."""

    match: str


def check(make: Callable[[], Any], expected: Ok | Err, **kw: Any) -> None:
    if isinstance(expected, Err):
        with pytest.raises(ImageLoadError, match=expected.match):
            load_image(make(), **kw)
        return
    out = load_image(make(), **kw)
    assert out.mode == "RGB" and out.size == expected.size
    for xy, want in expected.pixels.items():
        got = out.getpixel(xy)
        assert max(abs(g - w) for g, w in zip(got, want, strict=True)) <= expected.tol, (xy, got)


# --- encoded files: each is loaded from a path, as bytes and as a datasets dict with a path
FILES = [
    pytest.param("empty.png", lambda: b"", Err("empty"), id="empty-file"),
    pytest.param("text.png", lambda: b"hello, not an image\n", Err("not an image"), id="text"),
    pytest.param(
        "cut.jpg", lambda: noisy("JPEG")[:2000], Err("damaged or truncated"), id="truncated-jpeg"
    ),
    pytest.param(
        "cut.png", lambda: noisy("PNG")[:3000], Err("damaged or truncated"), id="truncated-png"
    ),
    pytest.param(
        "bad-crc.png",
        lambda: (lambda b: b[:60] + bytes([b[60] ^ 0xFF]) + b[61:])(noisy("PNG")),
        Err("damaged or truncated"),
        id="png-bad-crc",
    ),
    pytest.param(
        "bomb.png",
        lambda: crafted_png(100_000, 100_000, 8, 0),
        Err("refused before decoding"),
        id="png-header-100000x100000",
    ),
    pytest.param(
        "big.png",
        lambda: crafted_png(8000, 8000, 8, 0),
        Err(r"64,000,000 pixels, over the limit .*refused before decoding"),
        id="png-header-8000x8000",
    ),
    pytest.param(
        "g16.png",
        lambda: encode(row_image([0, 32768, 65535], np.uint16)),
        Ok((3, 1), {(0, 0): BLACK, (1, 0): (128,) * 3, (2, 0): WHITE}),
        id="grey16-png",
    ),
    pytest.param(
        "g16.tif",
        lambda: encode(row_image([0, 32768, 65535], np.uint16), "TIFF"),
        Ok((3, 1), {(0, 0): BLACK, (1, 0): (128,) * 3, (2, 0): WHITE}),
        id="grey16-tiff",
    ),
    pytest.param(
        "g16be.tif",
        # not .convert("I;16B"): Pillow 12.3 clips that conversion to 0..255
        lambda: encode(
            Image.frombytes("I;16B", (3, 1), struct.pack(">3H", 0, 32768, 65535)), "TIFF"
        ),
        Ok((3, 1), {(1, 0): (128,) * 3, (2, 0): WHITE}),
        id="grey16-big-endian-tiff",
    ),
    pytest.param(  # the bit depth decides, not the values: 255 of 65535 is nearly black
        "dark16.png",
        lambda: crafted_png(2, 1, 16, 0, grey16_row([255, 514])),
        Ok((2, 1), {(0, 0): (1,) * 3, (1, 0): (2,) * 3}),
        id="grey16-png-low-values",
    ),
    pytest.param(
        "rgb16.png",
        lambda: crafted_png(1, 1, 16, 2, grey16_row([65535, 32768, 0])),
        Ok((1, 1), {(0, 0): (255, 128, 0)}),
        id="rgb16-png",
    ),
    pytest.param(  # Pillow opens 16-bit grey+alpha PNG as RGBA
        "la16.png",
        lambda: crafted_png(2, 1, 16, 4, grey16_row([32768, 0, 32768, 65535])),
        Ok((2, 1), {(0, 0): WHITE, (1, 0): (128,) * 3}),
        id="grey-alpha16-png",
    ),
    pytest.param(  # Pillow gives 16-bit PGM mode "I"; the format says 16 bits
        "g16.pgm",
        lambda: b"P5\n3 1\n65535\n" + struct.pack(">3H", 255, 32768, 65535),
        Ok((3, 1), {(0, 0): (1,) * 3, (1, 0): (128,) * 3, (2, 0): WHITE}),
        id="grey16-pgm",
    ),
    pytest.param(
        "i8.tif",
        lambda: encode(row_image([0, 100, 255], np.int32), "TIFF"),
        Ok((3, 1), {(1, 0): (100,) * 3, (2, 0): WHITE}),
        id="int32-tiff-8bit-range",
    ),
    pytest.param(
        "i16.tif",
        lambda: encode(row_image([0, 32768, 65535], np.int32), "TIFF"),
        Ok((3, 1), {(1, 0): (128,) * 3, (2, 0): WHITE}),
        id="int32-tiff-16bit-range",
    ),
    pytest.param(
        "ineg.tif",
        lambda: encode(row_image([-100_000, 0, 100_000], np.int32), "TIFF"),
        Ok((3, 1), {(0, 0): BLACK, (1, 0): (128,) * 3, (2, 0): WHITE}),
        id="int32-tiff-min-max",
    ),
    pytest.param(
        "f01.tif",
        lambda: encode(row_image([0.0, 0.5, 1.0], np.float32), "TIFF"),
        Ok((3, 1), {(0, 0): BLACK, (1, 0): (128,) * 3, (2, 0): WHITE}),
        id="float32-tiff-0-1",
    ),
    pytest.param(
        "f255.tif",
        lambda: encode(row_image([0.0, 100.0, 255.0], np.float32), "TIFF"),
        Ok((3, 1), {(1, 0): (100,) * 3, (2, 0): WHITE}),
        id="float32-tiff-0-255",
    ),
    pytest.param(
        "fraw.tif",
        lambda: encode(row_image([-1.0, 2047.5, 4096.0], np.float32), "TIFF"),
        Ok((3, 1), {(0, 0): BLACK, (1, 0): (128,) * 3, (2, 0): WHITE}),
        id="float32-tiff-min-max",
    ),
    pytest.param(
        "fnan.tif",
        lambda: encode(row_image([0.0, np.nan], np.float32), "TIFF"),
        Err("NaN"),
        id="float32-tiff-nan",
    ),
    pytest.param(
        "rgba.png",
        lambda: two_pixels("RGBA", (255, 0, 0, 0), (255, 0, 0, 255)),
        Ok((2, 1), {(0, 0): WHITE, (1, 0): RED}),
        id="rgba-on-white",
    ),
    pytest.param(
        "p.png",
        lambda: palette_image(transparent=False),
        Ok((2, 1), {(0, 0): RED, (1, 0): GREEN}),
        id="palette",
    ),
    pytest.param(
        "pt.png",
        lambda: palette_image(transparent=True),
        Ok((2, 1), {(0, 0): WHITE, (1, 0): GREEN}),
        id="palette-transparency",
    ),
    pytest.param(
        "lt.png",
        lambda: encode(Image.new("L", (1, 1), 7), transparency=7),
        Ok((1, 1), {(0, 0): WHITE}),
        id="grey-trns",
    ),
    pytest.param(
        "cmyk.jpg",
        lambda: encode(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG", quality=95),
        Ok((8, 8), {(4, 4): RED}, tol=3),
        id="cmyk-jpeg",
    ),
    pytest.param(
        "la.png",
        lambda: two_pixels("LA", (100, 0), (100, 255)),
        Ok((2, 1), {(0, 0): WHITE, (1, 0): (100,) * 3}),
        id="la",
    ),
    pytest.param("1.png", one_bit, Ok((2, 1), {(0, 0): BLACK, (1, 0): WHITE}), id="1-bit"),
    pytest.param(
        "lab.tif",
        lambda: two_pixels("LAB", (255, 128, 128), (0, 128, 128), "TIFF"),
        Ok((2, 1), {(0, 0): WHITE, (1, 0): BLACK}, tol=3),
        id="lab-tiff",
    ),
    pytest.param(
        "a.gif", lambda: animated("GIF"), Ok((4, 4), {(1, 1): RED}), id="animated-gif-frame-0"
    ),
    pytest.param("a.png", lambda: animated("PNG"), Ok((4, 4), {(1, 1): RED}), id="apng-frame-0"),
    pytest.param(
        "a.webp",
        lambda: animated("WEBP", lossless=True),
        Ok((4, 4), {(1, 1): RED}),
        id="animated-webp-frame-0",
    ),
    pytest.param(
        "1x1.png",
        lambda: encode(Image.new("RGB", (1, 1), (9, 8, 7))),
        Ok((1, 1), {(0, 0): (9, 8, 7)}),
        id="1x1",
    ),
    pytest.param(
        "thin.png",
        lambda: encode(Image.new("RGB", (2 * MAX_ASPECT_RATIO, 2), (9, 8, 7))),
        Ok((2 * MAX_ASPECT_RATIO, 2), {(199, 1): (9, 8, 7)}),
        id="200x2-at-aspect-limit",
    ),
    pytest.param(
        "thinner.png",
        lambda: encode(Image.new("RGB", (10_000, 2))),
        Err(r"10000x2 is too elongated .*refused before decoding"),
        id="10000x2-refused",
    ),
    pytest.param(
        "exif6.jpg",
        exif_rotated_jpeg,
        Ok((16, 32), {(12, 3): RED, (3, 3): BLUE, (3, 28): BLUE, (12, 28): BLUE}, tol=40),
        id="exif-orientation-6",
    ),
]


@pytest.mark.parametrize(("name", "make", "expected"), FILES)
@pytest.mark.parametrize("as_", ["path", "bytes", "dict"])
def test_file_corpus(tmp_path: Path, name: str, make: Callable, expected: Ok | Err, as_: str):
    path = tmp_path / name
    path.write_bytes(make())
    src = {"path": path, "bytes": path.read_bytes(), "dict": {"bytes": None, "path": str(path)}}
    check(lambda: src[as_], expected)


def animated_gif_at_frame_1() -> Image.Image:
    img = Image.open(io.BytesIO(animated("GIF")))
    img.seek(1)
    return img


def pil(mode: str, first: Any, second: Any = None) -> Callable[[], Image.Image]:
    def make() -> Image.Image:
        img = Image.new(mode, (2, 1), first)
        if second is not None:
            img.putpixel((1, 0), second)
        return img

    return make


def arr(values: Any, dtype: Any = np.uint8) -> Callable[[], np.ndarray]:
    return lambda: np.array(values, dtype=dtype)


# --- everything else a program may pass
OTHERS = [
    pytest.param(lambda: None, Err("No image given"), id="none"),
    pytest.param(lambda: "", Err("No image given"), id="empty-string"),
    pytest.param(lambda: 42, Err("Cannot read an image from a int"), id="int"),
    pytest.param(lambda: [[1, 2]], Err("Cannot read an image from a list"), id="list"),
    pytest.param(lambda: "/no/such/cell.png", Err("no such file"), id="missing-path"),
    pytest.param(lambda: Path(__file__).parent, Err("is a folder"), id="folder"),
    pytest.param(lambda: {"label": 1}, Err("neither bytes nor a path"), id="dict-empty"),
    pytest.param(lambda: {"bytes": "abc", "path": None}, Err("not bytes"), id="dict-str"),
    pytest.param(
        lambda: bytearray(encode(Image.new("RGB", (2, 2), RED))),
        Ok((2, 2), {(1, 1): RED}),
        id="bytearray",
    ),
    # PIL images in every mode Pillow can hand over
    pytest.param(pil("YCbCr", (76, 85, 255)), Ok((2, 1), {(0, 0): RED}, tol=3), id="pil-ycbcr"),
    pytest.param(pil("HSV", (0, 255, 255)), Ok((2, 1), {(0, 0): RED}, tol=1), id="pil-hsv"),
    pytest.param(pil("LAB", (255, 128, 128)), Ok((2, 1), {(0, 0): WHITE}, tol=3), id="pil-lab"),
    pytest.param(pil("CMYK", (0, 255, 255, 0)), Ok((2, 1), {(0, 0): RED}), id="pil-cmyk"),
    pytest.param(pil("RGBa", (0, 0, 0, 0)), Ok((2, 1), {(0, 0): WHITE}), id="pil-rgba-premul"),
    pytest.param(pil("RGBX", (1, 2, 3, 0)), Ok((2, 1), {(0, 0): (1, 2, 3)}), id="pil-rgbx"),
    *[
        pytest.param(
            pil(mode, 32768, 65535),
            Ok((2, 1), {(0, 0): (128,) * 3, (1, 0): WHITE}),
            id=f"pil-{mode}",
        )
        for mode in ("I;16", "I;16B", "I;16L", "I;16N")
    ],
    pytest.param(pil("I", 100, 255), Ok((2, 1), {(0, 0): (100,) * 3}), id="pil-I-8bit-range"),
    pytest.param(pil("F", 0.25, 1.0), Ok((2, 1), {(0, 0): (64,) * 3}), id="pil-F-0-1"),
    pytest.param(animated_gif_at_frame_1, Ok((4, 4), {(0, 0): RED}), id="pil-gif-rewound"),
    # numpy arrays
    pytest.param(arr([[7, 7]]), Ok((2, 1), {(0, 0): (7, 7, 7)}), id="np-u8-hw"),
    pytest.param(arr([[[7], [7]]]), Ok((2, 1), {(0, 0): (7, 7, 7)}), id="np-u8-hw1"),
    pytest.param(arr([[RED, BLUE]]), Ok((2, 1), {(1, 0): BLUE}), id="np-u8-hw3"),
    pytest.param(
        arr([[[9, 0], [9, 255]]]), Ok((2, 1), {(0, 0): WHITE, (1, 0): (9,) * 3}), id="np-u8-hw2"
    ),
    pytest.param(
        arr([[[255, 0, 0, 0], [255, 0, 0, 255]]]),
        Ok((2, 1), {(0, 0): WHITE, (1, 0): RED}),
        id="np-u8-hw4",
    ),
    pytest.param(
        arr([[0, 32768, 65535]], np.uint16),
        Ok((3, 1), {(1, 0): (128,) * 3, (2, 0): WHITE}),
        id="np-u16-hw",
    ),
    pytest.param(arr([[255, 514]], np.uint16), Ok((2, 1), {(0, 0): (1,) * 3}), id="np-u16-low"),
    pytest.param(
        arr([[[65535, 32768, 0]]], np.uint16), Ok((1, 1), {(0, 0): (255, 128, 0)}), id="np-u16-hw3"
    ),
    pytest.param(
        arr([[[65535, 0, 0, 0], [65535, 0, 0, 65535]]], np.uint16),
        Ok((2, 1), {(0, 0): WHITE, (1, 0): RED}),
        id="np-u16-hw4",
    ),
    pytest.param(
        arr([[0.0, 0.5, 1.0]], np.float32), Ok((3, 1), {(1, 0): (128,) * 3}), id="np-f32-0-1"
    ),
    pytest.param(
        arr([[0.0, 100.0, 255.0]], np.float64), Ok((3, 1), {(1, 0): (100,) * 3}), id="np-f64-0-255"
    ),
    pytest.param(
        arr([[-5.0, 0.0, 5.0]], np.float16),
        Ok((3, 1), {(0, 0): BLACK, (1, 0): (128,) * 3, (2, 0): WHITE}),
        id="np-f16-min-max",
    ),
    pytest.param(
        arr([[[1.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 1.0]]], np.float32),
        Ok((2, 1), {(0, 0): WHITE, (1, 0): RED}),
        id="np-f32-hw4",
    ),
    pytest.param(
        arr([[False, True]], bool), Ok((2, 1), {(0, 0): BLACK, (1, 0): WHITE}), id="np-bool"
    ),
    pytest.param(
        arr([[0, 100, 255]], np.int32), Ok((3, 1), {(1, 0): (100,) * 3}), id="np-i32-8bit-range"
    ),
    pytest.param(
        arr([[-(10**12), 0, 10**12]], np.int64),
        Ok((3, 1), {(0, 0): BLACK, (1, 0): (128,) * 3, (2, 0): WHITE}),
        id="np-i64-min-max",
    ),
    pytest.param(
        lambda: np.zeros((4, 6, 3), np.uint8)[:, ::2], Ok((3, 4), {(2, 3): BLACK}), id="np-strided"
    ),
    pytest.param(arr([[0.0, np.nan]], np.float32), Err("NaN"), id="np-nan"),
    pytest.param(arr([[0.0, np.inf]], np.float64), Err("infinite"), id="np-inf"),
    pytest.param(lambda: np.zeros((3, 8, 8), np.uint8), Err("channels first"), id="np-chw"),
    pytest.param(lambda: np.zeros((8, 8, 5), np.uint8), Err("not an image"), id="np-5-channels"),
    pytest.param(lambda: np.zeros(8, np.uint8), Err("not an image"), id="np-1d"),
    pytest.param(lambda: np.zeros((0, 5), np.uint8), Err("no pixels"), id="np-empty"),
    pytest.param(lambda: np.zeros((2, 2), complex), Err("dtype complex"), id="np-complex"),
    pytest.param(lambda: np.zeros((2, 2), object), Err("dtype object"), id="np-object"),
    pytest.param(lambda: np.zeros((2, 10_000), np.uint8), Err("too elongated"), id="np-2x10000"),
]


@pytest.mark.parametrize(("make", "expected"), OTHERS)
def test_other_inputs(make: Callable[[], Any], expected: Ok | Err):
    check(make, expected)


@pytest.mark.parametrize(
    "to_bytes",
    [
        pytest.param(lambda a: encode(Image.fromarray(a)), id="png"),
        pytest.param(lambda a: encode(Image.fromarray(a), "TIFF"), id="tiff"),
        pytest.param(lambda a: a, id="numpy"),
    ],
)
def test_sixteen_bit_gradient_is_rescaled_not_clipped(to_bytes: Callable):
    def grey_levels(values: np.ndarray) -> list[int]:
        rows = np.tile(values.astype(np.uint16), (4, 1))  # 4 rows: within the aspect limit
        return np.asarray(load_image(to_bytes(rows)))[2, :, 0].astype(int).tolist()

    ramp = np.linspace(0, 65535, 256).round()
    assert grey_levels(ramp) == list(range(256))  # v -> round(v / 257): every level, in order
    mid = np.arange(20_000, 45_001, 100)  # a mid-grey gradient
    out = grey_levels(mid)
    assert out == np.floor(mid / 257 + 0.5).astype(int).tolist()
    assert out[0] == 78 and out[-1] == 175 and np.all(np.diff(out) >= 0)


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize(
    ("size", "match"),
    [
        pytest.param((100_000, 100_000), "more than 40,000,000 pixels", id="over-pillow-limit"),
        pytest.param((10_000, 10_000), "100,000,000 pixels", id="pillow-would-warn"),
        pytest.param((7000, 7000), "49,000,000 pixels", id="over-our-limit"),
    ],
)
def test_huge_header_is_refused_before_decoding(monkeypatch, size, match):
    def no_decoding(self):
        raise AssertionError("decoding started")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    data = crafted_png(*size, 8, 0)  # a header and no pixel data at all
    start = time.perf_counter()
    with pytest.raises(ImageLoadError, match=f"{match}.*refused before decoding"):
        load_image(data)
    assert time.perf_counter() - start < 0.5


@pytest.mark.filterwarnings("error")
def test_pillow_bomb_limits_give_our_error_and_no_warning(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    warned = encode(Image.new("RGB", (40, 40), RED))  # 1600 px: Pillow would warn
    assert load_image(warned).getpixel((0, 0)) == RED
    refused = encode(Image.new("RGB", (50, 50), RED))  # 2500 px: Pillow refuses
    with pytest.raises(ImageLoadError, match=r"more than 2,000 pixels.*before decoding"):
        load_image(refused)


def test_result_is_independent_of_its_source(tmp_path):
    path = tmp_path / "cell.png"
    path.write_bytes(encode(Image.new("RGB", (4, 4), RED)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = load_image(path)
        gc.collect()
    # gc may also collect other tests' leftovers: only a warning about our file counts
    leaks = [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert not [w for w in leaks if path.name in str(w.message)]
    path.write_bytes(encode(Image.new("RGB", (4, 4), BLUE)))
    path.unlink()
    assert out.getpixel((3, 3)) == RED
    source = Image.new("RGB", (4, 4), RED)
    copy = load_image(source)
    source.putpixel((0, 0), BLUE)
    assert copy is not source and copy.getpixel((0, 0)) == RED


def test_files_over_the_size_limit_are_refused_unread(tmp_path):
    path = tmp_path / "junk.png"
    path.write_bytes(b"x" * 2000)  # not even an image: the size is refused first
    for src in (path, {"bytes": None, "path": str(path)}, path.read_bytes()):
        with pytest.raises(ImageLoadError, match="over the 1,000 bytes limit"):
            load_image(src, max_bytes=1000)
    assert load_image(noisy("PNG"), max_bytes=2**21).size == (64, 64)


def test_inputs_of_every_kind_become_rgb(tmp_path):
    rgb = Image.new("RGB", (8, 6), (10, 20, 30))
    path = tmp_path / "a.bmp"
    rgb.save(path)
    for src in (
        path,
        str(path),
        path.read_bytes(),
        rgb,
        np.asarray(rgb),
        {"bytes": None, "path": str(path)},
        {"bytes": encode(rgb), "path": "x.png"},
    ):
        out = load_image(src)
        assert out.mode == "RGB" and out.size == (8, 6)
        assert out.getpixel((0, 0)) == (10, 20, 30)


def test_pixel_limit_applies_to_every_kind_of_input():
    small = Image.new("L", (100, 100))
    for src in (encode(small), small, np.asarray(small)):
        with pytest.raises(ImageLoadError, match="10,000 pixels, over the limit of 5,000"):
            load_image(src, max_pixels=5000)


def ico_with_png(width: int, height: int) -> bytes:
    """An ICO whose one entry is a PNG declaring width x height (IHDR only: no pixel data)."""
    png = crafted_png(width, height, 8, 2)
    entry = struct.pack("<BBBBHHII", 0, 0, 0, 0, 1, 32, len(png), 6 + 16)
    return struct.pack("<HHH", 0, 1, 1) + entry + png


def test_container_formats_are_refused_before_anything_is_decoded(monkeypatch):
    def no_decoding(self):
        raise AssertionError("decoding started")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    for data in (ico_with_png(13_000, 13_000), b"icns" + struct.pack(">I", 8) + b"\0" * 64):
        with pytest.raises(ImageLoadError, match="not an image file we can read"):
            load_image(data)


def test_messages_name_the_file_never_a_path_or_library_text(tmp_path):
    secret = tmp_path / "server-side" / "folder"
    secret.mkdir(parents=True)
    for name, data in [
        ("cut.png", noisy("PNG")[:3000]),
        ("flipped.png", (lambda b: b[:60] + bytes([b[60] ^ 0xFF]) + b[61:])(noisy("PNG"))),
        ("notes.png", b"plain text"),
    ]:
        path = secret / name
        path.write_bytes(data)
        with pytest.raises(ImageLoadError) as caught:
            load_image(path)
        message = str(caught.value)
        assert message.startswith(f"{name}: ") and str(secret) not in message
        assert "Error" not in message and "errno" not in message.lower()
    with pytest.raises(ImageLoadError) as caught:
        load_image(secret / "missing.png")
    assert str(secret) not in str(caught.value) and "missing.png" in str(caught.value)


def test_float_images_convert_without_whole_float64_copies():
    import tracemalloc

    big = np.linspace(-1.0, 3.0, 2000 * 1500, dtype=np.float32).reshape(1500, 2000)
    tracemalloc.start()
    out = load_image(big)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # the array is 12 MB; a float64 copy alone would be 24 MB, the old path held several
    assert peak < 20 * 2**20, peak
    pixels = np.asarray(out)[:, :, 0]
    assert pixels[0, 0] == 0 and pixels[-1, -1] == 255
    expected = np.floor(np.clip((big.astype(np.float64) + 1.0) / 4.0 * 255 + 0.5, 0, 255))
    np.testing.assert_array_equal(pixels, expected.astype(np.uint8))
