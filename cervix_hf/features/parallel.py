"""Whole batches side by side, one thread each (how ONNX Runtime runs fastest on few cores)."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")
_local = threading.local()  # .single_thread: this thread runs ONNX sessions on itself alone


def in_single_thread_worker() -> bool:
    """Whether the calling thread is one of :func:`batch_parallel`'s workers."""
    return bool(getattr(_local, "single_thread", False))


def batch_parallel(fn: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[R]:
    """``map(fn, items)`` in order, ``workers`` items at a time on threads of their own.

    Inside those threads an :class:`~cervix_hf.features.onnx_export.OnnxTrunk` runs on its
    single-threaded session: for throughput, whole batches side by side beat one batch split
    over the cores (measured alternating; README, Performance), because no thread waits for
    another at the end of each operator, and a core taken away by the host slows one batch
    instead of every operator. The calling thread meanwhile fetches (decodes) the next
    items. Latency (one image) is better served by one multi-threaded call.
    """
    if workers <= 1:
        yield from map(fn, items)
        return

    def single_threaded() -> None:
        _local.single_thread = True

    with ThreadPoolExecutor(workers, initializer=single_threaded) as pool:
        pending: deque[Future[R]] = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
