"""Deterministic generator of synthetic Pap-smear-like single-cell images.

THESE ARE SYNTHETIC IMAGES FOR THE TEST-SUITE AND THE OFFLINE DEMO. They are NOT medical
data, were not derived from any patient material, and say nothing about real cells: a
model trained or evaluated on them tells you only that the code runs end to end.

The cells are drawn with vectorised numpy (a polar "radius profile" per shape, a
Beer-Lambert style stain model, smooth noise for texture) plus a light PIL blur and pixel
noise. The five cell types of SIPaKMeD differ roughly the way real ones do (size,
cytoplasm colour and density, nucleus size, shape and darkness, perinuclear halo), with
every parameter jittered and overlapping between neighbouring types, so a classifier
can learn Normal (first three types) vs Abnormal (last two) well above chance but not
perfectly.

:func:`write_raw_sipakmed` writes the raw SIPaKMeD download layout::

    OUT_DIR/SYNTHETIC.txt                               # marker: the preparer labels it SYNTHETIC
    OUT_DIR/im_<T>/im_<T>/NNN.bmp                       # cluster image (first few clusters)
    OUT_DIR/im_<T>/im_<T>/NNN_cytMM.dat, NNN_nucMM.dat  # boundaries in the cluster image
    OUT_DIR/im_<T>/im_<T>/CROPPED/NNN_MM.bmp            # single-cell crop
    OUT_DIR/im_<T>/im_<T>/CROPPED/NNN_MM_cyt.dat, NNN_MM_nuc.dat  # boundaries in the crop

where NNN is the cluster id (from 001) and MM the cell index in that cluster (from 01).
Boundary files hold one ``x,y`` pixel coordinate per line. The cells of one cluster share
a "slide" (background, stain strength and tint), so a split that ignores clusters leaks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from .errors import CervixError
from .labels import CELL_TYPES
from .sipakmed import SYNTHETIC_MARKER

__all__ = [
    "CELL_TYPES",
    "CLUSTER_IMAGES_PER_TYPE",
    "MAX_SIDE",
    "MIN_SIDE",
    "OutputDirNotEmptyError",
    "make_cell",
    "write_raw_sipakmed",
]


class OutputDirNotEmptyError(CervixError, FileExistsError):
    """The output directory of :func:`write_raw_sipakmed` exists and is not empty."""


#: Smallest / largest side (pixels) of a crop drawn with a random size.
MIN_SIDE = 64
MAX_SIDE = 160
#: Clusters per type that also get a cluster image + boundary files (the preparer skips
#: them; writing all would mostly cost disk space).
CLUSTER_IMAGES_PER_TYPE = 3

_N_ANG = 256
_ANGLES = np.linspace(-np.pi, np.pi, _N_ANG, endpoint=False)
_TWO_PI = 2.0 * np.pi

# Colours are the RGB a layer of density 1 shows over white (transmittance * 255).
_PINK = (242.0, 165.0, 185.0)
_BLUE_GREEN = (165.0, 212.0, 208.0)
_CYANOPHILIC = (105.0, 170.0, 168.0)
_METAPLASTIC_BLUE = (118.0, 162.0, 188.0)
_METAPLASTIC_PINK = (190.0, 150.0, 188.0)
_ORANGE = (238.0, 142.0, 82.0)
_RED_ORANGE = (226.0, 108.0, 86.0)
_NUC_PYKNOTIC = (58.0, 46.0, 88.0)
_NUC_VESICULAR = (102.0, 90.0, 152.0)
_NUC_HYPERCHROMATIC = (70.0, 55.0, 110.0)
_NUC_DYSKERATOTIC = (55.0, 40.0, 70.0)


# --------------------------------------------------------------------------- shapes


@dataclass
class _Shape:
    """A star-shaped outline: an ellipse (a, b, rot) scaled by a radius profile r(theta)."""

    cx: float
    cy: float
    a: float
    b: float
    rot: float
    profile: np.ndarray  # (_N_ANG,) radius multiplier sampled at _ANGLES

    def extent(self) -> float:
        return max(self.a, self.b) * float(self.profile.max())

    def signed_distance(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Approximate signed distance in pixels (positive inside) on a (len(ys), len(xs)) grid."""
        c, s = math.cos(self.rot), math.sin(self.rot)
        dx = xs[None, :] - self.cx
        dy = ys[:, None] - self.cy
        u = (dx * c + dy * s) / self.a
        v = (dy * c - dx * s) / self.b
        rho = np.hypot(u, v)
        theta = np.arctan2(v, u)
        p = _lookup(self.profile, theta)
        return (p - rho) * np.float32(math.sqrt(self.a * self.b))

    def polygon(self, n: int) -> np.ndarray:
        """``n`` boundary points (x, y) in image coordinates."""
        idx = np.linspace(0, _N_ANG, n, endpoint=False).astype(int)
        th = _ANGLES[idx]
        p = self.profile[idx]
        u = p * np.cos(th) * self.a
        v = p * np.sin(th) * self.b
        c, s = math.cos(self.rot), math.sin(self.rot)
        return np.stack([self.cx + u * c - v * s, self.cy + u * s + v * c], axis=1)

    def window(self, h: int, w: int, pad: float) -> tuple[slice, slice] | None:
        """Bounding window (clipped to the canvas) of the shape plus ``pad`` pixels."""
        e = self.extent() + pad
        x0, x1 = max(0, int(self.cx - e)), min(w, math.ceil(self.cx + e) + 1)
        y0, y1 = max(0, int(self.cy - e)), min(h, math.ceil(self.cy + e) + 1)
        if x0 >= x1 or y0 >= y1:
            return None
        return slice(y0, y1), slice(x0, x1)


def _lookup(profile: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Periodic linear interpolation of a profile sampled at ``_ANGLES`` (float32)."""
    t = (theta + np.float32(np.pi)) * np.float32(_N_ANG / _TWO_PI)
    i0 = t.astype(np.int32)
    f = t - i0
    i0 %= _N_ANG
    prof = profile.astype(np.float32)
    p0 = prof[i0]
    return p0 + (prof[(i0 + 1) % _N_ANG] - p0) * f


def _fourier_profile(
    rng: np.random.Generator, amp: float, kmin: int = 2, kmax: int = 6
) -> np.ndarray:
    """Ellipse radius perturbed by random harmonics ``kmin..kmax`` of overall size ``amp``."""
    p = np.ones(_N_ANG)
    for k in range(kmin, kmax + 1):
        p += (
            amp
            * rng.standard_normal()
            / math.sqrt(k)
            * np.cos(k * _ANGLES + rng.uniform(0, _TWO_PI))
        )
    return np.clip(p, 0.4, None)


def _polygon_profile(rng: np.random.Generator, k: int, rjit: float) -> np.ndarray:
    """Radius profile of an irregular convex-ish polygon with ``k`` vertices."""
    base = np.linspace(0.0, _TWO_PI, k, endpoint=False) + rng.uniform(0, _TWO_PI)
    ang = base + rng.uniform(-0.3, 0.3, k) * (_TWO_PI / k)
    ang = np.sort(np.mod(ang + np.pi, _TWO_PI) - np.pi)
    rad = rng.uniform(1.0 - rjit, 1.0 + rjit, k)
    px, py = rad * np.cos(ang), rad * np.sin(ang)
    i = (np.searchsorted(ang, _ANGLES, side="right") - 1) % k
    j = (i + 1) % k
    ex, ey = px[j] - px[i], py[j] - py[i]
    dx, dy = np.cos(_ANGLES), np.sin(_ANGLES)
    num = px[i] * ey - py[i] * ex
    den = dx * ey - dy * ex
    r = np.where(np.abs(den) > 1e-9, num / np.where(den == 0, 1.0, den), 1.0)
    r = np.clip(r, 0.4, 1.6)
    return r / r.mean()


def _add_processes(rng: np.random.Generator, profile: np.ndarray, n: int) -> np.ndarray:
    """Add ``n`` narrow cytoplasmic projections ("spider" processes) to a profile."""
    p = profile.copy()
    for _ in range(n):
        centre = rng.uniform(-np.pi, np.pi)
        d = np.angle(np.exp(1j * (_ANGLES - centre)))
        p += rng.uniform(0.2, 0.55) * np.exp(-((d / rng.uniform(0.07, 0.2)) ** 2))
    return p


# --------------------------------------------------------------------------- specs


@dataclass
class _NucSpec:
    dx: float  # offset from the cell centre, in units of the cell radius
    dy: float
    r: float  # radius in units of the cell radius
    aspect: float
    rot: float
    profile: np.ndarray
    color: tuple[float, float, float]
    density: float
    texture: float


@dataclass
class _HaloSpec:
    scale: float  # halo radius / nucleus extent
    aspect: float
    profile: np.ndarray
    clear: float  # fraction of cytoplasm density removed inside the halo
    rim: float  # extra density of the rim at the halo's edge
    rim_width: float  # pixels


@dataclass
class _CellSpec:
    radius_px: float
    aspect: float
    rot: float
    profile: np.ndarray
    color: tuple[float, float, float]
    density: float
    texture: float
    edge: float
    nuclei: list[_NucSpec] = field(default_factory=list)
    halo: _HaloSpec | None = None
    vacuoles: list[tuple[float, float, float]] = field(default_factory=list)  # dx, dy, r (rel.)
    n_overlapping: int = 0  # same-type neighbours overlapping the cell (clusters)


def _jitter_color(
    rng: np.random.Generator, color: tuple[float, float, float], sd: float
) -> tuple[float, float, float]:
    c = np.clip(np.asarray(color) + rng.normal(0.0, sd, 3), 20.0, 250.0)
    return (float(c[0]), float(c[1]), float(c[2]))


def _mix(
    c1: tuple[float, float, float], c2: tuple[float, float, float], t: float
) -> tuple[float, float, float]:
    return (
        c1[0] + (c2[0] - c1[0]) * t,
        c1[1] + (c2[1] - c1[1]) * t,
        c1[2] + (c2[2] - c1[2]) * t,
    )


def _nucleus(
    rng: np.random.Generator,
    r: tuple[float, float],
    irregularity: tuple[float, float],
    color: tuple[float, float, float],
    density: tuple[float, float],
    texture: tuple[float, float],
    kmax: int = 6,
) -> _NucSpec:
    irr = rng.uniform(*irregularity)
    return _NucSpec(
        dx=0.0,
        dy=0.0,
        r=rng.uniform(*r),
        aspect=rng.uniform(0.7, 1.0),
        rot=rng.uniform(0, np.pi),
        profile=_fourier_profile(rng, irr, kmin=2, kmax=kmax),
        color=_jitter_color(rng, color, 10.0),
        density=rng.uniform(*density),
        texture=rng.uniform(*texture),
    )


def _mild_halo(rng: np.random.Generator) -> _HaloSpec:
    """A small faint perinuclear clearing, as normal cells sometimes show."""
    return _HaloSpec(
        scale=rng.uniform(1.3, 2.0),
        aspect=rng.uniform(0.7, 1.0),
        profile=_fourier_profile(rng, rng.uniform(0.03, 0.08)),
        clear=rng.uniform(0.25, 0.6),
        rim=rng.uniform(0.0, 0.25),
        rim_width=rng.uniform(1.5, 3.0),
    )


def _dysk_color(rng: np.random.Generator) -> tuple[float, float, float]:
    color = _mix(_ORANGE, _RED_ORANGE, rng.uniform())
    if rng.uniform() < 0.25:  # less keratinised: towards pink
        color = _mix(color, _PINK, rng.uniform(0.2, 0.6))
    return color


def _sample_spec(type_idx: int, rng: np.random.Generator) -> _CellSpec:
    """Random morphology of one cell of type ``CELL_TYPES[type_idx]`` (radius-relative units)."""
    u = rng.uniform
    if type_idx == 0:  # Superficial-Intermediate: large flat polygonal, small pyknotic nucleus
        color = _PINK if u() < 0.55 else _BLUE_GREEN
        if color == _PINK and u() < 0.3:  # eosinophilic, towards orange
            color = _mix(_PINK, _ORANGE, u(0.2, 0.6))
        spec = _CellSpec(
            radius_px=u(48, 80),
            aspect=u(0.6, 1.0),
            rot=u(0, np.pi),
            profile=_polygon_profile(rng, int(rng.integers(5, 10)), 0.15)
            * _fourier_profile(rng, 0.03),
            color=_jitter_color(rng, color, 12.0),
            density=u(0.45, 0.85),
            texture=u(0.05, 0.2),
            edge=u(0.1, 0.4),
        )
        if u() < 0.7:  # superficial: pyknotic
            nuc = _nucleus(rng, (0.055, 0.1), (0.0, 0.05), _NUC_PYKNOTIC, (1.0, 1.4), (0.05, 0.2))
        else:  # intermediate: small vesicular nucleus
            nuc = _nucleus(rng, (0.09, 0.14), (0.0, 0.05), _NUC_VESICULAR, (0.8, 1.1), (0.1, 0.25))
        spec.nuclei.append(nuc)
        spec.halo = _mild_halo(rng) if u() < 0.1 else None  # glycogen, pseudo-koilocytosis
    elif type_idx == 1:  # Parabasal: small round, dense cyanophilic, large smooth nucleus
        spec = _CellSpec(
            radius_px=u(26, 46),
            aspect=u(0.72, 1.0),
            rot=u(0, np.pi),
            profile=_fourier_profile(rng, u(0.02, 0.06)),
            color=_jitter_color(rng, _CYANOPHILIC, 12.0),
            density=u(0.9, 1.3),
            texture=u(0.1, 0.25),
            edge=u(0.1, 0.3),
        )
        spec.nuclei.append(
            _nucleus(rng, (0.28, 0.45), (0.0, 0.05), _NUC_VESICULAR, (0.85, 1.15), (0.05, 0.25))
        )
    elif type_idx == 2:  # Metaplastic: medium, dense, processes, medium nucleus, vacuoles
        profile = _fourier_profile(rng, u(0.04, 0.1))
        if u() < 0.45:
            profile = _add_processes(rng, profile, int(rng.integers(2, 6)))
        color = _METAPLASTIC_BLUE if u() < 0.7 else _METAPLASTIC_PINK
        spec = _CellSpec(
            radius_px=u(30, 56),
            aspect=u(0.6, 1.0),
            rot=u(0, np.pi),
            profile=profile,
            color=_jitter_color(rng, color, 12.0),
            density=u(0.9, 1.35),
            texture=u(0.15, 0.3),
            edge=u(0.1, 0.35),
        )
        spec.nuclei.append(
            _nucleus(rng, (0.2, 0.34), (0.0, 0.08), _NUC_VESICULAR, (0.9, 1.2), (0.1, 0.3))
        )
        if u() < 0.3:
            for _ in range(int(rng.integers(1, 5))):
                ang, dist = u(0, _TWO_PI), u(0.45, 0.72)
                spec.vacuoles.append((dist * math.cos(ang), dist * math.sin(ang), u(0.05, 0.14)))
        spec.halo = _mild_halo(rng) if u() < 0.08 else None
    elif type_idx == 3:  # Koilocytotic: perinuclear halo, enlarged dark irregular nucleus
        if u() < 0.5:
            profile = _polygon_profile(rng, int(rng.integers(5, 9)), 0.12)
        else:
            profile = _fourier_profile(rng, u(0.04, 0.09))
        color = _PINK if u() < 0.5 else _BLUE_GREEN
        spec = _CellSpec(
            radius_px=u(40, 72),
            aspect=u(0.6, 1.0),
            rot=u(0, np.pi),
            profile=profile,
            color=_jitter_color(rng, _mix(color, _CYANOPHILIC, u(0, 0.5)), 12.0),
            density=u(0.7, 1.15),
            texture=u(0.1, 0.25),
            edge=u(0.1, 0.4),
        )
        nuc = _nucleus(
            rng, (0.15, 0.28), (0.03, 0.16), _NUC_HYPERCHROMATIC, (1.05, 1.45), (0.15, 0.4), 8
        )
        if u() < 0.25:  # binucleate
            nuc.r *= 0.8
            nuc2 = _nucleus(
                rng, (0.8 * nuc.r, nuc.r), (0.03, 0.16), nuc.color, (1.05, 1.45), (0.15, 0.4), 8
            )
            ang = u(0, np.pi)
            d = 0.9 * (nuc.r + nuc2.r)
            nuc.dx, nuc.dy = -0.5 * d * math.cos(ang), -0.5 * d * math.sin(ang)
            nuc2.dx, nuc2.dy = 0.5 * d * math.cos(ang), 0.5 * d * math.sin(ang)
            spec.nuclei.extend([nuc, nuc2])
        else:
            spec.nuclei.append(nuc)
        mild = u() < 0.12
        spec.halo = _HaloSpec(
            scale=u(1.3, 1.8) if mild else u(1.7, 3.0),
            aspect=u(0.7, 1.0),
            profile=_fourier_profile(rng, u(0.05, 0.12)),
            clear=u(0.3, 0.55) if mild else u(0.7, 0.97),
            rim=u(0.1, 0.35) if mild else u(0.35, 0.9),
            rim_width=u(1.5, 4.0),
        )
    elif type_idx == 4:  # Dyskeratotic: small orangeophilic, dark pyknotic/raisin nucleus
        if u() < 0.35:
            profile = _polygon_profile(rng, int(rng.integers(4, 8)), 0.15)
        else:
            profile = _fourier_profile(rng, u(0.05, 0.12))
        spec = _CellSpec(
            radius_px=u(22, 44),
            aspect=u(0.5, 1.0),
            rot=u(0, np.pi),
            profile=profile,
            color=_jitter_color(rng, _dysk_color(rng), 10.0),
            density=u(1.0, 1.5),
            texture=u(0.15, 0.35),
            edge=u(0.2, 0.5),
            n_overlapping=int(rng.integers(1, 4)) if u() < 0.6 else 0,
        )
        spec.nuclei.append(
            _nucleus(rng, (0.1, 0.24), (0.05, 0.2), _NUC_DYSKERATOTIC, (1.15, 1.6), (0.15, 0.4), 10)
        )
    else:  # pragma: no cover - guarded by _type_index
        raise ValueError(type_idx)
    return spec


# --------------------------------------------------------------------------- rendering


def _smooth_noise(rng: np.random.Generator, h: int, w: int, scale: float) -> np.ndarray:
    """Roughly unit-variance noise with features of about ``scale`` pixels."""
    gh, gw = max(2, int(h / scale) + 2), max(2, int(w / scale) + 2)
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    return np.asarray(Image.fromarray(grid).resize((w, h), Image.Resampling.BICUBIC))


def _stain(
    od: np.ndarray,
    sl: tuple[slice, slice],
    density: np.ndarray,
    color: tuple[float, float, float],
) -> None:
    """Beer-Lambert: add ``density * log(color / 255)`` to the optical-density image ``od``."""
    logt = np.log(np.clip(np.asarray(color, dtype=np.float32) / 255.0, 0.02, 1.0))
    od[sl] += density.astype(np.float32, copy=False)[..., None] * logt


def _bump(x: np.ndarray) -> np.ndarray:
    """Cheap smooth bump: 1 at 0, falling to 0 at |x| = 1 (a Gaussian stand-in)."""
    return np.square(np.maximum(np.float32(1.0) - np.square(x), np.float32(0.0)))


def _soft(sd: np.ndarray, width: float = 1.2) -> np.ndarray:
    return np.clip(sd / width + 0.5, 0.0, 1.0)


@dataclass
class _Rendered:
    image: Image.Image
    mask: Image.Image  # "L": the main cell (cytoplasm) with a soft edge, for cluster images
    cyt_polygon: np.ndarray
    nuc_polygon: np.ndarray


def _draw_cytoplasm(
    od: np.ndarray,
    xs: np.ndarray,
    ys: np.ndarray,
    shape: _Shape,
    spec: _CellSpec,
    rng: np.random.Generator,
    halo: _Shape | None = None,
) -> np.ndarray:
    """Stain one cell's cytoplasm (with vacuoles / halo); return its (h, w) soft mask."""
    h, w = od.shape[:2]
    full = np.zeros((h, w), np.float32)
    win = shape.window(h, w, 3.0)
    if win is None:
        return full
    sy, sx = win
    sd = shape.signed_distance(xs[sx], ys[sy])
    m = _soft(sd)
    tex = _smooth_noise(rng, sy.stop - sy.start, sx.stop - sx.start, rng.uniform(4.0, 9.0))
    dens = spec.density * m * (1.0 + spec.texture * tex)
    dens += spec.edge * m * _bump(sd / rng.uniform(2.0, 4.5))
    r = math.sqrt(shape.a * shape.b)
    c, s = math.cos(shape.rot), math.sin(shape.rot)
    for vdx, vdy, vr in spec.vacuoles:
        lx, ly = vdx * shape.a, vdy * shape.b  # in the cell's frame, then rotated
        vx = shape.cx + lx * c - ly * s
        vy = shape.cy + lx * s + ly * c
        d2 = (xs[sx][None, :] - vx) ** 2 + (ys[sy][:, None] - vy) ** 2
        vac = _soft(vr * r - np.sqrt(d2))
        dens *= 1.0 - 0.8 * vac
        dens += 0.25 * spec.density * _bump((np.sqrt(d2) - vr * r) / 2.0) * m
    if halo is not None and spec.halo is not None:
        rw = spec.halo.rim_width
        hwin = halo.window(h, w, 3.0 * rw + 2.0)
        if hwin is not None:
            y0, y1 = max(hwin[0].start, sy.start), min(hwin[0].stop, sy.stop)
            x0, x1 = max(hwin[1].start, sx.start), min(hwin[1].stop, sx.stop)
            if y0 < y1 and x0 < x1:
                loc = (slice(y0 - sy.start, y1 - sy.start), slice(x0 - sx.start, x1 - sx.start))
                hsd = halo.signed_distance(xs[x0:x1], ys[y0:y1])
                sub = dens[loc] * (1.0 - spec.halo.clear * _soft(hsd, 2.0))
                dens[loc] = sub + spec.halo.rim * m[loc] * _bump((hsd + rw) / (1.4 * rw))
    _stain(od, win, np.clip(dens, 0.0, None), spec.color)
    full[win] = m
    return full


def _draw_nucleus(
    od: np.ndarray,
    xs: np.ndarray,
    ys: np.ndarray,
    shape: _Shape,
    nuc: _NucSpec,
    rng: np.random.Generator,
) -> None:
    h, w = od.shape[:2]
    win = shape.window(h, w, 2.0)
    if win is None:
        return
    sy, sx = win
    sd = shape.signed_distance(xs[sx], ys[sy])
    m = _soft(sd, 1.0)
    hh, ww = sy.stop - sy.start, sx.stop - sx.start
    chrom = _smooth_noise(rng, hh, ww, rng.uniform(1.4, 2.8))
    dens = nuc.density * m * (1.0 + nuc.texture * chrom)
    # slightly darker nuclear membrane
    dens += 0.25 * nuc.density * m * _bump(sd / 2.0)
    _stain(od, win, np.clip(dens, 0.0, None), nuc.color)


def _cell_shapes(
    spec: _CellSpec, cx: float, cy: float, radius: float, rng: np.random.Generator
) -> tuple[_Shape, list[_Shape], _Shape | None]:
    """Place cytoplasm, nuclei and halo of a cell centred at (cx, cy) with ``radius`` px."""
    a = radius / math.sqrt(spec.aspect)
    b = radius * math.sqrt(spec.aspect)
    cell = _Shape(cx, cy, a, b, spec.rot, spec.profile)
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
    ang, dist = rng.uniform(0, _TWO_PI), rng.uniform(0, 0.8) * room
    gx, gy = dist * math.cos(ang) * radius, dist * math.sin(ang) * radius
    nuclei = [
        _Shape(
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
        halo = _Shape(
            hx,
            hy,
            hr / math.sqrt(spec.halo.aspect),
            hr * math.sqrt(spec.halo.aspect),
            rng.uniform(0, np.pi),
            spec.halo.profile,
        )
    return cell, nuclei, halo


@dataclass
class _Slide:
    """What the cells of one cluster share: background colour and staining."""

    base: np.ndarray  # background RGB
    od_scale: np.ndarray  # per-channel factor on every optical density (stain strength, tint)


def _sample_slide(rng: np.random.Generator) -> _Slide:
    base = np.array([226.0, 218.0, 228.0]) + rng.normal(0.0, 5.0, 3)
    if rng.uniform() < 0.5:  # bluish-grey rather than pinkish-grey
        base += np.array([-6.0, 2.0, 6.0])
    scale = rng.uniform(0.85, 1.15) * (1.0 + rng.normal(0.0, 0.05, 3))
    return _Slide(base, scale.astype(np.float32))


def _background(rng: np.random.Generator, h: int, w: int, base: np.ndarray) -> np.ndarray:
    phi = rng.uniform(0, _TWO_PI)
    grad = rng.uniform(0.0, 0.08)
    xs = (np.arange(w) - w / 2) / max(h, w)
    ys = (np.arange(h) - h / 2) / max(h, w)
    illum = 1.0 + grad * (xs[None, :] * math.cos(phi) + ys[:, None] * math.sin(phi))
    illum = illum + 0.015 * _smooth_noise(rng, h, w, rng.uniform(10.0, 30.0))
    return (illum[..., None] * base[None, None, :]).astype(np.float32)


def _draw_debris(od: np.ndarray, rng: np.random.Generator) -> None:
    h, w = od.shape[:2]
    for _ in range(int(rng.poisson(1.5))):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        sigma = rng.uniform(0.6, 2.0)
        color = (90.0, 60.0, 110.0) if rng.uniform() < 0.6 else (150.0, 110.0, 80.0)
        e = int(3 * sigma) + 1
        sy = slice(max(0, int(y) - e), min(h, int(y) + e + 1))
        sx = slice(max(0, int(x) - e), min(w, int(x) + e + 1))
        if sy.start >= sy.stop or sx.start >= sx.stop:
            continue
        yy = np.arange(sy.start, sy.stop)[:, None] + 0.5 - y
        xx = np.arange(sx.start, sx.stop)[None, :] + 0.5 - x
        dens = rng.uniform(0.5, 1.5) * np.exp(-(xx**2 + yy**2) / (2 * sigma**2))
        _stain(od, (sy, sx), dens, color)


def _type_index(cell_type: str) -> int:
    try:
        return CELL_TYPES.index(cell_type)
    except ValueError:
        raise ValueError(
            f"unknown cell type {cell_type!r}; valid types: {', '.join(CELL_TYPES)}"
        ) from None


def _render_cell(
    cell_type: str,
    rng: np.random.Generator,
    size: int | None = None,
    slide: _Slide | None = None,
) -> _Rendered:
    """Draw one crop; also return the cell mask and boundary polygons (crop coordinates)."""
    type_idx = _type_index(cell_type)
    if size is not None and not (16 <= int(size) <= 1024):
        raise ValueError(f"size must be in [16, 1024], got {size}")
    spec = _sample_spec(type_idx, rng)

    # Canvas: the cell's bounding box plus a margin, like a crop from a cluster image.
    unit = _Shape(
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
        slide = _sample_slide(rng)
    bg = _background(rng, h, w, slide.base)
    od = np.zeros((h, w, 3), np.float32)  # optical density, applied to bg at the end
    xs = np.arange(w, dtype=np.float32) + 0.5
    ys = np.arange(h, dtype=np.float32) + 0.5

    # Distractor: a partial neighbouring cell at the edge of the crop.
    if rng.uniform() < 0.3:
        nspec = _sample_spec(int(rng.integers(0, 3)), rng)
        nr = radius * rng.uniform(0.7, 1.2)
        ang = rng.uniform(0, _TWO_PI)
        dist = 0.5 * math.hypot(w, h) + nr * rng.uniform(0.1, 0.7)
        ncell, nnucs, _ = _cell_shapes(
            nspec, w / 2 + dist * math.cos(ang), h / 2 + dist * math.sin(ang), nr, rng
        )
        _draw_cytoplasm(od, xs, ys, ncell, nspec, rng)
        for sh, nuc in zip(nnucs, nspec.nuclei, strict=True):
            _draw_nucleus(od, xs, ys, sh, nuc, rng)

    # Dyskeratotic cells come in clusters: overlapping cells of the same type.
    for _ in range(spec.n_overlapping):
        ospec = _sample_spec(type_idx, rng)
        orad = radius * rng.uniform(0.7, 1.1)
        ang = rng.uniform(0, _TWO_PI)
        dist = radius * rng.uniform(1.1, 1.7)
        ocell, onucs, _ = _cell_shapes(
            ospec, cx + dist * math.cos(ang), cy + dist * math.sin(ang), orad, rng
        )
        _draw_cytoplasm(od, xs, ys, ocell, ospec, rng)
        for sh, nuc in zip(onucs, ospec.nuclei, strict=True):
            _draw_nucleus(od, xs, ys, sh, nuc, rng)

    cell, nucs, halo = _cell_shapes(spec, cx, cy, radius, rng)
    mask = _draw_cytoplasm(od, xs, ys, cell, spec, rng, halo)
    for sh, nuc in zip(nucs, spec.nuclei, strict=True):
        _draw_nucleus(od, xs, ys, sh, nuc, rng)
    _draw_debris(od, rng)

    img = bg * np.exp(od * slide.od_scale, out=od)
    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")
    pil = pil.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.0)))
    noise = rng.standard_normal((h, w, 3), dtype=np.float32) * np.float32(rng.uniform(1.5, 4.0))
    arr = np.asarray(pil, dtype=np.float32) + noise
    image = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "RGB")
    mask_img = Image.fromarray((np.clip(mask, 0, 1) * 255).astype(np.uint8), "L")
    return _Rendered(image, mask_img, cell.polygon(64), nucs[0].polygon(32))


# --------------------------------------------------------------------------- public API


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
    return _render_cell(cell_type, rng, size).image


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


def _write_polygon(path: Path, pts: np.ndarray) -> None:
    path.write_text("".join(f"{x:.2f},{y:.2f}\n" for x, y in pts), encoding="ascii")


def _cluster_image(
    rng: np.random.Generator, cells: list[_Rendered], slide: _Slide
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
    _draw_debris(od, rng)
    bg = _background(rng, h, w, slide.base) * np.exp(od)
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
    cells: list[_Rendered],
    slide: _Slide,
) -> None:
    """Write cluster image ``NNN.bmp`` and its ``NNN_cytMM.dat`` / ``NNN_nucMM.dat``."""
    field_img, offsets = _cluster_image(rng, cells, slide)
    field_img.save(folder / f"{cluster_id:03d}.bmp")
    for m, (cell, (ox, oy)) in enumerate(zip(cells, offsets, strict=True), start=1):
        shift = np.array([ox, oy], dtype=float)
        _write_polygon(folder / f"{cluster_id:03d}_cyt{m:02d}.dat", cell.cyt_polygon + shift)
        _write_polygon(folder / f"{cluster_id:03d}_nuc{m:02d}.dat", cell.nuc_polygon + shift)


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
    # The marker makes the preparer label the data set (and models trained on it) SYNTHETIC.
    (out / SYNTHETIC_MARKER).write_text(
        f"SYNTHETIC Pap-smear-like cell images written by cervix_hf.synthetic "
        f"(seed {seed}, {per_type} per cell type).\n"
        "NOT medical data: they say nothing about real cells. For tests and the offline demo.\n",
        encoding="ascii",
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
                slide = _sample_slide(rng)
                cells = [_render_cell(cell_type, rng, slide=slide) for _ in range(n_cells)]
                for m, cell in enumerate(cells, start=1):
                    stem = f"{cluster_id:03d}_{m:02d}"
                    cell.image.save(cropped / f"{stem}.bmp")
                    _write_polygon(cropped / f"{stem}_cyt.dat", cell.cyt_polygon)
                    _write_polygon(cropped / f"{stem}_nuc.dat", cell.nuc_polygon)
                if cluster_id <= CLUSTER_IMAGES_PER_TYPE:
                    _write_cluster(folder, cluster_id, rng, cells, slide)
                bar.update(n_cells)
            counts[cell_type] = per_type
    return counts
