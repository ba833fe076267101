"""The ONNX file a model carries, exported from its torch backbone (needs torch and timm).

Training calls :func:`serving_backbone` once the heads are fitted: the trunk is exported (or
taken from the export cache, where it was checked against torch), hashed, and opened the way
a user's ``from_pretrained`` will open it, so the model that is evaluated and saved is the one
that serves.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import TYPE_CHECKING

import timm
import torch

from ..artifacts import sha256_file
from ..config import OnnxFile
from ..engines import ONNX_OPSET, OnnxTrunk, onnx_trunk_path
from ..features import default_cache_dir
from .onnx_backbone import INPUT_NAME, OUTPUT_NAME, OnnxBackbone

if TYPE_CHECKING:
    from ..features import Backbone


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def export_backbone(backbone: Backbone) -> tuple[Path, OnnxFile]:
    """The backbone's trunk as an ONNX file (exported and checked once, then cached) and the
    record ``config.json`` keeps of it.

    Raises:
        EngineError: the export failed or disagrees with torch.
    """
    if backbone.runner is not None:
        path = backbone.runner.path
    else:
        size = tuple(int(s) for s in backbone.data_config["input_size"])
        path = onnx_trunk_path(default_cache_dir(), backbone.name, backbone.weights_sha256, size)
        OnnxTrunk.load(backbone.model, path, size, threads=1)  # exports and checks if missing
    record = OnnxFile(
        sha256=sha256_file(path),
        opset=ONNX_OPSET,
        input_name=INPUT_NAME,
        output_name=OUTPUT_NAME,
        exported_with={
            "torch": torch.__version__,
            "timm": timm.__version__,
            "onnx": _version("onnx"),
        },
    )
    return path, record


def serving_backbone(backbone: Backbone) -> tuple[OnnxBackbone, OnnxFile]:
    """The ONNX backbone a model built on ``backbone`` serves with, and its record."""
    path, record = export_backbone(backbone)
    onnx = OnnxBackbone.load(
        path,
        sha256=record.sha256,
        name=backbone.name,
        data_config=dict(backbone.data_config),
        feature_dim=backbone.feature_dim,
    )
    return onnx, record
