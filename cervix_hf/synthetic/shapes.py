"""Star-shaped outlines of synthetic cells and nuclei: an ellipse scaled by a radius profile.

Part of the SYNTHETIC generator (:mod:`cervix_hf.synthetic`): not medical data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

N_ANG = 256
ANGLES = np.linspace(-np.pi, np.pi, N_ANG, endpoint=False)
TWO_PI = 2.0 * np.pi


@dataclass
class Shape:
    """A star-shaped outline: an ellipse (a, b, rot) scaled by a radius profile r(theta)."""

    cx: float
    cy: float
    a: float
    b: float
    rot: float
    profile: np.ndarray  # (N_ANG,) radius multiplier sampled at ANGLES

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
        idx = np.linspace(0, N_ANG, n, endpoint=False).astype(int)
        th = ANGLES[idx]
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
    """Periodic linear interpolation of a profile sampled at ``ANGLES`` (float32)."""
    t = (theta + np.float32(np.pi)) * np.float32(N_ANG / TWO_PI)
    i0 = t.astype(np.int32)
    f = t - i0
    i0 %= N_ANG
    prof = profile.astype(np.float32)
    p0 = prof[i0]
    return p0 + (prof[(i0 + 1) % N_ANG] - p0) * f


def fourier_profile(
    rng: np.random.Generator, amp: float, kmin: int = 2, kmax: int = 6
) -> np.ndarray:
    """Ellipse radius perturbed by random harmonics ``kmin..kmax`` of overall size ``amp``."""
    p = np.ones(N_ANG)
    for k in range(kmin, kmax + 1):
        p += (
            amp * rng.standard_normal() / math.sqrt(k) * np.cos(k * ANGLES + rng.uniform(0, TWO_PI))
        )
    return np.clip(p, 0.4, None)


def polygon_profile(rng: np.random.Generator, k: int, rjit: float) -> np.ndarray:
    """Radius profile of an irregular convex-ish polygon with ``k`` vertices."""
    base = np.linspace(0.0, TWO_PI, k, endpoint=False) + rng.uniform(0, TWO_PI)
    ang = base + rng.uniform(-0.3, 0.3, k) * (TWO_PI / k)
    ang = np.sort(np.mod(ang + np.pi, TWO_PI) - np.pi)
    rad = rng.uniform(1.0 - rjit, 1.0 + rjit, k)
    px, py = rad * np.cos(ang), rad * np.sin(ang)
    i = (np.searchsorted(ang, ANGLES, side="right") - 1) % k
    j = (i + 1) % k
    ex, ey = px[j] - px[i], py[j] - py[i]
    dx, dy = np.cos(ANGLES), np.sin(ANGLES)
    num = px[i] * ey - py[i] * ex
    den = dx * ey - dy * ex
    r = np.where(np.abs(den) > 1e-9, num / np.where(den == 0, 1.0, den), 1.0)
    r = np.clip(r, 0.4, 1.6)
    return r / r.mean()


def add_processes(rng: np.random.Generator, profile: np.ndarray, n: int) -> np.ndarray:
    """Add ``n`` narrow cytoplasmic projections ("spider" processes) to a profile."""
    p = profile.copy()
    for _ in range(n):
        centre = rng.uniform(-np.pi, np.pi)
        d = np.angle(np.exp(1j * (ANGLES - centre)))
        p += rng.uniform(0.2, 0.55) * np.exp(-((d / rng.uniform(0.07, 0.2)) ** 2))
    return p
