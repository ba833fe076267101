"""Read the extracted SIPaKMeD download into ``datasets`` datasets.

The download holds, per cell type, ``im_<Type>/im_<Type>/CROPPED/NNN_MM.bmp`` single-cell
crops (NNN = the cluster image the cell was cut from, MM = the cell in it), plus the cluster
images ``NNN.bmp`` with the outline of each cell (``NNN_cytMM.dat``, ``NNN_nucMM.dat``).
:func:`build_dataset` makes the cell dataset from the crops; :func:`build_fields_dataset`
makes the optional fields dataset (cluster image, outlines, cell types) that measures the
cell locator. Nothing is ever deleted.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .boundaries import read_boundary
from .errors import DatasetLayoutError
from .images import ImageInput
from .labels import CELL_TYPES, LABELS, binary_label, match_cell_type

logger = logging.getLogger(__name__)

CROP_PATTERN = re.compile(r"^(\d+)_(\d+)\.bmp$", re.IGNORECASE)


def find_cell_crops(raw_dir: str | Path) -> list[tuple[Path, str, str]]:
    """List every single-cell crop of a raw SIPaKMeD tree.

    Returns:
        Sorted ``(path, cell_type, group)`` tuples, ``group`` like ``"Koilocytotic/012"``.

    Raises:
        DatasetLayoutError: listing what was found and what was expected, when the tree has
            no recognisable ``im_<Type>`` folders with ``CROPPED`` crops.
    """
    raw = Path(raw_dir)
    if not raw.is_dir():
        raise DatasetLayoutError(f"{raw} is not a directory: point at the extracted SIPaKMeD.")
    crops: list[tuple[Path, str, str]] = []
    type_dirs: dict[str, list[Path]] = {}
    for path in sorted(raw.rglob("*")):
        if path.is_dir() and path.name.lower().startswith("im_"):
            cell_type = match_cell_type(path.name)
            if cell_type:
                type_dirs.setdefault(cell_type, []).append(path)
    skipped: Counter[str] = Counter()
    seen: set[Path] = set()
    for cell_type, dirs in type_dirs.items():
        for d in dirs:
            for cropped in sorted(
                p for p in d.iterdir() if p.is_dir() and p.name.lower() == "cropped"
            ):
                for f in sorted(cropped.iterdir()):
                    if f in seen or not f.is_file():
                        continue
                    seen.add(f)
                    m = CROP_PATTERN.match(f.name)
                    if m is None:
                        skipped[f.suffix.lower() or f.name] += 1
                        continue
                    crops.append((f, cell_type, f"{cell_type}/{m.group(1)}"))
    found_types = sorted(type_dirs)
    if not crops or len(found_types) < 2:
        top = sorted(p.name + ("/" if p.is_dir() else "") for p in raw.iterdir())[:30]
        raise DatasetLayoutError(
            f"{raw} does not look like the SIPaKMeD download.\n"
            f"  found at the top: {top or 'nothing'}\n"
            f"  cell-type folders recognised: {found_types or 'none'}\n"
            f"  expected: folders im_<Type>/.../CROPPED/NNN_MM.bmp for the types "
            f"{list(CELL_TYPES)} (names match case-insensitively)."
        )
    if skipped:
        logger.info("Skipped in CROPPED folders (not cell crops): %s", dict(skipped))
    return crops


SYNTHETIC_MARKER = "SYNTHETIC.txt"


def build_dataset(raw_dir: str | Path, grouping: str = "clinical"):
    """Build a ``datasets.Dataset`` from a raw SIPaKMeD tree.

    Columns: ``image`` (Image), ``cell_type`` (ClassLabel, the five types), ``label``
    (ClassLabel Normal/Abnormal under ``grouping``) and ``group`` (the cluster image).
    A tree written by :mod:`cervix_hf.synthetic` (it holds ``SYNTHETIC.txt``) is marked
    SYNTHETIC in the dataset description, and models trained on it say so in their card.
    """
    import datasets

    crops = find_cell_crops(raw_dir)
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "cell_type": datasets.ClassLabel(names=list(CELL_TYPES)),
            "label": datasets.ClassLabel(names=list(LABELS)),
            "group": datasets.Value("string"),
        }
    )
    counts = Counter(t for _, t, _ in crops)
    logger.info(
        "Found %d cells in %d cluster images: %s",
        len(crops),
        len({g for _, _, g in crops}),
        {t: counts[t] for t in CELL_TYPES if counts[t]},
    )
    synthetic = (Path(raw_dir) / SYNTHETIC_MARKER).exists()
    description = (
        "SYNTHETIC generated Pap-smear-like cells (cervix_hf.synthetic): not medical data."
        if synthetic
        else "SIPaKMeD single-cell crops (Plissiti et al., ICIP 2018), grouped by cluster image."
    )
    return datasets.Dataset.from_dict(
        {
            # the original file bytes travel inside the dataset (exact pixels, portable)
            "image": [{"bytes": p.read_bytes(), "path": p.name} for p, _, _ in crops],
            "cell_type": [t for _, t, _ in crops],
            "label": [binary_label(t, grouping) for _, t, _ in crops],
            "group": [g for _, _, g in crops],
        },
        features=features,
        info=datasets.DatasetInfo(description=description, features=features),
    )


# --------------------------------------------------------------------------- whole fields

FIELD_PATTERN = re.compile(r"^(\d+)\.bmp$", re.IGNORECASE)
BOUNDARY_PATTERN = re.compile(r"^(\d+)_(cyt|nuc)(\d+)\.dat$", re.IGNORECASE)
#: More outlined cells than this in one field image is refused as malformed.
MAX_CELLS_PER_FIELD = 1000


@dataclass(frozen=True, eq=False)
class CellOutline:
    """One annotated cell of a field: its number ``MM``, type, and outlines (``x, y`` pixels).

    ``nucleus`` is None when the field has no ``NNN_nucMM.dat`` for the cell.
    """

    index: int
    cell_type: str
    cytoplasm: np.ndarray
    nucleus: np.ndarray | None


@dataclass(frozen=True, eq=False)
class FieldRecord:
    """One field image and its annotated cells.

    ``image`` is a path or a ``datasets`` image dict (anything
    :func:`cervix_hf.images.load_image` reads); ``group`` names it like the cell dataset's
    groups (``"Koilocytotic/012"``); ``cell_type`` is its folder's type.
    """

    group: str
    cell_type: str
    image: ImageInput
    cells: tuple[CellOutline, ...]


def find_fields(raw_dir: str | Path) -> list[FieldRecord]:
    """List every cluster image of a raw SIPaKMeD tree with the outlines of its cells.

    Reads ``im_<Type>/.../NNN.bmp`` with ``NNN_cytMM.dat`` and ``NNN_nucMM.dat`` beside it
    (every boundary file is read as hostile input, see :mod:`cervix_hf.boundaries`). A
    cluster image without outlines is skipped (logged); a nucleus outline without its
    cytoplasm outline is ignored (logged); a cell without a nucleus outline keeps
    ``nucleus=None``.

    Raises:
        DatasetLayoutError: no field image with outlines was found, a boundary file is
            malformed, or a field lists more than ``MAX_CELLS_PER_FIELD`` cells.
    """
    raw = Path(raw_dir)
    if not raw.is_dir():
        raise DatasetLayoutError(f"{raw} is not a directory: point at the extracted SIPaKMeD.")
    records: list[FieldRecord] = []
    skipped_images = 0
    orphan_nuclei = 0
    seen: set[Path] = set()
    for folder, cell_type in _type_dirs(raw):
        images: dict[str, Path] = {}
        outlines: dict[str, dict[int, dict[str, Path]]] = {}
        for f in sorted(folder.iterdir()):
            if f in seen or not f.is_file():
                continue
            seen.add(f)
            if m := FIELD_PATTERN.match(f.name):
                images[m.group(1)] = f
            elif m := BOUNDARY_PATTERN.match(f.name):
                cells = outlines.setdefault(m.group(1), {})
                cells.setdefault(int(m.group(3)), {})[m.group(2).lower()] = f
        for stem, path in sorted(images.items()):
            cells = outlines.get(stem, {})
            if not cells:
                skipped_images += 1
                continue
            if len(cells) > MAX_CELLS_PER_FIELD:
                raise DatasetLayoutError(
                    f"{path.name}: {len(cells)} outlined cells, over the limit of "
                    f"{MAX_CELLS_PER_FIELD}; is this a SIPaKMeD folder?"
                )
            found = []
            for index, files in sorted(cells.items()):
                if "cyt" not in files:
                    orphan_nuclei += 1
                    continue
                nucleus = read_boundary(files["nuc"]) if "nuc" in files else None
                found.append(CellOutline(index, cell_type, read_boundary(files["cyt"]), nucleus))
            if found:
                records.append(FieldRecord(f"{cell_type}/{stem}", cell_type, path, tuple(found)))
    if not records:
        raise DatasetLayoutError(
            f"{raw}: no cluster image with cell outlines found; expected im_<Type>/.../NNN.bmp "
            "with NNN_cytMM.dat and NNN_nucMM.dat beside it."
        )
    if skipped_images:
        logger.info("Skipped %d cluster images without outlines.", skipped_images)
    if orphan_nuclei:
        logger.warning("Ignored %d nucleus outlines without a cytoplasm outline.", orphan_nuclei)
    return records


def _type_dirs(raw: Path) -> list[tuple[Path, str]]:
    """The ``im_<Type>`` folders of a raw tree with their canonical cell types."""
    out = []
    for path in sorted(raw.rglob("*")):
        if path.is_dir() and path.name.lower().startswith("im_"):
            cell_type = match_cell_type(path.name)
            if cell_type:
                out.append((path, cell_type))
    return out


def _fields_features():
    import datasets

    point = datasets.List(datasets.Value("float32"), length=2)
    return datasets.Features(
        {
            "image": datasets.Image(),
            "cell_type": datasets.ClassLabel(names=list(CELL_TYPES)),
            "group": datasets.Value("string"),
            "cell_ids": datasets.List(datasets.Value("int32")),
            "cell_types": datasets.List(datasets.ClassLabel(names=list(CELL_TYPES))),
            "cytoplasm": datasets.List(datasets.List(point)),
            "nucleus": datasets.List(datasets.List(point)),
        }
    )


def build_fields_dataset(raw_dir: str | Path):
    """Build a ``datasets.Dataset`` of whole fields from a raw SIPaKMeD tree.

    Columns: ``image`` (the cluster image's bytes), ``cell_type`` (its folder's type),
    ``group`` (``"Koilocytotic/012"``, as in the cell dataset), and per annotated cell
    ``cell_ids`` (``MM``), ``cell_types``, ``cytoplasm`` and ``nucleus`` outlines (lists of
    ``[x, y]``; an empty list where the nucleus outline is missing). A synthetic tree is
    marked SYNTHETIC in the description.
    """
    import datasets

    records = find_fields(raw_dir)
    features = _fields_features()
    synthetic = (Path(raw_dir) / SYNTHETIC_MARKER).exists()
    description = (
        "SYNTHETIC generated Pap-smear-like fields (cervix_hf.synthetic): not medical data."
        if synthetic
        else "SIPaKMeD cluster images with the outlines of their cells (Plissiti et al., 2018)."
    )
    return datasets.Dataset.from_dict(
        {
            "image": [
                {"bytes": Path(r.image).read_bytes(), "path": Path(r.image).name} for r in records
            ],
            "cell_type": [r.cell_type for r in records],
            "group": [r.group for r in records],
            "cell_ids": [[c.index for c in r.cells] for r in records],
            "cell_types": [[c.cell_type for c in r.cells] for r in records],
            "cytoplasm": [[c.cytoplasm.tolist() for c in r.cells] for r in records],
            "nucleus": [
                [c.nucleus.tolist() if c.nucleus is not None else [] for c in r.cells]
                for r in records
            ],
        },
        features=features,
        info=datasets.DatasetInfo(description=description, features=features),
    )


def fields_from_dataset(ds) -> list[FieldRecord]:
    """The :class:`FieldRecord` objects of a dataset written by :func:`build_fields_dataset`.

    Raises:
        DatasetLayoutError: a column is missing, or a row's lists disagree in length.
    """
    needed = {"image", "cell_type", "group", "cell_ids", "cell_types", "cytoplasm", "nucleus"}
    missing = sorted(needed - set(ds.column_names))
    if missing:
        raise DatasetLayoutError(
            f"not a fields dataset (missing columns {missing}); build one with "
            "scripts/prepare_sipakmed.py RAW OUT --fields-out FIELDS."
        )
    import datasets

    names = ds.features["cell_type"].names
    rows = ds.cast_column("image", datasets.Image(decode=False))
    records = []
    for i, row in enumerate(rows):
        n = len(row["cell_ids"])
        if not (len(row["cell_types"]) == len(row["cytoplasm"]) == len(row["nucleus"]) == n):
            raise DatasetLayoutError(f"fields dataset row {i}: cell lists differ in length.")
        cells = tuple(
            CellOutline(
                int(index),
                names[t],
                parse_points(cyt, f"row {i} cell {index} cytoplasm"),
                parse_points(nuc, f"row {i} cell {index} nucleus") if len(nuc) else None,
            )
            for index, t, cyt, nuc in zip(
                row["cell_ids"], row["cell_types"], row["cytoplasm"], row["nucleus"], strict=True
            )
        )
        records.append(FieldRecord(row["group"], names[row["cell_type"]], row["image"], cells))
    return records


def parse_points(points: list, name: str) -> np.ndarray:
    """An outline from a list of ``[x, y]``, checked like a boundary file."""
    arr = np.asarray(points, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2 or len(arr) < 3 or not np.isfinite(arr).all():
        raise DatasetLayoutError(f"{name}: an outline needs at least 3 finite [x, y] points.")
    return arr


def crop_margins(raw_dir: str | Path, limit: int = 5000) -> np.ndarray | None:
    """How the tree's ``CROPPED/`` crops were cut: per crop, the margin on each side as a
    fraction of the cell's outline box, ``(n, 2)`` of ``(x, y)``, from each crop's size and
    its ``NNN_MM_cyt.dat``; None when the tree has no crop with an outline.

    Compare with ``LocatorParams.crop_margin`` (crops of cells near the image border, or
    grown to a minimum size, make some margins larger or smaller).
    """
    from PIL import Image

    try:
        crops = find_cell_crops(raw_dir)[:limit]
    except DatasetLayoutError:  # a tree of fields only
        return None
    out = []
    for path, _, _ in crops:
        dat = path.with_name(f"{path.stem}_cyt.dat")
        if not dat.is_file():
            continue
        pts = read_boundary(dat)
        bw, bh = np.ptp(pts[:, 0]), np.ptp(pts[:, 1])
        if bw < 1 or bh < 1:
            continue
        with Image.open(path) as im:  # the header only: no pixels are decoded
            w, h = im.size
        out.append(((w - bw) / (2 * bw), (h - bh) / (2 * bh)))
    return np.asarray(out) if out else None
