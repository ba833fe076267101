"""Measure the cell locator on fields with annotated cells, and (with --model) what it does
to the single-cell model's decisions.

    python scripts/evaluate_locator.py --fields FIELDS [--model MODEL] [--iou 0.5]
        [--limit N] [--locator-params FILE.json] [--json OUT.json]

FIELDS is a raw SIPaKMeD tree (cluster images NNN.bmp with NNN_cytMM.dat / NNN_nucMM.dat,
real or written by make_synthetic.py --fields), a fields dataset saved by
prepare_sipakmed.py --fields-out, or a Hub dataset id of one (--revision pins it). Prints
detection precision, recall and F1 at the IoU threshold and the nucleus hit rate per cell
type; with --model, the model's decisions on located crops against the same cells' own
crops (agreement, sensitivity, specificity). Without --locator-params the model's recorded
locator parameters are used, else the defaults.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from cervix_hf.errors import CervixError

from . import add_output_args, fraction, run, setup_logging

logger = logging.getLogger("cervix_hf.evaluate_locator")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--fields", required=True, help="raw tree, saved fields dataset or Hub id")
    p.add_argument("--revision", help="Hub dataset revision (a commit sha pins it)")
    p.add_argument("--model", help="model directory or Hub repo id (for the end-to-end rows)")
    p.add_argument("--model-revision", help="Hub revision of the model (a commit sha)")
    p.add_argument("--iou", type=fraction, default=0.5, help="IoU to count a cell found (0.5)")
    p.add_argument("--limit", type=int, metavar="N", help="only the first N fields")
    p.add_argument("--locator-params", type=Path, metavar="FILE", help="JSON locator parameters")
    p.add_argument("--json", type=Path, metavar="OUT", help="also write the report as JSON")
    add_output_args(p)
    args = p.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        p.error(f"--limit must be >= 1, got {args.limit}")
    return args


def load_records(source: str, revision: str | None = None) -> tuple[list, bool]:
    """The annotated fields of a raw tree, a saved fields dataset or a Hub dataset id, and
    whether they are generated (SYNTHETIC) rather than medical images."""
    from cervix_hf.sipakmed import SYNTHETIC_MARKER, fields_from_dataset, find_fields

    path = Path(source)
    if path.is_dir() and not (path / "dataset_info.json").exists():
        return find_fields(path), (path / SYNTHETIC_MARKER).exists()
    import datasets

    if path.is_dir():
        ds = datasets.load_from_disk(str(path))
    else:
        try:
            ds = datasets.load_dataset(source, revision=revision, split="train")
        except Exception as exc:  # datasets raises many types for a missing or unreachable repo
            raise CervixError(
                f"{source}: not a folder here, and not a dataset that can be loaded "
                f"({type(exc).__name__}). Point --fields at a raw tree or a saved fields dataset."
            ) from None
    synthetic = (getattr(ds.info, "description", "") or "").startswith("SYNTHETIC")
    return fields_from_dataset(ds), synthetic


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (0 on success, 2 on a bad input)."""
    args = parse_args(argv)
    setup_logging(args.verbose)

    def body() -> int:
        import numpy as np

        from cervix_hf.fields import LocatorParams, create_locator
        from cervix_hf.fields.evaluate import evaluate_locator
        from cervix_hf.sipakmed import crop_margins

        records, synthetic = load_records(args.fields, args.revision)
        records = records[: args.limit]
        model = None
        grouping = "clinical"
        recorded = None
        if args.model:
            from cervix_hf import CervixClassifier

            model = CervixClassifier.from_pretrained(args.model, revision=args.model_revision)
            if model.config.grouping != "given":
                grouping = model.config.grouping
            recorded = model.config.locator  # the parameters the model serves fields with
        if args.locator_params:
            params = LocatorParams.from_dict(_read_json(args.locator_params))
        else:
            params = recorded or LocatorParams()
        report = evaluate_locator(
            records,
            create_locator(params),
            model,
            grouping=grouping,
            iou_threshold=args.iou,
            progress=args.progress,
            total=len(records),
        )
        print(report.table())
        if Path(args.fields).is_dir():
            margins = crop_margins(args.fields)
            if margins is not None:
                mx, my = (float(v) for v in np.median(margins, axis=0))
                print(
                    f"\nThis tree's CROPPED crops: median margin per side {mx:.3f} (x), "
                    f"{my:.3f} (y) of the cell's box over {len(margins)} crops; the locator "
                    f"cuts {params.crop_margin} (LocatorParams.crop_margin)."
                )
        if args.json:
            args.json.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
            logger.info("Wrote %s", args.json)
        if args.model and Path(args.model).is_dir():  # the model's card shows the result
            from cervix_hf.card import write_card
            from cervix_hf.fields.evaluate import save_locator_evaluation

            path = save_locator_evaluation(
                args.model,
                report,
                fields=args.fields if not Path(args.fields).exists() else Path(args.fields).name,
                revision=args.revision,
                synthetic=synthetic,
            )
            write_card(args.model, model.config)
            logger.info("Wrote %s and re-rendered the model card", path)
        return 0

    return run(body)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CervixError(f"{path}: cannot read locator parameters ({exc}).") from None


if __name__ == "__main__":
    raise SystemExit(main())
