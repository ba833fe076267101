"""Frozen timm backbone -> pooled feature vectors, batched, streamed and cached on disk.

Preprocessing comes from ``timm.data.resolve_model_data_config`` + ``create_transform`` and is
one object (:attr:`Backbone.transform`) shared by training and serving. Features for a
``datasets`` dataset are cached under a key made of the dataset fingerprint, the backbone
name and revision, the hash of its weights and the transform, so retraining the head never
reruns the backbone.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import timm
import torch
from PIL import Image
from timm.data import create_transform, resolve_model_data_config
from tqdm.auto import tqdm

from .errors import ModelLoadError
from .images import ImageInput, load_image

logger = logging.getLogger(__name__)

DEFAULT_BACKBONE = "resnet152.tv2_in1k"
DEFAULT_BATCH_SIZE = 16
CACHE_FORMAT = 2


def default_cache_dir() -> Path:
    """``$CERVIX_HF_CACHE`` or ``~/.cache/cervix_hf``."""
    env = os.environ.get("CERVIX_HF_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "cervix_hf"


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


def _json_ready(cfg: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, (tuple, list)) else v for k, v in cfg.items()}


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

    def __post_init__(self) -> None:
        self.transform = create_transform(**self.data_config, is_training=False)

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
        """The backbone's last feature map (N, C, h, w) for a preprocessed batch."""
        batch = batch.to(self.device, memory_format=torch.channels_last)
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
        """What, besides the data, determines the features."""
        return {
            "backbone": self.name,
            "revision": self.revision,
            "weights_sha256": self.weights_sha256,
            "data_config": _json_ready(self.data_config),
            "format": CACHE_FORMAT,
        }


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
    from safetensors.torch import load_file, save_file

    path = _random_weights_file(name, init_seed)
    if path.exists():
        with torch.device("meta"):
            model = timm.create_model(name, **kwargs)
        model.load_state_dict(load_file(path), assign=True)
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

    Raises:
        ModelLoadError: if timm does not know the model or the weights cannot be fetched.
    """
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
    dev = (
        torch.device(device)
        if device
        else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    )
    model.to(dev, memory_format=torch.channels_last)
    resolved = (
        dict(data_config) if data_config else resolve_model_data_config(model, use_test_size=True)
    )
    resolved = {k: tuple(v) if isinstance(v, list) else v for k, v in resolved.items()}
    if name.startswith("hf-hub:") and "@" in name:
        revision = name.rsplit("@", 1)[1]
    return Backbone(
        name=name,
        model=model,
        data_config=resolved,
        pretrained=pretrained,
        weights_sha256=weights_fingerprint(model),
        revision=revision,
        init_seed=None if pretrained else init_seed,
        device=dev,
    )


def _image_batches(dataset: Any, batch_size: int) -> Iterator[list[Any]]:
    """Undecoded image records of a ``datasets`` dataset, in order, a batch at a time."""
    import datasets

    ds = dataset.select_columns(["image"]).cast_column("image", datasets.Image(decode=False))
    for batch in ds.iter(batch_size=batch_size):
        yield batch["image"]


def _partial_file(folder: Path) -> Path:
    fd, name = tempfile.mkstemp(dir=folder, suffix=".npy.partial")
    os.close(fd)
    return Path(name)


def dataset_features(
    backbone: Backbone,
    dataset: Any,
    *,
    cache_dir: str | os.PathLike | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True,
    fingerprint: str | None = None,
) -> np.ndarray:
    """Pooled features (N, D) for every row of a ``datasets.Dataset`` with an ``image`` column.

    See :func:`dataset_feature_stats`, which this wraps.
    """
    return dataset_feature_stats(
        backbone,
        dataset,
        cache_dir=cache_dir,
        batch_size=batch_size,
        progress=progress,
        fingerprint=fingerprint,
    )[0]


def dataset_feature_stats(
    backbone: Backbone,
    dataset: Any,
    *,
    cache_dir: str | os.PathLike | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True,
    fingerprint: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Pooled features and feature-map spatial std, (N, D) each, for every row of a dataset.

    Extraction streams batch by batch into memory-mapped files, so memory does not grow with
    the number of images; the finished files are the cache entry. A later call with the same
    dataset fingerprint, backbone, weights and transform reads them back without running the
    backbone.

    Args:
        backbone: the feature extractor.
        dataset: a ``datasets.Dataset`` (its ``_fingerprint`` keys the cache).
        cache_dir: root of the cache; default :func:`default_cache_dir`.
        batch_size: images per forward pass.
        progress: show a tqdm bar with images/s.
        fingerprint: what identifies the images (default the dataset's ``_fingerprint``);
            pass the fingerprint from before label-only changes so they keep the cache.
    """
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    meta = {"dataset_fingerprint": fingerprint or dataset._fingerprint, "num_rows": len(dataset)}
    meta.update(backbone.cache_key())
    key = hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:32]
    entry = root / "features" / key
    paths = (entry / "features.npy", entry / "spread.npy")
    shape = (len(dataset), backbone.feature_dim)
    if all(p.exists() for p in paths):
        arrays = tuple(np.load(p) for p in paths)
        if all(a.shape == shape for a in arrays):
            logger.info("Feature cache hit: %s (%d x %d)", entry, *shape)
            return arrays  # type: ignore[return-value]
        logger.warning("Ignoring a feature cache entry of the wrong shape: %s", entry)
    entry.mkdir(parents=True, exist_ok=True)
    tmp = [_partial_file(entry) for _ in paths]
    try:
        outs = [np.lib.format.open_memmap(t, mode="w+", dtype=np.float32, shape=shape) for t in tmp]
        bar = tqdm(
            total=len(dataset), unit="img", desc=f"features ({backbone.name})", disable=not progress
        )
        start = 0
        for records in _image_batches(dataset, batch_size):
            pooled, spread = backbone.stats(backbone.preprocess(records))
            outs[0][start : start + len(records)] = pooled
            outs[1][start : start + len(records)] = spread
            start += len(records)
            bar.update(len(records))
        bar.close()
        for out in outs:
            out.flush()
        del outs
        for t, p in zip(tmp, paths, strict=True):
            os.replace(t, p)
    except BaseException:
        for t in tmp:
            t.unlink(missing_ok=True)
        raise
    (entry / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
    logger.info("Features cached in %s", entry)
    return np.load(paths[0]), np.load(paths[1])
