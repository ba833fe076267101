"""How well the locator finds annotated cells, and what that does to the model's decisions.

:func:`evaluate_locator` runs a locator over fields with known outlines (SIPaKMeD's cluster
images and ``.dat`` files, or generated fields) and returns a typed :class:`LocatorReport`;
it saves nothing. Definitions:

* **Detection**: located regions and annotated cytoplasm outlines are matched one to one by
  IoU (greedy, best first); a match needs IoU >= ``iou_threshold`` (0.5). Precision =
  matched / located, recall = matched / annotated. A located region matching nothing
  counts against the type of the annotated cell it overlaps most (else the field's type).
  Where a data set leaves some cells unannotated, precision is a lower bound.
* **Nucleus hit rate**: share of annotated nuclei with a located nucleus on them (the located
  nucleus's centre inside the annotated nucleus, or the annotated nucleus's centre inside the
  located one; one located nucleus hits at most one annotated nucleus).
* **End to end** (with a model): every located cell's crop and every annotated cell's
  reference crop (cut around its outline by the same crop convention) are classified in one
  batched ``model.analyze`` call per field. For annotated cells that were found, the decisions
  on the two crops are compared (agreement), and sensitivity/specificity are computed on
  both, against the cells' types under ``grouping``. Over every annotated cell, a cell counts
  as flagged only when it was found and its located crop flagged.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..images import load_image
from ..labels import CELL_TYPES, POSITIVE_LABEL, binary_label
from ..sipakmed import FieldRecord
from .analyze import CellModel
from .geometry import Region, contains, intersection, match, outline_box, polygon_region
from .locate import CellLocator, crop_box


@dataclass
class DetectionCounts:
    """Detection counts of one cell type (or all)."""

    cells: int = 0
    found: int = 0
    false: int = 0
    nuclei: int = 0
    nuclei_hit: int = 0
    iou_sum: float = 0.0

    @property
    def precision(self) -> float | None:
        return _ratio(self.found, self.found + self.false)

    @property
    def recall(self) -> float | None:
        return _ratio(self.found, self.cells)

    @property
    def f1(self) -> float | None:
        p, r = self.precision, self.recall
        return None if p is None or r is None or p + r == 0 else 2 * p * r / (p + r)

    @property
    def nucleus_hit_rate(self) -> float | None:
        return _ratio(self.nuclei_hit, self.nuclei)

    @property
    def mean_iou(self) -> float | None:
        """Mean IoU of the matched cells."""
        return self.iou_sum / self.found if self.found else None

    def add(self, other: DetectionCounts) -> None:
        for name in ("cells", "found", "false", "nuclei", "nuclei_hit", "iou_sum"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "nucleus_hit_rate": self.nucleus_hit_rate,
            "mean_iou": self.mean_iou,
        }


@dataclass
class Confusion:
    """Flagged (at the model's threshold) vs truly abnormal, counted over cells."""

    tp: int = 0
    fn: int = 0
    tn: int = 0
    fp: int = 0

    @property
    def sensitivity(self) -> float | None:
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def specificity(self) -> float | None:
        return _ratio(self.tn, self.tn + self.fp)

    def count(self, abnormal: bool, flagged: bool) -> None:
        if abnormal:
            self.tp += flagged
            self.fn += not flagged
        else:
            self.fp += flagged
            self.tn += not flagged

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "sensitivity": self.sensitivity, "specificity": self.specificity}


@dataclass
class EndToEndReport:
    """The single-cell model on located crops vs on the same cells' reference crops."""

    compared: int = 0
    agree: int = 0
    located: Confusion = field(default_factory=Confusion)
    reference: Confusion = field(default_factory=Confusion)
    every_cell: Confusion = field(default_factory=Confusion)
    false_regions_flagged: int = 0

    @property
    def agreement(self) -> float | None:
        """Share of found cells with the same decision on both crops."""
        return _ratio(self.agree, self.compared)

    def to_dict(self) -> dict[str, Any]:
        return {
            "compared": self.compared,
            "agree": self.agree,
            "agreement": self.agreement,
            "located": self.located.to_dict(),
            "reference": self.reference.to_dict(),
            "every_cell": self.every_cell.to_dict(),
            "false_regions_flagged": self.false_regions_flagged,
        }


@dataclass
class LocatorReport:
    """What :func:`evaluate_locator` measured (see the module docstring)."""

    iou_threshold: float
    fields: int
    per_type: dict[str, DetectionCounts]
    total: DetectionCounts
    end_to_end: EndToEndReport | None
    grouping: str | None
    locator_seconds: float
    classify_seconds: float
    params: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (for ``metrics.json`` and the card)."""
        return {
            "iou_threshold": self.iou_threshold,
            "fields": self.fields,
            "per_type": {t: c.to_dict() for t, c in self.per_type.items()},
            "total": self.total.to_dict(),
            "end_to_end": self.end_to_end.to_dict() if self.end_to_end else None,
            "grouping": self.grouping,
            "locator_seconds_per_field": self.locator_seconds / max(1, self.fields),
            "classify_seconds_per_field": self.classify_seconds / max(1, self.fields),
            "locator": self.params,
        }

    def table(self) -> str:
        """The report as Markdown tables."""
        lines = [
            f"Detection at IoU >= {self.iou_threshold:g} ({self.fields} fields; "
            f"locator {self.locator_seconds / max(1, self.fields):.2f} s per field):",
            "",
            "| cell type | cells | found | false | precision | recall | F1 | nucleus hit rate "
            "| mean IoU |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for name, c in [*self.per_type.items(), ("all", self.total)]:
            lines.append(
                f"| {name} | {c.cells} | {c.found} | {c.false} | {_f(c.precision)} | "
                f"{_f(c.recall)} | {_f(c.f1)} | {_f(c.nucleus_hit_rate)} | {_f(c.mean_iou)} |"
            )
        e = self.end_to_end
        if e is not None:
            lines += [
                "",
                f"End to end ({self.grouping} grouping; classification "
                f"{self.classify_seconds / max(1, self.fields):.2f} s per field):",
                "",
                "| crops | cells | agreement | sensitivity | specificity |",
                "|---|---|---|---|---|",
                f"| located (found cells) | {e.compared} | {_f(e.agreement)} | "
                f"{_f(e.located.sensitivity)} | {_f(e.located.specificity)} |",
                f"| reference (same cells) | {e.compared} | | "
                f"{_f(e.reference.sensitivity)} | {_f(e.reference.specificity)} |",
                f"| every annotated cell (missed = not flagged) | {self.total.cells} | | "
                f"{_f(e.every_cell.sensitivity)} | {_f(e.every_cell.specificity)} |",
                "",
                f"Located regions matching no annotated cell that were flagged: "
                f"{e.false_regions_flagged}.",
            ]
        return "\n".join(lines)


def evaluate_locator(
    records: Iterable[FieldRecord],
    locator: CellLocator,
    model: CellModel | None = None,
    *,
    grouping: str = "clinical",
    iou_threshold: float = 0.5,
    progress: bool = False,
    total: int | None = None,
) -> LocatorReport:
    """Measure a locator (and, with a model, its effect on decisions) on annotated fields.

    Args:
        records: the fields, e.g. :func:`cervix_hf.sipakmed.find_fields`.
        locator: the locator to measure.
        model: optional; anything with ``analyze(images) -> list[CellAnalysis]``.
        grouping: how cell types map to Normal/Abnormal (``clinical`` or ``seed``).
        iou_threshold: IoU a located region needs to count as finding a cell.
        progress: show a tqdm bar (``total`` fields, if known).

    Raises:
        ImageLoadError: a field image cannot be read.
        LabelError: an unknown grouping.
    """
    from tqdm import tqdm

    if model is not None:
        binary_label(CELL_TYPES[0], grouping)  # an unknown grouping fails before any work
    per_type = {t: DetectionCounts() for t in CELL_TYPES}
    e2e = EndToEndReport() if model is not None else None
    n_fields = 0
    t_locate = t_classify = 0.0
    for record in tqdm(records, total=total, disable=not progress, unit="field", desc="fields"):
        image = load_image(record.image)
        t0 = time.perf_counter()
        located = locator.locate(image)
        t_locate += time.perf_counter() - t0
        n_fields += 1
        truth = [polygon_region(c.cytoplasm, image.size) for c in record.cells]
        regions = [Region(c.box, c.cytoplasm) for c in located]
        pairs = match(regions, truth, iou_threshold)
        matched = {j: (i, v) for i, j, v in pairs}
        hits = _nucleus_hits(located, record, image.size)
        for j, cell in enumerate(record.cells):
            counts = per_type[cell.cell_type]
            counts.cells += 1
            if j in matched:
                counts.found += 1
                counts.iou_sum += matched[j][1]
            if cell.nucleus is not None:
                counts.nuclei += 1
                counts.nuclei_hit += j in hits
        found_regions = {i for i, _, _ in pairs}
        for i, region in enumerate(regions):
            if i not in found_regions:
                per_type[_blame(region, truth, record)].false += 1
        if model is not None and e2e is not None:
            t0 = time.perf_counter()
            reference = [
                image.crop(
                    crop_box(outline_box(c.cytoplasm, image.size), image.size, locator.params)
                )
                for c in record.cells
            ]
            answers = model.analyze([c.crop for c in located] + reference)
            t_classify += time.perf_counter() - t0
            flagged = [a.p_positive >= a.threshold for a in answers]
            on_located, on_reference = flagged[: len(located)], flagged[len(located) :]
            for j, cell in enumerate(record.cells):
                abnormal = binary_label(cell.cell_type, grouping) == POSITIVE_LABEL
                if j in matched:
                    i = matched[j][0]
                    e2e.compared += 1
                    e2e.agree += on_located[i] == on_reference[j]
                    e2e.located.count(abnormal, on_located[i])
                    e2e.reference.count(abnormal, on_reference[j])
                e2e.every_cell.count(abnormal, j in matched and on_located[matched[j][0]])
            e2e.false_regions_flagged += sum(
                on_located[i] for i in range(len(located)) if i not in found_regions
            )
    total_counts = DetectionCounts()
    for c in per_type.values():
        total_counts.add(c)
    return LocatorReport(
        iou_threshold=iou_threshold,
        fields=n_fields,
        per_type={t: c for t, c in per_type.items() if c.cells or c.false},
        total=total_counts,
        end_to_end=e2e,
        grouping=grouping if model is not None else None,
        locator_seconds=t_locate,
        classify_seconds=t_classify,
        params=locator.params.to_dict(),
    )


def _nucleus_hits(located, record: FieldRecord, size: tuple[int, int]) -> set[int]:
    """Indices of the annotated cells whose nucleus a located nucleus hits (one to one)."""
    nuclei = [(Region(c.box, c.nucleus), c.nucleus_centroid) for c in located if c.nucleus.any()]
    used: set[int] = set()
    hits: set[int] = set()
    for j, cell in enumerate(record.cells):
        if cell.nucleus is None:
            continue
        truth = polygon_region(cell.nucleus, size)
        if truth.area == 0:
            continue
        ys, xs = np.nonzero(truth.mask)
        gx, gy = truth.box[0] + xs.mean() + 0.5, truth.box[1] + ys.mean() + 0.5
        for k, (region, (cx, cy)) in enumerate(nuclei):
            if k not in used and (contains(truth, cx, cy) or contains(region, gx, gy)):
                used.add(k)
                hits.add(j)
                break
    return hits


def _blame(region: Region, truth: list[Region], record: FieldRecord) -> str:
    """The cell type a false region counts against: the annotated cell it overlaps most."""
    overlaps = [intersection(region, t) for t in truth]
    if overlaps and max(overlaps) > 0:
        return record.cells[int(np.argmax(overlaps))].cell_type
    return record.cell_type


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def _f(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


#: File in a model directory holding its latest locator evaluation (shown in its card).
LOCATOR_EVALUATION_NAME = "locator_evaluation.json"


def save_locator_evaluation(
    model_dir: str | Path,
    report: LocatorReport,
    *,
    fields: str,
    revision: str | None,
    synthetic: bool,
) -> Path:
    """Write a locator evaluation into a model directory (the card reads it back)."""
    path = Path(model_dir) / LOCATOR_EVALUATION_NAME
    payload = {
        "fields": fields,
        "revision": revision,
        "synthetic": synthetic,
        "table": report.table(),
        "report": report.to_dict(),
    }
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return path


def load_locator_evaluation(model_dir: str | Path) -> dict[str, Any] | None:
    """The locator evaluation saved in a model directory, or None (missing or unreadable)."""
    path = Path(model_dir) / LOCATOR_EVALUATION_NAME
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.loads(fh.read(1_000_000))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    ok = isinstance(data, dict) and isinstance(data.get("table"), str)
    return data if ok else None
