"""Load labelled cell images from a Hub id, a saved dataset or a class-per-folder directory.

Whatever the source, the result is a ``datasets.Dataset`` with an ``image`` column, a
``label`` ClassLabel (Normal, Abnormal) and, when known, ``cell_type`` and ``group``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import DatasetLayoutError, HubError, LabelError
from .labels import CELL_TYPES, LABELS, binary_label, classify_names, match_cell_type, match_label

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedData:
    """A normalised dataset and where it came from."""

    dataset: Any  # datasets.Dataset
    fingerprint: str  # of the images as read, before label mapping (keys the feature cache)
    source: str
    revision: str | None
    grouping: str
    has_cell_types: bool
    has_groups: bool


def _is_saved_dataset(path: Path) -> bool:
    return (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists()


def _pick_split(ds: Any, split: str | None, source: str) -> Any:
    import datasets

    if isinstance(ds, datasets.DatasetDict):
        name = split or ("train" if "train" in ds else None)
        if name is None:
            if len(ds) == 1:
                name = next(iter(ds))
            else:
                raise DatasetLayoutError(
                    f"{source} has splits {list(ds)}; choose one with --split."
                )
        if name not in ds:
            raise DatasetLayoutError(f"{source} has no split {name!r}; it has {list(ds)}.")
        return ds[name]
    return ds


def _read(source: str, revision: str | None, split: str | None) -> Any:
    import datasets

    path = Path(source)
    if path.is_dir():
        if _is_saved_dataset(path):
            return _pick_split(datasets.load_from_disk(str(path)), split, source)
        return datasets.load_dataset("imagefolder", data_dir=str(path), split=split or "train")
    if path.exists():
        raise DatasetLayoutError(f"{source} is a file; give a directory or a Hub dataset id.")
    try:
        return datasets.load_dataset(source, revision=revision, split=split or "train")
    except datasets.exceptions.DatasetNotFoundError as exc:
        raise HubError(
            f"Dataset {source!r} was not found locally or on the Hub ({exc}). Check the id, "
            "the revision and your login (HF_TOKEN) for a private dataset."
        ) from None
    except (ConnectionError, OSError) as exc:
        raise HubError(
            f"Could not load dataset {source!r} from the Hub ({type(exc).__name__}: {exc}). "
            "Check the connection, or pass a local directory."
        ) from None


def _class_names(ds: Any, column: str) -> list[str] | None:
    import datasets

    feature = ds.features.get(column)
    if isinstance(feature, datasets.ClassLabel):
        return list(feature.names)
    return None


def normalise(ds: Any, grouping: str = "clinical") -> tuple[Any, str, bool]:
    """Bring a dataset to the canonical columns.

    Accepted inputs: a ``cell_type`` column (five SIPaKMeD types, ClassLabel or strings), or a
    ``label`` column holding either Normal/Abnormal or the five types (e.g. an imagefolder of
    ``im_<Type>`` folders). Binary labels are derived from cell types under ``grouping``.

    Returns:
        ``(dataset, grouping_used, has_cell_types)``; ``grouping_used`` is ``"given"`` when the
        data was labelled Normal/Abnormal already.

    Raises:
        DatasetLayoutError: no ``image`` column. LabelError: labels that cannot be mapped.
    """
    import datasets

    if "image" not in ds.column_names:
        raise DatasetLayoutError(f"No 'image' column; the dataset has {ds.column_names}.")
    label_names = _class_names(ds, "label")
    if (
        "cell_type" not in ds.column_names
        and label_names
        and classify_names(label_names) == "cell_type"
    ):
        ds = ds.rename_column("label", "cell_type")
    if "cell_type" in ds.column_names:
        names = _class_names(ds, "cell_type")
        raw = ds["cell_type"]
        values = [names[v] for v in raw] if names else [str(v) for v in raw]
        canon = [match_cell_type(v) for v in values]
        bad = sorted({v for v, c in zip(values, canon, strict=True) if c is None})
        if bad:
            raise LabelError(f"Unknown cell types {bad}; expected {list(CELL_TYPES)}.")
        if grouping == "given":
            raise LabelError(
                "The data has cell types: choose a grouping (clinical or seed) to map them to "
                "Normal/Abnormal; 'given' is for data labelled Normal/Abnormal already."
            )
        labels = [binary_label(c, grouping) for c in canon]
        keep = [c for c in ds.column_names if c not in ("cell_type", "label")]
        ds = ds.select_columns(keep)
        ds = ds.add_column("cell_type", canon).add_column("label", labels)
        ds = ds.cast_column("cell_type", datasets.ClassLabel(names=list(CELL_TYPES)))
        ds = ds.cast_column("label", datasets.ClassLabel(names=list(LABELS)))
        return ds, grouping, True
    if "label" not in ds.column_names:
        raise LabelError(
            f"No 'label' or 'cell_type' column; the dataset has {ds.column_names}. Give class "
            "folders named Normal/Abnormal or after the five SIPaKMeD cell types."
        )
    values = [label_names[v] for v in ds["label"]] if label_names else [str(v) for v in ds["label"]]
    canon = [match_label(v) for v in values]
    bad = sorted({v for v, c in zip(values, canon, strict=True) if c is None})
    if bad:
        raise LabelError(
            f"Labels {bad} are neither Normal/Abnormal nor SIPaKMeD cell types {list(CELL_TYPES)}."
        )
    ds = ds.remove_columns("label").add_column("label", canon)
    ds = ds.cast_column("label", datasets.ClassLabel(names=list(LABELS)))
    return ds, "given", False


def load_cells(
    source: str | Path,
    *,
    revision: str | None = None,
    split: str | None = None,
    grouping: str = "clinical",
) -> LoadedData:
    """Load and normalise labelled cells from any supported source.

    Args:
        source: a Hub dataset id, a directory written by ``save_to_disk`` (e.g. by
            ``scripts/prepare_sipakmed.py``), or a class-per-folder image directory.
        revision: Hub revision (a commit sha pins the data).
        split: which split to read (default ``train``).
        grouping: how cell types map to Normal/Abnormal (``clinical`` or ``seed``).
    """
    source = str(source)
    ds = _read(source, revision, split)
    fingerprint = ds._fingerprint
    ds, used, has_types = normalise(ds, grouping)
    has_groups = "group" in ds.column_names
    logger.info(
        "Loaded %d images from %s (grouping=%s, cell types=%s, groups=%s)",
        len(ds),
        source,
        used,
        has_types,
        has_groups,
    )
    return LoadedData(ds, fingerprint, source, revision, used, has_types, has_groups)
