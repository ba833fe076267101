"""Build the offline demo model (needs torch and timm): ``python -m cervix_hf.demo_build OUT``.

Generates synthetic cells in the raw SIPaKMeD layout, prepares them as a dataset and trains a
model on a randomly initialised backbone into ``OUT`` (written into a temporary folder first
and moved into place, so ``OUT`` is never half-built). The app runs this in a child process
on its first start; see :mod:`cervix_hf.demo`.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
from pathlib import Path

from .cli import run, setup_logging
from .demo import DEFAULT_DEMO_BACKBONE, DEMO_PER_TYPE, DEMO_SEED

logger = logging.getLogger(__name__)


def train_demo_model(
    out: Path, *, backbone: str = DEFAULT_DEMO_BACKBONE, per_type: int = DEMO_PER_TYPE
) -> None:
    """Generate cells, prepare them and train the demo model into ``out``."""
    from .sipakmed import build_dataset
    from .synthetic import write_raw_sipakmed
    from .training import TrainOptions, train

    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="cervix-demo-", dir=out.parent) as tmp:
        raw = Path(tmp) / "raw"
        write_raw_sipakmed(raw, per_type=per_type, seed=DEMO_SEED)
        cells = Path(tmp) / "cells"
        build_dataset(raw).save_to_disk(str(cells))
        staged = Path(tmp) / "model"
        train(
            TrainOptions(
                dataset=str(cells),
                dataset_name=(
                    f"synthetic cells (cervix_hf.synthetic, seed {DEMO_SEED}, {per_type} per type)"
                ),
                out=staged,
                backbone=backbone,
                pretrained=False,
                cell_types=True,
                c_grid=(0.01, 0.1),
                cache_dir=str(out.parent),
            )
        )
        if out.exists():
            shutil.rmtree(out)
        os.replace(staged, out)
    logger.info("Demo model ready in %s", out)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path, help="model directory to write")
    p.add_argument("--backbone", default=DEFAULT_DEMO_BACKBONE, help="timm backbone name")
    p.add_argument("--per-type", type=int, default=DEMO_PER_TYPE, help="cells per cell type")
    args = p.parse_args(argv)
    setup_logging()

    def body() -> int:
        train_demo_model(args.out, backbone=args.backbone, per_type=args.per_type)
        return 0

    return run(body)


if __name__ == "__main__":
    raise SystemExit(main())
