"""The app's own temporary files (heat maps, CSVs): one folder, pruned, deleted at exit.

Nothing a user uploads or receives is kept: every file the app writes lives in one folder it
owns, is deleted once it is ``max_age`` old (checked on each write and once a minute), and
the folder goes when the app closes or the process exits. Gradio's copies of uploads and
outputs live in its own cache, which ``build_app`` asks Gradio to clear just as often.
"""

from __future__ import annotations

import atexit
import contextlib
import csv
import io
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

logger = logging.getLogger(__name__)

MAX_AGE_SECONDS = 600
PRUNE_EVERY_SECONDS = 60
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A value made safe for spreadsheets: text starting like a formula gets a ``'`` prefix.

    File names come from users (zip members included); a cell such as ``=HYPERLINK(...)``
    would otherwise run as a formula when the CSV is opened in a spreadsheet.
    """
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


class AppFiles:
    """One temporary folder for everything the app writes.

    Args:
        max_age: seconds a file is kept.
        prune_every: seconds between background prunes (0: prune on writes only).
    """

    def __init__(
        self, max_age: float = MAX_AGE_SECONDS, prune_every: float = PRUNE_EVERY_SECONDS
    ) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="cervix-app-"))
        self.max_age = max_age
        self._closed = threading.Event()
        atexit.register(self.close)
        if prune_every > 0:
            threading.Thread(
                target=self._prune_loop, args=(prune_every,), name="cervix-prune", daemon=True
            ).start()

    def _prune_loop(self, every: float) -> None:
        while not self._closed.wait(every):
            self.prune()

    def prune(self, now: float | None = None) -> int:
        """Delete files older than ``max_age``; returns how many."""
        now = time.time() if now is None else now
        removed = 0
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self.dir):
                with contextlib.suppress(FileNotFoundError):
                    if now - entry.stat().st_mtime > self.max_age:
                        os.unlink(entry.path)
                        removed += 1
        return removed

    def _new(self, suffix: str, prefix: str) -> tuple[int, str]:
        self.prune()
        return tempfile.mkstemp(dir=self.dir, prefix=prefix, suffix=suffix)

    def save_png(self, image: Image.Image, prefix: str = "heatmap-") -> str:
        """Write ``image`` as PNG under a fresh name; returns its path."""
        fd, path = self._new(".png", prefix)
        with os.fdopen(fd, "wb") as fh:
            image.save(fh, format="PNG", compress_level=1)  # speed over a few KB
        return path

    def save_csv(self, headers: Sequence[str], rows: Sequence[Sequence[Any]], prefix: str) -> str:
        """Write rows as CSV (cells escaped with :func:`csv_cell`); returns its path."""
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(headers)
        writer.writerows([csv_cell(v) for v in row] for row in rows)
        fd, path = self._new(".csv", prefix)
        with os.fdopen(fd, "w", newline="") as fh:
            fh.write(buf.getvalue())
        return path

    def close(self) -> None:
        """Stop pruning and delete the folder (idempotent)."""
        self._closed.set()
        shutil.rmtree(self.dir, ignore_errors=True)
