"""The frozen timm backbone: model, preprocessing, pooled features, and its checks.

Preprocessing comes from ``timm.data.resolve_model_data_config`` + ``create_transform`` and is
one object (:attr:`Backbone.transform`) shared by training and serving. The trunk runs on the
engine and precision :func:`cervix_hf.features.runtime.choose_runtime` picks (measured on a
CPU, see :mod:`cervix_hf.features.probe`). Every backbone is checked once, when it is built,
to give an NCHW last feature map whose spatial mean is the pooled vector: the exact heat map
and the unusual-image statistics rely on it.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import timm
import torch
from PIL import Image
from timm.data import create_transform, resolve_model_data_config

from ..config import CervixConfig
from ..errors import ModelLoadError
from ..images import ImageInput, load_image
from . import hardware
from .cache import default_cache_dir
from .checks import check_backbone, check_feature_map, json_ready, training_precision
from .onnx_export import OnnxTrunk
from .plan import ExecutionPlan, candidates, resolve_device
from .runtime import choose_runtime

logger = logging.getLogger(__name__)

DEFAULT_BACKBONE = "resnet152.tv2_in1k"
DEFAULT_BATCH_SIZE = 16
CACHE_FORMAT = 2


def weights_fingerprint(model: torch.nn.Module) -> str:
    """SHA-256 over every parameter and buffer (name, dtype, shape, bytes) of a model."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def spatial_std(fmap: torch.Tensor) -> np.ndarray:
    """Spatial standard deviation (N, C) of a feature map (N, C, h, w): its texture."""
    return fmap.float().flatten(2).std(dim=2, correction=0).cpu().numpy()


@dataclass
class Backbone:
    """A frozen timm model with its preprocessing.

    Build it with :func:`create_backbone`. ``feature_map`` gives the last feature map (for the
    heat map) and ``pool`` the pooled vector the head takes; ``__call__`` does both.
    """

    name: str
    model: torch.nn.Module
    data_config: dict[str, Any]
    pretrained: bool
    weights_sha256: str
    revision: str | None = None
    init_seed: int | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    engine: str = "torch"
    precision: str = "fp32"
    plan: ExecutionPlan | None = field(default=None, repr=False, compare=False)
    runner: OnnxTrunk | None = field(default=None, repr=False, compare=False)
    feature_map_size: tuple[int, int] | None = None  # (h, w) of the last feature map

    def __post_init__(self) -> None:
        self.transform = create_transform(**self.data_config, is_training=False)

    @property
    def batch_size(self) -> int:
        """Images per forward pass for this plan (ONNX 8 per thread, torch CPU 16, CUDA 256)."""
        return self.plan.batch_size if self.plan is not None else DEFAULT_BATCH_SIZE

    @property
    def feature_dim(self) -> int:
        """Length of the pooled feature vector."""
        return int(self.model.num_features)

    def preprocess(self, images: Sequence[ImageInput]) -> torch.Tensor:
        """Load and transform images into one batch tensor (N, 3, H, W)."""
        return torch.stack([self.transform(load_image(img)) for img in images])

    def to_images(self, batch: torch.Tensor) -> list[Image.Image]:
        """Undo the normalisation of a preprocessed batch: the crops the model saw."""
        mean = torch.tensor(self.data_config["mean"]).view(1, -1, 1, 1)
        std = torch.tensor(self.data_config["std"]).view(1, -1, 1, 1)
        arr = (batch.cpu() * std + mean).clamp(0, 1).mul(255).round().byte()
        return [Image.fromarray(a.permute(1, 2, 0).numpy()) for a in arr]

    @torch.inference_mode()
    def feature_map(self, batch: torch.Tensor) -> torch.Tensor:
        """The backbone's last feature map (N, C, h, w) for a preprocessed batch.

        Runs on :attr:`engine`: the ONNX Runtime session (a CPU tensor back) or torch on
        :attr:`device` (channels_last, bf16 autocast when :attr:`precision` says so).
        """
        if self.runner is not None:
            return self.runner(batch)
        batch = batch.to(self.device, memory_format=torch.channels_last, non_blocking=True)
        if self.precision == "bf16":
            with torch.autocast(self.device.type, dtype=torch.bfloat16):
                return self.model.forward_features(batch)
        return self.model.forward_features(batch)

    @torch.inference_mode()
    def pool(self, fmap: torch.Tensor) -> torch.Tensor:
        """Pooled features (N, C) from a feature map, as the head sees them."""
        return self.model.forward_head(fmap, pre_logits=True)

    def __call__(self, batch: torch.Tensor) -> np.ndarray:
        """Pooled float32 features for a preprocessed batch."""
        return self.pool(self.feature_map(batch)).float().cpu().numpy()

    def stats(self, batch: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Pooled features and the feature map's spatial std (N, C) each, from one pass."""
        fmap = self.feature_map(batch)
        return self.pool(fmap).float().cpu().numpy(), spatial_std(fmap)

    def embed(
        self, images: Sequence[ImageInput], batch_size: int = DEFAULT_BATCH_SIZE
    ) -> np.ndarray:
        """Features (N, D) for a list of images, in batches."""
        out = np.empty((len(images), self.feature_dim), dtype=np.float32)
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            out[start : start + len(chunk)] = self(self.preprocess(chunk))
        return out

    def cache_key(self) -> dict[str, Any]:
        """What, besides the data, determines the features.

        The engine is left out (torch and ONNX Runtime agree to float noise: cosine 1.0, max
        relative error ~1e-6, tests/test_engines.py); a precision other than fp32 is in.
        """
        key: dict[str, Any] = {
            "backbone": self.name,
            "revision": self.revision,
            "weights_sha256": self.weights_sha256,
            "data_config": json_ready(self.data_config),
            "format": CACHE_FORMAT,
        }
        if self.precision != "fp32":
            key["precision"] = self.precision
        return key


def _random_weights_file(name: str, init_seed: int) -> Path:
    versions = f"torch{torch.__version__}-timm{timm.__version__}"
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{name}-seed{init_seed}-{versions}")
    return default_cache_dir() / "random-backbones" / f"{safe}.safetensors"


def _random_backbone(name: str, init_seed: int, kwargs: dict[str, Any]) -> torch.nn.Module:
    """A randomly initialised model, reproducible from its seed.

    Initialising a large model takes seconds (ResNet152: about 5 s here); the weights are
    cached as safetensors, and later calls build the model on the meta device and load them.
    Whatever the path, the caller fingerprints the weights and the model config checks them.
    """
    from safetensors.torch import load, save_file

    path = _random_weights_file(name, init_seed)
    if path.exists():
        with torch.device("meta"):
            model = timm.create_model(name, **kwargs)
        # read, not memory-mapped: a mapping would stay resident beside the channels_last
        # copies made below (~240 MB more RSS for ResNet152)
        model.load_state_dict(load(path.read_bytes()), assign=True)
        tensors = itertools.chain(model.parameters(), model.buffers())
        if not any(t.is_meta for t in tensors):
            return model
        logger.debug("Cached random weights do not cover %s; initialising it", name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        model = timm.create_model(name, **kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.partial")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
    os.replace(tmp, path)
    return model


def create_backbone(
    name: str = DEFAULT_BACKBONE,
    *,
    pretrained: bool = True,
    revision: str | None = None,
    init_seed: int = 0,
    weights_file: str | os.PathLike | None = None,
    data_config: dict[str, Any] | None = None,
    device: str | torch.device | None = None,
    engine: str = "auto",
    precision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> Backbone:
    """Create a frozen timm backbone that outputs pooled features.

    Args:
        name: any timm name, including ``hf-hub:org/name`` (``@revision`` allowed).
        pretrained: load pretrained weights (False: random init from ``init_seed``, offline).
        revision: Hub revision of the weights for a registry name (a commit sha pins them).
        init_seed: torch seed for a random init, so the same backbone can be rebuilt.
        weights_file: a local weights file to load instead of downloading (offline use).
        data_config: preprocessing to use; None resolves it from the model (test size).
        device: torch device; default CUDA when available, else CPU.
        engine: ``"auto"``, ``"torch"`` or ``"onnx"`` (CPU only).
        precision: ``None`` -- what a served model runs, chosen by rule without measuring
            (fp32 on a CPU, ONNX Runtime when installed; bf16 autocast on a CUDA GPU that
            supports it); ``"auto"`` -- for extraction: on a CPU the fastest of the allowed
            engines and precisions (bf16 only where the CPU has bf16 hardware), measured once
            and cached (:mod:`cervix_hf.features.probe`); ``"fp32"`` or ``"bf16"``.
        cache_dir: root for the ONNX export and the probe's rates; default
            :func:`~cervix_hf.features.cache.default_cache_dir`.

    Raises:
        ModelLoadError: timm does not know the model, the weights cannot be fetched, or the
            model does not give a mean-pooled NCHW feature map (:func:`check_feature_map`).
        EngineError: the device, engine or precision cannot be used as asked.
        OnnxGraphError: the cached ONNX graph fails verification.
    """
    dev = resolve_device(device)
    candidates(dev, engine, precision)  # refuse an impossible choice before building anything
    kwargs: dict[str, Any] = {"pretrained": pretrained, "num_classes": 0}
    if pretrained and revision and not name.startswith("hf-hub:"):
        hub_id = timm.models.get_pretrained_cfg(name).hf_hub_id if "." in name else None
        if not hub_id:
            raise ModelLoadError(f"Backbone {name!r} has no Hub weights to pin at {revision!r}.")
        kwargs["pretrained_cfg_overlay"] = {"hf_hub_id": f"{hub_id}@{revision}"}
    if pretrained and weights_file is not None:
        kwargs["pretrained_cfg_overlay"] = {"file": str(weights_file)}
    try:
        if pretrained:
            model = timm.create_model(name, **kwargs)
        else:
            model = _random_backbone(name, init_seed, kwargs)
    except RuntimeError as exc:
        if "Unknown model" in str(exc):
            raise ModelLoadError(
                f"timm does not know the backbone {name!r}: see timm.list_models()."
            ) from None
        raise
    except OSError as exc:  # network or missing local file (huggingface_hub errors are OSError)
        raise ModelLoadError(
            f"Could not fetch pretrained weights for {name!r} ({type(exc).__name__}: {exc}). "
            "Connect to the Hub, pass --backbone-weights FILE, or train offline with "
            "--no-pretrained (random init; the model card will say so)."
        ) from None
    model.eval().requires_grad_(False)
    model.to(dev, memory_format=torch.channels_last)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # one input size: let cuDNN pick its kernels
    resolved = (
        dict(data_config) if data_config else resolve_model_data_config(model, use_test_size=True)
    )
    resolved = {k: tuple(v) if isinstance(v, list) else v for k, v in resolved.items()}
    if name.startswith("hf-hub:") and "@" in name:
        revision = name.rsplit("@", 1)[1]
    sha = weights_fingerprint(model)
    size = tuple(int(v) for v in resolved["input_size"])
    fmap_size = check_feature_map(model, name, size, dev)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    plan, runner = choose_runtime(model, name, size, sha, dev, engine, precision, root)
    return Backbone(
        name=name,
        model=model,
        data_config=resolved,
        pretrained=pretrained,
        weights_sha256=sha,
        revision=revision,
        init_seed=None if pretrained else init_seed,
        device=dev,
        engine=plan.engine,
        precision=plan.precision,
        plan=plan,
        runner=runner,
        feature_map_size=fmap_size,
    )


def backbone_for_config(
    config: CervixConfig,
    *,
    device: str | torch.device | None = None,
    engine: str = "auto",
    weights_file: str | os.PathLike | None = None,
    precision: str | None = None,
) -> Backbone:
    """The backbone a model's features come from, rebuilt from its config and checked.

    Use it to compute dataset features for a saved model (evaluation, re-training the head).
    By default it runs at the precision the head was trained on (:func:`training_precision`),
    so the features are those the head was fitted to and their cache entry is training's.
    Scoring what users get (the served model) asks for the serving precision instead:
    ``precision="fp32"``. Prediction runs on the model's own backbone.

    Args:
        config: the model's config.
        device, engine, weights_file: as for :func:`create_backbone`.
        precision: ``None`` (the training precision; bf16 on a CPU without bf16 hardware
            falls back to fp32, the serving path's precision, with a warning) or an explicit
            ``"fp32"``/``"bf16"`` (refused where it cannot run).

    Raises:
        ModelLoadError, EngineError, ConfigMismatchError: as :func:`create_backbone` and
            :func:`check_backbone`.
    """
    if precision is None:
        precision = training_precision(config)
        dev = resolve_device(device)
        if precision == "bf16" and dev.type == "cpu" and not hardware.cpu_has_bf16():
            logger.warning(
                "%s was trained on bf16 features, but this CPU has no bf16 hardware: computing "
                "fp32 features (what its serving path computes; config.json 'precision' says "
                "how far that moves its outputs).",
                config.backbone,
            )
            precision = "fp32"
    backbone = create_backbone(
        config.backbone,
        pretrained=config.pretrained,
        revision=config.backbone_revision,
        init_seed=config.init_seed if config.init_seed is not None else 0,
        weights_file=weights_file,
        data_config=config.data_config,
        device=device,
        engine=engine,
        precision=precision,
    )
    check_backbone(config, backbone)
    return backbone
