"""Write a synthetic Pap-smear-like data set in the raw SIPaKMeD download layout.

    python scripts/make_synthetic.py OUT_DIR [--per-type N] [--seed S]
    python scripts/make_synthetic.py OUT_DIR --fields N [--field-size 1000x800] [--seed S]

SYNTHETIC images for tests and the offline demo: NOT medical data, they say nothing about real
cells. The output can be fed to scripts/prepare_sipakmed.py like a real download. With
--fields, OUT_DIR gets N harder whole fields per cell type instead (touching and overlapping
cells, debris, uneven slides, blur; cluster images with .dat outlines, no crops), for
scripts/evaluate_locator.py.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from cervix_hf.synthetic import write_raw_fields, write_raw_sipakmed

# run from a checkout without installing
from . import run, setup_logging

logger = logging.getLogger("cervix_hf.make_synthetic")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("out_dir", type=Path, help="where to write; must not exist or be empty")
    p.add_argument(
        "--per-type",
        type=int,
        default=40,
        metavar="N",
        help="single-cell crops per cell type (default: 40)",
    )
    p.add_argument(
        "--seed", type=int, default=0, metavar="S", help="random seed, >= 0 (default: 0)"
    )
    p.add_argument(
        "--fields",
        type=int,
        metavar="N",
        help="write N harder whole fields per cell type instead of single cells",
    )
    p.add_argument(
        "--field-size",
        type=_size,
        default=(1000, 800),
        metavar="WxH",
        help="size of each field with --fields (default: 1000x800)",
    )
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    if args.fields is not None and args.fields < 1:
        p.error(f"--fields must be >= 1, got {args.fields}")
    if args.per_type < 1:
        p.error(f"--per-type must be >= 1, got {args.per_type}")
    if args.seed < 0:
        p.error(f"--seed must be >= 0, got {args.seed}")
    return args


def _size(text: str) -> tuple[int, int]:
    """argparse type: ``WxH`` with both sides in [32, 8000]."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    if not (32 <= w <= 8000 and 32 <= h <= 8000):
        raise argparse.ArgumentTypeError(f"sides must be in [32, 8000], got {text!r}")
    return w, h


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (0 on success, 2 if OUT_DIR is not empty)."""
    args = parse_args(argv)
    setup_logging(args.verbose)

    def body() -> int:
        if args.fields is not None:
            cells = write_raw_fields(
                args.out_dir,
                per_type=args.fields,
                seed=args.seed,
                size=args.field_size,
                progress=True,
            )
            logger.info(
                "Wrote %d synthetic fields with %d outlined cells (seed %d) to %s",
                args.fields * len(cells),
                sum(cells.values()),
                args.seed,
                args.out_dir,
            )
            return 0
        counts = write_raw_sipakmed(
            args.out_dir, per_type=args.per_type, seed=args.seed, progress=True
        )
        logger.info(
            "Wrote %d synthetic cells (seed %d) to %s: %s",
            sum(counts.values()),
            args.seed,
            args.out_dir,
            ", ".join(f"{t} {n}" for t, n in counts.items()),
        )
        return 0

    return run(body)


if __name__ == "__main__":
    raise SystemExit(main())
