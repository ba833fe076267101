"""What the model says about one image, and the heat-map picture: numpy and Pillow only.

Kept apart from :mod:`cervix_hf.modeling` so that the web process of the app can hold and
draw results without importing torch, timm or scikit-learn (see :mod:`cervix_hf.serving`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image


@dataclass
class CellAnalysis:
    """What the model says about one image (see :meth:`CervixClassifier.analyze`).

    ``contributions`` (h, w) are the exact per-location contributions to the logit of the
    positive class: ``contributions.mean() + intercept == logit``. ``view`` is the crop the
    backbone saw (after resizing and centre-cropping). ``novelty_score`` is the distance to
    the nearest training cell relative to the model's threshold (above 1: unusual);
    ``unusual`` also holds for blank images.
    """

    probabilities: dict[str, float]
    p_positive: float
    decision: str
    threshold: float
    cell_types: dict[str, float] | None
    novelty_score: float | None
    unusual: bool | None
    contributions: np.ndarray | None
    intercept: float | None
    view: Image.Image

    @property
    def logit(self) -> float | None:
        """The head's logit rebuilt from the heat map (None without a linear head).

        For a calibrated head: the mean pre-calibration logit of its fold heads.
        """
        if self.contributions is None or self.intercept is None:
            return None
        return float(self.contributions.mean() + self.intercept)

    def heatmap(self, alpha: float = 0.45) -> Image.Image | None:
        """The contributions over the crop: red pushed towards the positive class, blue away."""
        if self.contributions is None:
            return None
        return overlay(self.view, self.contributions, alpha)


def overlay(image: Image.Image, contrib: np.ndarray, alpha: float = 0.45) -> Image.Image:
    """Blend a contribution map over the image: red pushes to Abnormal, blue to Normal.

    The map is centred on zero (the map's mean is part of the logit, so colours show where
    evidence sits, relative to no contribution) and scaled by its largest magnitude.
    """
    peak = float(np.abs(contrib).max()) or 1.0
    v = np.asarray(
        Image.fromarray((contrib / peak).astype(np.float32), mode="F").resize(
            image.size, Image.Resampling.BILINEAR
        )
    )
    v = np.clip(v, -1.0, 1.0)
    base = np.asarray(image.convert("RGB"), dtype=np.float32)
    colour = np.zeros_like(base)
    colour[..., 0] = np.where(v > 0, 255.0, 0.0)
    colour[..., 2] = np.where(v < 0, 255.0, 0.0)
    weight = (alpha * np.abs(v))[..., None]
    return Image.fromarray(np.clip(base * (1 - weight) + colour * weight, 0, 255).astype(np.uint8))
