"""Write a synthetic Pap-smear-like data set in the raw SIPaKMeD download layout.

    python scripts/make_synthetic.py OUT_DIR [--per-type N] [--seed S]

SYNTHETIC images for tests and the offline demo: NOT medical data, they say nothing about real
cells. The output can be fed to scripts/prepare_sipakmed.py like a real download.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

# run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cervix_hf.cli import run, setup_logging
from cervix_hf.synthetic import write_raw_sipakmed

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
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    if args.per_type < 1:
        p.error(f"--per-type must be >= 1, got {args.per_type}")
    if args.seed < 0:
        p.error(f"--seed must be >= 0, got {args.seed}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (0 on success, 2 if OUT_DIR is not empty)."""
    args = parse_args(argv)
    setup_logging(args.verbose)

    def body() -> int:
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
