"""What every endpoint of the app shares: the model it needs, the disclaimer, upload paths."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Protocol

from ..analysis import CellAnalysis
from ..config import CervixConfig
from ..images import ImageInput
from ..predictor.preprocess import Prepared

API_DISCLAIMER = (
    "Research demo, not a diagnostic device: the output is a probability, never medical advice."
)


class ServedModel(Protocol):
    """What the app needs from a model (:class:`~cervix_hf.CervixClassifier` has it)."""

    config: CervixConfig
    source: dict[str, str | None]

    @property
    def has_cell_types(self) -> bool: ...

    @property
    def logit_name(self) -> str: ...

    def prepare(self, image: ImageInput) -> Prepared: ...

    def analyze_prepared(self, prepared: Sequence[Prepared]) -> list[CellAnalysis]: ...

    def analyze(self, images: Sequence[ImageInput]) -> list[CellAnalysis]: ...


def upload_path(item: Any) -> str | None:
    """Path of an upload as Gradio hands it over (a str path or an object with ``.name``)."""
    if item is None:
        return None
    if isinstance(item, (str, os.PathLike)):
        return str(item)
    return getattr(item, "path", None) or getattr(item, "name", None)


def model_json(model: ServedModel) -> dict[str, Any]:
    """Which model answered (a local directory's path is not published)."""
    cfg = model.config
    return {
        "backbone": cfg.backbone,
        "pretrained": cfg.pretrained,
        "grouping": cfg.grouping,
        "synthetic_training_data": cfg.synthetic_data,
        "repo_id": model.source.get("repo_id"),
        "revision": model.source.get("revision"),
    }
