"""The one config that rebuilds a predictor exactly, saved as ``config.json`` beside the head."""

from __future__ import annotations

import dataclasses
import json
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigMismatchError, ModelLoadError
from .labels import GROUPING_CHOICES, LABELS, POSITIVE_LABEL

CONFIG_NAME = "config.json"
HEAD_NAME = "head.skops"
CELL_TYPE_HEAD_NAME = "cell_type_head.skops"
NOVELTY_NAME = "novelty.skops"
METRICS_NAME = "metrics.json"
FORMAT_VERSION = 1


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
class CervixConfig:
    """Everything needed to rebuild a :class:`~cervix_hf.CervixClassifier` exactly.

    Attributes:
        backbone: timm model name (``resnet152.tv2_in1k``, ``hf-hub:org/name``).
        backbone_revision: Hub revision of the backbone weights, if pinned.
        pretrained: whether pretrained weights were loaded (False: random init, offline runs).
        init_seed: torch seed used to initialise a random backbone (None when pretrained).
        weights_sha256: hash of the backbone's state dict; loading checks it.
        data_config: timm data config (input size, interpolation, mean, std, crop).
        feature_dim: length of the pooled feature vector the head takes.
        labels: class names in the head's ``classes_`` order (index 1 is the positive class).
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
        if self.grouping not in GROUPING_CHOICES:
            raise ConfigMismatchError(
                f"config.json: grouping {self.grouping!r} is not one of {list(GROUPING_CHOICES)}."
            )
        if len(self.labels) != 2 or self.positive_label not in self.labels:
            raise ConfigMismatchError(
                f"config.json: labels must be two names including {self.positive_label!r}, "
                f"got {list(self.labels)}."
            )
        if not 0.0 <= self.decision_threshold <= 1.0:
            raise ConfigMismatchError(
                f"config.json: decision_threshold must be in [0, 1], got {self.decision_threshold}."
            )

    @property
    def positive_index(self) -> int:
        """Column of the positive class in ``predict_proba`` output."""
        return self.labels.index(self.positive_label)

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
        """Build a config from a dict, refusing unknown keys and newer formats.

        Raises:
            ModelLoadError: if the dict is not a cervix_hf config this version can read.
        """
        version = data.get("format_version", FORMAT_VERSION)
        if version > FORMAT_VERSION:
            raise ModelLoadError(
                f"config.json has format_version {version}; this cervix_hf reads up to "
                f"{FORMAT_VERSION}. Upgrade cervix_hf."
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModelLoadError(f"config.json has keys this cervix_hf does not know: {unknown}.")
        missing = sorted(
            f.name
            for f in dataclasses.fields(cls)
            if f.name not in data
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        )
        if missing:
            raise ModelLoadError(f"config.json lacks required keys: {missing}.")
        data = dict(data)
        for key in ("labels", "cell_types"):
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        return cls(**data)

    @classmethod
    def from_json(cls, path: str | Path) -> CervixConfig:
        """Read ``config.json``.

        Raises:
            ModelLoadError: if the file is missing or not valid JSON.
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ModelLoadError(
                f"No {CONFIG_NAME} in {path.parent}: not a cervix_hf model directory "
                "(train one with scripts/train.py)."
            ) from None
        except json.JSONDecodeError as exc:
            raise ModelLoadError(f"{path} is not valid JSON: {exc}.") from None
        if not isinstance(data, dict):
            raise ModelLoadError(f"{path} must hold a JSON object.")
        return cls.from_dict(data)
