"""A model's ``backbone.onnx`` run by ONNX Runtime on the CPU: no torch, no timm.

The file is the backbone trunk (``forward_features``: images in, last feature map out, any
batch size), exported when the model was saved. :meth:`OnnxBackbone.load` checks its SHA-256
against ``config.json`` before ONNX Runtime reads a byte of it. The pooled features the
heads take are the feature map's spatial mean, as timm's average-pooling head computes them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts import verify_file
from ..errors import ConfigMismatchError, EngineError, ModelLoadError
from ..features.hardware import INSTALL_HINT, compute_threads, onnxruntime_module
from ..features.onnx_graph import create_session, ort_errors
from ..images import ImageInput, load_image
from .preprocess import EvalTransform, Prepared, stack

logger = logging.getLogger(__name__)

INPUT_NAME = "pixel_values"
OUTPUT_NAME = "feature_map"


def spatial_mean(fmap: np.ndarray) -> np.ndarray:
    """Pooled features (N, C): the feature map's mean over its h x w locations."""
    return fmap.reshape(fmap.shape[0], fmap.shape[1], -1).mean(axis=2, dtype=np.float32)


def spatial_std(fmap: np.ndarray) -> np.ndarray:
    """Spatial standard deviation (N, C) of a feature map (N, C, h, w): its texture."""
    return fmap.reshape(fmap.shape[0], fmap.shape[1], -1).std(axis=2, dtype=np.float32)


class OnnxBackbone:
    """A verified ONNX Runtime session with the model's preprocessing.

    Build it with :meth:`load`. ``prepare`` reads and transforms one image, ``feature_map``
    runs a batch, ``spatial_mean`` (module function) pools it.
    """

    def __init__(
        self,
        session: Any,
        *,
        path: Path,
        sha256: str,
        name: str,
        data_config: Mapping[str, Any],
        feature_dim: int,
        threads: int,
    ) -> None:
        self.session = session
        self.path = path
        self.sha256 = sha256
        self.name = name
        self.data_config = dict(data_config)
        self.feature_dim = feature_dim
        self.threads = threads
        self.transform = EvalTransform(data_config)
        self.input_name = session.get_inputs()[0].name

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        sha256: str,
        name: str,
        data_config: Mapping[str, Any],
        feature_dim: int,
        threads: int | None = None,
        label: str = "backbone.onnx",
        warm_up: bool = False,
    ) -> OnnxBackbone:
        """Check the file's hash, then open it with ONNX Runtime (CPU).

        Args:
            path: the ``.onnx`` file. sha256: its recorded hash. name: the timm backbone
            name (for messages). data_config: its preprocessing. feature_dim: channels of its
            feature map. threads: intra-op threads (default: this process's cores).
            label: how messages name the file. warm_up: run one blank image once loaded.

        Raises:
            ModelLoadError: the file is missing, changed, or not a backbone ONNX Runtime can
                run with one 4-D input and a feature map of ``feature_dim`` channels.
            EngineError: onnxruntime is not installed.
        """
        path = Path(path)
        verify_file(path, sha256, label)
        if onnxruntime_module() is None:
            raise EngineError(f"Running a model needs onnxruntime: {INSTALL_HINT}.")
        errors = ort_errors()
        threads = threads or compute_threads()
        try:
            session = create_session(path, threads)
        except errors as exc:
            logger.debug("ONNX Runtime could not open %s", path, exc_info=True)
            raise ModelLoadError(
                f"{label} cannot be run by ONNX Runtime ({type(exc).__name__})."
            ) from None
        inputs, outputs = session.get_inputs(), session.get_outputs()
        channels = outputs[0].shape[1] if outputs and len(outputs[0].shape) == 4 else None
        if len(inputs) != 1 or len(inputs[0].shape) != 4 or len(outputs) != 1:
            raise ModelLoadError(f"{label} is not a backbone trunk (one 4-D input and output).")
        if isinstance(channels, int) and channels != feature_dim:
            raise ConfigMismatchError(
                f"{label} gives {channels}-channel feature maps; config.json expects {feature_dim}."
            )
        logger.debug("Backbone %s: ONNX Runtime, %d threads, %s", name, threads, path)
        backbone = cls(
            session,
            path=path,
            sha256=sha256,
            name=name,
            data_config=data_config,
            feature_dim=feature_dim,
            threads=threads,
        )
        if warm_up:
            backbone.warm_up()
        return backbone

    def warm_up(self) -> None:
        """Run one blank image, so the first real request does not pay ONNX Runtime's
        first-run set-up (buffers, thread pool)."""
        _, height, width = (int(v) for v in self.data_config["input_size"])
        self.feature_map(np.zeros((1, 3, height, width), dtype=np.float32))

    def prepare(self, image: ImageInput) -> Prepared:
        """Read one image with the shared loader and transform it.

        Raises:
            ImageLoadError: for an input that is not a readable image.
        """
        return self.transform(load_image(image))

    def feature_map(self, batch: np.ndarray) -> np.ndarray:
        """The last feature map (N, C, h, w) float32 of a (N, 3, H, W) batch."""
        x = np.ascontiguousarray(batch, dtype=np.float32)
        (fmap,) = self.session.run(None, {self.input_name: x})
        if fmap.ndim != 4 or fmap.shape[1] != self.feature_dim:
            raise ConfigMismatchError(
                f"The backbone gave a feature map of shape {fmap.shape}; config.json expects "
                f"{self.feature_dim} channels."
            )
        return fmap

    def embed(self, images: Sequence[ImageInput], batch_size: int = 8) -> np.ndarray:
        """Pooled features (N, D) for a list of images, in batches."""
        out = np.empty((len(images), self.feature_dim), dtype=np.float32)
        for start in range(0, len(images), batch_size):
            chunk = [self.prepare(img) for img in images[start : start + batch_size]]
            out[start : start + len(chunk)] = spatial_mean(self.feature_map(stack(chunk)))
        return out
