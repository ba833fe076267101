"""Turn the extracted SIPaKMeD download into a ``datasets`` dataset (saved, optionally pushed).

    python scripts/prepare_sipakmed.py RAW_DIR OUT_DIR [--grouping clinical|seed]
        [--push-to-hub REPO]

Cluster images and ``.dat`` boundary files are skipped, never deleted.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(
    0, str(Path(__file__).resolve().parents[1])
)  # run from a checkout without installing

from cervix_hf.cli import run, setup_logging
from cervix_hf.errors import CervixError
from cervix_hf.labels import GROUPINGS

logger = logging.getLogger("cervix_hf.prepare")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "raw_dir", type=Path, help="the extracted SIPaKMeD download (im_<Type>/... folders)"
    )
    p.add_argument(
        "out_dir",
        type=Path,
        help="where to save the dataset (save_to_disk); must not exist or be empty",
    )
    p.add_argument(
        "--grouping",
        choices=sorted(GROUPINGS),
        default="clinical",
        help="how cell types map to the 'label' column (default: clinical)",
    )
    p.add_argument("--push-to-hub", metavar="REPO", help="also push as a Hub dataset repo")
    p.add_argument("--private", action="store_true", help="make the pushed dataset private")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = parse_args(argv)
    setup_logging(args.verbose)

    def body() -> int:
        from cervix_hf.sipakmed import build_dataset

        if args.out_dir.exists() and any(args.out_dir.iterdir()):
            raise CervixError(f"{args.out_dir} exists and is not empty; choose a new directory.")
        ds = build_dataset(args.raw_dir, grouping=args.grouping)
        ds.save_to_disk(str(args.out_dir))
        logger.info("Saved %d cells to %s", len(ds), args.out_dir)
        if args.push_to_hub:
            info = ds.push_to_hub(args.push_to_hub, private=args.private)
            logger.info(
                "Pushed to dataset repo %s (commit %s)", args.push_to_hub, getattr(info, "oid", "?")
            )
        return 0

    return run(body)


if __name__ == "__main__":
    raise SystemExit(main())
