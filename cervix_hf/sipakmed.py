"""Read the extracted SIPaKMeD download into a ``datasets`` dataset.

The download holds, per cell type, ``im_<Type>/im_<Type>/CROPPED/NNN_MM.bmp`` single-cell
crops (NNN = the cluster image the cell was cut from, MM = the cell in it), plus cluster
images and ``.dat`` boundary files, which are skipped (never deleted).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from pathlib import Path

from .errors import DatasetLayoutError
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
