"""The Gradio page and its API: one image or a batch -> probabilities, decision, heat map.

``app.py`` is a thin shell over :func:`build_app`. The components hand uploads over untouched
(``gr.File``), so our own loader reads every file. Errors reach the user as ``gr.Error`` with
our message; anything unexpected is logged with its traceback on the server and the user gets
a plain message (``show_error`` is off, so no library text or server path ever leaves).

Programs call three named endpoints, ``/predict``, ``/predict_batch`` and ``/analyze_field``,
documented by the docstrings of the functions behind them (:data:`PREDICT_DOC`,
:data:`PREDICT_BATCH_DOC`, :data:`ANALYZE_FIELD_DOC`): Gradio shows them on the API page and,
when ``gradio[mcp]`` is installed, serves them as MCP tools of the same names
(:func:`launch_kwargs` turns the MCP server on).
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import gradio as gr

from ..errors import CervixError
from ..images import MAX_FILE_BYTES
from ..serving import ModelInfo
from .common import API_DISCLAIMER, ServedModel
from .field import FIELD_HEADERS, create_locator, field_json, field_page
from .field import analyze as locate_and_classify
from .files import MAX_AGE_SECONDS, AppFiles
from .handlers import BATCH_HEADERS, predict_api, predict_page
from .handlers import predict_batch as analyze_batch

logger = logging.getLogger(__name__)

DISCLAIMER = (
    "Research demo, **not a diagnostic device**. The output is a probability from a model, "
    "never medical advice; a cytologist must read every slide."
)
QUEUE_MAX_SIZE = 32
CONCURRENCY_LIMIT = 1  # the backbone already uses every core for one batch
INTERNAL_ERROR = (
    "The model could not analyse this request; the error was logged on the server. Try again, "
    "or try another image."
)
F = TypeVar("F", bound=Callable[..., Any])

# The two API endpoints (and MCP tools) are documented by their functions' docstrings: Gradio
# shows the first paragraph on the API page; MCP clients get it with "Returns", and the "Args"
# lines describe the inputs (one line each: Gradio reads them line by line).
PREDICT_DOC = f"""Classify one single-cell Pap-smear image as Normal or Abnormal. {API_DISCLAIMER}

Args:
    image_file: one image of a single cell (PNG, JPEG, TIFF or BMP), as cut from a Pap smear.

Returns:
    one dict with label (Normal or Abnormal, decided at the model's threshold)
    p_abnormal, probabilities (per class), threshold
    unusual (true when the image is unlike the training cells: the prediction is then meaningless)
    novelty_score, cell_types (probability per cell type, or null), logit
    heatmap (contributions: the exact contribution of each location of the input crop to the logit)
    model (backbone, pretrained, grouping, synthetic_training_data, repo_id, revision), disclaimer
    field_hint (null, or cells_found and a message when the image seems to hold several cells)
"""
PREDICT_BATCH_DOC = f"""Classify every image in a zip archive, in one call. {API_DISCLAIMER}

Args:
    archive: a zip archive of single-cell images (PNG, JPEG, TIFF or BMP), or one such image.

Returns:
    results: a table with one row per image and columns file, p_abnormal, decision, unusual
    error (why an image could not be analysed; the other rows are analysed all the same)
    csv: the same table as a CSV file
"""
ANALYZE_FIELD_DOC = f"""Find every cell in a field of view and classify each one. {API_DISCLAIMER}

Args:
    field_image: one image of a Pap-smear field of view holding several cells (PNG, JPEG, TIFF).

Returns:
    one dict with summary (cells_found, cells_flagged, highest_risk, locator and classify seconds)
    cells: one entry per located cell, highest risk first: id, box, p_abnormal, decision, flagged
    cell_type, cell_types, unusual, novelty_score, outline and nucleus_outline (field pixels)
    field (width, height), locator (its parameters), model, caveat, disclaimer
"""


def documented(doc: str) -> Callable[[F], F]:
    """Give a function its docstring (built from constants, which a literal cannot be)."""

    def decorate(fn: F) -> F:
        fn.__doc__ = doc
        return fn

    return decorate


def guarded(fn: F) -> F:
    """Our errors become ``gr.Error`` with their message; anything else is logged with its
    traceback and answered with :data:`INTERNAL_ERROR`. The app keeps serving either way."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CervixError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        except Exception:
            logger.exception("%s failed", fn.__name__)
            raise gr.Error(INTERNAL_ERROR, print_exception=False) from None

    return wrapper  # type: ignore[return-value]


def model_markdown(model: ServedModel, info: ModelInfo) -> str:
    """The line under the title: which model, pinned where, and its warnings."""
    cfg = model.config
    where = info.source + (f" @ `{info.revision}`" if info.revision else "")
    lines = [
        f"**Model:** {where} — backbone `{cfg.backbone}` "
        f"({'pretrained' if cfg.pretrained else 'random init'}), grouping `{cfg.grouping}`, "
        f"decision threshold {cfg.decision_threshold:.3f}."
    ]
    lines += [f"\n> ⚠️ **{note}**" for note in info.notes]
    return "\n".join(lines)


def build_app(
    model: ServedModel,
    info: ModelInfo,
    examples: list[str] | None = None,
    files: AppFiles | None = None,
) -> gr.Blocks:
    """The Gradio Blocks app serving ``model`` (endpoints ``/predict`` and ``/predict_batch``).

    Args:
        model: what to serve. info: what the page says about it. examples: example images.
        files: where the app writes heat maps and CSVs (default: a new :class:`AppFiles`,
            deleted when the process exits; close it yourself to delete it sooner).
    """
    files = files or AppFiles()
    locator = create_locator(model)

    @guarded
    def show(image_file: Any) -> tuple[Any, ...]:
        """Classify one single-cell image and show everything on the page."""
        r = predict_page(model, image_file, files)
        return r.probabilities, r.decision, r.heatmap, r.cell_types, r.details

    # the API and MCP tools: the function names are the tool names
    @guarded
    @documented(PREDICT_DOC)
    def predict(image_file: Any) -> dict[str, Any]:
        return predict_api(model, image_file)

    @guarded
    @documented(PREDICT_BATCH_DOC)
    def predict_batch(archive: Any) -> tuple[list[list[Any]], str]:
        result = analyze_batch(model, [archive] if archive else [], files, locator=locator)
        return result.rows, result.csv_path

    @guarded
    def show_batch(image_files: Any) -> tuple[list[list[Any]], str]:
        """The page's batch: any number of images and zips."""
        result = analyze_batch(model, image_files, files, locator=locator)
        return result.rows, result.csv_path

    @guarded
    @documented(ANALYZE_FIELD_DOC)
    def analyze_field(field_image: Any) -> dict[str, Any]:
        return field_json(model, locate_and_classify(model, locator, field_image))

    @guarded
    def show_field(field_image: Any) -> tuple[Any, ...]:
        """The Field tab: outlined field, summary, table, CSV and the API's JSON."""
        r = field_page(model, locator, field_image, files)
        return r.overlay, r.summary, r.rows, r.csv_path, r.details

    has_types = model.has_cell_types
    with gr.Blocks(
        title="cervix_hf: Pap-smear cell screening demo",
        delete_cache=(MAX_AGE_SECONDS // 2, MAX_AGE_SECONDS),
    ) as app:
        gr.Markdown("# Single-cell Pap-smear classifier (Normal vs Abnormal)")
        gr.Markdown(f"> {DISCLAIMER}")
        gr.Markdown(model_markdown(model, info))
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
            # the API: one dict, no files for the client to fetch afterwards. An event with
            # no trigger (as gr.api makes) keeps the gr.File input, so gradio_client and MCP
            # clients upload files as for the page, and the output keeps a meaningful name.
            prediction = gr.JSON(visible=False, label="prediction")
            gr.on(
                triggers=[],
                fn=predict,
                inputs=upload,
                outputs=prediction,
                api_name="predict",
                concurrency_limit=CONCURRENCY_LIMIT,
                concurrency_id="backbone",
            )
        with gr.Tab("Batch"):
            batch_files = gr.File(
                label="Images or zip archives",
                file_count="multiple",
                file_types=["image", ".zip"],
                type="filepath",
            )
            run_batch = gr.Button("Classify all", variant="primary")
            # the labels name the outputs in view_api() and MCP: results, csv
            table = gr.Dataframe(headers=BATCH_HEADERS, label="Results", interactive=False)
            csv_out = gr.File(label="CSV")
            run_batch.click(
                show_batch,
                inputs=batch_files,
                outputs=[table, csv_out],
                api_visibility="private",  # programs call /predict_batch
                concurrency_limit=CONCURRENCY_LIMIT,
                concurrency_id="backbone",
            )
            # The API takes one file, a zip (or an image): Gradio 6.31's MCP server cannot
            # pass a list of files to a tool (its file list schema has a dangling "$ref", and
            # list items are never turned into files), while one file works for every client.
            archive = gr.File(
                label="Zip archive of images, or one image",
                file_count="single",
                file_types=["image", ".zip"],
                type="filepath",
                visible=False,
            )
            gr.on(
                triggers=[],
                fn=predict_batch,
                inputs=archive,
                outputs=[table, csv_out],
                api_name="predict_batch",
                concurrency_limit=CONCURRENCY_LIMIT,
                concurrency_id="backbone",
            )
        with gr.Tab("Field"):
            gr.Markdown(
                "A field of view with several cells: each cell is located, cut out as "
                "SIPaKMeD's single-cell crops are, and classified; the table lists them by "
                "risk."
            )
            with gr.Row():
                with gr.Column():
                    field_upload = gr.File(
                        label="Field of view (PNG, JPEG, TIFF, BMP)",
                        file_count="single",
                        file_types=["image"],
                        type="filepath",
                    )
                    run_field = gr.Button("Find and classify the cells", variant="primary")
                    field_summary = gr.Markdown()
                with gr.Column():
                    field_picture = gr.Image(
                        type="filepath",
                        label="Located cells, outlined by P(Abnormal): blue low, red high",
                        interactive=False,
                    )
            field_table = gr.Dataframe(
                headers=FIELD_HEADERS, label="Cells, highest risk first", interactive=False
            )
            field_csv = gr.File(label="CSV")
            field_details = gr.JSON(label="Details (as returned by the API)")
            run_field.click(
                show_field,
                inputs=field_upload,
                outputs=[field_picture, field_summary, field_table, field_csv, field_details],
                api_visibility="private",  # programs call /analyze_field
                concurrency_limit=CONCURRENCY_LIMIT,
                concurrency_id="backbone",
            )
            field_result = gr.JSON(visible=False, label="field")
            gr.on(
                triggers=[],
                fn=analyze_field,
                inputs=field_upload,
                outputs=field_result,
                api_name="analyze_field",
                concurrency_limit=CONCURRENCY_LIMIT,
                concurrency_id="backbone",
            )
        gr.Markdown(
            "Programs: see the API page (link below) or README for `gradio_client` calls; "
            "with MCP on, the same endpoints are MCP tools at `/gradio_api/mcp/`. "
            "Reuse the model without Gradio: `CervixClassifier.from_pretrained(repo_id, "
            "revision=sha)`."
        )
    app.queue(max_size=QUEUE_MAX_SIZE, default_concurrency_limit=CONCURRENCY_LIMIT)
    return app


def mcp_installed() -> bool:
    """Whether the ``mcp`` package (``pip install "gradio[mcp]"``) is importable."""
    return importlib.util.find_spec("mcp") is not None


def launch_kwargs(host: str | None, port: int | None) -> dict[str, Any]:
    """Launch settings: loopback unless told otherwise, upload size limit, no raw errors, and
    the MCP server when ``gradio[mcp]`` is installed (``GRADIO_MCP_SERVER``, when set, decides
    instead)."""
    return {
        "server_name": host or os.environ.get("GRADIO_SERVER_NAME") or "127.0.0.1",
        "server_port": port,
        "max_file_size": MAX_FILE_BYTES * 10,  # batch zips; single images are checked by us
        "show_error": False,  # gr.Error messages (ours) are shown; nothing else is
        "mcp_server": None if "GRADIO_MCP_SERVER" in os.environ else mcp_installed(),
    }


def write_examples(folder: str | os.PathLike) -> list[str]:
    """Write one generated cell per type into ``folder`` (synthetic, not medical images)."""
    import numpy as np

    from ..labels import CELL_TYPES
    from ..synthetic import make_cell

    rng = np.random.default_rng(2024)
    out = []
    for cell_type in CELL_TYPES:
        path = Path(folder) / f"synthetic_{cell_type}.png"
        make_cell(cell_type, rng).save(path)
        out.append(str(path))
    return out
