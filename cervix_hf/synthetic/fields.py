"""Harder synthetic fields of view: many cells, touching and overlapping, on an uneven slide.

SYNTHETIC test data for the cell locator (:mod:`cervix_hf.fields`): NOT medical data. Where
the cluster images of :mod:`.tree` paste a few well-separated crops side by side, a field
here is drawn as one slide, the way a smear looks under the microscope:

* cells in clumps, touching and overlapping (their stain adds up where they overlap), and
  cells cut by the border of the field;
* an uneven background (illumination gradient, vignetting, blotches) and uneven staining
  (a smooth stain-strength field over the slide, and a stain factor per cell);
* debris (dark specks and small clumps, faint mucus strands) that is not a cell;
* blur (focus) and pixel noise.

Each field comes with the exact outline of every cell and of its (first) nucleus, clipped
to the field, written by :func:`write_raw_fields` in the SIPaKMeD layout
(``NNN.bmp``, ``NNN_cytMM.dat``, ``NNN_nucMM.dat``) under a tree marked ``SYNTHETIC.txt``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ..boundaries import write_boundary
from ..labels import CELL_TYPES
from .morphology import sample_spec, type_index
from .render import (
    cell_shapes,
    draw_cytoplasm,
    draw_nucleus,
    sample_slide,
    smooth_noise,
    speck,
    stain,
)
from .shapes import TWO_PI
from .tree import start_tree

#: Default field size (width, height) in pixels and cell density (cells per megapixel).
FIELD_SIZE = (1000, 800)
CELLS_PER_MEGAPIXEL = 25.0
#: Smallest and largest side of a generated field.
MIN_FIELD_SIDE = 32
MAX_FIELD_SIDE = 8000
#: Points of a written cytoplasm / nucleus outline.
_CYT_POINTS = 128
_NUC_POINTS = 48
#: Two cells' centres stay at least this fraction of the sum of their radii apart (so a
#: neighbour may cover part of a cell, never most of it or its nucleus).
_MIN_SPACING = 0.62


@dataclass
class SyntheticField:
    """One generated field and the truth about it (field pixel coordinates ``x, y``).

    ``cytoplasm[i]`` and ``nucleus[i]`` outline cell ``i`` (clipped to the field; a
    binucleate cell lists its first nucleus, as SIPaKMeD has one nucleus file per cell);
    ``cell_types[i]`` is its type.
    """

    image: Image.Image
    cell_types: list[str]
    cytoplasm: list[np.ndarray]
    nucleus: list[np.ndarray]


def clip_polygon(points: np.ndarray, width: float, height: float) -> np.ndarray:
    """Clip a polygon to the rectangle ``[0, width] x [0, height]`` (Sutherland-Hodgman).

    Returns an ``(n, 2)`` array, empty when nothing of the polygon is inside.
    """
    pts = [tuple(p) for p in np.asarray(points, dtype=np.float64)]
    # each edge of the rectangle as (axis, limit, keep >= limit?)
    for axis, limit, keep_above in (
        (0, 0.0, True),
        (0, width, False),
        (1, 0.0, True),
        (1, height, False),
    ):
        if not pts:
            break

        def inside(
            p: tuple[float, float],
            axis: int = axis,
            limit: float = limit,
            keep_above: bool = keep_above,
        ) -> bool:
            return p[axis] >= limit if keep_above else p[axis] <= limit

        out: list[tuple[float, float]] = []
        for i, cur in enumerate(pts):
            prev = pts[i - 1]
            if inside(cur) != inside(prev):
                t = (limit - prev[axis]) / (cur[axis] - prev[axis])
                out.append((prev[0] + t * (cur[0] - prev[0]), prev[1] + t * (cur[1] - prev[1])))
            if inside(cur):
                out.append(cur)
        pts = out
    return np.asarray(pts, dtype=np.float64).reshape(-1, 2)


def _polygon_area(points: np.ndarray) -> float:
    if len(points) < 3:
        return 0.0
    x, y = points[:, 0], points[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _uneven_background(rng: np.random.Generator, h: int, w: int, base: np.ndarray) -> np.ndarray:
    """Slide background with a gradient, vignetting and blotches (float32 RGB)."""
    scale = max(h, w)
    xs = (np.arange(w, dtype=np.float32) - w / 2) / scale
    ys = (np.arange(h, dtype=np.float32) - h / 2) / scale
    phi = rng.uniform(0, TWO_PI)
    illum = 1.0 + rng.uniform(0.0, 0.2) * (
        xs[None, :] * math.cos(phi) + ys[:, None] * math.sin(phi)
    )
    illum -= rng.uniform(0.0, 0.3) * (xs[None, :] ** 2 + ys[:, None] ** 2)
    illum += rng.uniform(0.0, 0.04) * smooth_noise(rng, h, w, rng.uniform(60.0, 200.0))
    return (illum[..., None] * base[None, None, :]).astype(np.float32)


def _draw_field_debris(od: np.ndarray, rng: np.random.Generator) -> None:
    """Dark specks and small clumps, and faint mucus strands: stained, but not cells."""
    h, w = od.shape[:2]
    area_mp = h * w / 1e6
    for _ in range(int(rng.poisson(20 * area_mp + 1))):  # specks and small clumps
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        sigma = rng.uniform(0.6, 1.5) if rng.uniform() < 0.7 else rng.uniform(1.5, 3.5)
        color = (90.0, 60.0, 110.0) if rng.uniform() < 0.6 else (150.0, 110.0, 80.0)
        speck(od, rng, x, y, sigma, color)
    for _ in range(int(rng.poisson(2 * area_mp))):  # mucus strands: faint wavy lines
        n = 200
        t = np.linspace(0.0, 1.0, n)
        x0, y0 = rng.uniform(0, w), rng.uniform(0, h)
        ang = rng.uniform(0, TWO_PI)
        length = rng.uniform(0.2, 0.6) * max(h, w)
        wave = rng.uniform(5, 30) * np.sin(t * rng.uniform(2, 8) + rng.uniform(0, TWO_PI))
        px = x0 + t * length * math.cos(ang) - wave * math.sin(ang)
        py = y0 + t * length * math.sin(ang) + wave * math.cos(ang)
        layer = Image.new("L", (w, h), 0)
        ImageDraw.Draw(layer).line(
            list(zip(px.tolist(), py.tolist(), strict=True)),
            fill=255,
            width=int(rng.integers(2, 6)),
        )
        dens = np.asarray(layer.filter(ImageFilter.GaussianBlur(2.0)), np.float32) / 255.0
        stain(od, (slice(0, h), slice(0, w)), dens * rng.uniform(0.1, 0.3), (170.0, 190.0, 205.0))


def _place(
    rng: np.random.Generator, placed: list[tuple[float, float, float]], r: float, w: int, h: int
) -> tuple[float, float] | None:
    """A centre for a cell of radius ``r``: next to a placed cell (touching or overlapping)
    with probability 0.65, anywhere otherwise (its centre inside the field, so a cell cut by
    the border shows at least about half of itself); None when no spot is free."""
    for _ in range(60):
        if placed and rng.uniform() < 0.65:
            px, py, pr = placed[int(rng.integers(len(placed)))]
            ang = rng.uniform(0, TWO_PI)
            d = (pr + r) * rng.uniform(_MIN_SPACING, 1.05)
            cx, cy = px + d * math.cos(ang), py + d * math.sin(ang)
        else:
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        if not (0.0 <= cx <= w and 0.0 <= cy <= h):
            continue
        if all(math.hypot(cx - qx, cy - qy) >= _MIN_SPACING * (qr + r) for qx, qy, qr in placed):
            return cx, cy
    return None


def make_field(
    cell_type: str | Sequence[str],
    rng: np.random.Generator,
    size: tuple[int, int] = FIELD_SIZE,
    n_cells: int | None = None,
) -> SyntheticField:
    """Draw one SYNTHETIC field of view with its cells' exact outlines.

    Args:
        cell_type: the type of every cell, or several types (each cell draws one of them).
        rng: source of randomness; the field is a pure function of its state.
        size: ``(width, height)`` in pixels, each side in ``[MIN_FIELD_SIDE, MAX_FIELD_SIDE]``.
        n_cells: cells to place (fewer when the field has no room left); default about
            ``CELLS_PER_MEGAPIXEL`` per megapixel (20 on 1000x800), at least 1.

    Raises:
        ValueError: an unknown cell type, a size out of range or a negative ``n_cells``.
    """
    types = [cell_type] if isinstance(cell_type, str) else list(cell_type)
    if not types:
        raise ValueError("cell_type: give at least one cell type")
    type_ids = [type_index(t) for t in types]
    w, h = (int(s) for s in size)
    if not (MIN_FIELD_SIDE <= w <= MAX_FIELD_SIDE and MIN_FIELD_SIDE <= h <= MAX_FIELD_SIDE):
        raise ValueError(f"size sides must be in [{MIN_FIELD_SIDE}, {MAX_FIELD_SIDE}], got {size}")
    if n_cells is None:
        n_cells = max(1, round(CELLS_PER_MEGAPIXEL * w * h / 1e6))
    if n_cells < 0:
        raise ValueError(f"n_cells must be >= 0, got {n_cells}")

    slide = sample_slide(rng)
    bg = _uneven_background(rng, h, w, slide.base)
    od = np.zeros((h, w, 3), np.float32)
    xs = np.arange(w, dtype=np.float32) + 0.5
    ys = np.arange(h, dtype=np.float32) + 0.5
    placed: list[tuple[float, float, float]] = []
    out_types: list[str] = []
    cyts: list[np.ndarray] = []
    nucs: list[np.ndarray] = []
    for _ in range(n_cells):
        t = type_ids[int(rng.integers(len(type_ids)))]
        spec = sample_spec(t, rng)
        radius = spec.radius_px
        centre = _place(rng, placed, radius, w, h)
        if centre is None:
            continue
        factor = rng.uniform(0.8, 1.2)  # this cell's stain uptake
        spec.density *= factor
        for nuc in spec.nuclei:
            nuc.density *= factor
        cell, nuc_shapes, halo = cell_shapes(spec, centre[0], centre[1], radius, rng)
        cyt = clip_polygon(cell.polygon(_CYT_POINTS), w, h)
        nuc = clip_polygon(nuc_shapes[0].polygon(_NUC_POINTS), w, h)
        if _polygon_area(cyt) < 0.3 * _polygon_area(cell.polygon(_CYT_POINTS)) or len(nuc) < 3:
            continue  # mostly outside the field, or its nucleus is: not drawn, not listed
        draw_cytoplasm(od, xs, ys, cell, spec, rng, halo)
        for sh, nuc_spec in zip(nuc_shapes, spec.nuclei, strict=True):
            draw_nucleus(od, xs, ys, sh, nuc_spec, rng)
        placed.append((centre[0], centre[1], radius))
        out_types.append(CELL_TYPES[t])
        cyts.append(cyt)
        nucs.append(nuc)
    _draw_field_debris(od, rng)

    uptake = 1.0 + rng.uniform(0.0, 0.15) * smooth_noise(rng, h, w, rng.uniform(80.0, 250.0))
    od *= (uptake[..., None] * slide.od_scale[None, None, :]).astype(np.float32)
    img = bg * np.exp(od, out=od)
    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")
    pil = pil.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.0)))
    noise = rng.standard_normal((h, w, 3), dtype=np.float32) * np.float32(rng.uniform(1.5, 4.0))
    arr = np.asarray(pil, dtype=np.float32) + noise
    image = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "RGB")
    return SyntheticField(image, out_types, cyts, nucs)


def write_raw_fields(
    out_dir: str | Path,
    per_type: int = 4,
    seed: int = 0,
    size: tuple[int, int] = FIELD_SIZE,
    progress: bool = False,
) -> dict[str, int]:
    """Write SYNTHETIC harder fields in the raw SIPaKMeD layout (fields only, no crops).

    ``OUT_DIR/im_<T>/im_<T>/NNN.bmp`` with ``NNN_cytMM.dat`` and ``NNN_nucMM.dat`` per cell,
    all cells of a field of type ``T`` (as in SIPaKMeD), and ``SYNTHETIC.txt``. Field ``c``
    of type index ``t`` is drawn from ``default_rng([seed, t, c, 1])``: byte-identical output
    for the same arguments.

    Returns:
        ``{cell_type: number_of_cells_outlined}`` in ``CELL_TYPES`` order.

    Raises:
        OutputDirNotEmptyError: ``out_dir`` exists and is not an empty directory.
        ValueError: ``per_type < 1``, ``seed < 0`` or a size out of range.
    """
    from tqdm import tqdm

    out = start_tree(
        out_dir,
        per_type,
        seed,
        f"SYNTHETIC Pap-smear-like fields of view written by cervix_hf.synthetic.fields "
        f"(seed {seed}, {per_type} fields per cell type, {size[0]}x{size[1]} pixels).\n"
        "NOT medical data: they say nothing about real cells. For testing the cell locator.\n",
    )
    counts: dict[str, int] = {}
    with tqdm(
        total=per_type * len(CELL_TYPES), disable=not progress, unit="field", desc="fields"
    ) as bar:
        for t, cell_type in enumerate(CELL_TYPES):
            folder = out / f"im_{cell_type}" / f"im_{cell_type}"
            folder.mkdir(parents=True, exist_ok=True)
            counts[cell_type] = 0
            for c in range(1, per_type + 1):
                field = make_field(cell_type, np.random.default_rng([seed, t, c, 1]), size)
                field.image.save(folder / f"{c:03d}.bmp")
                for m, (cyt, nuc) in enumerate(zip(field.cytoplasm, field.nucleus, strict=True), 1):
                    write_boundary(folder / f"{c:03d}_cyt{m:02d}.dat", cyt)
                    write_boundary(folder / f"{c:03d}_nuc{m:02d}.dat", nuc)
                counts[cell_type] += len(field.cytoplasm)
                bar.update(1)
    return counts
