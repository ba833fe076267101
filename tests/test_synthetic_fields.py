"""Tests of the harder synthetic fields (cervix_hf.synthetic.fields): SYNTHETIC, not medical."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest

from cervix_hf.boundaries import read_boundary
from cervix_hf.fields.geometry import intersection, polygon_region
from cervix_hf.labels import CELL_TYPES
from cervix_hf.sipakmed import SYNTHETIC_MARKER
from cervix_hf.synthetic import OutputDirNotEmptyError, make_field, write_raw_fields
from cervix_hf.synthetic.fields import clip_polygon


def test_clip_polygon_hand_computed() -> None:
    square = np.array([[-5.0, -5.0], [5.0, -5.0], [5.0, 5.0], [-5.0, 5.0]])
    clipped = clip_polygon(square, 100, 100)
    assert {tuple(p) for p in clipped} == {(0, 0), (5, 0), (5, 5), (0, 5)}
    assert len(clip_polygon(square + 200, 100, 100)) == 0
    inside = square + 50
    np.testing.assert_array_equal(clip_polygon(inside, 100, 100), inside)


def test_field_is_deterministic_and_outlines_its_cells() -> None:
    a = make_field("Koilocytotic", np.random.default_rng(3), size=(500, 400))
    b = make_field("Koilocytotic", np.random.default_rng(3), size=(500, 400))
    assert a.image.tobytes() == b.image.tobytes()
    assert a.image.size == (500, 400) and a.image.mode == "RGB"
    assert len(a.cytoplasm) == len(a.nucleus) == len(a.cell_types) == 5  # 25 per megapixel
    assert set(a.cell_types) == {"Koilocytotic"}
    img = np.asarray(a.image, dtype=np.float32).mean(axis=2)
    for cyt, nuc in zip(a.cytoplasm, a.nucleus, strict=True):
        for pts in (cyt, nuc):
            assert (pts >= 0).all() and (pts[:, 0] <= 500).all() and (pts[:, 1] <= 400).all()
        c, n = polygon_region(cyt, a.image.size), polygon_region(nuc, a.image.size)
        assert intersection(c, n) >= 0.9 * n.area  # the nucleus lies in its cell
        x0, y0, x1, y1 = n.box
        assert img[y0:y1, x0:x1][n.mask].mean() < 150  # and is dark


def test_fields_hold_touching_or_overlapping_cells_and_cells_cut_by_the_border() -> None:
    touching = cut = 0
    for k in range(4):
        f = make_field(list(CELL_TYPES), np.random.default_rng([9, k]))
        regions = [polygon_region(p, f.image.size) for p in f.cytoplasm]
        touching += sum(
            intersection(a, b) > 0 for i, a in enumerate(regions) for b in regions[i + 1 :]
        )
        cut += sum(
            (p[:, 0] <= 0.01).any() or (p[:, 1] <= 0.01).any() or (p[:, 0] >= 999.99).any()
            for p in f.cytoplasm
        )
        assert len(set(f.cell_types)) > 1  # several types were asked for
    assert touching >= 8 and cut >= 2


def test_bad_arguments() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="unknown cell type"):
        make_field("Neutrophil", rng)
    with pytest.raises(ValueError, match="size sides"):
        make_field("Parabasal", rng, size=(10, 500))
    with pytest.raises(ValueError, match="n_cells"):
        make_field("Parabasal", rng, size=(100, 100), n_cells=-1)
    assert make_field("Parabasal", rng, size=(100, 100), n_cells=0).cytoplasm == []


def test_write_raw_fields_layout(tmp_path: Path) -> None:
    out = tmp_path / "fields"
    counts = write_raw_fields(out, per_type=1, seed=2, size=(300, 240))
    assert list(counts) == list(CELL_TYPES)
    assert "SYNTHETIC" in (out / SYNTHETIC_MARKER).read_text()
    for cell_type in CELL_TYPES:
        folder = out / f"im_{cell_type}" / f"im_{cell_type}"
        names = sorted(p.name for p in folder.iterdir())
        assert names[0] == "001.bmp"
        dats = [n for n in names if n.endswith(".dat")]
        assert len(dats) == 2 * counts[cell_type]
        for n in dats:
            assert re.fullmatch(r"001_(cyt|nuc)\d\d\.dat", n)
            assert len(read_boundary(folder / n)) >= 3
    digests = {
        p.relative_to(out): hashlib.sha256(p.read_bytes()).hexdigest() for p in out.rglob("*.bmp")
    }
    again = tmp_path / "again"
    write_raw_fields(again, per_type=1, seed=2, size=(300, 240))
    assert digests == {
        p.relative_to(again): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in again.rglob("*.bmp")
    }
    with pytest.raises(OutputDirNotEmptyError):
        write_raw_fields(out, per_type=1)
    with pytest.raises(ValueError, match="per_type"):
        write_raw_fields(tmp_path / "x", per_type=0)
