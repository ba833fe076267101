"""What the app's endpoints compute, without Gradio: one image, the page's view, a batch.

Every upload is read once by the shared loader (:mod:`cervix_hf.images`) and goes through one
backbone pass. A batch is read, analysed and released a few images at a time, so its memory
does not grow with the number or size of its files. Errors a user can cause are our own
exceptions with messages that name the file, never a server path.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from ..analysis import CellAnalysis
from ..errors import ImageLoadError, LocatorError, RequestError
from ..images import load_image
from ..predictor.preprocess import Prepared
from .common import API_DISCLAIMER, ServedModel, model_json, upload_path
from .field import cells_in, create_locator, field_hint
from .files import AppFiles
from .uploads import BatchLimits, UploadEntry, iter_entries

if TYPE_CHECKING:
    from ..fields import CellLocator

logger = logging.getLogger(__name__)

BATCH_HEADERS = ["file", "p_abnormal", "decision", "unusual", "error"]
BATCH_CHUNK = 8  # images analysed together (one backbone pass)


def analysis_json(
    model: ServedModel, r: CellAnalysis, hint: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The structure ``/predict`` returns (documented in README); ``hint`` says when the
    upload seems to hold several cells (:func:`cervix_hf.webapp.field.field_hint`)."""
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
        "model": model_json(model),
        "field_hint": hint,
        "disclaimer": API_DISCLAIMER,
    }


def decision_markdown(
    model: ServedModel, r: CellAnalysis, hint: dict[str, Any] | None = None
) -> str:
    """The page's decision text: decision, threshold, heat-map scale, unusual-image and
    field warnings."""
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
    if hint:
        lines.append(f"\n> ⚠️ **Several cells.** {hint['message']}")
    return "\n".join(lines)


def analyze_upload(model: ServedModel, upload: Any) -> tuple[CellAnalysis, dict[str, Any] | None]:
    """One upload through the loader and one backbone pass, and the field hint.

    Raises:
        RequestError: no file. ImageLoadError: not a readable image (named by its file name).
    """
    path = upload_path(upload)
    if not path:
        raise RequestError("No image given: upload a single-cell image (PNG, JPEG, TIFF or BMP).")
    image = load_image(path)
    hint = field_hint(cells_in(image, model))
    return model.analyze_prepared([model.prepare(image)])[0], hint


def predict_api(model: ServedModel, upload: Any) -> dict[str, Any]:
    """``/predict``: the numbers only (the heat map as its exact contribution grid)."""
    return analysis_json(model, *analyze_upload(model, upload))


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
    r, hint = analyze_upload(model, upload)
    heat = r.heatmap()
    return PageResult(
        probabilities=r.probabilities,
        decision=decision_markdown(model, r, hint),
        heatmap=files.save_png(heat) if heat is not None else None,
        cell_types=r.cell_types,
        details=analysis_json(model, r, hint),
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
    model: ServedModel,
    uploads: Any,
    files: AppFiles,
    limits: BatchLimits | None = None,
    locator: CellLocator | None = None,
) -> BatchResult:
    """``/predict_batch``: one row per image (a failing one gets its reason, not a crash).

    An image that holds several cells (a field) gets one row per located cell, named
    ``image#N`` after the cell's number in the Field tab.

    Raises:
        RequestError: no files given.
    """
    limits = limits or BatchLimits()
    paths = [p for p in (upload_path(u) for u in (uploads or [])) if p]
    if not paths:
        raise RequestError("No files given: upload images or a zip of images.")
    rows: list[list[Any]] = []
    pending: list[tuple[list[Any], Prepared]] = []
    files_seen = 0
    entries = iter_entries(paths, limits)
    for entry in entries:
        if files_seen >= limits.max_files:
            limit = f"not analysed: at most {limits.max_files} files per batch"
            rows.append([entry.name, None, None, None, limit])
            break
        files_seen += 1
        row: list[Any] = [entry.name, None, None, None, entry.error or ""]
        rows.append(row)
        if entry.error is not None:
            continue
        image = _read(entry, row)
        if image is None:
            continue
        if cells_in(image, model) >= 2:  # a field: each located cell gets its row
            rows.remove(row)
            locator = locator or create_locator(model)
            rows += _field_rows(model, locator, entry, image)
            continue
        pending.append((row, model.prepare(image)))
        del image  # only the crop is kept until its batch runs
        if len(pending) >= BATCH_CHUNK:
            _analyze_rows(model, pending)
    entries.close()  # closes an archive left open by the early stop
    if pending:
        _analyze_rows(model, pending)
    return BatchResult(rows, files.save_csv(BATCH_HEADERS, rows, prefix="cervix-batch-"))


def _read(entry: UploadEntry, row: list[Any]) -> Image.Image | None:
    """The entry's image, or None with the reason in its row (named by the entry)."""
    assert entry.data is not None
    try:
        return load_image(entry.data)
    except ImageLoadError as exc:
        row[4] = _without_name(str(exc), entry)
        return None


def _field_rows(
    model: ServedModel, locator: CellLocator, entry: UploadEntry, image: Image.Image
) -> list[list[Any]]:
    """One row per located cell of a field (or one row saying why it could not be)."""
    from ..fields import analyze_field

    try:
        fa = analyze_field(model, image, locator)
    except LocatorError as exc:
        return [[entry.name, None, None, None, str(exc)]]
    if not fa.cells:
        return [[entry.name, None, None, None, "a field in which no cell was found"]]
    return [
        [f"{entry.name}#{c.id}", round(c.p_abnormal, 6), c.decision, c.analysis.unusual, ""]
        for c in fa.cells
    ]


def _without_name(message: str, entry: UploadEntry) -> str:
    """The loader names a file by its base name; the table already names the entry."""
    base = Path(entry.data).name if isinstance(entry.data, str) else "image"
    return message[len(base) + 2 :] if message.startswith(base + ": ") else message
