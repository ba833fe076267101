"""Shared plumbing of the command-line scripts: logging and error reporting."""

from __future__ import annotations

import argparse
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


def fraction(text: str) -> float:
    """argparse type: a number in (0, 1]."""
    value = float(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {value}")
    return value


def add_evaluation_args(group: argparse._ArgumentGroup) -> None:
    """The evaluation flags shared by ``scripts/train.py --cv`` and ``scripts/evaluate.py``."""
    group.add_argument(
        "--target-sensitivity",
        type=fraction,
        default=0.99,
        help="the decision threshold reaches this out-of-fold sensitivity (default: 0.99)",
    )
    group.add_argument(
        "--calibrate",
        nargs="?",
        const="sigmoid",
        choices=["sigmoid", "isotonic"],
        help="wrap the head in CalibratedClassifierCV with grouped folds (default: sigmoid)",
    )
    group.add_argument(
        "--protocol",
        choices=["grouped", "seed"],
        default="grouped",
        help="seed: also run the original project's leaky protocol for comparison",
    )
