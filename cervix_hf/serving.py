"""Which model the app serves: a Hub repo pinned to a commit, a local directory, or the demo.

Serving runs in one process without torch: the model's ``backbone.onnx`` runs on ONNX
Runtime (see :mod:`cervix_hf.modeling`). A Hub model must be pinned to a full commit sha (a
branch or tag can move under a running demo); ``--allow-unpinned`` /
``CERVIX_ALLOW_UNPINNED=1`` serves the moving head instead, with a warning on the page.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ModelLoadError

if TYPE_CHECKING:
    from .modeling import CervixClassifier

logger = logging.getLogger(__name__)

SHA_PATTERN = re.compile(r"^[0-9a-f]{40}$")
UNPINNED_NOTE = (
    "UNPINNED MODEL: served from the repo's current head, which can change at any time. Pin "
    "a commit (CERVIX_MODEL_REVISION) to serve one exact model."
)
DEMO_NOTE = (
    "DEMO MODEL: a randomly initialised ResNet152 trained on synthetic generated cells. Its "
    "outputs say nothing about real cells. Set CERVIX_MODEL to a trained model (Hub repo id or "
    "directory) to serve a real one."
)


@dataclass
class ModelInfo:
    """What the page says about the model it serves."""

    source: str
    revision: str | None = None
    demo: bool = False
    notes: list[str] = field(default_factory=list)


def check_revision(revision: str | None) -> str | None:
    """Validate ``CERVIX_MODEL_REVISION``: a full 40-hex commit sha, or nothing.

    Raises:
        ModelLoadError: for a branch name, a tag or a short sha (they can move or collide).
    """
    if revision is None or revision == "":
        return None
    if not SHA_PATTERN.match(revision):
        raise ModelLoadError(
            f"CERVIX_MODEL_REVISION={revision!r} is not a full 40-character commit sha. Pin the "
            "exact model: use the sha printed by `scripts/train.py --push-to-hub` or shown in "
            "the repo's history."
        )
    return revision


def check_source(model: str | None, revision: str | None, allow_unpinned: bool = False) -> None:
    """Refuse a revision that is not a full sha, a revision for a local directory, and an
    unpinned Hub model (unless ``allow_unpinned``), before anything is loaded.

    Raises:
        ModelLoadError: with what to set.
    """
    revision = check_revision(revision)
    if not model:
        return
    if Path(model).is_dir():
        if revision:
            raise ModelLoadError(
                f"CERVIX_MODEL_REVISION applies to Hub repos; {model} is a local directory."
            )
        return
    if revision is None and not allow_unpinned:
        raise ModelLoadError(
            f"{model} is a Hub repo but no revision is pinned: set CERVIX_MODEL_REVISION to the "
            "full commit sha to serve (printed by `scripts/train.py --push-to-hub`), or pass "
            "--allow-unpinned (CERVIX_ALLOW_UNPINNED=1) to serve whatever its main branch holds."
        )


def load_served_model(
    model: str | None,
    revision: str | None,
    *,
    allow_unpinned: bool = False,
    cache_dir: str | None = None,
) -> tuple[CervixClassifier, ModelInfo]:
    """The model to serve: a Hub repo or local directory, else the offline demo model.

    The demo model is built once (in a child process that has torch) and cached.

    Raises:
        ModelLoadError / HubError: with what to set, when a configured model cannot be loaded.
    """
    check_source(model, revision, allow_unpinned)
    from .modeling import CervixClassifier

    if not model:
        from .demo import load_demo_model

        clf = load_demo_model(cache_dir, warm_up=True)
        return clf, ModelInfo(source="offline demo model", demo=True, notes=[DEMO_NOTE])
    clf = CervixClassifier.from_pretrained(model, revision=check_revision(revision), warm_up=True)
    info = ModelInfo(source=model, revision=clf.source.get("revision"))
    if not Path(model).is_dir() and revision is None:
        logger.warning("Serving %s unpinned (--allow-unpinned): %s", model, UNPINNED_NOTE)
        info.notes.append(UNPINNED_NOTE)
    if not clf.config.pretrained:
        info.notes.append("This model's backbone is randomly initialised: a pipeline test only.")
    if clf.config.synthetic_data:
        info.notes.append("This model was trained on synthetic cells, not medical data.")
    return clf, info
