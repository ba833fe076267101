"""The feature cache: a dataset's pooled features and spatial std, streamed to disk once.

An entry is keyed by the dataset fingerprint and by :meth:`Backbone.cache_key` (backbone
name and revision, weights hash, transform and, other than fp32, the precision), so
retraining the head never reruns the backbone, whichever engine computed the features.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from .loader import image_loader
from .parallel import batch_parallel

if TYPE_CHECKING:
    from .backbone import Backbone

logger = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """``$CERVIX_HF_CACHE`` or ``~/.cache/cervix_hf``: features, ONNX exports, probes."""
    env = os.environ.get("CERVIX_HF_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "cervix_hf"


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
    side, one thread each (:func:`~cervix_hf.features.parallel.batch_parallel`); the next
    batches are decoded meanwhile (in DataLoader workers where CPUs are spare, else by this
    thread).
    """
    batch_size = batch_size or backbone.batch_size
    parallel = backbone.plan.threads if backbone.runner is not None and backbone.plan else 1
    bar = tqdm(
        total=len(dataset),
        unit="img",
        desc=desc or f"features ({backbone.name}, {backbone.engine} {backbone.precision})",
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
    dataset fingerprint, backbone, weights, transform and precision reads them back without
    running the backbone (whichever engine computed them).

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
