"""Turn the extracted SIPaKMeD download into a ``datasets`` dataset (saved, optionally pushed).

    python scripts/prepare_sipakmed.py RAW_DIR OUT_DIR [--grouping clinical|seed]
        [--push-to-hub REPO] [--fields-out FIELDS_DIR]

OUT_DIR gets the single-cell crops. With --fields-out, FIELDS_DIR also gets the fields
dataset: each cluster image with the outlines of its cells (from the ``.dat`` files) and
their types, which scripts/evaluate_locator.py measures the cell locator on. Nothing in
RAW_DIR is ever deleted.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from cervix_hf.errors import CervixError
from cervix_hf.labels import GROUPINGS

from . import run, setup_logging

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
    p.add_argument(
        "--fields-out",
        type=Path,
        metavar="FIELDS_DIR",
        help="also save the fields dataset (cluster images with cell outlines) here",
    )
    p.add_argument("--private", action="store_true", help="make the pushed dataset private")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = parse_args(argv)
    setup_logging(args.verbose)

    def body() -> int:
        from cervix_hf.sipakmed import build_dataset, build_fields_dataset

        for out in (args.out_dir, args.fields_out):
            if out is not None and out.exists() and any(out.iterdir()):
                raise CervixError(f"{out} exists and is not empty; choose a new directory.")
        ds = build_dataset(args.raw_dir, grouping=args.grouping)
        ds.save_to_disk(str(args.out_dir))
        logger.info("Saved %d cells to %s", len(ds), args.out_dir)
        if args.fields_out is not None:
            fields = build_fields_dataset(args.raw_dir)
            fields.save_to_disk(str(args.fields_out))
            logger.info(
                "Saved %d fields (%d outlined cells) to %s",
                len(fields),
                sum(len(ids) for ids in fields["cell_ids"]),
                args.fields_out,
            )
        if args.push_to_hub:
            from cervix_hf.dataset_card import push_with_card
            from cervix_hf.sipakmed import SYNTHETIC_MARKER

            commit = push_with_card(
                ds,
                args.push_to_hub,
                grouping=args.grouping,
                synthetic=(args.raw_dir / SYNTHETIC_MARKER).exists(),
                private=args.private,
            )
            print(f"pushed: {args.push_to_hub} @ {commit}")
        return 0

    return run(body)


if __name__ == "__main__":
    raise SystemExit(main())
