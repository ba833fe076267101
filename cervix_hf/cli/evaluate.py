"""Evaluate a cervix_hf model: on its own training data, or as external validation.

    python scripts/evaluate.py --dataset SRC --model DIR [--folds 5]
        [--target-sensitivity 0.99] [--calibrate [sigmoid|isotonic]] [--protocol grouped|seed]
        [--prevalence P] [--repeats R] [--c-selection nested|fixed] [--bootstrap 2000]
        [--external] [--push-to-hub REPO]

On the data the model was trained on (same fingerprint): the decision threshold is chosen on
out-of-fold predictions of the training images only, the published head is scored once on
the untouched held-out split at that threshold, and nested grouped CV (threshold re-chosen
inside each fold) estimates what the recipe achieves on new cluster images; intervals over
cluster images. DIR is re-saved: the threshold in config.json, the report in metrics.json,
plots and the card. ``--protocol seed`` adds the original project's protocol, faithfully.

On any other data (another fingerprint, or ``--external``): the frozen model is scored at its
stored threshold; nothing is refitted, and head, threshold, config.json and metrics.json stay
byte-identical. DIR gains ``external/<name>.json`` and the card an "External validation"
section and model-index entry naming that dataset.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from . import (
    add_data_args,
    add_evaluation_args,
    add_output_args,
    add_runtime_args,
    run,
    setup_logging,
)

logger = logging.getLogger("cervix_hf.evaluate")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_data_args(p)
    p.add_argument("--model", required=True, type=Path, help="model directory to evaluate")
    e = p.add_argument_group("evaluation")
    e.add_argument("--folds", type=int, default=5, help="CV folds (default: 5)")
    e.add_argument("--seed", type=int, help="fold and bootstrap seed (default: the model's)")
    add_evaluation_args(e)
    e.add_argument(
        "--c-selection",
        choices=["nested", "fixed"],
        default="nested",
        help="nested: choose C inside each training fold (default); fixed: the model's C",
    )
    e.add_argument("--bootstrap", type=int, default=2000, metavar="N", help="bootstrap resamples")
    e.add_argument(
        "--external",
        action="store_true",
        help="score the frozen model on this data even if it is the training data "
        "(data with another fingerprint always is)",
    )
    add_runtime_args(p.add_argument_group("backbone (the model's own; where it runs)"))
    o = p.add_argument_group("output")
    o.add_argument("--push-to-hub", metavar="REPO", help="push the updated directory to REPO")
    o.add_argument("--private", action="store_true", help="create the Hub repo as private")
    add_output_args(p)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = parse_args(argv)
    setup_logging(args.verbose)

    def body() -> int:
        from cervix_hf.config import CONFIG_NAME, CervixConfig
        from cervix_hf.evaluation import EvalOptions, evaluate_directory

        seed = args.seed
        if seed is None:
            seed = CervixConfig.from_json(args.model / CONFIG_NAME).split_seed or 0
        opts = EvalOptions(
            folds=args.folds,
            seed=seed,
            target_sensitivity=args.target_sensitivity,
            calibrate=args.calibrate,
            protocol=args.protocol,
            c_selection=args.c_selection,
            n_resamples=args.bootstrap,
            prevalence=args.prevalence,
            repeats=args.repeats,
        )
        opts.check()
        result = evaluate_directory(
            args.model,
            args.dataset,
            opts,
            external=args.external,
            revision=args.revision,
            split=args.split,
            cache_dir=args.cache_dir,
            batch_size=args.batch_size,
            device=args.device,
            engine=args.engine,
            progress=args.progress,
            push_to_hub=args.push_to_hub,
            private=args.private,
        )
        print("\n".join(result.lines()))
        threshold = result.model.config.decision_threshold
        print(json.dumps({"decision_threshold": threshold, "model": str(result.out)}))
        if result.commit:
            print(f"pushed: {args.push_to_hub} @ {result.commit}")
        return 0

    return run(body)


if __name__ == "__main__":
    raise SystemExit(main())
