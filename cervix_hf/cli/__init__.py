"""Shared plumbing of the command-line scripts: logging, error reporting and the flags that
several scripts take."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from ..errors import CervixError

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


def prevalence(text: str) -> float:
    """argparse type: a prevalence in (0, 1)."""
    value = float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1), got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_evaluation_args(group: argparse._ArgumentGroup) -> None:
    """The evaluation flags shared by ``scripts/train.py --cv`` and ``scripts/evaluate.py``."""
    group.add_argument(
        "--target-sensitivity",
        type=fraction,
        default=0.99,
        help="the decision threshold reaches this sensitivity on out-of-fold predictions of "
        "the training images (default: 0.99)",
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
        help="seed: also reproduce the original project's protocol (its features, grouping "
        "and head) and measure what its per-cell split adds",
    )
    group.add_argument(
        "--prevalence",
        type=prevalence,
        help="also report PPV / NPV and the decision curve at this share of Abnormal cells "
        "(e.g. a screening population's; stated in the card)",
    )
    group.add_argument(
        "--repeats",
        type=positive_int,
        default=1,
        help="repeat the nested grouped CV with this many fold seeds and report the spread "
        "(default: 1)",
    )


def add_data_args(group: argparse._ArgumentGroup, *, grouping_help: str | None = None) -> None:
    """``--dataset``, ``--revision``, ``--split``; ``--grouping`` when ``grouping_help`` is given
    (scripts that evaluate a model use the model's grouping instead)."""
    from ..labels import GROUPINGS

    group.add_argument(
        "--dataset", required=True, help="Hub dataset id, saved dataset dir or image folder"
    )
    group.add_argument("--revision", help="Hub dataset revision (a commit sha pins it)")
    group.add_argument("--split", help="dataset split to read (default: train)")
    if grouping_help is not None:
        group.add_argument(
            "--grouping", choices=sorted(GROUPINGS), default="clinical", help=grouping_help
        )


def add_backbone_args(group: argparse._ArgumentGroup) -> None:
    """The flags that choose a backbone: name, weights revision or file, random init."""
    from ..features import DEFAULT_BACKBONE

    group.add_argument(
        "--backbone",
        default=DEFAULT_BACKBONE,
        help=f"timm model name (default: {DEFAULT_BACKBONE})",
    )
    group.add_argument("--backbone-revision", help="Hub revision of the backbone weights")
    group.add_argument(
        "--backbone-weights", help="local weights file instead of downloading (offline)"
    )
    group.add_argument(
        "--no-pretrained",
        dest="pretrained",
        action="store_false",
        help="random-init backbone (offline runs; the model card says so)",
    )
    group.add_argument("--init-seed", type=int, default=0, help="seed of a random-init backbone")


def add_runtime_args(group: argparse._ArgumentGroup, *, precision: bool = False) -> None:
    """Where and how the backbone runs, and where its features are cached.

    ``precision``: also ``--precision`` (scripts that compute training features; a saved
    model's features are recomputed at the precision it records).
    """
    from ..features.plan import ENGINES, PRECISIONS

    group.add_argument(
        "--batch-size", type=int, help="images per forward pass (default: CPU 8-16, CUDA 256)"
    )
    group.add_argument(
        "--device", help="cpu, cuda or cuda:N (default: cuda if available, else cpu)"
    )
    group.add_argument(
        "--engine",
        choices=ENGINES,
        default="auto",
        help="backbone engine: auto = on a CPU the fastest measured here (torch or ONNX "
        "Runtime; CERVIX_HF_ENGINE_PROBE=0: ONNX Runtime), torch on CUDA (default: auto)",
    )
    if precision:
        group.add_argument(
            "--precision",
            choices=PRECISIONS,
            default="fp32",
            help="feature precision (default: fp32, what the saved model serves with, so the "
            "head is fitted and evaluated on the served features); auto = bf16 where the "
            "hardware has it and it measures faster: quicker, but the served model then "
            "differs from the evaluated one (recorded in config.json and the card)",
        )
    group.add_argument(
        "--cache-dir", help="feature cache root (default: $CERVIX_HF_CACHE or ~/.cache/cervix_hf)"
    )


def add_output_args(parser: argparse.ArgumentParser) -> None:
    """``--no-progress`` and ``-v/--verbose``."""
    parser.add_argument(
        "--no-progress", dest="progress", action="store_false", help="hide progress bars"
    )
    parser.add_argument("-v", "--verbose", action="store_true")
