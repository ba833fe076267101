"""scripts/prepare_sipakmed.py as a user runs it."""

import logging

from scripts import prepare_sipakmed


def test_prepare_saves_and_pushes(raw_cells, tmp_path, hub, hub_repo_id):
    import datasets

    raw, counts = raw_cells
    out = tmp_path / "ds"
    assert prepare_sipakmed.main([str(raw), str(out), "--push-to-hub", hub_repo_id]) == 0
    ds = datasets.load_from_disk(str(out))
    assert len(ds) == sum(counts.values())
    pushed = datasets.load_dataset(hub_repo_id, split="train")
    assert pushed["group"] == ds["group"] and pushed["label"] == ds["label"]
    # the dataset card: metadata kept from datasets, the synthetic mark, the counts by hand
    from huggingface_hub import DatasetCard

    card = DatasetCard.load(hub_repo_id, repo_type="dataset")
    assert card.data.dataset_info is not None and card.data.license == "apache-2.0"
    assert "synthetic" in card.data.tags and "**SYNTHETIC DATA" in card.text
    assert f"{len(ds)} cells from {len(set(ds['group']))} cluster images" in card.text
    for cell_type, n in counts.items():
        label = "Abnormal" if cell_type in ("Koilocytotic", "Dyskeratotic") else "Normal"
        assert f"| {cell_type} | {n} | {label} |" in card.text  # clinical grouping
    assert "Split (and cross-validate) by `group`" in card.text


def test_prepare_refuses_bad_layout_and_non_empty_out(tmp_path, raw_cells, caplog):
    (tmp_path / "junk").mkdir()
    with caplog.at_level(logging.ERROR):
        assert prepare_sipakmed.main([str(tmp_path / "junk"), str(tmp_path / "out")]) == 2
    assert "expected" in caplog.text
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    assert prepare_sipakmed.main([str(raw_cells[0]), str(tmp_path / "full")]) == 2


def test_prepare_writes_the_fields_dataset(raw_cells, tmp_path):
    import datasets

    from cervix_hf.synthetic import CLUSTER_IMAGES_PER_TYPE

    raw, _ = raw_cells
    out, fields = tmp_path / "cells", tmp_path / "fields"
    assert prepare_sipakmed.main([str(raw), str(out), "--fields-out", str(fields)]) == 0
    ds = datasets.load_from_disk(str(fields))
    assert len(ds) == 5 * CLUSTER_IMAGES_PER_TYPE
    assert all(len(ids) >= 2 for ids in ds["cell_ids"])
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    argv = [str(raw), str(tmp_path / "cells2"), "--fields-out", str(tmp_path / "busy")]
    assert prepare_sipakmed.main(argv) == 2
    assert not (tmp_path / "cells2").exists()
