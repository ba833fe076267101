import logging
from collections import Counter

import numpy as np
import pytest

from cervix_hf.boundaries import read_boundary
from cervix_hf.errors import DatasetLayoutError
from cervix_hf.images import load_image
from cervix_hf.labels import CELL_TYPES
from cervix_hf.sipakmed import (
    build_dataset,
    build_fields_dataset,
    crop_margins,
    fields_from_dataset,
    find_cell_crops,
    find_fields,
)
from cervix_hf.synthetic import CLUSTER_IMAGES_PER_TYPE


def test_finds_every_crop_with_type_and_group(raw_cells):
    raw, counts = raw_cells
    crops = find_cell_crops(raw)
    assert Counter(t for _, t, _ in crops) == Counter(counts)
    for path, cell_type, group in crops:
        assert path.parent.name == "CROPPED" and path.suffix == ".bmp"
        assert group == f"{cell_type}/{path.name.split('_')[0]}"
    # several cells per cluster image, as in SIPaKMeD
    per_group = Counter(g for _, _, g in crops)
    assert max(per_group.values()) >= 2


def test_skips_cluster_images_and_dat_files_without_deleting(raw_cells):
    raw, _ = raw_cells
    before = sorted(p for p in raw.rglob("*") if p.is_file())
    crops = {p for p, _, _ in find_cell_crops(raw)}
    skipped = [p for p in before if p not in crops]
    assert any(p.suffix == ".dat" for p in skipped)
    assert any(p.suffix == ".bmp" and p.parent.name != "CROPPED" for p in skipped)
    assert sorted(p for p in raw.rglob("*") if p.is_file()) == before


def test_dataset_columns_and_grouping(raw_cells):
    raw, counts = raw_cells
    ds = build_dataset(raw)
    assert ds.column_names == ["image", "cell_type", "label", "group"]
    assert ds.features["cell_type"].names == list(CELL_TYPES)
    assert ds.features["label"].names == ["Normal", "Abnormal"]
    assert len(ds) == sum(counts.values())
    assert ds.info.description.startswith("SYNTHETIC")
    rows = ds.select_columns(["cell_type", "label"])
    for ct, lab in zip(rows["cell_type"], rows["label"], strict=True):
        assert lab == (1 if CELL_TYPES[ct] in ("Koilocytotic", "Dyskeratotic") else 0)
    seed = build_dataset(raw, grouping="seed").select_columns(["cell_type", "label"])
    meta = CELL_TYPES.index("Metaplastic")
    assert {
        lab for ct, lab in zip(seed["cell_type"], seed["label"], strict=True) if ct == meta
    } == {1}
    assert ds[0]["image"].size[0] > 10  # the crop's bytes travel inside the dataset


def test_folder_names_match_case_insensitively(tmp_path, raw_cells):
    import shutil

    raw, counts = raw_cells
    copy = tmp_path / "copy"
    shutil.copytree(raw, copy)
    for d in sorted(copy.iterdir()):
        d.rename(d.with_name(d.name.upper()))
    assert len(find_cell_crops(copy)) == sum(counts.values())


def test_unknown_layout_lists_found_and_expected(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DatasetLayoutError) as err:
        find_cell_crops(tmp_path)
    msg = str(err.value)
    assert "photos/" in msg and "notes.txt" in msg
    assert "CROPPED/NNN_MM.bmp" in msg and "Koilocytotic" in msg
    with pytest.raises(DatasetLayoutError, match="not a directory"):
        find_cell_crops(tmp_path / "nope")


# --------------------------------------------------------------------------- whole fields


def test_find_fields_reads_every_outlined_cluster_image(raw_cells):
    raw, _ = raw_cells
    records = find_fields(raw)
    assert len(records) == CLUSTER_IMAGES_PER_TYPE * len(CELL_TYPES)
    for r in records:
        cell_type, stem = r.group.split("/")
        assert cell_type == r.cell_type and r.image.name == f"{stem}.bmp"
        crops = sorted(r.image.parent.glob(f"CROPPED/{stem}_??.bmp"))
        assert [c.index for c in r.cells] == list(range(1, len(crops) + 1))
        for c in r.cells:
            assert c.cell_type == cell_type
            dat = r.image.with_name(f"{stem}_cyt{c.index:02d}.dat")
            np.testing.assert_array_equal(c.cytoplasm, read_boundary(dat))
            assert c.nucleus is not None and len(c.nucleus) >= 3


def _mini_tree(root, cyt_text="1,1\n20,1\n20,20\n"):
    from PIL import Image

    folder = root / "im_Parabasal" / "im_Parabasal"
    folder.mkdir(parents=True)
    Image.new("RGB", (32, 32), "white").save(folder / "001.bmp")
    Image.new("RGB", (32, 32), "white").save(folder / "002.bmp")  # no outlines: skipped
    (folder / "001_cyt01.dat").write_text(cyt_text)
    (folder / "001_nuc01.dat").write_text("5,5\n8,5\n8,8\n")
    (folder / "001_cyt02.dat").write_text("1,1\n9,1\n9,9\n")  # no nucleus outline
    (folder / "001_nuc03.dat").write_text("5,5\n8,5\n8,8\n")  # no cytoplasm outline: ignored
    return folder


def test_find_fields_tolerates_missing_outlines_and_refuses_malformed_ones(tmp_path, caplog):
    _mini_tree(tmp_path / "ok")
    with caplog.at_level(logging.INFO, logger="cervix_hf"):
        (record,) = find_fields(tmp_path / "ok")
    assert record.group == "Parabasal/001"
    assert [c.index for c in record.cells] == [1, 2]
    assert record.cells[0].nucleus is not None and record.cells[1].nucleus is None
    assert "1 nucleus outlines without a cytoplasm outline" in caplog.text
    assert "Skipped 1 cluster images without outlines" in caplog.text

    _mini_tree(tmp_path / "bad", cyt_text="1,1\n20;x\n20,20\n")
    with pytest.raises(DatasetLayoutError, match=r"001_cyt01\.dat, line 2"):
        find_fields(tmp_path / "bad")
    (tmp_path / "none").mkdir()
    with pytest.raises(DatasetLayoutError, match="no cluster image with cell outlines"):
        find_fields(tmp_path / "none")


def test_fields_dataset_round_trip(raw_cells):
    raw, _ = raw_cells
    ds = build_fields_dataset(raw)
    assert ds.info.description.startswith("SYNTHETIC")
    assert ds.column_names == [
        "image",
        "cell_type",
        "group",
        "cell_ids",
        "cell_types",
        "cytoplasm",
        "nucleus",
    ]
    again = fields_from_dataset(ds)
    for a, b in zip(find_fields(raw), again, strict=True):
        assert (a.group, a.cell_type, len(a.cells)) == (b.group, b.cell_type, len(b.cells))
        assert load_image(b.image).tobytes() == load_image(a.image).tobytes()
        for ca, cb in zip(a.cells, b.cells, strict=True):
            assert (ca.index, ca.cell_type) == (cb.index, cb.cell_type)
            np.testing.assert_allclose(cb.cytoplasm, ca.cytoplasm, atol=1e-3)
            np.testing.assert_allclose(cb.nucleus, ca.nucleus, atol=1e-3)
    with pytest.raises(DatasetLayoutError, match="not a fields dataset"):
        fields_from_dataset(build_dataset(raw))


def test_crop_margins_of_the_generated_crops(raw_cells, tmp_path):
    margins = crop_margins(raw_cells[0])
    assert margins.shape[1] == 2 and len(margins) == sum(raw_cells[1].values())
    # generated crops: the outline's box grown by 1.1-1.35 overall (0.05-0.175 per side),
    # more where a crop was widened to the 64-pixel minimum
    assert 0.05 <= float(np.median(margins)) <= 0.2
    (tmp_path / "empty").mkdir()
    assert crop_margins(tmp_path / "empty") is None
