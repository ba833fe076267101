"""The offline demo model: trained on first start from generated cells, cached on disk.

It uses the real ResNet152 architecture with RANDOM weights and synthetic cells, so the app
can run with no network and no configured model. It says nothing about real cells, and the
app labels it so.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from .errors import ModelLoadError
from .features import DEFAULT_BACKBONE, default_cache_dir
from .modeling import CervixClassifier

logger = logging.getLogger(__name__)

DEMO_PER_TYPE = 30
DEMO_SEED = 0


def demo_model_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the demo model is cached (``<cache>/demo-model``)."""
    return (Path(cache_dir) if cache_dir else default_cache_dir()) / "demo-model"


def load_demo_model(
    cache_dir: str | os.PathLike | None = None,
    *,
    backbone: str = DEFAULT_BACKBONE,
    per_type: int = DEMO_PER_TYPE,
) -> CervixClassifier:
    """Load the cached demo model, training it first if there is none yet.

    A cached model that no longer loads (e.g. after a library upgrade changed the random
    backbone) is rebuilt, with a warning: it is a cache, not a published model.
    """
    out = demo_model_dir(cache_dir)
    if (out / "config.json").exists():
        try:
            return CervixClassifier.from_pretrained(out)
        except ModelLoadError as exc:
            logger.warning("Rebuilding the cached demo model (%s)", exc)
    return train_demo_model(out, backbone=backbone, per_type=per_type)


def train_demo_model(
    out: Path, *, backbone: str = DEFAULT_BACKBONE, per_type: int = DEMO_PER_TYPE
) -> CervixClassifier:
    """Generate cells, prepare them and train the demo model into ``out``."""
    from .sipakmed import build_dataset
    from .synthetic import write_raw_sipakmed
    from .training import TrainOptions, train

    logger.info("Training the offline demo model (first start only) into %s", out)
    with tempfile.TemporaryDirectory(prefix="cervix-demo-") as tmp:
        raw = Path(tmp) / "raw"
        write_raw_sipakmed(raw, per_type=per_type, seed=DEMO_SEED)
        cells = Path(tmp) / "cells"
        build_dataset(raw).save_to_disk(str(cells))
        result = train(
            TrainOptions(
                dataset=str(cells),
                dataset_name=(
                    f"synthetic cells (cervix_hf.synthetic, seed {DEMO_SEED}, {per_type} per type)"
                ),
                out=out,
                backbone=backbone,
                pretrained=False,
                cell_types=True,
                c_grid=(0.01, 0.1),
                cache_dir=str(out.parent),
            )
        )
    return result.model
