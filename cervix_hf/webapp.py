"""The Gradio app: one image or a batch -> probabilities, decision, heat map, warnings.

``app.py`` is a thin shell over :func:`build_app`. Every upload is read once by our own loader
(the components hand over files untouched) and goes through one backbone pass; nothing the
user uploads is kept by the app.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr
from PIL import Image

from .analysis import CellAnalysis
from .errors import ImageLoadError, ModelLoadError
from .images import MAX_FILE_BYTES, load_image
from .serving import ModelInfo

if TYPE_CHECKING:
    from .modeling import CervixClassifier
    from .serving import RemoteModel

    Model = CervixClassifier | RemoteModel

logger = logging.getLogger(__name__)

DISCLAIMER = (
    "Research demo, **not a diagnostic device**. The output is a probability from a model, "
    "never medical advice; a cytologist must read every slide."
)
API_DISCLAIMER = (
    "Research demo, not a diagnostic device: the output is a probability, never medical advice."
)
MAX_BATCH_FILES = 200
MAX_ZIP_BYTES = 200 * 1024 * 1024
QUEUE_MAX_SIZE = 32
CONCURRENCY_LIMIT = 1  # the backbone already uses every core for one batch
BATCH_HEADERS = ["file", "p_abnormal", "decision", "unusual", "error"]


# -- prediction ------------------------------------------------------------------------------


def _file_path(item: Any) -> str | None:
    """Path of an upload as Gradio hands it over (a str path or an object with ``.name``)."""
    if item is None:
        return None
    if isinstance(item, (str, os.PathLike)):
        return str(item)
    return getattr(item, "name", None) or getattr(item, "path", None)


def analysis_json(model: Model, r: CellAnalysis) -> dict[str, Any]:
    """The structure ``/predict`` returns as its last output (documented in README)."""
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


def _decision_markdown(model: Model, r: CellAnalysis) -> str:
    lines = [
        f"### Decision: **{r.decision}**",
        f"P({model.config.positive_label}) = {r.p_positive:.3f}; the model's operating point "
        f"says {model.config.positive_label} at or above {r.threshold:.3f}.",
    ]
    if r.contributions is not None:
        lines.append(
            f"\nHeat map: each location's contribution to the logit ranges from "
            f"{r.contributions.min():+.2f} to {r.contributions.max():+.2f}; their mean plus the "
            f"intercept ({r.intercept:+.2f}) is the {model.logit_name} {r.logit:+.2f} "
            f"exactly. Red: towards "
            f"{model.config.positive_label}; blue: away from it."
        )
    if r.unusual:
        lines.append(
            "\n> ⚠️ **Unusual image.** This does not look like the single-cell Pap-smear crops "
            "the model was trained on (score "
            f"{r.novelty_score:.2f}, threshold 1.00). The prediction is not meaningful."
        )
    return "\n".join(lines)


class HeatmapFiles:
    """Heat maps written as files, each under a new name, newest ``keep`` kept.

    Gradio writes returned PIL images to a content-named cache file without an atomic
    rename, so two requests producing the same picture can serve a half-written file; a file
    path output is copied into its cache atomically instead.
    """

    def __init__(self, keep: int = 64) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="cervix-heatmaps-"))
        self.keep = keep
        self._saved = 0

    def save(self, image: Image.Image) -> str:
        """Write ``image`` as PNG under a fresh name and return its path."""
        fd, path = tempfile.mkstemp(dir=self.dir, suffix=".png")
        with os.fdopen(fd, "wb") as fh:
            image.save(fh, format="PNG", compress_level=1)  # speed over a few KB
        self._saved += 1
        if self._saved % self.keep == 0:  # prune now and then, not on every request
            files = sorted(self.dir.glob("*.png"), key=lambda p: p.stat().st_mtime)
            for p in files[: -self.keep]:
                p.unlink(missing_ok=True)
        return path


def _analyze(model: Model, images: list[Image.Image]) -> list[CellAnalysis]:
    """``model.analyze``; a model that cannot answer (its process stopped) says so."""
    try:
        return model.analyze(images)
    except ModelLoadError as exc:
        raise gr.Error(str(exc), print_exception=False) from None


def _analyze_upload(model: Model, upload: Any) -> CellAnalysis:
    """One upload through our loader and one backbone pass; our errors become ``gr.Error``."""
    try:
        image = load_image(_file_path(upload))
    except ImageLoadError as exc:
        raise gr.Error(str(exc), print_exception=False) from None
    return _analyze(model, [image])[0]


def predict_api(model: Model, upload: Any) -> dict[str, Any]:
    """``/predict`` body: the numbers only (the heat map as its exact contribution grid)."""
    return analysis_json(model, _analyze_upload(model, upload))


def predict_one(model: Model, upload: Any, heatmaps: HeatmapFiles | None = None) -> tuple[Any, ...]:
    """The page's single-image event: label, decision text, heat-map picture, cell types and
    the same dict as ``/predict``."""
    r = _analyze_upload(model, upload)
    heat = r.heatmap()
    return (
        r.probabilities,
        _decision_markdown(model, r),
        heatmaps.save(heat) if heatmaps is not None and heat is not None else heat,
        r.cell_types,
        analysis_json(model, r),
    )


def _expand_uploads(paths: list[str]) -> list[tuple[str, bytes | str | None, str | None]]:
    """(name, data or path, error) for each file, with zip archives opened in memory."""
    out: list[tuple[str, bytes | str | None, str | None]] = []
    for path in paths:
        name = Path(path).name
        if zipfile.is_zipfile(path):
            try:
                with zipfile.ZipFile(path) as zf:
                    members = [m for m in zf.infolist() if not m.is_dir()]
                    total = sum(m.file_size for m in members)
                    if total > MAX_ZIP_BYTES:
                        out.append(
                            (
                                name,
                                None,
                                f"archive expands to {total / 2**20:.0f} MiB, "
                                f"over {MAX_ZIP_BYTES / 2**20:.0f} MiB",
                            )
                        )
                        continue
                    for m in members:
                        inner = f"{name}/{m.filename}"
                        if "__MACOSX" in m.filename or Path(m.filename).name.startswith("."):
                            continue
                        if m.file_size > MAX_FILE_BYTES:
                            out.append((inner, None, "file over the size limit"))
                            continue
                        out.append((inner, zf.read(m), None))
            except (zipfile.BadZipFile, OSError, RuntimeError) as exc:
                out.append((name, None, f"unreadable zip archive ({exc})"))
        else:
            out.append((name, path, None))
    return out


def predict_many(model: Model, uploads: Any) -> tuple[list[list[Any]], str | None]:
    """Batch endpoint body: one row per file (a failing file gets its reason, not a crash)."""
    paths = [p for p in (_file_path(u) for u in (uploads or [])) if p]
    if not paths:
        raise gr.Error("No files given: upload images or a zip of images.", print_exception=False)
    entries = _expand_uploads(paths)
    if len(entries) > MAX_BATCH_FILES:
        raise gr.Error(
            f"{len(entries)} files: the demo takes at most {MAX_BATCH_FILES} per batch.",
            print_exception=False,
        )
    rows: list[list[Any]] = [[name, None, None, None, err] for name, _, err in entries]
    ok: list[int] = []
    images: list[Image.Image] = []
    for i, (_, data, err) in enumerate(entries):
        if err is not None:
            continue
        try:
            images.append(load_image(data))
            ok.append(i)
        except ImageLoadError as exc:
            rows[i][4] = str(exc)
    for i, r in zip(ok, _analyze(model, images) if images else [], strict=True):
        rows[i][1:4] = [round(r.p_positive, 6), r.decision, r.unusual]
        rows[i][4] = ""
    csv_path = _write_csv(rows)
    return rows, csv_path


def _write_csv(rows: list[list[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(BATCH_HEADERS)
    writer.writerows(rows)
    fd, path = tempfile.mkstemp(prefix="cervix_batch_", suffix=".csv")
    with os.fdopen(fd, "w", newline="") as fh:
        fh.write(buf.getvalue())
    return path


# -- page ------------------------------------------------------------------------------------


def _model_markdown(model: Model, info: ModelInfo) -> str:
    cfg = model.config
    where = info.source + (f" @ `{info.revision}`" if info.revision else "")
    lines = [
        f"**Model:** {where} — backbone `{cfg.backbone}` "
        f"({'pretrained' if cfg.pretrained else 'random init'}), grouping `{cfg.grouping}`, "
        f"decision threshold {cfg.decision_threshold:.3f}."
    ]
    lines += [f"\n> ⚠️ **{note}**" for note in info.notes]
    return "\n".join(lines)


def build_app(model: Model, info: ModelInfo, examples: list[str] | None = None) -> gr.Blocks:
    """The Gradio Blocks app serving ``model`` (endpoints ``/predict`` and ``/predict_batch``)."""

    heatmaps = HeatmapFiles()

    def show(image_file: Any) -> tuple[Any, ...]:
        """Classify one single-cell image and show everything on the page."""
        return predict_one(model, image_file, heatmaps)

    def predict(image_file: Any) -> dict[str, Any]:
        """Classify one single-cell image as Normal or Abnormal (numbers only)."""
        return predict_api(model, image_file)

    def predict_batch(files: Any) -> tuple[list[list[Any]], str | None]:
        """Classify several images (or zips of images): one row per file, plus a CSV."""
        return predict_many(model, files)

    has_types = model.has_cell_types
    with gr.Blocks(
        title="cervix_hf: Pap-smear cell screening demo", delete_cache=(300, 600)
    ) as app:
        gr.Markdown("# Single-cell Pap-smear classifier (Normal vs Abnormal)")
        gr.Markdown(f"> {DISCLAIMER}")
        gr.Markdown(_model_markdown(model, info))
        with gr.Tab("One image"):
            with gr.Row():
                with gr.Column():
                    upload = gr.File(
                        label="Single-cell image (BMP, PNG, JPEG, TIFF...)",
                        file_count="single",
                        file_types=["image"],
                        type="filepath",
                    )
                    run = gr.Button("Classify", variant="primary")
                    if examples:
                        gr.Examples(examples, inputs=upload, label="Synthetic example cells")
                with gr.Column():
                    label = gr.Label(num_top_classes=2, label="Normal vs Abnormal")
                    decision = gr.Markdown()
                    heat = gr.Image(
                        type="filepath",
                        label="Heat map: red pushed towards Abnormal, blue towards Normal",
                        interactive=False,
                    )
                    types = gr.Label(
                        num_top_classes=5, label="Cell type (SIPaKMeD classes)", visible=has_types
                    )
                    details = gr.JSON(label="Details (as returned by the API)")
            run.click(
                show,
                inputs=upload,
                outputs=[label, decision, heat, types, details],
                api_visibility="private",  # programs call /predict: numbers, no picture
                concurrency_limit=CONCURRENCY_LIMIT,
                concurrency_id="backbone",
            )
            # the API: one dict, no files for the client to fetch afterwards
            api_result = gr.JSON(visible=False)
            gr.Button(visible=False).click(
                predict,
                inputs=upload,
                outputs=api_result,
                api_name="predict",
                api_description=(
                    f"Classify one single-cell image. {API_DISCLAIMER} Returns one dict: "
                    "label, p_abnormal, probabilities, threshold, unusual, novelty_score, "
                    "cell_types, logit, heatmap (the exact per-location contributions to the "
                    "logit over the model's input crop, and the intercept), model, disclaimer."
                ),
                concurrency_limit=CONCURRENCY_LIMIT,
                concurrency_id="backbone",
            )
        with gr.Tab("Batch"):
            files = gr.File(
                label="Images or zip archives",
                file_count="multiple",
                file_types=["image", ".zip"],
                type="filepath",
            )
            run_batch = gr.Button("Classify all", variant="primary")
            table = gr.Dataframe(headers=BATCH_HEADERS, label="Results", interactive=False)
            csv_out = gr.File(label="CSV")
            run_batch.click(
                predict_batch,
                inputs=files,
                outputs=[table, csv_out],
                api_name="predict_batch",
                api_description=(
                    f"Classify several images or zips. {API_DISCLAIMER} Returns a table with "
                    "columns file, p_abnormal, decision, unusual, error, and a CSV file."
                ),
                concurrency_limit=CONCURRENCY_LIMIT,
                concurrency_id="backbone",
            )
        gr.Markdown(
            "Programs: see the API page (link below) or README for `gradio_client` calls. "
            "Reuse the model without Gradio: `CervixClassifier.from_pretrained(repo_id, "
            "revision=sha)`."
        )
    app.queue(max_size=QUEUE_MAX_SIZE, default_concurrency_limit=CONCURRENCY_LIMIT)
    return app


def launch_kwargs(host: str | None, port: int | None) -> dict[str, Any]:
    """Launch settings: loopback unless told otherwise, upload size limit, errors shown."""
    return {
        "server_name": host or os.environ.get("GRADIO_SERVER_NAME") or "127.0.0.1",
        "server_port": port,
        "max_file_size": MAX_FILE_BYTES * 10,  # batch zips; single images are checked by us
        "show_error": True,
    }


def write_examples(folder: str | os.PathLike) -> list[str]:
    """Write one generated cell per type into ``folder`` (synthetic, not medical images)."""
    import numpy as np

    from .labels import CELL_TYPES
    from .synthetic import make_cell

    rng = np.random.default_rng(2024)
    out = []
    for cell_type in CELL_TYPES:
        path = Path(folder) / f"synthetic_{cell_type}.png"
        make_cell(cell_type, rng).save(path)
        out.append(str(path))
    return out
