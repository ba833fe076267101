"""Shared plumbing of the command-line scripts: logging and error reporting."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from .errors import CervixError

logger = logging.getLogger("cervix_hf")


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at the time (it may be swapped, e.g. by pytest)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except (OSError, ValueError):
            self.handleError(record)


def setup_logging(verbose: bool = False) -> None:
    """Log cervix_hf's messages to stderr at INFO (DEBUG with ``verbose``).

    Only the ``cervix_hf`` logger is configured, so a host application's (or pytest's)
    root handlers are left alone.
    """
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
        )
        logger.addHandler(handler)


def run(fn: Callable[[], int]) -> int:
    """Run a script body; our own errors become one logged line and exit code 2."""
    try:
        return fn()
    except CervixError as exc:
        logger.error("%s", exc)
        return 2
    except KeyboardInterrupt:
        logger.error("Interrupted.")
        return 130
