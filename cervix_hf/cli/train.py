"""Train a cervix_hf model: load -> split -> features -> head -> evaluate -> save -> push.

    python scripts/train.py --dataset SRC --out DIR [--backbone NAME] [--no-pretrained]
        [--grouping clinical|seed] [--seed S] [--cell-types] [--push-to-hub REPO]
        [--cv K [--target-sensitivity 0.99] [--calibrate [sigmoid|isotonic]]
        [--protocol grouped|seed] [--prevalence P] [--repeats R]]

SRC is a Hub dataset id, a directory written by scripts/prepare_sipakmed.py, or a folder of
class folders (Normal/Abnormal, or the five SIPaKMeD cell types).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from . import (
    add_backbone_args,
    add_data_args,
    add_evaluation_args,
    add_output_args,
    add_runtime_args,
    run,
    setup_logging,
)

logger = logging.getLogger("cervix_hf.train")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    d = p.add_argument_group("data")
    add_data_args(
        d,
        grouping_help="cell types -> Normal/Abnormal (default: clinical; seed = Metaplastic "
        "abnormal)",
    )
    d.add_argument("--seed", type=int, default=0, help="split and CV seed (default: 0)")
    d.add_argument("--test-size", type=float, default=0.2, help="held-out share (default: 0.2)")
    b = p.add_argument_group("backbone")
    add_backbone_args(b)
    add_runtime_args(b, precision=True)
    o = p.add_argument_group("output")
    o.add_argument("--out", required=True, type=Path, help="model directory to write")
    o.add_argument("--cell-types", action="store_true", help="also train a five-cell-type head")
    o.add_argument("--push-to-hub", metavar="REPO", help="push the model to this Hub repo")
    o.add_argument("--private", action="store_true", help="create the Hub repo as private")
    e = p.add_argument_group("evaluation (as scripts/evaluate.py, right after training)")
    e.add_argument(
        "--cv",
        type=int,
        default=0,
        metavar="K",
        help="evaluate with K folds: operating point chosen on the training images, the "
        "published head scored on the held-out split, nested grouped CV, intervals, "
        "calibration and plots in the card (default: off)",
    )
    add_evaluation_args(e)
    add_output_args(p)
    args = p.parse_args(argv)
    extra = args.calibrate or args.protocol != "grouped" or args.prevalence or args.repeats > 1
    if not args.cv and extra:
        p.error("--calibrate, --protocol, --prevalence and --repeats need --cv K")
    return args


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = parse_args(argv)
    setup_logging(args.verbose)

    def body() -> int:
        from cervix_hf.training import TrainOptions, train

        opts = TrainOptions(
            dataset=args.dataset,
            out=args.out,
            revision=args.revision,
            split=args.split,
            backbone=args.backbone,
            backbone_revision=args.backbone_revision,
            pretrained=args.pretrained,
            weights_file=args.backbone_weights,
            init_seed=args.init_seed,
            grouping=args.grouping,
            seed=args.seed,
            test_size=args.test_size,
            cell_types=args.cell_types,
            batch_size=args.batch_size,
            cache_dir=args.cache_dir,
            device=args.device,
            engine=args.engine,
            precision=args.precision,
            push_to_hub=args.push_to_hub,
            private=args.private,
            progress=args.progress,
            cv_folds=args.cv,
            target_sensitivity=args.target_sensitivity,
            calibrate=args.calibrate,
            protocol=args.protocol,
            prevalence=args.prevalence,
            repeats=args.repeats,
        )
        result = train(opts)
        print(json.dumps(result.metrics["test"], indent=2))
        from cervix_hf.evaluation import report_from_metrics, summary_lines

        report = report_from_metrics(result.metrics)
        if report is not None:
            print("\n".join(summary_lines(report)))
        if result.commit:
            print(f"pushed: {args.push_to_hub} @ {result.commit}")
        return 0

    return run(body)


if __name__ == "__main__":
    raise SystemExit(main())
