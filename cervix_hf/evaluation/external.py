"""External validation: the frozen published model scored on data it was not trained on.

Nothing is refitted and nothing of the model changes: the head, its threshold, ``config.json``
and ``metrics.json`` stay byte-identical. The result is an
:class:`~cervix_hf.evaluation.report.ExternalReport` saved as ``external/<name>.json`` in the
model directory, which the card lists in its "External validation" section and model-index.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path

import numpy as np

from ..config import CervixConfig
from .bootstrap import unit_codes
from .pipeline import DataInfo, EvalOptions
from .report import ExternalReport
from .scoring import CellTypes, score_fixed
from .serialise import from_dict

logger = logging.getLogger(__name__)

EXTERNAL_DIR = "external"


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def score_external(
    config: CervixConfig,
    p_positive: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray | None,
    *,
    info: DataInfo,
    labels: str,
    head_sha256: str,
    opts: EvalOptions,
    types: CellTypes | None = None,
    unusual: np.ndarray | None = None,
) -> ExternalReport:
    """Score the model's predictions on external data at its stored threshold.

    Args:
        config: the model's config (its threshold is used, never changed).
        p_positive: the published head's P(positive) on the data. y: 0/1 labels.
        groups: cluster images, or None (cells are then the resampled units).
        info: the data's id, revision and fingerprint.
        labels: how the labels were obtained (for the card).
        head_sha256: hash of the head file scored.
        types: cell types, for per-type rows. unusual: the detector's flag per image.
    """
    units, n_units, _ = unit_codes(groups, len(y))
    performance = score_fixed(
        y, p_positive, units, n_units, config.decision_threshold, how=opts.scoring(), types=types
    )
    return ExternalReport(
        dataset=info.dataset,
        dataset_revision=info.revision,
        dataset_fingerprint=info.fingerprint or "unknown",
        labels=labels,
        threshold=float(config.decision_threshold),
        head_sha256=head_sha256,
        performance=performance,
        unusual_rate=float(np.mean(unusual)) if unusual is not None and len(unusual) else None,
        level=opts.level,
        n_resamples=opts.n_resamples,
        seed=opts.seed,
        prevalence=opts.prevalence,
    )


def report_name(report: ExternalReport) -> str:
    """``external/<dataset>-<fingerprint>.json``: one file per dataset version."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(report.dataset.rstrip("/")).name or "data")
    return f"{EXTERNAL_DIR}/{stem[:60]}-{report.dataset_fingerprint[:12]}.json"


def write_external(model_dir: str | Path, report: ExternalReport) -> Path:
    """Write the report into the model directory (replacing one for the same data)."""
    path = Path(model_dir) / report_name(report)
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(report.to_dict(), indent=2, sort_keys=True) + "\n")
    logger.info("External validation report: %s", path)
    return path


def load_external(model_dir: str | Path) -> list[ExternalReport]:
    """The external validation reports saved in a model directory, by file name."""
    folder = Path(model_dir) / EXTERNAL_DIR
    if not folder.is_dir():
        return []
    return [
        from_dict(ExternalReport, json.loads(p.read_text())) for p in sorted(folder.glob("*.json"))
    ]
