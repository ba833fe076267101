"""The one config that rebuilds a predictor exactly, saved as ``config.json`` beside the head.

A ``config.json`` may come from anywhere (a Hub repo, a cache), so reading one checks it
against the schema below before anything uses it: every field's type, ranges, file names
(plain names inside the model directory), the labels and the preprocessing. A violation is a
:class:`~cervix_hf.errors.ModelLoadError` that names the field.
"""

from __future__ import annotations

import dataclasses
import json
import math
import platform
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigMismatchError, ModelLoadError
from .labels import CELL_TYPES, GROUPING_CHOICES, LABELS, POSITIVE_LABEL

CONFIG_NAME = "config.json"
HEAD_NAME = "head.skops"
CELL_TYPE_HEAD_NAME = "cell_type_head.skops"
NOVELTY_NAME = "novelty.skops"
BACKBONE_ONNX_NAME = "backbone.onnx"
METRICS_NAME = "metrics.json"
FORMAT_VERSION = 2  # 2: the backbone travels as backbone.onnx (backbone_onnx)
MAX_CONFIG_BYTES = 4 * 1024 * 1024

#: timm interpolation names the torch-free preprocessing reproduces.
INTERPOLATIONS: tuple[str, ...] = ("nearest", "bilinear", "bicubic", "box", "hamming", "lanczos")
#: timm evaluation crop modes it reproduces.
CROP_MODES: tuple[str, ...] = ("center", "squash", "border")
DATA_CONFIG_KEYS: tuple[str, ...] = (
    "input_size",
    "interpolation",
    "mean",
    "std",
    "crop_pct",
    "crop_mode",
)
MAX_INPUT_SIDE = 1024
MAX_FEATURE_DIM = 65536
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_RESERVED = {CONFIG_NAME, METRICS_NAME, "README.md", ".gitattributes"}


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape the features and the head."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for dist in ("cervix_hf", "torch", "timm", "scikit-learn", "skops", "numpy", "pillow"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _bad(name: str, what: str, value: Any) -> ConfigMismatchError:
    shown = repr(value)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return ConfigMismatchError(f"config.json: {name} must be {what}, got {shown}.")


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_file_name(name: str, value: Any, suffix: str) -> None:
    """A plain file name inside the model directory (no folders, no ``..``), with ``suffix``.

    Raises:
        ConfigMismatchError: naming the field.
    """
    if (
        not isinstance(value, str)
        or not _FILE_NAME.match(value)
        or ".." in value
        or not value.endswith(suffix)
        or value in _RESERVED
    ):
        raise _bad(name, f"a plain file name ending in {suffix} inside the model directory", value)


def check_data_config(name: str, data_config: Any) -> None:
    """The timm data config: keys, input size, interpolation, normalisation and crop.

    Raises:
        ConfigMismatchError: naming the field.
    """
    if not isinstance(data_config, dict):
        raise _bad(name, "an object", data_config)
    unknown = sorted(set(data_config) - set(DATA_CONFIG_KEYS))
    if unknown:
        raise _bad(name, f"an object with keys among {list(DATA_CONFIG_KEYS)}", unknown)
    size = data_config.get("input_size")
    if (
        not isinstance(size, (list, tuple))
        or len(size) != 3
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in size)
        or size[0] != 3
        or not all(16 <= v <= MAX_INPUT_SIDE for v in size[1:])
    ):
        raise _bad(
            f"{name}.input_size", f"[3, height, width] with sides from 16 to {MAX_INPUT_SIDE}", size
        )
    for key, low in (("mean", 0.0), ("std", 1e-6)):
        values = data_config.get(key)
        if (
            not isinstance(values, (list, tuple))
            or len(values) != 3
            or not all(_finite(v) and low <= v <= 1.0 for v in values)
        ):
            raise _bad(f"{name}.{key}", f"three numbers in [{low:g}, 1]", values)
    interpolation = data_config.get("interpolation", "bilinear")
    if interpolation not in INTERPOLATIONS:
        raise _bad(f"{name}.interpolation", f"one of {list(INTERPOLATIONS)}", interpolation)
    crop_mode = data_config.get("crop_mode", "center")
    if crop_mode not in CROP_MODES:
        raise _bad(f"{name}.crop_mode", f"one of {list(CROP_MODES)}", crop_mode)
    crop_pct = data_config.get("crop_pct", 0.875)
    if not _finite(crop_pct) or not 0.0 < crop_pct <= 1.0:
        raise _bad(f"{name}.crop_pct", "a number in (0, 1]", crop_pct)


@dataclass(frozen=True)
class OnnxFile:
    """The backbone trunk exported to ONNX and saved beside the heads.

    Attributes:
        sha256: hash of the file; loading checks it before ONNX Runtime reads the file.
        file: its name in the model directory.
        opset: ONNX opset of the export.
        input_name, output_name: the graph's input (images) and output (last feature map).
        exported_with: library versions of the export (torch, onnx).
    """

    sha256: str
    file: str = BACKBONE_ONNX_NAME
    opset: int = 17
    input_name: str = "pixel_values"
    output_name: str = "feature_map"
    exported_with: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.sha256, str) or not _SHA256.match(self.sha256):
            raise _bad("backbone_onnx.sha256", "64 lowercase hex digits", self.sha256)
        check_file_name("backbone_onnx.file", self.file, ".onnx")
        if not 7 <= self.opset <= 30:
            raise _bad("backbone_onnx.opset", "an ONNX opset from 7 to 30", self.opset)


@dataclass(frozen=True)
class CervixConfig:
    """Everything needed to rebuild a :class:`~cervix_hf.CervixClassifier` exactly.

    Attributes:
        backbone: timm model name (``resnet152.tv2_in1k``, ``hf-hub:org/name``).
        backbone_revision: Hub revision of the backbone weights, if pinned.
        pretrained: whether pretrained weights were loaded (False: random init, offline runs).
        init_seed: torch seed used to initialise a random backbone (None when pretrained).
        weights_sha256: hash of the backbone's state dict; rebuilding it checks it.
        backbone_onnx: the exported trunk the model runs on (None in models saved before it
            travelled with them: those are exported on load).
        data_config: timm data config (input size, interpolation, mean, std, crop).
        feature_dim: length of the pooled feature vector the head takes.
        labels: class names in the head's ``classes_`` order (always Normal, Abnormal).
        positive_label: the class whose probability is reported as the risk.
        grouping: how cell types map to labels (``clinical``, ``seed`` or ``given``).
        cell_types: names of the cell-type head's classes, if one was trained.
        decision_threshold: P(positive) at or above which ``predict`` says positive.
        head: file name of the binary head; cell_type_head: the cell-type head's, or None.
        novelty_detector: file name of the unusual-image detector, or None;
            novelty_threshold: its score above which an image is flagged as unusual.
        head_params: hyper-parameters of the head (C, class weights, CV grid).
        dataset: where the training data came from; dataset_revision and dataset_fingerprint
            pin it; synthetic_data marks generated (non-medical) training images; split_seed
            and test_size describe the held-out split.
        metrics: held-out metrics (also in ``metrics.json``).
        versions: library versions at training time.
    """

    backbone: str
    pretrained: bool
    weights_sha256: str
    data_config: dict[str, Any]
    feature_dim: int
    backbone_revision: str | None = None
    init_seed: int | None = None
    backbone_onnx: OnnxFile | None = None
    labels: tuple[str, ...] = LABELS
    positive_label: str = POSITIVE_LABEL
    grouping: str = "clinical"
    cell_types: tuple[str, ...] | None = None
    decision_threshold: float = 0.5
    head: str = HEAD_NAME
    cell_type_head: str | None = None
    novelty_detector: str | None = None
    novelty_threshold: float | None = None
    head_params: dict[str, Any] = field(default_factory=dict)
    dataset: str | None = None
    dataset_revision: str | None = None
    dataset_fingerprint: str | None = None
    synthetic_data: bool = False
    split_seed: int | None = None
    test_size: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=library_versions)
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if not self.backbone or len(self.backbone) > 256 or not self.backbone.isprintable():
            raise _bad("backbone", "a timm model name", self.backbone)
        if not _SHA256.match(self.weights_sha256):
            raise _bad("weights_sha256", "64 lowercase hex digits", self.weights_sha256)
        check_data_config("data_config", self.data_config)
        # one canonical form (JSON's: lists), so a config equals itself after a round trip
        canonical = {k: list(v) if isinstance(v, tuple) else v for k, v in self.data_config.items()}
        object.__setattr__(self, "data_config", canonical)
        if not 1 <= self.feature_dim <= MAX_FEATURE_DIM:
            raise _bad("feature_dim", f"from 1 to {MAX_FEATURE_DIM}", self.feature_dim)
        if self.grouping not in GROUPING_CHOICES:
            raise _bad("grouping", f"one of {list(GROUPING_CHOICES)}", self.grouping)
        if tuple(self.labels) != LABELS or self.positive_label != POSITIVE_LABEL:
            raise _bad(
                "labels", f"{list(LABELS)} in this order, positive {POSITIVE_LABEL!r}", self.labels
            )
        if self.cell_types is not None and tuple(self.cell_types) != CELL_TYPES:
            raise _bad("cell_types", f"null or {list(CELL_TYPES)} in this order", self.cell_types)
        if (self.cell_types is None) != (self.cell_type_head is None):
            raise _bad("cell_type_head", "set exactly when cell_types is", self.cell_type_head)
        if not _finite(self.decision_threshold) or not 0.0 <= self.decision_threshold <= 1.0:
            raise _bad("decision_threshold", "a number in [0, 1]", self.decision_threshold)
        check_file_name("head", self.head, ".skops")
        for name in ("cell_type_head", "novelty_detector"):
            if getattr(self, name) is not None:
                check_file_name(name, getattr(self, name), ".skops")
        files = [self.head, self.cell_type_head, self.novelty_detector]
        files = [f for f in files if f] + ([self.backbone_onnx.file] if self.backbone_onnx else [])
        if len(set(files)) != len(files):
            raise _bad("head, cell_type_head, novelty_detector", "different file names", files)
        if (self.novelty_detector is None) != (self.novelty_threshold is None):
            raise _bad("novelty_threshold", "set exactly when novelty_detector is", None)
        if self.novelty_threshold is not None and not (
            _finite(self.novelty_threshold) and self.novelty_threshold > 0
        ):
            raise _bad("novelty_threshold", "a positive number", self.novelty_threshold)
        for name in ("init_seed", "split_seed"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise _bad(name, "null or a non-negative integer", value)
        if self.test_size is not None and not (
            _finite(self.test_size) and 0.0 < self.test_size < 1.0
        ):
            raise _bad("test_size", "null or a number in (0, 1)", self.test_size)
        if self.backbone_revision is not None and len(self.backbone_revision) > 100:
            raise _bad("backbone_revision", "null or a revision name", self.backbone_revision)
        if not 1 <= self.format_version <= FORMAT_VERSION:
            raise _bad("format_version", f"from 1 to {FORMAT_VERSION}", self.format_version)

    @property
    def positive_index(self) -> int:
        """Column of the positive class in ``predict_proba`` output."""
        return self.labels.index(self.positive_label)

    @property
    def negative_label(self) -> str:
        """The class that is not the positive one."""
        return next(label for label in self.labels if label != self.positive_label)

    def replace(self, **changes: Any) -> CervixConfig:
        """Return a copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists, as they come back from JSON)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def to_json(self, path: str | Path) -> None:
        """Write the config as pretty JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CervixConfig:
        """Build a config from a dict (parsed JSON), checking it against the schema.

        Raises:
            ModelLoadError: if the dict is not a cervix_hf config this version can read
                (unknown or missing keys, wrong types, values out of range; the message
                names the field).
        """
        if not isinstance(data, dict):
            raise ModelLoadError("config.json must hold a JSON object.")
        version = data.get("format_version", FORMAT_VERSION)
        if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
            raise ModelLoadError(
                f"config.json has format_version {version}; this cervix_hf reads up to "
                f"{FORMAT_VERSION}. Upgrade cervix_hf."
            )
        return _build(cls, data, "")

    @classmethod
    def from_json(cls, path: str | Path) -> CervixConfig:
        """Read ``config.json`` (at most 4 MiB).

        Raises:
            ModelLoadError: if the file is missing, too large, not valid JSON or not a valid
                config.
        """
        path = Path(path)
        try:
            with path.open("rb") as fh:
                raw = fh.read(MAX_CONFIG_BYTES + 1)
        except FileNotFoundError:
            raise ModelLoadError(
                f"No {CONFIG_NAME} in {path.parent}: not a cervix_hf model directory "
                "(train one with scripts/train.py)."
            ) from None
        except OSError as exc:
            raise ModelLoadError(f"Cannot read {path} ({exc.strerror}).") from None
        if len(raw) > MAX_CONFIG_BYTES:
            raise ModelLoadError(f"{path.name} is over {MAX_CONFIG_BYTES // 2**20} MiB.")
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise ModelLoadError(f"{path} is not valid JSON: {exc}.") from None
        return cls.from_dict(data)


# -- schema: types from the dataclass annotations ----------------------------------------------


def _type_ok(value: Any, tp: Any) -> bool:
    """Whether a JSON value fits an annotation (JSON lists stand for tuples)."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, arg) for arg in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return _finite(value)
    if tp is str:
        return isinstance(value, str)
    if origin is tuple:
        item = typing.get_args(tp)[0]
        return isinstance(value, (list, tuple)) and all(_type_ok(v, item) for v in value)
    if origin is dict:
        _, item = typing.get_args(tp)
        return isinstance(value, dict) and all(
            isinstance(k, str) and _type_ok(v, item) for k, v in value.items()
        )
    if dataclasses.is_dataclass(tp):
        return isinstance(value, dict)
    return False


def _type_text(tp: Any) -> str:
    text = str(tp).replace("typing.", "").replace("NoneType", "null")
    return re.sub(r"<class '(\w+)'>", r"\1", re.sub(r"[\w.]+\.(\w+)", r"\1", text))


def _build(cls: Any, data: dict[str, Any], prefix: str) -> Any:
    """Instantiate a (nested) config dataclass from JSON data, checking every field's type."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f"config.json{' ' + prefix.rstrip('.') if prefix else ''}"
        raise ModelLoadError(f"{where} has keys this cervix_hf does not know: {unknown}.")
    missing = sorted(
        name
        for name, f in fields.items()
        if name not in data
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    )
    if missing:
        raise ModelLoadError(f"config.json lacks required keys: {[prefix + m for m in missing]}.")
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for name, value in data.items():
        tp = hints[name]
        if not _type_ok(value, tp):
            raise ModelLoadError(
                f"config.json: {prefix}{name} must be {_type_text(tp)}, got "
                f"{type(value).__name__} {str(value)[:60]!r}."
            )
        nested = next((a for a in (tp, *typing.get_args(tp)) if dataclasses.is_dataclass(a)), None)
        if nested is not None and isinstance(value, dict):
            value = _build(nested, value, f"{prefix}{name}.")
        elif typing.get_origin(tp) is tuple or tuple in map(typing.get_origin, typing.get_args(tp)):
            value = tuple(value) if value is not None else None
        values[name] = value
    return cls(**values)
