"""An exclusive lock between processes on one machine (stdlib only)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def file_lock(path: str | Path) -> Iterator[None]:
    """Hold an exclusive POSIX ``flock`` on ``path`` (created if needed) for the block.

    Elsewhere (Windows) it is a no-op: callers still write through a temporary file and
    ``os.replace``, so a file is never seen half-written, only possibly built twice.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(path, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
