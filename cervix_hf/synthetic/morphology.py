"""Random morphology of the five synthetic cell types (sizes, colours, nuclei, halos).

Part of the SYNTHETIC generator (:mod:`cervix_hf.synthetic`): not medical data. Sizes are in
units of the cell radius; :mod:`.render` turns a spec into pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..labels import CELL_TYPES
from .shapes import TWO_PI, add_processes, fourier_profile, polygon_profile

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


@dataclass
class NucSpec:
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
class HaloSpec:
    scale: float  # halo radius / nucleus extent
    aspect: float
    profile: np.ndarray
    clear: float  # fraction of cytoplasm density removed inside the halo
    rim: float  # extra density of the rim at the halo's edge
    rim_width: float  # pixels


@dataclass
class CellSpec:
    radius_px: float
    aspect: float
    rot: float
    profile: np.ndarray
    color: tuple[float, float, float]
    density: float
    texture: float
    edge: float
    nuclei: list[NucSpec] = field(default_factory=list)
    halo: HaloSpec | None = None
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
) -> NucSpec:
    irr = rng.uniform(*irregularity)
    return NucSpec(
        dx=0.0,
        dy=0.0,
        r=rng.uniform(*r),
        aspect=rng.uniform(0.7, 1.0),
        rot=rng.uniform(0, np.pi),
        profile=fourier_profile(rng, irr, kmin=2, kmax=kmax),
        color=_jitter_color(rng, color, 10.0),
        density=rng.uniform(*density),
        texture=rng.uniform(*texture),
    )


def _mild_halo(rng: np.random.Generator) -> HaloSpec:
    """A small faint perinuclear clearing, as normal cells sometimes show."""
    return HaloSpec(
        scale=rng.uniform(1.3, 2.0),
        aspect=rng.uniform(0.7, 1.0),
        profile=fourier_profile(rng, rng.uniform(0.03, 0.08)),
        clear=rng.uniform(0.25, 0.6),
        rim=rng.uniform(0.0, 0.25),
        rim_width=rng.uniform(1.5, 3.0),
    )


def _dysk_color(rng: np.random.Generator) -> tuple[float, float, float]:
    color = _mix(_ORANGE, _RED_ORANGE, rng.uniform())
    if rng.uniform() < 0.25:  # less keratinised: towards pink
        color = _mix(color, _PINK, rng.uniform(0.2, 0.6))
    return color


def sample_spec(type_idx: int, rng: np.random.Generator) -> CellSpec:
    """Random morphology of one cell of type ``CELL_TYPES[type_idx]`` (radius-relative units)."""
    u = rng.uniform
    if type_idx == 0:  # Superficial-Intermediate: large flat polygonal, small pyknotic nucleus
        color = _PINK if u() < 0.55 else _BLUE_GREEN
        if color == _PINK and u() < 0.3:  # eosinophilic, towards orange
            color = _mix(_PINK, _ORANGE, u(0.2, 0.6))
        spec = CellSpec(
            radius_px=u(48, 80),
            aspect=u(0.6, 1.0),
            rot=u(0, np.pi),
            profile=polygon_profile(rng, int(rng.integers(5, 10)), 0.15)
            * fourier_profile(rng, 0.03),
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
        spec = CellSpec(
            radius_px=u(26, 46),
            aspect=u(0.72, 1.0),
            rot=u(0, np.pi),
            profile=fourier_profile(rng, u(0.02, 0.06)),
            color=_jitter_color(rng, _CYANOPHILIC, 12.0),
            density=u(0.9, 1.3),
            texture=u(0.1, 0.25),
            edge=u(0.1, 0.3),
        )
        spec.nuclei.append(
            _nucleus(rng, (0.28, 0.45), (0.0, 0.05), _NUC_VESICULAR, (0.85, 1.15), (0.05, 0.25))
        )
    elif type_idx == 2:  # Metaplastic: medium, dense, processes, medium nucleus, vacuoles
        profile = fourier_profile(rng, u(0.04, 0.1))
        if u() < 0.45:
            profile = add_processes(rng, profile, int(rng.integers(2, 6)))
        color = _METAPLASTIC_BLUE if u() < 0.7 else _METAPLASTIC_PINK
        spec = CellSpec(
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
                ang, dist = u(0, TWO_PI), u(0.45, 0.72)
                spec.vacuoles.append((dist * math.cos(ang), dist * math.sin(ang), u(0.05, 0.14)))
        spec.halo = _mild_halo(rng) if u() < 0.08 else None
    elif type_idx == 3:  # Koilocytotic: perinuclear halo, enlarged dark irregular nucleus
        if u() < 0.5:
            profile = polygon_profile(rng, int(rng.integers(5, 9)), 0.12)
        else:
            profile = fourier_profile(rng, u(0.04, 0.09))
        color = _PINK if u() < 0.5 else _BLUE_GREEN
        spec = CellSpec(
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
        spec.halo = HaloSpec(
            scale=u(1.3, 1.8) if mild else u(1.7, 3.0),
            aspect=u(0.7, 1.0),
            profile=fourier_profile(rng, u(0.05, 0.12)),
            clear=u(0.3, 0.55) if mild else u(0.7, 0.97),
            rim=u(0.1, 0.35) if mild else u(0.35, 0.9),
            rim_width=u(1.5, 4.0),
        )
    elif type_idx == 4:  # Dyskeratotic: small orangeophilic, dark pyknotic/raisin nucleus
        if u() < 0.35:
            profile = polygon_profile(rng, int(rng.integers(4, 8)), 0.15)
        else:
            profile = fourier_profile(rng, u(0.05, 0.12))
        spec = CellSpec(
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
    else:  # pragma: no cover - guarded by type_index
        raise ValueError(type_idx)
    return spec


def type_index(cell_type: str) -> int:
    try:
        return CELL_TYPES.index(cell_type)
    except ValueError:
        raise ValueError(
            f"unknown cell type {cell_type!r}; valid types: {', '.join(CELL_TYPES)}"
        ) from None
