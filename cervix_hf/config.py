"""The one config that rebuilds a predictor exactly, saved as ``config.json`` beside the head.

A ``config.json`` may come from anywhere (a Hub repo, a cache), so reading one checks it
before anything uses it: every field's type (:mod:`cervix_hf.config_schema`), ranges, file
names (plain names inside the model directory), the labels and the preprocessing. A violation
is a :class:`~cervix_hf.errors.ModelLoadError` that names the field.
"""

from __future__ import annotations

import dataclasses
import json
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config_schema import SHA256, bad, build, check_data_config, check_file_name, finite
from .errors import ModelLoadError
from .features.precision import PrecisionRecord
from .fields.params import LocatorParams
from .labels import CELL_TYPES, GROUPING_CHOICES, LABELS, POSITIVE_LABEL

CONFIG_NAME = "config.json"
HEAD_NAME = "head.skops"
CELL_TYPE_HEAD_NAME = "cell_type_head.skops"
NOVELTY_NAME = "novelty.skops"
BACKBONE_ONNX_NAME = "backbone.onnx"
METRICS_NAME = "metrics.json"
FORMAT_VERSION = 2  # 2: the backbone travels as backbone.onnx (backbone_onnx)
MAX_CONFIG_BYTES = 4 * 1024 * 1024
MAX_FEATURE_DIM = 65536


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
        if not isinstance(self.sha256, str) or not SHA256.match(self.sha256):
            raise bad("backbone_onnx.sha256", "64 lowercase hex digits", self.sha256)
        check_file_name("backbone_onnx.file", self.file, ".onnx")
        if not 7 <= self.opset <= 30:
            raise bad("backbone_onnx.opset", "an ONNX opset from 7 to 30", self.opset)


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
        precision: the precision the head's training features were computed in and how
            closely the serving path (ONNX Runtime fp32) reproduces the head's outputs
            (None: not recorded, fp32).
        locator: the parameters of the cell locator that finds cells in whole fields for
            this model (None: the defaults).
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
    precision: PrecisionRecord | None = None
    locator: LocatorParams | None = None
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
            raise bad("backbone", "a timm model name", self.backbone)
        if not SHA256.match(self.weights_sha256):
            raise bad("weights_sha256", "64 lowercase hex digits", self.weights_sha256)
        check_data_config("data_config", self.data_config)
        # one canonical form (JSON's: lists), so a config equals itself after a round trip
        canonical = {k: list(v) if isinstance(v, tuple) else v for k, v in self.data_config.items()}
        object.__setattr__(self, "data_config", canonical)
        if not 1 <= self.feature_dim <= MAX_FEATURE_DIM:
            raise bad("feature_dim", f"from 1 to {MAX_FEATURE_DIM}", self.feature_dim)
        if self.grouping not in GROUPING_CHOICES:
            raise bad("grouping", f"one of {list(GROUPING_CHOICES)}", self.grouping)
        if tuple(self.labels) != LABELS or self.positive_label != POSITIVE_LABEL:
            raise bad(
                "labels", f"{list(LABELS)} in this order, positive {POSITIVE_LABEL!r}", self.labels
            )
        if self.cell_types is not None and tuple(self.cell_types) != CELL_TYPES:
            raise bad("cell_types", f"null or {list(CELL_TYPES)} in this order", self.cell_types)
        if (self.cell_types is None) != (self.cell_type_head is None):
            raise bad("cell_type_head", "set exactly when cell_types is", self.cell_type_head)
        if not finite(self.decision_threshold) or not 0.0 <= self.decision_threshold <= 1.0:
            raise bad("decision_threshold", "a number in [0, 1]", self.decision_threshold)
        check_file_name("head", self.head, ".skops")
        for name in ("cell_type_head", "novelty_detector"):
            if getattr(self, name) is not None:
                check_file_name(name, getattr(self, name), ".skops")
        files = [self.head, self.cell_type_head, self.novelty_detector]
        files = [f for f in files if f] + ([self.backbone_onnx.file] if self.backbone_onnx else [])
        if len(set(files)) != len(files):
            raise bad("head, cell_type_head, novelty_detector", "different file names", files)
        if (self.novelty_detector is None) != (self.novelty_threshold is None):
            raise bad("novelty_threshold", "set exactly when novelty_detector is", None)
        if self.novelty_threshold is not None and not (
            finite(self.novelty_threshold) and self.novelty_threshold > 0
        ):
            raise bad("novelty_threshold", "a positive number", self.novelty_threshold)
        for name in ("init_seed", "split_seed"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise bad(name, "null or a non-negative integer", value)
        if self.test_size is not None and not (
            finite(self.test_size) and 0.0 < self.test_size < 1.0
        ):
            raise bad("test_size", "null or a number in (0, 1)", self.test_size)
        if self.backbone_revision is not None and len(self.backbone_revision) > 100:
            raise bad("backbone_revision", "null or a revision name", self.backbone_revision)
        if not 1 <= self.format_version <= FORMAT_VERSION:
            raise bad("format_version", f"from 1 to {FORMAT_VERSION}", self.format_version)

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
        return build(cls, data, "")

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
