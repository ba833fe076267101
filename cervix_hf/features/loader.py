"""A dataset's images, decoded and transformed ahead of the backbone (DataLoader workers)."""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Any

import torch

from ..images import load_image

if TYPE_CHECKING:
    from .backbone import Backbone


class ImageBatches(torch.utils.data.Dataset):
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
    batches = ImageBatches(dataset, backbone.transform, batch_size)
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
