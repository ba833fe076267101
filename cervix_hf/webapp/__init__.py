"""The Gradio app: the page and API (``page``), what the endpoints compute (``handlers``;
whole fields: ``field``), a batch's files one at a time (``uploads``) and the app's own
temporary files (``files``)."""

from .common import API_DISCLAIMER, ServedModel
from .field import FIELD_HEADERS, FieldPage, field_json, field_page
from .files import AppFiles, csv_cell
from .handlers import (
    BATCH_HEADERS,
    BatchResult,
    PageResult,
    analysis_json,
    predict_api,
    predict_batch,
    predict_page,
)
from .page import DISCLAIMER, INTERNAL_ERROR, build_app, guarded, launch_kwargs, write_examples
from .uploads import BatchLimits, UploadEntry, iter_entries

__all__ = [
    "API_DISCLAIMER",
    "BATCH_HEADERS",
    "DISCLAIMER",
    "FIELD_HEADERS",
    "INTERNAL_ERROR",
    "AppFiles",
    "BatchLimits",
    "BatchResult",
    "FieldPage",
    "PageResult",
    "ServedModel",
    "UploadEntry",
    "analysis_json",
    "build_app",
    "csv_cell",
    "field_json",
    "field_page",
    "guarded",
    "iter_entries",
    "launch_kwargs",
    "predict_api",
    "predict_batch",
    "predict_page",
    "write_examples",
]
