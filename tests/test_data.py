import numpy as np
import pytest
from PIL import Image

from cervix_hf.data import load_cells
from cervix_hf.errors import DatasetLayoutError, HubError, LabelError


def write_folder(root, classes, n=3):
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(n):
            arr = rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / c / f"{i}.png")


def test_saved_dataset_keeps_types_and_groups(cells_dir):
    data = load_cells(cells_dir)
    assert data.has_cell_types and data.has_groups and data.grouping == "clinical"
    assert data.dataset.features["label"].names == ["Normal", "Abnormal"]
    seed = load_cells(cells_dir, grouping="seed")
    assert sum(seed.dataset["label"]) > sum(data.dataset["label"])  # Metaplastic moved
    assert seed.fingerprint == data.fingerprint  # same images: same feature cache key


def test_binary_image_folder_is_taken_as_is(tmp_path):
    write_folder(tmp_path, ["abnormal", "Normal"])
    data = load_cells(tmp_path)
    assert data.grouping == "given" and not data.has_cell_types and not data.has_groups
    # ClassLabel order from imagefolder is alphabetical; ours is Normal=0, Abnormal=1
    labels = data.dataset["label"]
    assert data.dataset.features["label"].names == ["Normal", "Abnormal"]
    assert sorted(labels) == [0, 0, 0, 1, 1, 1]


def test_cell_type_folders_map_through_grouping(tmp_path):
    write_folder(tmp_path, ["im_Metaplastic", "im_Koilocytotic", "im_Parabasal"], n=2)
    assert sum(load_cells(tmp_path, grouping="clinical").dataset["label"]) == 2
    assert sum(load_cells(tmp_path, grouping="seed").dataset["label"]) == 4
    with pytest.raises(LabelError, match="choose a grouping"):
        load_cells(tmp_path, grouping="given")


def test_unknown_classes_are_refused(tmp_path):
    write_folder(tmp_path, ["cats", "dogs"], n=1)
    with pytest.raises(LabelError, match="cats"):
        load_cells(tmp_path)


def test_file_is_not_a_source(tmp_path):
    (tmp_path / "x.csv").write_text("a")
    with pytest.raises(DatasetLayoutError, match="is a file"):
        load_cells(tmp_path / "x.csv")


def test_hub_dataset_by_id_and_revision(hub, cells_dir):
    import datasets

    repo = "tester/cells-data"
    info = datasets.load_from_disk(str(cells_dir)).push_to_hub(repo)
    data = load_cells(repo, revision=info.oid)
    assert len(data.dataset) == len(datasets.load_from_disk(str(cells_dir)))
    assert data.has_groups and data.has_cell_types
    with pytest.raises(HubError, match="not found"):
        load_cells("tester/no-such-dataset")
