"""Whole fields in the app: the Field tab, ``/analyze_field``, and the hint ``/predict`` gives
when an upload holds several cells.

A field is located (:mod:`cervix_hf.fields`), its cells are classified in one batch and the
answer lists every cell, highest risk first. scikit-image is imported on the first field, not
at start. The hint is computed only for uploads at least :data:`FIELD_HINT_MIN_SIDE` pixels on
their longer side (single-cell crops are smaller), so ``/predict`` on a crop costs nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PIL import Image

from ..errors import RequestError
from .common import API_DISCLAIMER, ServedModel, model_json, upload_path
from .files import AppFiles

if TYPE_CHECKING:
    from ..fields import CellLocator, FieldAnalysis

FIELD_HINT_MIN_SIDE = 512
FIELD_HEADERS = ["cell", "x0", "y0", "x1", "y1", "p_abnormal", "decision", "cell_type", "unusual"]
LOCATOR_CAVEAT = (
    "The cell locator was tuned on generated fields; how well it finds cells on real smears "
    "has not been measured here."
)


def create_locator(model: ServedModel) -> CellLocator:
    """The locator with the parameters the model's ``config.json`` records (or the defaults)."""
    from ..fields import create_locator as create

    return create(model.config.locator)


def cells_in(image: Image.Image, model: ServedModel) -> int:
    """How many whole cells a large upload seems to hold (0 for a small one: not checked)."""
    if max(image.size) < FIELD_HINT_MIN_SIDE:
        return 0
    from ..fields import count_cells

    return count_cells(image, model.config.locator)


def field_hint(cells: int) -> dict[str, Any] | None:
    """What ``/predict`` says about an upload holding several cells, or None."""
    if cells < 2:
        return None
    return {
        "cells_found": cells,
        "message": (
            f"This image seems to hold {cells} cells: the answer is for the whole picture as "
            "if it were one cell. Use /analyze_field (the Field tab) to classify each cell."
        ),
    }


def analyze(model: ServedModel, locator: CellLocator, upload: Any) -> FieldAnalysis:
    """Locate, classify and summarise the cells of an uploaded field.

    Raises:
        RequestError: no file. ImageLoadError / LocatorError: not a readable or usable field.
    """
    from ..fields import analyze_field

    path = upload_path(upload)
    if not path:
        raise RequestError("No image given: upload a field of view (PNG, JPEG, TIFF or BMP).")
    return analyze_field(model, path, locator)


def field_json(model: ServedModel, fa: FieldAnalysis) -> dict[str, Any]:
    """The structure ``/analyze_field`` returns (documented in README)."""
    return {
        **fa.to_json(),
        "model": model_json(model),
        "caveat": LOCATOR_CAVEAT,
        "disclaimer": API_DISCLAIMER,
    }


def field_rows(fa: FieldAnalysis) -> list[list[Any]]:
    """The Field tab's table: one row per cell, highest risk first."""
    return [
        [
            c.id,
            *c.box,
            round(c.p_abnormal, 6),
            c.decision,
            c.cell_type or "",
            c.analysis.unusual,
        ]
        for c in fa.cells
    ]


def summary_markdown(model: ServedModel, fa: FieldAnalysis) -> str:
    """The Field tab's summary: cells found and flagged, the highest-risk cells, timings."""
    positive = model.config.positive_label
    threshold = model.config.decision_threshold
    lines = [
        f"### {len(fa.cells)} cells found, **{fa.n_flagged} flagged {positive}** "
        f"(P({positive}) at or above {threshold:.3f})"
    ]
    if fa.cells:
        top = ", ".join(f"#{c.id} ({c.p_abnormal:.3f})" for c in fa.highest_risk())
        lines.append(f"Highest risk: {top}. Outlines: blue low, orange mid, red high risk.")
    else:
        lines.append("No cell was found in this image.")
    if fa.truncated:
        lines.append(f"\n> ⚠️ Only the {len(fa.cells)} largest cells were analysed.")
    unusual = sum(bool(c.analysis.unusual) for c in fa.cells)
    if unusual:
        lines.append(
            f"\n> ⚠️ {unusual} cell(s) look unlike the training cells: their answers are not "
            "meaningful."
        )
    lines.append(
        f"\nLocating took {fa.locator_seconds:.2f} s, classifying {fa.classify_seconds:.2f} s "
        f"(one batch). {LOCATOR_CAVEAT}"
    )
    return "\n".join(lines)


@dataclass(frozen=True)
class FieldPage:
    """What the Field tab shows."""

    overlay: str
    summary: str
    rows: list[list[Any]]
    csv_path: str
    details: dict[str, Any]


def field_page(model: ServedModel, locator: CellLocator, upload: Any, files: AppFiles) -> FieldPage:
    """The Field tab: the outlined field, the summary, the table, its CSV and the JSON."""
    fa = analyze(model, locator, upload)
    rows = field_rows(fa)
    return FieldPage(
        overlay=files.save_png(fa.overlay(), prefix="field-"),
        summary=summary_markdown(model, fa),
        rows=rows,
        csv_path=files.save_csv(FIELD_HEADERS, rows, prefix="cervix-field-"),
        details=field_json(model, fa),
    )
