import io

import numpy as np
import pytest
from PIL import Image

from cervix_hf.errors import ImageLoadError
from cervix_hf.images import load_image


def png_bytes(img: Image.Image, fmt="PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


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
        {"bytes": png_bytes(rgb), "path": "x.png"},
    ):
        out = load_image(src)
        assert out.mode == "RGB" and out.size == (8, 6)
        assert out.getpixel((0, 0)) == (10, 20, 30)


def test_alpha_is_composited_on_white():
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    assert load_image(png_bytes(rgba)).getpixel((0, 0)) == (255, 255, 255)


def test_sixteen_bit_is_rescaled_not_clipped():
    arr = np.array([[0, 32768, 65535]], dtype=np.uint16)
    img = load_image(png_bytes(Image.fromarray(arr)))
    assert [img.getpixel((i, 0))[0] for i in range(3)] == [0, 128, 255]


@pytest.mark.parametrize(
    ("data", "match"),
    [(b"", "empty"), (b"hello, not an image", "not an image"), (None, "No image")],
)
def test_unreadable_inputs_raise_our_error(data, match):
    with pytest.raises(ImageLoadError, match=match):
        load_image(data)


def test_truncated_and_oversized_files(tmp_path):
    data = png_bytes(Image.new("RGB", (64, 64), (1, 2, 3)), fmt="JPEG")
    with pytest.raises(ImageLoadError, match="damaged or truncated"):
        load_image(data[: len(data) // 2])
    with pytest.raises(ImageLoadError, match="limit"):
        load_image(data, max_bytes=100)
    with pytest.raises(ImageLoadError, match="refused before decoding"):
        load_image(png_bytes(Image.new("L", (100, 100))), max_pixels=5000)
    with pytest.raises(ImageLoadError, match="no such file"):
        load_image(tmp_path / "missing.png")
