from collections import Counter

import pytest

from cervix_hf.errors import DatasetLayoutError
from cervix_hf.labels import CELL_TYPES
from cervix_hf.sipakmed import build_dataset, find_cell_crops


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
