"""Errors a user of cervix_hf can meet, each with a message that says what to do.

Everything raised on purpose by the package derives from :class:`CervixError`, so callers
(the CLIs, the app) can show the message without a traceback.
"""

from __future__ import annotations


class CervixError(Exception):
    """Base class of every error cervix_hf raises on purpose."""


class DatasetLayoutError(CervixError):
    """A folder or dataset does not have the layout or columns we can read."""


class LabelError(CervixError):
    """Labels are missing, unknown or cannot be mapped to Normal/Abnormal."""


class SplitError(CervixError):
    """The data cannot be split as asked (too few samples or groups per class)."""


class ImageLoadError(CervixError):
    """An input cannot be read as an image (empty, not an image, truncated, too large)."""


class RequestError(CervixError):
    """A request to the app cannot be served as sent (no file, nothing to analyse)."""


class ArchiveError(CervixError):
    """An uploaded archive cannot be read safely (too many members, over a limit, damaged)."""


class ModelLoadError(CervixError):
    """A model directory or Hub repo cannot be loaded."""


class UntrustedHeadError(ModelLoadError):
    """A ``.skops`` file holds types outside the list we trust; it is refused."""


class ConfigMismatchError(ModelLoadError):
    """``config.json`` and the saved head (or the rebuilt backbone) disagree."""


class HubError(CervixError):
    """The Hub cannot be reached, or the repo, file or revision does not exist."""


class EvaluationError(CervixError):
    """A model cannot be evaluated as asked (options out of range, data it was not trained on)."""


class EngineError(CervixError):
    """The backbone cannot run as asked (device, engine or precision unavailable)."""


class OnnxGraphError(EngineError):
    """An ONNX graph on disk fails its check (SHA-256 record, agreement with torch): it is
    refused and never run, and the message names the file to delete."""


class DeployError(CervixError):
    """A Space cannot be built or published as asked (unpinned model, missing files)."""


class LocatorError(CervixError):
    """The cell locator cannot run as asked (parameters out of range, a field too large)."""
