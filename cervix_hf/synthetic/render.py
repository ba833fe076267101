"""Rendering of synthetic cells: Beer-Lambert staining of cytoplasm and nuclei, slides,
background and debris, and one single-cell crop (:func:`make_cell`).

Part of the SYNTHETIC generator (:mod:`cervix_hf.synthetic`): not medical data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from .morphology import CellSpec, NucSpec, sample_spec, type_index
from .shapes import TWO_PI, Shape

#: Smallest / largest side (pixels) of a crop drawn with a random size.
MIN_SIDE = 64
MAX_SIDE = 160


def smooth_noise(rng: np.random.Generator, h: int, w: int, scale: float) -> np.ndarray:
    """Roughly unit-variance noise with features of about ``scale`` pixels."""
    gh, gw = max(2, int(h / scale) + 2), max(2, int(w / scale) + 2)
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    return np.asarray(Image.fromarray(grid).resize((w, h), Image.Resampling.BICUBIC))


def speck(
    od: np.ndarray,
    rng: np.random.Generator,
    x: float,
    y: float,
    sigma: float,
    color: tuple[float, float, float],
) -> None:
    """Stain a Gaussian speck of debris at (x, y) into the optical density ``od``; a speck
    wholly off the image draws nothing (and takes nothing from ``rng``)."""
    h, w = od.shape[:2]
    e = int(3 * sigma) + 1
    sy = slice(max(0, int(y) - e), min(h, int(y) + e + 1))
    sx = slice(max(0, int(x) - e), min(w, int(x) + e + 1))
    if sy.start >= sy.stop or sx.start >= sx.stop:
        return
    yy = np.arange(sy.start, sy.stop)[:, None] + 0.5 - y
    xx = np.arange(sx.start, sx.stop)[None, :] + 0.5 - x
    dens = rng.uniform(0.5, 1.5) * np.exp(-(xx**2 + yy**2) / (2 * sigma**2))
    stain(od, (sy, sx), dens, color)


def stain(
    od: np.ndarray,
    sl: tuple[slice, slice],
    density: np.ndarray,
    color: tuple[float, float, float],
) -> None:
    """Beer-Lambert: add ``density * log(color / 255)`` to the optical-density image ``od``."""
    logt = np.log(np.clip(np.asarray(color, dtype=np.float32) / 255.0, 0.02, 1.0))
    od[sl] += density.astype(np.float32, copy=False)[..., None] * logt


def bump(x: np.ndarray) -> np.ndarray:
    """Cheap smooth bump: 1 at 0, falling to 0 at |x| = 1 (a Gaussian stand-in)."""
    return np.square(np.maximum(np.float32(1.0) - np.square(x), np.float32(0.0)))


def soft(sd: np.ndarray, width: float = 1.2) -> np.ndarray:
    return np.clip(sd / width + 0.5, 0.0, 1.0)


@dataclass
class Rendered:
    image: Image.Image
    mask: Image.Image  # "L": the main cell (cytoplasm) with a soft edge, for cluster images
    cyt_polygon: np.ndarray
    nuc_polygon: np.ndarray


def draw_cytoplasm(
    od: np.ndarray,
    xs: np.ndarray,
    ys: np.ndarray,
    shape: Shape,
    spec: CellSpec,
    rng: np.random.Generator,
    halo: Shape | None = None,
) -> np.ndarray:
    """Stain one cell's cytoplasm (with vacuoles / halo); return its (h, w) soft mask."""
    h, w = od.shape[:2]
    full = np.zeros((h, w), np.float32)
    win = shape.window(h, w, 3.0)
    if win is None:
        return full
    sy, sx = win
    sd = shape.signed_distance(xs[sx], ys[sy])
    m = soft(sd)
    tex = smooth_noise(rng, sy.stop - sy.start, sx.stop - sx.start, rng.uniform(4.0, 9.0))
    dens = spec.density * m * (1.0 + spec.texture * tex)
    dens += spec.edge * m * bump(sd / rng.uniform(2.0, 4.5))
    r = math.sqrt(shape.a * shape.b)
    c, s = math.cos(shape.rot), math.sin(shape.rot)
    for vdx, vdy, vr in spec.vacuoles:
        lx, ly = vdx * shape.a, vdy * shape.b  # in the cell's frame, then rotated
        vx = shape.cx + lx * c - ly * s
        vy = shape.cy + lx * s + ly * c
        d2 = (xs[sx][None, :] - vx) ** 2 + (ys[sy][:, None] - vy) ** 2
        vac = soft(vr * r - np.sqrt(d2))
        dens *= 1.0 - 0.8 * vac
        dens += 0.25 * spec.density * bump((np.sqrt(d2) - vr * r) / 2.0) * m
    if halo is not None and spec.halo is not None:
        rw = spec.halo.rim_width
        hwin = halo.window(h, w, 3.0 * rw + 2.0)
        if hwin is not None:
            y0, y1 = max(hwin[0].start, sy.start), min(hwin[0].stop, sy.stop)
            x0, x1 = max(hwin[1].start, sx.start), min(hwin[1].stop, sx.stop)
            if y0 < y1 and x0 < x1:
                loc = (slice(y0 - sy.start, y1 - sy.start), slice(x0 - sx.start, x1 - sx.start))
                hsd = halo.signed_distance(xs[x0:x1], ys[y0:y1])
                sub = dens[loc] * (1.0 - spec.halo.clear * soft(hsd, 2.0))
                dens[loc] = sub + spec.halo.rim * m[loc] * bump((hsd + rw) / (1.4 * rw))
    stain(od, win, np.clip(dens, 0.0, None), spec.color)
    full[win] = m
    return full


def draw_nucleus(
    od: np.ndarray,
    xs: np.ndarray,
    ys: np.ndarray,
    shape: Shape,
    nuc: NucSpec,
    rng: np.random.Generator,
) -> None:
    h, w = od.shape[:2]
    win = shape.window(h, w, 2.0)
    if win is None:
        return
    sy, sx = win
    sd = shape.signed_distance(xs[sx], ys[sy])
    m = soft(sd, 1.0)
    hh, ww = sy.stop - sy.start, sx.stop - sx.start
    chrom = smooth_noise(rng, hh, ww, rng.uniform(1.4, 2.8))
    dens = nuc.density * m * (1.0 + nuc.texture * chrom)
    # slightly darker nuclear membrane
    dens += 0.25 * nuc.density * m * bump(sd / 2.0)
    stain(od, win, np.clip(dens, 0.0, None), nuc.color)


def cell_shapes(
    spec: CellSpec, cx: float, cy: float, radius: float, rng: np.random.Generator
) -> tuple[Shape, list[Shape], Shape | None]:
    """Place cytoplasm, nuclei and halo of a cell centred at (cx, cy) with ``radius`` px."""
    a = radius / math.sqrt(spec.aspect)
    b = radius * math.sqrt(spec.aspect)
    cell = Shape(cx, cy, a, b, spec.rot, spec.profile)
    # nucleus group (and halo) offset: eccentric but inside the cytoplasm
    nuc_r = max(n.r + math.hypot(n.dx, n.dy) for n in spec.nuclei) * float(
        max(n.profile.max() for n in spec.nuclei)
    )
    inner = float(spec.profile.min()) * math.sqrt(spec.aspect)  # in radius units (short axis)
    group_r = nuc_r
    if spec.halo is not None:
        stretch = float(spec.halo.profile.max()) / math.sqrt(spec.halo.aspect)
        hscale = min(spec.halo.scale, max(1.2, 0.85 * inner / (nuc_r * stretch)))
        group_r = nuc_r * hscale * stretch
    room = max(0.0, inner - group_r - 0.06)
    ang, dist = rng.uniform(0, TWO_PI), rng.uniform(0, 0.8) * room
    gx, gy = dist * math.cos(ang) * radius, dist * math.sin(ang) * radius
    nuclei = [
        Shape(
            cx + gx + nuc.dx * radius,
            cy + gy + nuc.dy * radius,
            nuc.r * radius,
            nuc.r * radius * nuc.aspect,
            nuc.rot,
            nuc.profile,
        )
        for nuc in spec.nuclei
    ]
    halo = None
    if spec.halo is not None:
        hr = nuc_r * hscale * radius
        hx = float(np.mean([n.cx for n in nuclei]))
        hy = float(np.mean([n.cy for n in nuclei]))
        halo = Shape(
            hx,
            hy,
            hr / math.sqrt(spec.halo.aspect),
            hr * math.sqrt(spec.halo.aspect),
            rng.uniform(0, np.pi),
            spec.halo.profile,
        )
    return cell, nuclei, halo


@dataclass
class Slide:
    """What the cells of one cluster share: background colour and staining."""

    base: np.ndarray  # background RGB
    od_scale: np.ndarray  # per-channel factor on every optical density (stain strength, tint)


def sample_slide(rng: np.random.Generator) -> Slide:
    base = np.array([226.0, 218.0, 228.0]) + rng.normal(0.0, 5.0, 3)
    if rng.uniform() < 0.5:  # bluish-grey rather than pinkish-grey
        base += np.array([-6.0, 2.0, 6.0])
    scale = rng.uniform(0.85, 1.15) * (1.0 + rng.normal(0.0, 0.05, 3))
    return Slide(base, scale.astype(np.float32))


def background(rng: np.random.Generator, h: int, w: int, base: np.ndarray) -> np.ndarray:
    phi = rng.uniform(0, TWO_PI)
    grad = rng.uniform(0.0, 0.08)
    xs = (np.arange(w) - w / 2) / max(h, w)
    ys = (np.arange(h) - h / 2) / max(h, w)
    illum = 1.0 + grad * (xs[None, :] * math.cos(phi) + ys[:, None] * math.sin(phi))
    illum = illum + 0.015 * smooth_noise(rng, h, w, rng.uniform(10.0, 30.0))
    return (illum[..., None] * base[None, None, :]).astype(np.float32)


def draw_debris(od: np.ndarray, rng: np.random.Generator) -> None:
    h, w = od.shape[:2]
    for _ in range(int(rng.poisson(1.5))):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        sigma = rng.uniform(0.6, 2.0)
        color = (90.0, 60.0, 110.0) if rng.uniform() < 0.6 else (150.0, 110.0, 80.0)
        speck(od, rng, x, y, sigma, color)


def render_cell(
    cell_type: str,
    rng: np.random.Generator,
    size: int | None = None,
    slide: Slide | None = None,
) -> Rendered:
    """Draw one crop; also return the cell mask and boundary polygons (crop coordinates)."""
    type_idx = type_index(cell_type)
    if size is not None and not (16 <= int(size) <= 1024):
        raise ValueError(f"size must be in [16, 1024], got {size}")
    spec = sample_spec(type_idx, rng)

    # Canvas: the cell's bounding box plus a margin, like a crop from a cluster image.
    unit = Shape(
        0.0, 0.0, 1 / math.sqrt(spec.aspect), math.sqrt(spec.aspect), spec.rot, spec.profile
    )
    pts = unit.polygon(64)
    (xmin, ymin), (xmax, ymax) = pts.min(axis=0), pts.max(axis=0)
    margin = rng.uniform(1.1, 1.35)
    if size is None:
        radius = spec.radius_px
        longest = max(xmax - xmin, ymax - ymin) * radius * margin
        if longest > MAX_SIDE:
            radius *= MAX_SIDE / longest
        w = int(np.clip(math.ceil((xmax - xmin) * radius * margin), MIN_SIDE, MAX_SIDE))
        h = int(np.clip(math.ceil((ymax - ymin) * radius * margin), MIN_SIDE, MAX_SIDE))
    else:
        w = h = int(size)
        radius = w / (max(xmax - xmin, ymax - ymin) * margin)
    slack_x = max(0.0, w - (xmax - xmin) * radius)
    slack_y = max(0.0, h - (ymax - ymin) * radius)
    cx = w / 2 - (xmin + xmax) / 2 * radius + rng.uniform(-0.3, 0.3) * slack_x
    cy = h / 2 - (ymin + ymax) / 2 * radius + rng.uniform(-0.3, 0.3) * slack_y

    if slide is None:
        slide = sample_slide(rng)
    bg = background(rng, h, w, slide.base)
    od = np.zeros((h, w, 3), np.float32)  # optical density, applied to bg at the end
    xs = np.arange(w, dtype=np.float32) + 0.5
    ys = np.arange(h, dtype=np.float32) + 0.5

    # Distractor: a partial neighbouring cell at the edge of the crop.
    if rng.uniform() < 0.3:
        nspec = sample_spec(int(rng.integers(0, 3)), rng)
        nr = radius * rng.uniform(0.7, 1.2)
        ang = rng.uniform(0, TWO_PI)
        dist = 0.5 * math.hypot(w, h) + nr * rng.uniform(0.1, 0.7)
        ncell, nnucs, _ = cell_shapes(
            nspec, w / 2 + dist * math.cos(ang), h / 2 + dist * math.sin(ang), nr, rng
        )
        draw_cytoplasm(od, xs, ys, ncell, nspec, rng)
        for sh, nuc in zip(nnucs, nspec.nuclei, strict=True):
            draw_nucleus(od, xs, ys, sh, nuc, rng)

    # Dyskeratotic cells come in clusters: overlapping cells of the same type.
    for _ in range(spec.n_overlapping):
        ospec = sample_spec(type_idx, rng)
        orad = radius * rng.uniform(0.7, 1.1)
        ang = rng.uniform(0, TWO_PI)
        dist = radius * rng.uniform(1.1, 1.7)
        ocell, onucs, _ = cell_shapes(
            ospec, cx + dist * math.cos(ang), cy + dist * math.sin(ang), orad, rng
        )
        draw_cytoplasm(od, xs, ys, ocell, ospec, rng)
        for sh, nuc in zip(onucs, ospec.nuclei, strict=True):
            draw_nucleus(od, xs, ys, sh, nuc, rng)

    cell, nucs, halo = cell_shapes(spec, cx, cy, radius, rng)
    mask = draw_cytoplasm(od, xs, ys, cell, spec, rng, halo)
    for sh, nuc in zip(nucs, spec.nuclei, strict=True):
        draw_nucleus(od, xs, ys, sh, nuc, rng)
    draw_debris(od, rng)

    img = bg * np.exp(od * slide.od_scale, out=od)
    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")
    pil = pil.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.0)))
    noise = rng.standard_normal((h, w, 3), dtype=np.float32) * np.float32(rng.uniform(1.5, 4.0))
    arr = np.asarray(pil, dtype=np.float32) + noise
    image = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "RGB")
    mask_img = Image.fromarray((np.clip(mask, 0, 1) * 255).astype(np.uint8), "L")
    return Rendered(image, mask_img, cell.polygon(64), nucs[0].polygon(32))


def make_cell(cell_type: str, rng: np.random.Generator, size: int | None = None) -> Image.Image:
    """Draw one synthetic RGB single-cell crop.

    Args:
        cell_type: One of ``CELL_TYPES``.
        rng: Source of randomness; the image is a pure function of its state.
        size: Side of a square crop in pixels; ``None`` draws a type-dependent size and
            aspect with sides in ``[MIN_SIDE, MAX_SIDE]``.

    Returns:
        An RGB ``PIL.Image.Image``.

    Raises:
        ValueError: ``cell_type`` is not one of ``CELL_TYPES`` (the message lists them).
    """
    return render_cell(cell_type, rng, size).image
