"""Feature extraction split over processes (and machines), gathered into one cache entry.

Each process takes its contiguous shard of the dataset
(``datasets.distributed.split_dataset_by_node``), streams its features into shard files
inside the cache entry, and the main process concatenates the shards, in rank order, into the
very entry :func:`cervix_hf.features.dataset_feature_stats` would have written: training
afterwards is a cache hit. Shards are gathered through the file system, so the cache
directory must be one that every process sees (one machine, or a shared file system); a
finished shard survives a crash and is reused when the job is rerun with the same number of
processes.

Launch ``scripts/extract.py`` with ``torchrun --nproc_per_node N`` (CPU: gloo) or
``accelerate launch --multi_gpu --num_processes N`` (GPUs: nccl).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .cache import FeatureCacheEntry, atomic_arrays, extract_into, feature_cache_entry

if TYPE_CHECKING:
    from .backbone import Backbone

logger = logging.getLogger(__name__)

COPY_ROWS = 4096  # rows copied at a time when gathering shards (memory stays flat)


def shard_files(entry: FeatureCacheEntry, rank: int, world_size: int) -> tuple[Path, Path]:
    """Where rank ``rank`` of ``world_size`` writes its pooled features and spatial std."""
    stem = f"shard-{rank:05d}-of-{world_size:05d}"
    return entry.path / f"{stem}.features.npy", entry.path / f"{stem}.spread.npy"


def _complete(paths: tuple[Path, Path], shape: tuple[int, int]) -> bool:
    if not all(p.exists() for p in paths):
        return False
    return all(np.load(p, mmap_mode="r").shape == shape for p in paths)


def extract_sharded(
    backbone: Backbone,
    dataset: Any,
    *,
    rank: int,
    world_size: int,
    barrier: Callable[[], None],
    cache_dir: str | os.PathLike | None = None,
    fingerprint: str | None = None,
    batch_size: int | None = None,
    progress: bool = True,
    workers: int | None = None,
) -> FeatureCacheEntry:
    """Extract this process's shard; the main process (rank 0) gathers all of them.

    Every process must call it with the same dataset, backbone and cache directory. Returns
    the cache entry, complete on every rank when the call returns.

    Args:
        backbone: the feature extractor (on this process's device).
        dataset: the whole ``datasets.Dataset``; each rank takes its contiguous shard.
        rank: this process's index, 0 .. world_size - 1.
        world_size: number of processes.
        barrier: waits until every process has reached it (``PartialState.wait_for_everyone``).
        cache_dir, fingerprint, batch_size, progress, workers: as for
            :func:`cervix_hf.features.dataset_feature_stats`.
    """
    from datasets.distributed import split_dataset_by_node

    entry = feature_cache_entry(backbone, dataset, cache_dir=cache_dir, fingerprint=fingerprint)
    if entry.load() is not None:
        return entry
    entry.path.mkdir(parents=True, exist_ok=True)
    shard = split_dataset_by_node(dataset, rank=rank, world_size=world_size)
    mine = shard_files(entry, rank, world_size)
    shape = (len(shard), backbone.feature_dim)
    if _complete(mine, shape):
        logger.info("Rank %d: shard already extracted (%s)", rank, mine[0].name)
    elif len(shard):
        with atomic_arrays(mine, shape) as outs:
            extract_into(
                backbone,
                shard,
                outs,
                batch_size=batch_size,
                progress=progress,
                workers=workers,
                desc=f"features rank {rank}/{world_size}",
            )
    else:
        for p in mine:
            np.save(p, np.empty(shape, np.float32))
    barrier()
    if rank == 0:
        _gather(entry, world_size)
    barrier()
    return entry


def _gather(entry: FeatureCacheEntry, world_size: int) -> None:
    """Concatenate the shards in rank order into the entry's files, then remove them."""
    shards = [shard_files(entry, r, world_size) for r in range(world_size)]
    with atomic_arrays(entry.files, entry.shape) as outs:
        start = 0
        for files in shards:
            parts = [np.load(p, mmap_mode="r") for p in files]
            n = len(parts[0])
            for out, part in zip(outs, parts, strict=True):
                for i in range(0, n, COPY_ROWS):
                    out[start + i : start + min(n, i + COPY_ROWS)] = part[i : i + COPY_ROWS]
            start += n
            del parts
        if start != entry.shape[0]:
            raise RuntimeError(f"The shards hold {start} rows; the dataset has {entry.shape[0]}.")
    entry.write_meta()
    for files in shards:
        for p in files:
            p.unlink(missing_ok=True)
    logger.info("Gathered %d shards into %s", world_size, entry.path)
