"""Frozen timm backbone -> pooled feature vectors, batched, streamed and cached on disk.

Preprocessing comes from ``timm.data.resolve_model_data_config`` + ``create_transform`` and is
one object (:attr:`Backbone.transform`) shared by training and serving. Features for a
``datasets`` dataset are cached under a key made of the dataset fingerprint, the backbone
name and revision, the hash of its weights and the transform, so retraining the head never
reruns the backbone.

The trunk runs on the engine chosen by :func:`cervix_hf.engines.plan_execution`: ONNX Runtime
on the CPU, torch (bf16 autocast where supported) on CUDA. Both give the same feature map to
float noise, so the cache key leaves the engine out; bf16 changes the features beyond noise,
so it is in the key. DataLoader workers decode and resize the next batches while the
backbone computes, where CPUs are left over for them (see
:func:`cervix_hf.engines.loader_workers`).
"""

from __future__ import annotations

import contextlib
import dataclasses
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

from .config import CervixConfig
from .engines import ExecutionPlan, OnnxTrunk, batch_parallel, onnx_trunk_path, plan_execution
from .errors import ConfigMismatchError, EngineError, ModelLoadError
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
    engine: str = "torch"
    precision: str = "fp32"
    plan: ExecutionPlan | None = field(default=None, repr=False, compare=False)
    runner: OnnxTrunk | None = field(default=None, repr=False, compare=False)

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
            "data_config": _json_ready(self.data_config),
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
        engine: ``"auto"`` (ONNX Runtime on the CPU when installed, torch on CUDA),
            ``"torch"`` or ``"onnx"``; see :func:`cervix_hf.engines.plan_execution`.
        precision: ``None`` (bf16 autocast on a CUDA GPU that supports it, else fp32),
            ``"fp32"`` or ``"bf16"``.

    Raises:
        ModelLoadError: if timm does not know the model or the weights cannot be fetched.
        EngineError: if the device, engine or precision cannot be used as asked.
    """
    plan = plan_execution(device, engine, precision)
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
    dev = plan.device
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
    runner = None
    if plan.engine == "onnx":
        size = tuple(resolved["input_size"])
        path = onnx_trunk_path(default_cache_dir(), name, sha, size)
        try:
            runner = OnnxTrunk.load(model, path, size, plan.threads)
        except EngineError as exc:
            if engine != "auto":
                raise
            logger.warning("Using the torch engine: %s", exc)
            plan = dataclasses.replace(plan, engine="torch")
    logger.debug("Backbone %s: %s", name, plan)
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
    )


def check_backbone(config: CervixConfig, backbone: Backbone) -> None:
    """Check a built backbone against a model's config (feature size, preprocessing, weights).

    Raises:
        ConfigMismatchError: with what differs.
    """
    if backbone.feature_dim != config.feature_dim:
        raise ConfigMismatchError(
            f"Backbone {backbone.name} gives {backbone.feature_dim} features; config.json "
            f"expects {config.feature_dim}."
        )
    if _json_ready(backbone.data_config) != _json_ready(config.data_config):
        raise ConfigMismatchError(
            f"Backbone preprocessing {backbone.data_config} differs from config.json's "
            f"{config.data_config}."
        )
    if backbone.weights_sha256 != config.weights_sha256:
        raise ConfigMismatchError(
            f"The rebuilt backbone {config.backbone} has other weights than the head was "
            f"trained on (sha256 {backbone.weights_sha256[:12]} != {config.weights_sha256[:12]}). "
            "Install the versions in config.json 'versions' or pin backbone_revision; the "
            "predictions would not be the model's."
        )


def backbone_for_config(
    config: CervixConfig,
    *,
    device: str | torch.device | None = None,
    engine: str = "auto",
    weights_file: str | os.PathLike | None = None,
) -> Backbone:
    """The torch backbone a model's features come from, rebuilt from its config and checked.

    Use it to compute dataset features for a saved model (evaluation, re-training the head);
    prediction runs on the model's own backbone.

    Raises:
        ModelLoadError, EngineError, ConfigMismatchError: as :func:`create_backbone` and
            :func:`check_backbone`.
    """
    backbone = create_backbone(
        config.backbone,
        pretrained=config.pretrained,
        revision=config.backbone_revision,
        init_seed=config.init_seed if config.init_seed is not None else 0,
        weights_file=weights_file,
        data_config=config.data_config,
        device=device,
        engine=engine,
    )
    check_backbone(config, backbone)
    return backbone


class _ImageBatches(torch.utils.data.Dataset):
    """Batch ``i`` of a dataset's images, decoded and transformed: a loader worker's job."""

    def __init__(self, dataset: Any, transform: Any, batch_size: int) -> None:
        import datasets

        self.records = dataset.select_columns(["image"]).cast_column(
            "image", datasets.Image(decode=False)
        )
        self.transform = transform
        self.batch_size = batch_size

    def __len__(self) -> int:
        return -(-len(self.records) // self.batch_size)

    def __getitem__(self, i: int) -> torch.Tensor:
        rows = self.records[i * self.batch_size : (i + 1) * self.batch_size]["image"]
        return torch.stack([self.transform(load_image(r)) for r in rows])


def image_loader(
    backbone: Backbone, dataset: Any, batch_size: int, workers: int | None = None
) -> torch.utils.data.DataLoader:
    """Preprocessed batches of a dataset's images, in order, decoded ahead of the backbone.

    Args:
        backbone: gives the transform and the plan (workers, pinned memory).
        dataset: a ``datasets.Dataset`` with an ``image`` column (decoded or not).
        batch_size: images per batch.
        workers: decoding processes; default the plan's (on the CPU one when a CPU is spare
            beyond the compute threads, else none; on CUDA the spare CPUs). With a single
            batch there is nothing to overlap, so none.
    """
    batches = _ImageBatches(dataset, backbone.transform, batch_size)
    plan = backbone.plan
    if workers is None:
        workers = plan.loader_workers if plan is not None else 0
    workers = max(0, min(workers, len(batches) - 1))
    return torch.utils.data.DataLoader(
        batches,
        batch_size=None,
        shuffle=False,
        num_workers=workers,
        pin_memory=bool(plan is not None and plan.pin_memory),
        prefetch_factor=2 if workers else None,
        worker_init_fn=_lower_priority if workers and backbone.device.type == "cpu" else None,
    )


def _lower_priority(_: int) -> None:
    """Decoding workers yield the CPU to the compute threads whenever those want it."""
    with contextlib.suppress(OSError):
        os.nice(19)


def _partial_file(folder: Path) -> Path:
    fd, name = tempfile.mkstemp(dir=folder, suffix=".npy.partial")
    os.close(fd)
    return Path(name)


@contextlib.contextmanager
def atomic_arrays(paths: Sequence[Path], shape: tuple[int, ...]) -> Iterator[list[np.ndarray]]:
    """Memory-mapped float32 arrays that appear at ``paths`` only if the block succeeds."""
    tmp = [_partial_file(p.parent) for p in paths]
    try:
        outs = [np.lib.format.open_memmap(t, mode="w+", dtype=np.float32, shape=shape) for t in tmp]
        yield outs
        for out in outs:
            out.flush()
        del outs
        for t, p in zip(tmp, paths, strict=True):
            os.replace(t, p)
    finally:
        for t in tmp:
            t.unlink(missing_ok=True)


@dataclass
class FeatureCacheEntry:
    """One cache entry: ``features.npy`` and ``spread.npy`` (N, D) plus ``meta.json``."""

    path: Path
    meta: dict[str, Any]
    shape: tuple[int, int]

    @property
    def files(self) -> tuple[Path, Path]:
        """Pooled features and spatial std files."""
        return self.path / "features.npy", self.path / "spread.npy"

    def load(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The cached arrays, or None when the entry is missing or of the wrong shape."""
        if not all(p.exists() for p in self.files):
            return None
        arrays = tuple(np.load(p) for p in self.files)
        if any(a.shape != self.shape for a in arrays):
            logger.warning("Ignoring a feature cache entry of the wrong shape: %s", self.path)
            return None
        logger.info("Feature cache hit: %s (%d x %d)", self.path, *self.shape)
        return arrays  # type: ignore[return-value]

    def write_meta(self) -> None:
        """Record what the entry was computed from (after the arrays are in place)."""
        (self.path / "meta.json").write_text(json.dumps(self.meta, indent=2, sort_keys=True))


def feature_cache_entry(
    backbone: Backbone,
    dataset: Any,
    *,
    cache_dir: str | os.PathLike | None = None,
    fingerprint: str | None = None,
) -> FeatureCacheEntry:
    """Where the features of ``dataset`` under ``backbone`` are (or will be) cached."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    meta = {"dataset_fingerprint": fingerprint or dataset._fingerprint, "num_rows": len(dataset)}
    meta.update(backbone.cache_key())
    key = hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:32]
    return FeatureCacheEntry(root / "features" / key, meta, (len(dataset), backbone.feature_dim))


def extract_into(
    backbone: Backbone,
    dataset: Any,
    outs: Sequence[np.ndarray],
    *,
    batch_size: int | None = None,
    progress: bool = True,
    workers: int | None = None,
    desc: str | None = None,
) -> None:
    """Run the backbone over ``dataset`` and write pooled features and spatial std to ``outs``.

    One backbone pass per batch. On ONNX Runtime with several threads, batches run side by
    side, one thread each (:func:`cervix_hf.engines.batch_parallel`); the next batches are
    decoded meanwhile (in DataLoader workers where CPUs are spare, else by this thread).
    """
    batch_size = batch_size or backbone.batch_size
    parallel = backbone.plan.threads if backbone.runner is not None and backbone.plan else 1
    bar = tqdm(
        total=len(dataset),
        unit="img",
        desc=desc or f"features ({backbone.name}, {backbone.engine})",
        disable=not progress,
    )
    start = 0
    loader = image_loader(backbone, dataset, batch_size, workers)
    for pooled, spread in batch_parallel(backbone.stats, loader, parallel):
        outs[0][start : start + len(pooled)] = pooled
        outs[1][start : start + len(pooled)] = spread
        start += len(pooled)
        bar.update(len(pooled))
    bar.close()
    if start != len(dataset):
        raise RuntimeError(f"Extracted {start} rows of {len(dataset)}.")


def dataset_features(
    backbone: Backbone,
    dataset: Any,
    *,
    cache_dir: str | os.PathLike | None = None,
    batch_size: int | None = None,
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
    batch_size: int | None = None,
    progress: bool = True,
    fingerprint: str | None = None,
    workers: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Pooled features and feature-map spatial std, (N, D) each, for every row of a dataset.

    Extraction streams batch by batch into memory-mapped files, so memory does not grow with
    the number of images; the finished files are the cache entry. A later call with the same
    dataset fingerprint, backbone, weights and transform reads them back without running the
    backbone (whichever engine computed them).

    Args:
        backbone: the feature extractor.
        dataset: a ``datasets.Dataset`` (its ``_fingerprint`` keys the cache).
        cache_dir: root of the cache; default :func:`default_cache_dir`.
        batch_size: images per forward pass; default the backbone's (CPU 8-16, CUDA 256).
        progress: show a tqdm bar with images/s.
        fingerprint: what identifies the images (default the dataset's ``_fingerprint``);
            pass the fingerprint from before label-only changes so they keep the cache.
        workers: image-decoding processes; default the backbone's plan.
    """
    entry = feature_cache_entry(backbone, dataset, cache_dir=cache_dir, fingerprint=fingerprint)
    cached = entry.load()
    if cached is not None:
        return cached
    entry.path.mkdir(parents=True, exist_ok=True)
    with atomic_arrays(entry.files, entry.shape) as outs:
        extract_into(
            backbone, dataset, outs, batch_size=batch_size, progress=progress, workers=workers
        )
    entry.write_meta()
    logger.info("Features cached in %s", entry.path)
    return np.load(entry.files[0]), np.load(entry.files[1])
