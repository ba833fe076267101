"""A batch's files one at a time: archives opened safely, every failure named by its entry."""

import io
import zipfile

import numpy as np
from PIL import Image

from cervix_hf.archives import ZipLimits
from cervix_hf.webapp.uploads import BatchLimits, display_name, iter_entries
from tests.test_archives import lie_about_size, make_zip

LIMITS = BatchLimits(
    max_files=50,
    max_total_bytes=8 * 2**20,
    archive=ZipLimits(max_members=20, max_member_bytes=2**20, max_total_bytes=4 * 2**20),
)


def png_bytes(colour=(200, 100, 150)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(buf, format="PNG")
    return buf.getvalue()


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def entries(paths, limits=LIMITS):
    return [(e.name, e.error, e.data) for e in iter_entries(paths, limits)]


def test_plain_files_and_archive_members_in_order(tmp_path):
    image = write(tmp_path, "a.png", png_bytes())
    archive = write(
        tmp_path,
        "cells.zip",
        make_zip([("x/b.png", png_bytes()), ("__MACOSX/._b.png", b"junk"), (".DS_Store", b"")]),
    )
    got = entries([image, archive])
    assert [(n, e) for n, e, _ in got] == [("a.png", None), ("cells.zip/x/b.png", None)]
    assert got[0][2] == image and got[1][2] == png_bytes()


def test_liars_corrupt_and_crowded_archives_beside_valid_files(tmp_path):
    liar = lie_about_size(make_zip([("bomb.png", b"\0" * (3 * 2**20))]), 1024)
    crowded = make_zip([(f".{i}", b"") for i in range(1000)])
    corrupt = bytearray(make_zip([("c.png", png_bytes() * 10)]))
    corrupt[60:70] = b"\xff" * 10
    paths = [
        write(tmp_path, "liar.zip", liar),
        write(tmp_path, "ok.png", png_bytes()),
        write(tmp_path, "crowded.zip", crowded),
        write(tmp_path, "corrupt.zip", bytes(corrupt)),
        write(tmp_path, "truncated.zip", make_zip([("t.png", png_bytes())])[:50]),
        write(tmp_path, "only-dots.zip", make_zip([(".hidden", b"x")])),
    ]
    got = {n: e for n, e, _ in entries(paths)}
    assert got["ok.png"] is None
    assert "expands beyond 1 MiB" in got["liar.zip/bomb.png"]
    assert "lists 1,000 entries" in got["crowded.zip"]
    assert "damaged" in got["corrupt.zip/c.png"]
    assert "not a complete zip archive" in got["truncated.zip"]
    assert got["only-dots.zip"] == "the archive holds no files"


def test_one_level_of_nested_archives_is_opened(tmp_path):
    inner = make_zip([("deep.png", png_bytes())])
    innermost = make_zip([("outer.zip", make_zip([("x.png", png_bytes())]))])
    path = write(tmp_path, "n.zip", make_zip([("inner.zip", inner), ("twice.zip", innermost)]))
    got = {n: e for n, e, _ in entries([path])}
    assert got["n.zip/inner.zip/deep.png"] is None
    assert "archive inside an archive inside an archive" in got["n.zip/twice.zip/outer.zip"]


def test_a_png_with_a_zip_appended_is_an_image(tmp_path):
    data = png_bytes() + make_zip([("hidden.png", png_bytes((0, 0, 0)))])
    path = write(tmp_path, "polyglot.png", data)
    assert entries([path]) == [("polyglot.png", None, path)]


def test_the_request_budget_covers_files_and_members(tmp_path):
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, 3 * 2**20, dtype=np.uint8).tobytes()  # incompressible
    paths = [write(tmp_path, f"{i}.bin", noise) for i in range(4)]
    got = entries(paths)
    assert [e for _, e, _ in got[:2]] == [None, None]
    assert all("size limit" in e for _, e, _ in got[2:])


def test_names_are_printable_and_bounded():
    assert display_name("a\x00b\nc.png") == "a?b?c.png"
    assert len(display_name("x" * 1000)) == 160
    assert display_name("") == "?"


def test_zip_members_with_odd_names(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr('=HYPERLINK("http://x").png', png_bytes())
        zf.writestr("../../etc/evil.png", png_bytes())
    got = [n for n, _, _ in entries([write(tmp_path, "odd.zip", buf.getvalue())])]
    assert got == ['odd.zip/=HYPERLINK("http://x").png', "odd.zip/../../etc/evil.png"]
