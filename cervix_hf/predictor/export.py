"""The ONNX file a model carries, exported from its torch backbone (needs torch and timm).

Training calls :func:`serving_backbone` once the heads are fitted: the trunk is exported (or
taken from the export cache, where it was checked against torch), hashed, and opened the way
a user's ``from_pretrained`` will open it, so the model that is evaluated and saved is the one
that serves.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import timm

from ..config import OnnxFile
from ..features.precision import serving_twin
from .onnx_backbone import INPUT_NAME, OUTPUT_NAME, OnnxBackbone

if TYPE_CHECKING:
    from ..features import Backbone


def export_backbone(backbone: Backbone, cache_dir: str | None = None) -> tuple[Path, OnnxFile]:
    """The backbone's trunk as an ONNX file (exported once into the export cache, checked
    against torch there on every load) and the record ``config.json`` keeps of it.

    Raises:
        EngineError, OnnxGraphError: the export failed, disagrees with torch, or the cached
            file fails its checks.
    """
    runner = backbone.runner or serving_twin(backbone, cache_dir).runner
    assert runner is not None
    record = runner.record
    return runner.path, OnnxFile(
        sha256=record.sha256,
        opset=record.opset,
        input_name=INPUT_NAME,
        output_name=OUTPUT_NAME,
        exported_with={**record.versions, "timm": timm.__version__},
    )


def serving_backbone(
    backbone: Backbone, cache_dir: str | None = None
) -> tuple[OnnxBackbone, OnnxFile]:
    """The ONNX backbone a model built on ``backbone`` serves with, and its record."""
    path, record = export_backbone(backbone, cache_dir)
    onnx = OnnxBackbone.load(
        path,
        sha256=record.sha256,
        name=backbone.name,
        data_config=dict(backbone.data_config),
        feature_dim=backbone.feature_dim,
    )
    return onnx, record
