"""The raw SIPaKMeD download layout, written with synthetic cells (:func:`write_raw_sipakmed`).

Part of the SYNTHETIC generator (:mod:`cervix_hf.synthetic`): not medical data.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from ..boundaries import write_boundary
from ..errors import CervixError
from ..labels import CELL_TYPES
from ..sipakmed import SYNTHETIC_MARKER
from .render import Rendered, Slide, background, draw_debris, render_cell, sample_slide


class OutputDirNotEmptyError(CervixError, FileExistsError):
    """The output directory of :func:`write_raw_sipakmed` exists and is not empty."""


#: Clusters per type that also get a cluster image + boundary files (the preparer skips
#: them; writing all would mostly cost disk space).
CLUSTER_IMAGES_PER_TYPE = 3


def _cluster_sizes(rng: np.random.Generator, n: int) -> list[int]:
    """Split ``n`` cells into clusters of 2-5 cells (``n == 1``: one single-cell cluster)."""
    sizes: list[int] = []
    remaining = n
    while remaining > 0:
        k = min(int(rng.integers(2, 6)), remaining)
        if remaining - k == 1:  # do not leave a single cell for the last cluster
            k = k - 1 if k > 2 else k + 1
        sizes.append(k)
        remaining -= k
    return sizes


def _cluster_image(
    rng: np.random.Generator, cells: list[Rendered], slide: Slide
) -> tuple[Image.Image, list[tuple[int, int]]]:
    """Paste the cells of one cluster onto a larger field; return it and each cell's offset."""
    n = len(cells)
    rows = 1 if n <= 3 else 2
    cols = math.ceil(n / rows)
    slot_w = max(c.image.width for c in cells)
    slot_h = max(c.image.height for c in cells)
    step_x, step_y = int(slot_w * 0.85), int(slot_h * 0.85)
    pad = 24
    w = 2 * pad + step_x * (cols - 1) + slot_w
    h = 2 * pad + step_y * (rows - 1) + slot_h
    od = np.zeros((h, w, 3), np.float32)
    draw_debris(od, rng)
    bg = background(rng, h, w, slide.base) * np.exp(od)
    bg += rng.normal(0.0, 2.5, bg.shape).astype(np.float32)
    field_img = Image.fromarray(np.clip(np.rint(bg), 0, 255).astype(np.uint8), "RGB")
    offsets = []
    for i, c in enumerate(cells):
        r, q = divmod(i, cols)
        x = pad + q * step_x + int(rng.integers(-pad // 2, pad // 2 + 1))
        y = pad + r * step_y + int(rng.integers(-pad // 2, pad // 2 + 1))
        x = int(np.clip(x, 0, w - c.image.width))
        y = int(np.clip(y, 0, h - c.image.height))
        field_img.paste(c.image, (x, y), c.mask.filter(ImageFilter.GaussianBlur(1.5)))
        offsets.append((x, y))
    return field_img, offsets


def _write_cluster(
    folder: Path,
    cluster_id: int,
    rng: np.random.Generator,
    cells: list[Rendered],
    slide: Slide,
) -> None:
    """Write cluster image ``NNN.bmp`` and its ``NNN_cytMM.dat`` / ``NNN_nucMM.dat``."""
    field_img, offsets = _cluster_image(rng, cells, slide)
    field_img.save(folder / f"{cluster_id:03d}.bmp")
    for m, (cell, (ox, oy)) in enumerate(zip(cells, offsets, strict=True), start=1):
        shift = np.array([ox, oy], dtype=float)
        write_boundary(folder / f"{cluster_id:03d}_cyt{m:02d}.dat", cell.cyt_polygon + shift)
        write_boundary(folder / f"{cluster_id:03d}_nuc{m:02d}.dat", cell.nuc_polygon + shift)


def start_tree(out_dir: str | Path, per_type: int, seed: int, marker: str) -> Path:
    """Check the arguments of a generated tree, make its (empty) folder and mark it SYNTHETIC
    (the marker makes the preparer label the data set, and models trained on it, SYNTHETIC).

    Raises:
        OutputDirNotEmptyError: ``out_dir`` exists and is not an empty directory.
        ValueError: ``per_type < 1`` or ``seed < 0``.
    """
    out = Path(out_dir)
    if per_type < 1:
        raise ValueError(f"per_type must be >= 1, got {per_type}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OutputDirNotEmptyError(
            f"{out} exists and is not empty; pass a new or empty directory"
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / SYNTHETIC_MARKER).write_text(marker, encoding="ascii")
    return out


def write_raw_sipakmed(
    out_dir: str | Path, per_type: int = 40, seed: int = 0, progress: bool = False
) -> dict[str, int]:
    """Write a synthetic data set in the raw SIPaKMeD download layout.

    Every cell belongs to a cluster of 2-5 cells and gets a crop under ``CROPPED/`` with
    its boundary files; the first ``CLUSTER_IMAGES_PER_TYPE`` clusters of each type also get
    a cluster image with boundary files. ``SYNTHETIC.txt`` marks the tree as generated.
    Cluster ``c`` of type index ``t`` is drawn from ``default_rng([seed, t, c])``, so the
    output is byte-identical for the same arguments, whatever the order of generation.

    Args:
        out_dir: Destination; created if missing, must be empty if it exists.
        per_type: Number of single-cell crops per cell type (>= 1).
        seed: Non-negative integer seed.
        progress: Show a tqdm progress bar.

    Returns:
        ``{cell_type: number_of_cell_crops}`` in ``CELL_TYPES`` order.

    Raises:
        OutputDirNotEmptyError: ``out_dir`` exists and is not an empty directory (a
            ``FileExistsError`` and a ``CervixError``).
        ValueError: ``per_type < 1`` or ``seed < 0``.
    """
    from tqdm import tqdm

    out = start_tree(
        out_dir,
        per_type,
        seed,
        f"SYNTHETIC Pap-smear-like cell images written by cervix_hf.synthetic "
        f"(seed {seed}, {per_type} per cell type).\n"
        "NOT medical data: they say nothing about real cells. For tests and the offline demo.\n",
    )
    counts: dict[str, int] = {}
    with tqdm(
        total=per_type * len(CELL_TYPES), disable=not progress, unit="cell", desc="synthetic"
    ) as bar:
        for t, cell_type in enumerate(CELL_TYPES):
            folder = out / f"im_{cell_type}" / f"im_{cell_type}"
            cropped = folder / "CROPPED"
            cropped.mkdir(parents=True, exist_ok=True)
            sizes = _cluster_sizes(np.random.default_rng([seed, t]), per_type)
            for cluster_id, n_cells in enumerate(sizes, start=1):
                rng = np.random.default_rng([seed, t, cluster_id])
                slide = sample_slide(rng)
                cells = [render_cell(cell_type, rng, slide=slide) for _ in range(n_cells)]
                for m, cell in enumerate(cells, start=1):
                    stem = f"{cluster_id:03d}_{m:02d}"
                    cell.image.save(cropped / f"{stem}.bmp")
                    write_boundary(cropped / f"{stem}_cyt.dat", cell.cyt_polygon)
                    write_boundary(cropped / f"{stem}_nuc.dat", cell.nuc_polygon)
                if cluster_id <= CLUSTER_IMAGES_PER_TYPE:
                    _write_cluster(folder, cluster_id, rng, cells, slide)
                bar.update(n_cells)
            counts[cell_type] = per_type
    return counts
