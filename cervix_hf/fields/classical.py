"""The classical cell locator: optical density, nuclei as seeds, watershed.

CPU only, offline, numpy + SciPy + scikit-image, about 0.5-1 s for a 1000x800 field on one
core. Steps (parameters in :class:`~cervix_hf.fields.params.LocatorParams`; tuned on
generated fields only, never on a test set):

1. **Background**: the slide's brightness per channel, fit on a coarse grid: a quadratic
   surface through the bright (unstained) grid cells, then a smooth local correction from
   the unstained grid cells nearby (uneven illumination).
2. **Optical density** ``log(background / pixel)`` per channel (Beer-Lambert: stains add up
   where cells overlap), smoothed.
3. **Stained pixels**: summed optical density above ``cytoplasm_od``. Holes are filled when
   they are small or next to a nucleus (a koilocyte's clear halo).
4. **Nuclei**: how much darker each pixel's *brightest* channel is (coloured cytoplasm is
   bright in one channel at least, a nucleus is dark in all) than the cytoplasm around it.
   Dark blobs are cut at rising levels until a part is nucleus-sized, convex and, unless it
   is very dark, coloured like nuclear stain rather than like more of the cytoplasm around
   it (where two cells overlap).
5. **Cells**: a watershed of the optical-density gradient (nuclei and halos replaced by the
   cytoplasm around them) from the nuclei large enough to be seeds, inside the stained
   pixels; seeds left with little cytoplasm give it to their neighbours; stained regions no
   seed reached become cells of their own; regions with a soft border (a patch of uneven
   background) and regions under ``cell_min_area`` are dropped.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..errors import LocatorError
from .locate import LocatedCell, crop_box
from .params import LocatorParams


class ClassicalLocator:
    """Locates cells with classical image processing (see the module docstring)."""

    def __init__(self, params: LocatorParams | None = None) -> None:
        self.params = params or LocatorParams()

    def locate(self, image: Image.Image) -> list[LocatedCell]:
        """Return the cells of an RGB field in reading order (ids from 1).

        Raises:
            LocatorError: the field has more than ``params.max_field_pixels`` pixels, or is
                not a PIL image.
        """
        p = self.params
        if not isinstance(image, Image.Image):
            raise LocatorError(
                f"the locator takes a PIL image, not a {type(image).__name__}; read uploads "
                "with cervix_hf.images.load_image (or call analyze_field)."
            )
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        w, h = rgb.size
        if w * h > p.max_field_pixels:
            raise LocatorError(
                f"the field is {w}x{h} = {w * h:,} pixels, over the locator's limit of "
                f"{p.max_field_pixels:,}; crop or downscale it."
            )
        if min(w, h) < 4:
            return []
        arr = np.asarray(rgb, dtype=np.float32)
        labels, nuclei = segment(arr, p)
        return _cells(rgb, labels, nuclei, p)


# --------------------------------------------------------------------------- steps


def background(arr: np.ndarray, p: LocatorParams) -> np.ndarray:
    """Per-channel background brightness (h, w, 3), see step 1."""
    from scipy.ndimage import gaussian_filter

    h, w = arr.shape[:2]
    step = max(2, round(p.px(p.background_window)))
    gh, gw = h // step, w // step
    if gh < 3 or gw < 3:  # too small to fit a surface: the brightest tenth, flat
        lum = arr.mean(axis=2)
        bright = lum >= np.quantile(lum, 0.9)
        return np.broadcast_to(arr[bright].mean(axis=0), arr.shape).astype(np.float32)
    grid = arr[: gh * step, : gw * step].reshape(gh, step, gw, step, 3).mean(axis=(1, 3))
    yy, xx = np.mgrid[0:gh, 0:gw].astype(np.float64)
    yy, xx = yy / max(gh, gw), xx / max(gh, gw)
    design = np.stack([np.ones_like(xx), xx, yy, xx * xx, xx * yy, yy * yy], axis=-1)
    design = design.reshape(-1, 6)
    values = grid.reshape(-1, 3).astype(np.float64)
    lum = values.mean(axis=1)
    keep = lum >= np.quantile(lum, 0.7)  # start from the brightest 30 %
    for _ in range(4):
        coef, *_ = np.linalg.lstsq(design[keep], values[keep], rcond=None)
        fit = design @ coef
        resid = (values - fit).mean(axis=1)
        spread = 1.4826 * np.median(np.abs(resid[keep] - np.median(resid[keep]))) + 1e-3
        keep = resid > -3.0 * spread
    surface = fit.reshape(gh, gw, 3)
    # local correction: mean residual of the unstained grid cells nearby (normalised blur)
    resid = (grid - surface) * keep.reshape(gh, gw, 1)
    sigma = 4.0
    num = gaussian_filter(resid, (sigma, sigma, 0))
    den = gaussian_filter(keep.reshape(gh, gw).astype(np.float64), sigma)[..., None]
    surface = surface + np.where(den > 0.05, num / np.maximum(den, 1e-6), 0.0)
    full = np.stack([_resize(surface[..., c], h, w) for c in range(3)], axis=-1)
    return np.maximum(full, 1.0)


def _resize(a: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bilinear resize of a 2-D float array to (h, w) (Pillow: fast, no copy of channels)."""
    img = Image.fromarray(np.ascontiguousarray(a, dtype=np.float32), mode="F")
    return np.asarray(img.resize((w, h), Image.Resampling.BILINEAR), dtype=np.float32)


def _smooth(a: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of a 2-D array; wide ones on a grid ``sigma / 4`` coarser (same result
    to a few per cent, many times faster)."""
    from scipy.ndimage import gaussian_filter

    f = int(sigma // 4)
    h, w = a.shape
    if f < 2 or h < 4 * f or w < 4 * f:
        return gaussian_filter(a.astype(np.float32), sigma)
    gh, gw = -(-h // f), -(-w // f)
    padded = np.pad(a.astype(np.float32), ((0, gh * f - h), (0, gw * f - w)), mode="edge")
    small = padded.reshape(gh, f, gw, f).mean(axis=(1, 3))
    small = gaussian_filter(small, sigma / f)
    return _resize(small, gh * f, gw * f)[:h, :w]


def _masked_mean(a: np.ndarray, weight: np.ndarray, sigma: float, min_weight: float) -> np.ndarray:
    """Gaussian-weighted mean of ``a`` over the pixels of ``weight`` (normalised
    convolution); 0 where less than ``min_weight`` of the neighbourhood counts."""
    num = _smooth(a * weight, sigma)
    den = _smooth(weight, sigma)
    return np.where(den > min_weight, num / np.maximum(den, 1e-6), 0.0).astype(np.float32)


def optical_density(arr: np.ndarray, p: LocatorParams) -> np.ndarray:
    """Optical density per channel (h, w, 3) relative to the background, smoothed."""
    from scipy.ndimage import gaussian_filter

    bg = background(arr, p)
    od = np.log(bg / np.maximum(arr, 1.0))
    if p.smoothing > 0:
        s = p.px(p.smoothing)
        od = gaussian_filter(od, (s, s, 0))
    return od.astype(np.float32)


def nucleus_contrast(od: np.ndarray, stained: np.ndarray, p: LocatorParams) -> np.ndarray:
    """How much darker each pixel's brightest channel is than the cytoplasm around it.

    The cytoplasm level is a Gaussian-weighted mean over stained pixels (normalised
    convolution, sigma ``nucleus_radius``) that leaves out pixels already standing out, so
    a large nucleus does not raise its own reference. Where no cytoplasm is near (a bare
    nucleus), the slide background is the reference.
    """
    from scipy.ndimage import binary_dilation

    dark = od.min(axis=2)
    sigma = p.px(p.nucleus_radius)
    weight = stained.astype(np.float32)
    for _ in range(2):
        ref = _masked_mean(dark, weight, sigma, 0.05)
        standing_out = binary_dilation(dark - ref > p.nucleus_od_low, iterations=2)
        weight = (stained & ~standing_out).astype(np.float32)
    return (dark - ref).astype(np.float32)


def find_nuclei(
    od: np.ndarray, stained: np.ndarray, p: LocatorParams
) -> tuple[np.ndarray, np.ndarray]:
    """Labelled nuclei (h, w) int32 and the nucleus contrast map, see step 4.

    Candidates are the connected parts of ``contrast > nucleus_od_low``. One that fails a
    test (size, convexity, colour) is cut at a higher contrast level, which splits nuclei
    joined through overlapping cytoplasm, until its parts pass or vanish (the nuclei are
    the most stable dark blobs, as in MSER).
    """
    from scipy.ndimage import find_objects
    from scipy.ndimage import label as cc_label

    contrast = nucleus_contrast(od, stained, p)
    lo, hi = p.px2(p.nucleus_min_area), p.px2(p.nucleus_max_area)
    stain = _unit(-np.log(np.asarray(p.nucleus_colour, dtype=np.float64) / 255.0))
    out = np.zeros(contrast.shape, np.int32)
    step = max(0.02, (p.nucleus_od - p.nucleus_od_low) / 3)
    top = float(contrast.max(initial=0.0))
    labels, _ = cc_label(contrast > p.nucleus_od_low)
    stack = [
        (sl, labels[sl] == i, p.nucleus_od_low)
        for i, sl in enumerate(find_objects(labels), start=1)
        if sl is not None
    ]
    count = 0
    while stack:
        sl, mask, level = stack.pop()
        area = int(mask.sum())
        if area < lo:
            continue
        peak = float(contrast[sl][mask].max())
        if peak < p.nucleus_od:
            continue
        if area <= hi and _is_nucleus(od, stained, sl, mask, peak, stain, p):
            count += 1
            out[sl][mask] = count
            continue
        level += step
        if level > top:
            continue
        sub, _ = cc_label(mask & (contrast[sl] > level))
        for j, ssl in enumerate(find_objects(sub), start=1):
            if ssl is None:
                continue
            glob = tuple(
                slice(s.start + o.start, s.start + o.stop) for s, o in zip(sl, ssl, strict=True)
            )
            stack.append((glob, sub[ssl] == j, level))
    return out, contrast


def _is_nucleus(
    od: np.ndarray,
    stained: np.ndarray,
    sl: tuple[slice, slice],
    mask: np.ndarray,
    peak: float,
    stain: np.ndarray,
    p: LocatorParams,
) -> bool:
    """Convex enough, and nuclear-coloured unless dark beyond doubt."""
    from skimage.measure import regionprops

    (r,) = regionprops(mask.astype(np.uint8))
    if r.solidity < p.nucleus_min_solidity:
        return False
    if peak >= p.nucleus_sure_od:
        return True
    return nuclear_share(od, stained, sl, mask, stain, p) >= p.nucleus_colour_share


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def nuclear_share(
    od: np.ndarray,
    stained: np.ndarray,
    sl: tuple[slice, slice],
    inside: np.ndarray,
    stain: np.ndarray,
    p: LocatorParams,
) -> float:
    """Share of a candidate's extra optical density (over the ring of cytoplasm around it)
    that is nuclear ``stain`` rather than more of the ring's own colour (as where two cells
    overlap). 1 when the ring is unstained (a bare nucleus) or has the stain's colour.
    """
    from scipy.ndimage import binary_dilation

    pad = round(p.px(6.0)) + 1
    h, w = stained.shape
    y0, x0 = max(0, sl[0].start - pad), max(0, sl[1].start - pad)
    y1, x1 = min(h, sl[0].stop + pad), min(w, sl[1].stop + pad)
    cand = np.zeros((y1 - y0, x1 - x0), bool)
    cand[sl[0].start - y0 : sl[0].stop - y0, sl[1].start - x0 : sl[1].stop - x0] = inside
    near = binary_dilation(cand, iterations=max(1, round(p.px(2.0))))
    ring = binary_dilation(near, iterations=max(1, round(p.px(4.0)))) & ~near
    ring &= stained[y0:y1, x0:x1]
    if ring.sum() < 8:
        return 1.0
    local = od[y0:y1, x0:x1]
    ring_od = local[ring].mean(axis=0)
    if ring_od.sum() < p.cytoplasm_od:
        return 1.0
    extra = local[cand].mean(axis=0) - ring_od
    cyt = _unit(ring_od)
    if float(cyt @ stain) > 0.999:  # the ring has the stain's colour: no way to tell
        return 1.0
    (a, b), *_ = np.linalg.lstsq(np.stack([cyt, stain], axis=1), extra, rcond=None)
    a, b = max(float(a), 0.0), max(float(b), 0.0)
    return b / (a + b) if a + b > 0 else 0.0


def segment(arr: np.ndarray, p: LocatorParams) -> tuple[np.ndarray, np.ndarray]:
    """Cell labels and nucleus labels (both (h, w) int32) of an RGB float array."""
    from skimage.filters import sobel
    from skimage.measure import label
    from skimage.segmentation import watershed

    od = optical_density(arr, p)
    total = od.sum(axis=2)
    stained = total > p.cytoplasm_od
    nuclei, _ = find_nuclei(od, stained, p)
    stained |= nuclei > 0
    halos = _inner_holes(stained, nuclei, p)
    stained |= halos
    edges = sobel(_cytoplasm_only(total, stained, nuclei > 0, halos, p))
    n = int(nuclei.max())
    seed_area = np.bincount(nuclei.ravel(), minlength=n + 1)[: n + 1]
    # small nuclei are kept as nuclei but start no cell of their own (a speck of debris on
    # a cell looks like a small pyknotic nucleus; the cell is found from its other seeds
    # or as a stained region of its own)
    seeds = np.where(seed_area >= p.px2(p.seed_min_area), np.arange(n + 1), 0).astype(np.int32)
    seeds[0] = 0
    markers = seeds[nuclei]
    cells = watershed(edges, markers=markers, mask=stained, compactness=p.compactness)
    # a nucleus needs cytoplasm around it: seeds whose region is small (a dark overlap of
    # two cells, a grain) give their area to their neighbours
    region = np.bincount(cells.ravel(), minlength=n + 1)[: n + 1]
    weak = (seeds > 0) & (
        (region < p.min_cytoplasm_ratio * seed_area) | (region < p.px2(p.cell_min_area))
    )
    if weak.any():
        seeds[weak] = 0
        markers = seeds[nuclei]
        cells = watershed(edges, markers=markers, mask=stained, compactness=p.compactness)
    # stained regions no nucleus reached: cells of their own
    rest = label(stained & (cells == 0), connectivity=1)
    if rest.max():
        cells = np.where(rest > 0, rest + cells.max(), cells)
    cells = _drop_soft_regions(cells, sobel(total), p)
    return cells.astype(np.int32), nuclei


def _inner_holes(stained: np.ndarray, nuclei: np.ndarray, p: LocatorParams) -> np.ndarray:
    """Unstained holes that belong to a cell: small ones, and those next to a nucleus (a
    koilocyte's clear halo). Large holes away from nuclei are gaps between cells."""
    from scipy.ndimage import binary_dilation, binary_fill_holes
    from skimage.measure import label

    holes = label(binary_fill_holes(stained) & ~stained, connectivity=1)
    if not holes.max():
        return np.zeros_like(stained)
    near_nucleus = binary_dilation(nuclei > 0, iterations=max(1, round(p.px(6.0))))
    sizes = np.bincount(holes.ravel())
    fill = np.zeros(len(sizes), bool)
    fill[np.unique(holes[near_nucleus & (holes > 0)])] = True
    fill[sizes < p.px2(p.cell_min_area) / 8] = True
    fill[0] = False
    return fill[holes]


def _cytoplasm_only(
    total: np.ndarray, stained: np.ndarray, nuclei: np.ndarray, halos: np.ndarray, p: LocatorParams
) -> np.ndarray:
    """The optical density with nuclei and halos (and their rims) replaced by the cytoplasm
    around them, so that the watershed sees cell borders, not the edges inside a cell."""
    from scipy.ndimage import binary_dilation

    zone = binary_dilation(nuclei, iterations=max(1, round(p.px(3.0))))
    if halos.any():
        zone |= binary_dilation(halos, iterations=max(1, round(p.px(8.0))))
    weight = (stained & ~zone).astype(np.float32)
    fill = _masked_mean(total, weight, p.px(5.0), 0.02)
    return np.where(zone, fill, total).astype(np.float32)


def _drop_soft_regions(cells: np.ndarray, edges: np.ndarray, p: LocatorParams) -> np.ndarray:
    """Remove regions whose outer border is soft (mean gradient under ``cell_min_edge``):
    an unevenly lit patch of slide, not a cell, whose border is sharp at focus."""
    from scipy.ndimage import binary_dilation, binary_erosion, find_objects

    out = cells.copy()
    for index, sl in enumerate(find_objects(cells), start=1):
        if sl is None:
            continue
        grown = tuple(slice(max(0, s.start - 1), s.stop + 1) for s in sl)
        mask = cells[grown] == index
        outside = cells[grown] == 0
        border = mask & ~binary_erosion(mask) & binary_dilation(outside)
        if border.sum() >= 8 and float(edges[grown][border].mean()) < p.cell_min_edge:
            out[grown][mask] = 0
    return out


def _cells(
    image: Image.Image, cells: np.ndarray, nuclei: np.ndarray, p: LocatorParams
) -> list[LocatedCell]:
    """Regions to :class:`LocatedCell` objects: size filter, nucleus choice, crops, order."""
    from scipy.ndimage import find_objects

    w, h = image.size
    found = []
    for index, sl in enumerate(find_objects(cells), start=1):
        if sl is None:
            continue
        mask = cells[sl] == index
        area = int(mask.sum())
        if area < p.px2(p.cell_min_area):
            continue
        nuc = _nucleus_of(index, nuclei[sl], mask)
        ys, xs = np.nonzero(mask)
        found.append(
            (float(ys.mean()) + sl[0].start, float(xs.mean()) + sl[1].start, sl, mask, nuc, area)
        )
    # keep the largest when there are too many, then order them for reading
    found.sort(key=lambda f: -f[5])
    found = found[: p.max_cells]
    found.sort(key=lambda f: (round(f[0] / max(1.0, p.px(40.0))), f[1]))
    out = []
    for number, (_, _, sl, mask, nuc, _) in enumerate(found, start=1):
        box = (sl[1].start, sl[0].start, sl[1].stop, sl[0].stop)
        cbox = crop_box(box, (w, h), p)
        out.append(
            LocatedCell(
                id=number,
                box=box,
                cytoplasm=mask,
                nucleus=nuc,
                crop_box=cbox,
                crop=image.crop(cbox),
            )
        )
    return out


def _nucleus_of(index: int, nuclei: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The nucleus that seeded region ``index`` (seeded regions carry their seed's label),
    else the largest nucleus inside it, else none."""
    inside = np.where(mask, nuclei, 0)
    own = inside == index
    if own.any():
        return own
    if not inside.any():
        return np.zeros_like(mask)
    counts = np.bincount(inside.ravel())
    counts[0] = 0
    return inside == int(counts.argmax())
