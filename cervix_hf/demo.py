"""The offline demo model: built once from generated cells, cached, then served without torch.

It uses the real ResNet152 architecture with RANDOM weights and synthetic cells, so the app
can run with no network and no configured model. It says nothing about real cells, and the
app labels it so. Building it runs the training pipeline (torch, timm) in a child process
(``python -m cervix_hf.demo_build``); the serving process only ever loads the result.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ModelLoadError
from .filelock import file_lock

if TYPE_CHECKING:
    from .modeling import CervixClassifier

logger = logging.getLogger(__name__)

DEFAULT_DEMO_BACKBONE = "resnet152.tv2_in1k"
DEMO_PER_TYPE = 30
DEMO_SEED = 0


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir``, else ``$CERVIX_HF_CACHE``, else ``~/.cache/cervix_hf``."""
    if cache_dir:
        return Path(cache_dir)
    env = os.environ.get("CERVIX_HF_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "cervix_hf"


def demo_model_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the demo model is cached (``<cache>/demo-model``)."""
    return cache_root(cache_dir) / "demo-model"


def _load(out: Path, warm_up: bool = False) -> CervixClassifier | None:
    """The cached demo model, or None (missing; a stale one is rebuilt, with a warning)."""
    if not (out / "config.json").exists():
        return None
    from .modeling import CervixClassifier

    try:
        return CervixClassifier.from_pretrained(out, warm_up=warm_up)
    except ModelLoadError as exc:
        logger.warning("Rebuilding the cached demo model (%s)", exc)
        return None


def _build(out: Path, backbone: str, per_type: int) -> None:
    """Build into ``out`` in a child process (the caller holds the build lock)."""
    logger.info("Building the offline demo model (first start only) into %s", out)
    cmd = [sys.executable, "-m", "cervix_hf.demo_build", str(out)]
    cmd += ["--backbone", backbone, "--per-type", str(per_type)]
    # the child imports this same cervix_hf, wherever it was imported from
    root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    done = subprocess.run(cmd, check=False, env=env)
    if done.returncode != 0:
        raise ModelLoadError(
            f"Building the demo model failed (exit code {done.returncode}; its log is "
            "above). Set CERVIX_MODEL to a trained model instead."
        )


def load_demo_model(
    cache_dir: str | os.PathLike | None = None,
    *,
    backbone: str = DEFAULT_DEMO_BACKBONE,
    per_type: int = DEMO_PER_TYPE,
    warm_up: bool = False,
) -> CervixClassifier:
    """The cached demo model, built first (in a child process with torch) if needed; a
    cached one that no longer loads is rebuilt, with a warning.

    Raises:
        ModelLoadError: the build failed (its log is above).
    """
    out = demo_model_dir(cache_dir)
    model = _load(out, warm_up)
    if model is not None:
        return model
    with file_lock(out.with_name("demo-model.lock")):
        model = _load(out, warm_up)  # another process may have built it while we waited
        if model is None:
            _build(out, backbone, per_type)
            model = _load(out, warm_up)
    if model is None:
        raise ModelLoadError(f"The demo model built into {out} does not load; see the log above.")
    return model
