"""What the app's endpoints compute, without Gradio: one image, the page's view, a batch.

Every upload is read once by the shared loader (:mod:`cervix_hf.images`) and goes through one
backbone pass. A batch is read, analysed and released a few images at a time, so its memory
does not grow with the number or size of its files. Errors a user can cause are our own
exceptions with messages that name the file, never a server path.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..analysis import CellAnalysis
from ..config import CervixConfig
from ..errors import ImageLoadError, RequestError
from ..images import ImageInput
from ..predictor.preprocess import Prepared
from .files import AppFiles
from .uploads import BatchLimits, UploadEntry, iter_entries

logger = logging.getLogger(__name__)

API_DISCLAIMER = (
    "Research demo, not a diagnostic device: the output is a probability, never medical advice."
)
BATCH_HEADERS = ["file", "p_abnormal", "decision", "unusual", "error"]
BATCH_CHUNK = 8  # images analysed together (one backbone pass)


class ServedModel(Protocol):
    """What the app needs from a model (:class:`~cervix_hf.CervixClassifier` has it)."""

    config: CervixConfig
    source: dict[str, str | None]

    @property
    def has_cell_types(self) -> bool: ...

    @property
    def logit_name(self) -> str: ...

    def prepare(self, image: ImageInput) -> Prepared: ...

    def analyze_prepared(self, prepared: Sequence[Prepared]) -> list[CellAnalysis]: ...


def upload_path(item: Any) -> str | None:
    """Path of an upload as Gradio hands it over (a str path or an object with ``.name``)."""
    if item is None:
        return None
    if isinstance(item, (str, os.PathLike)):
        return str(item)
    return getattr(item, "path", None) or getattr(item, "name", None)


def analysis_json(model: ServedModel, r: CellAnalysis) -> dict[str, Any]:
    """The structure ``/predict`` returns (documented in README)."""
    cfg = model.config
    return {
        "label": r.decision,
        "p_abnormal": r.probabilities[cfg.positive_label],
        "probabilities": r.probabilities,
        "threshold": r.threshold,
        "unusual": r.unusual,
        "novelty_score": r.novelty_score,
        "cell_types": r.cell_types,
        "logit": r.logit,
        "heatmap": (
            {
                "contributions": r.contributions.tolist(),
                "intercept": r.intercept,
                "of": model.logit_name,
            }
            if r.contributions is not None
            else None
        ),
        "model": {
            "backbone": cfg.backbone,
            "pretrained": cfg.pretrained,
            "grouping": cfg.grouping,
            "synthetic_training_data": cfg.synthetic_data,
            # Hub models say repo and commit; a local directory's path is not published
            "repo_id": model.source.get("repo_id"),
            "revision": model.source.get("revision"),
        },
        "disclaimer": API_DISCLAIMER,
    }


def decision_markdown(model: ServedModel, r: CellAnalysis) -> str:
    """The page's decision text: decision, threshold, heat-map scale, unusual-image warning."""
    positive = model.config.positive_label
    lines = [
        f"### Decision: **{r.decision}**",
        f"P({positive}) = {r.p_positive:.3f}; the model's operating point says {positive} at "
        f"or above {r.threshold:.3f}.",
    ]
    if r.contributions is not None and r.logit is not None:
        lines.append(
            f"\nHeat map: each location's contribution to the logit ranges from "
            f"{r.contributions.min():+.2f} to {r.contributions.max():+.2f}; their mean plus the "
            f"intercept ({r.intercept:+.2f}) is the {model.logit_name} {r.logit:+.2f} exactly. "
            f"Red: towards {positive}; blue: away from it."
        )
    if r.unusual:
        lines.append(
            "\n> ⚠️ **Unusual image.** This does not look like the single-cell Pap-smear crops "
            f"the model was trained on (score {r.novelty_score:.2f}, threshold 1.00). The "
            "prediction is not meaningful."
        )
    return "\n".join(lines)


def analyze_upload(model: ServedModel, upload: Any) -> CellAnalysis:
    """One upload through the loader and one backbone pass.

    Raises:
        RequestError: no file. ImageLoadError: not a readable image (named by its file name).
    """
    path = upload_path(upload)
    if not path:
        raise RequestError("No image given: upload a single-cell image (PNG, JPEG, TIFF or BMP).")
    return model.analyze_prepared([model.prepare(path)])[0]


def predict_api(model: ServedModel, upload: Any) -> dict[str, Any]:
    """``/predict``: the numbers only (the heat map as its exact contribution grid)."""
    return analysis_json(model, analyze_upload(model, upload))


@dataclass(frozen=True)
class PageResult:
    """What the page shows for one image."""

    probabilities: dict[str, float]
    decision: str
    heatmap: str | None
    cell_types: dict[str, float] | None
    details: dict[str, Any]


def predict_page(model: ServedModel, upload: Any, files: AppFiles) -> PageResult:
    """The page's single-image view: label, decision text, heat-map picture, cell types and
    the same dict as ``/predict``."""
    r = analyze_upload(model, upload)
    heat = r.heatmap()
    return PageResult(
        probabilities=r.probabilities,
        decision=decision_markdown(model, r),
        heatmap=files.save_png(heat) if heat is not None else None,
        cell_types=r.cell_types,
        details=analysis_json(model, r),
    )


@dataclass(frozen=True)
class BatchResult:
    """One row per file (``BATCH_HEADERS``) and the same table as a CSV file."""

    rows: list[list[Any]]
    csv_path: str


def _analyze_rows(model: ServedModel, pending: list[tuple[list[Any], Prepared]]) -> None:
    results = model.analyze_prepared([p for _, p in pending])
    for (row, _), r in zip(pending, results, strict=True):
        row[1:5] = [round(r.p_positive, 6), r.decision, r.unusual, ""]
    pending.clear()


def predict_batch(
    model: ServedModel, uploads: Any, files: AppFiles, limits: BatchLimits | None = None
) -> BatchResult:
    """``/predict_batch``: one row per image (a failing one gets its reason, not a crash).

    Raises:
        RequestError: no files given.
    """
    limits = limits or BatchLimits()
    paths = [p for p in (upload_path(u) for u in (uploads or [])) if p]
    if not paths:
        raise RequestError("No files given: upload images or a zip of images.")
    rows: list[list[Any]] = []
    pending: list[tuple[list[Any], Prepared]] = []
    entries = iter_entries(paths, limits)
    for entry in entries:
        if len(rows) >= limits.max_files:
            rows.append(
                [
                    entry.name,
                    None,
                    None,
                    None,
                    f"not analysed: at most {limits.max_files} files per batch",
                ]
            )
            break
        row: list[Any] = [entry.name, None, None, None, entry.error or ""]
        rows.append(row)
        if entry.error is not None:
            continue
        prepared = _prepare(model, entry)
        if isinstance(prepared, str):
            row[4] = prepared
            continue
        pending.append((row, prepared))
        if len(pending) >= BATCH_CHUNK:
            _analyze_rows(model, pending)
    entries.close()  # closes an archive left open by the early stop
    if pending:
        _analyze_rows(model, pending)
    return BatchResult(rows, files.save_csv(BATCH_HEADERS, rows, prefix="cervix-batch-"))


def _prepare(model: ServedModel, entry: UploadEntry) -> Prepared | str:
    """The entry read and transformed, or the reason it cannot be (named by the entry)."""
    assert entry.data is not None
    try:
        return model.prepare(entry.data)
    except ImageLoadError as exc:
        return _without_name(str(exc), entry)


def _without_name(message: str, entry: UploadEntry) -> str:
    """The loader names a file by its base name; the table already names the entry."""
    base = Path(entry.data).name if isinstance(entry.data, str) else "image"
    return message[len(base) + 2 :] if message.startswith(base + ": ") else message
