"""Precision is part of a model's contract: the features its head was trained on, what the
serving path runs, and how far apart their answers are.

Extraction may run bf16 where the CPU has bf16 hardware and measures faster
(:mod:`cervix_hf.features.probe`); serving runs ONNX Runtime fp32. bf16 moves the features
beyond float noise, and a cosine near 1 does not bound how far the head's output moves: the
only honest check compares the head's P(positive) on the same images both ways.
:func:`serving_agreement` does, and :class:`PrecisionRecord` carries the result into
``config.json`` and the model card.

Imports neither torch nor timm (only :func:`serving_twin` builds a backbone).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import EvaluationError, ModelLoadError

if TYPE_CHECKING:
    from .backbone import Backbone

MAX_DELTA_P = 1e-3  # largest |delta P(positive)| between training and serving that passes
SAMPLE_SIZE = 64  # training images the save compares
PRECISIONS = ("fp32", "bf16")
ENGINES = ("torch", "onnx")


def _number(data: dict[str, Any], name: str, kind: type, where: str) -> Any:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else kind):
        raise ModelLoadError(f"config.json '{where}.{name}' must be a {kind.__name__}.")
    if kind is float and not math.isfinite(value):
        raise ModelLoadError(f"config.json '{where}.{name}' must be finite.")
    return kind(value)


@dataclass(frozen=True)
class ServingAgreement:
    """How closely the serving path reproduces the head's training-precision outputs.

    Attributes:
        n: images compared.
        max_abs_delta_p: largest |P_serve - P_train| of the positive class.
        mean_abs_delta_p: mean of the same.
        n_flips: decisions at ``threshold`` that differ (P >= threshold means positive).
        threshold: the decision threshold compared at (the one ``predict`` uses).
        limit: the largest ``max_abs_delta_p`` that passes.
    """

    n: int
    max_abs_delta_p: float
    mean_abs_delta_p: float
    n_flips: int
    threshold: float
    limit: float = MAX_DELTA_P

    @property
    def ok(self) -> bool:
        """No decision flips and P(positive) within :attr:`limit`."""
        return self.n_flips == 0 and self.max_abs_delta_p <= self.limit

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "n": self.n,
            "max_abs_delta_p": self.max_abs_delta_p,
            "mean_abs_delta_p": self.mean_abs_delta_p,
            "n_flips": self.n_flips,
            "threshold": self.threshold,
            "limit": self.limit,
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "precision.agreement") -> ServingAgreement:
        """Read it back from ``config.json``.

        Raises:
            ModelLoadError: naming the field that is missing or of the wrong type.
        """
        if not isinstance(data, dict):
            raise ModelLoadError(f"config.json '{where}' must be an object.")
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ModelLoadError(f"config.json '{where}' has unknown keys {unknown}.")
        out = cls(
            n=_number(data, "n", int, where),
            max_abs_delta_p=_number(data, "max_abs_delta_p", float, where),
            mean_abs_delta_p=_number(data, "mean_abs_delta_p", float, where),
            n_flips=_number(data, "n_flips", int, where),
            threshold=_number(data, "threshold", float, where),
            limit=_number({"limit": data.get("limit", MAX_DELTA_P)}, "limit", float, where),
        )
        if out.n < 1 or not 0 <= out.n_flips <= out.n or not 0 <= out.threshold <= 1:
            raise ModelLoadError(f"config.json '{where}' holds impossible values: {data}.")
        return out


def serving_agreement(
    p_train: np.ndarray, p_serve: np.ndarray, threshold: float, *, limit: float = MAX_DELTA_P
) -> ServingAgreement:
    """Compare P(positive) of the same images from the training features and from the
    serving path.

    Args:
        p_train: P(positive) from the features the head was trained on (its cache entry).
        p_serve: P(positive) of the same images through the serving path.
        threshold: the decision threshold ``predict`` uses (P >= threshold: positive).
        limit: the largest |delta P| that passes.

    Raises:
        EvaluationError: empty or mismatched inputs, values outside [0, 1].
    """
    a = np.asarray(p_train, dtype=np.float64).reshape(-1)
    b = np.asarray(p_serve, dtype=np.float64).reshape(-1)
    if a.shape != b.shape or not len(a):
        raise EvaluationError(
            f"Serving agreement needs the same images both ways ({a.shape} vs {b.shape})."
        )
    if not (np.all((a >= 0) & (a <= 1)) and np.all((b >= 0) & (b <= 1))):
        raise EvaluationError("Serving agreement compares probabilities in [0, 1].")
    if not 0.0 <= threshold <= 1.0:
        raise EvaluationError(f"Decision threshold {threshold} is not in [0, 1].")
    delta = np.abs(b - a)
    return ServingAgreement(
        n=len(a),
        max_abs_delta_p=float(delta.max()),
        mean_abs_delta_p=float(delta.mean()),
        n_flips=int(np.count_nonzero((a >= threshold) != (b >= threshold))),
        threshold=float(threshold),
        limit=limit,
    )


def head_agreement(
    head: Any,
    train_features: np.ndarray,
    serve_features: np.ndarray,
    threshold: float,
    positive_index: int,
) -> ServingAgreement:
    """:func:`serving_agreement` of a fitted head on the same images' features both ways."""
    p_train = head.predict_proba(train_features)[:, positive_index]
    p_serve = head.predict_proba(serve_features)[:, positive_index]
    return serving_agreement(p_train, p_serve, threshold)


def sample_rows(rows: np.ndarray, k: int = SAMPLE_SIZE) -> np.ndarray:
    """Up to ``k`` of ``rows``, evenly spaced (deterministic: the same model, the same rows)."""
    rows = np.asarray(rows)
    if len(rows) <= k:
        return rows
    return rows[np.linspace(0, len(rows) - 1, k).round().astype(int)]


@dataclass(frozen=True)
class PrecisionRecord:
    """The precision contract of a saved model (``config.json`` field ``precision``).

    Attributes:
        training: precision of the features the head was fitted on (``fp32``/``bf16``).
        training_engine: the engine that computed them (``torch``/``onnx``).
        serving: precision of the serving path (ONNX Runtime: ``fp32``).
        serving_engine: the serving path's engine.
        agreement: the measured agreement, or None when it was not measured.
    """

    training: str
    training_engine: str
    serving: str = "fp32"
    serving_engine: str = "onnx"
    agreement: ServingAgreement | None = None

    @classmethod
    def of(cls, backbone: Backbone, agreement: ServingAgreement | None = None) -> PrecisionRecord:
        """The record for a head trained on ``backbone``'s features."""
        return cls(backbone.precision, backbone.engine, agreement=agreement)

    def with_agreement(self, agreement: ServingAgreement) -> PrecisionRecord:
        """The same record with a measured agreement."""
        return PrecisionRecord(
            self.training, self.training_engine, self.serving, self.serving_engine, agreement
        )

    def _ways(self) -> str:
        return (
            f"trained on {self.training} features ({self.training_engine}), served in "
            f"{self.serving} ({'ONNX Runtime' if self.serving_engine == 'onnx' else 'torch'})"
        )

    def warning(self, positive_label: str = "Abnormal") -> str | None:
        """The loud message for a save whose serving path does not reproduce training, or
        None when it does (or was not measured)."""
        a = self.agreement
        if a is None or a.ok:
            return None
        return (
            f"SERVING DIFFERS FROM TRAINING: {self._ways()}; on {a.n} training images "
            f"P({positive_label}) moved by up to {a.max_abs_delta_p:.4f} (limit {a.limit:g}) "
            f"and {a.n_flips} decision(s) flipped at the threshold {a.threshold:.3f}. "
            "Retrain with --precision fp32 so the served model gives the decisions it was "
            "trained and evaluated for."
        )

    def card_sentence(self, positive_label: str = "Abnormal") -> str:
        """One sentence for the model card."""
        a = self.agreement
        ways = self._ways()
        if a is None:
            return f"Head {ways}; the agreement between the two was not measured."
        flips = "no decision" if a.n_flips == 0 else f"**{a.n_flips} decision(s)**"
        sentence = (
            f"Head {ways}: on {a.n} training images the serving path moved P({positive_label}) "
            f"by at most {a.max_abs_delta_p:.4f} (mean {a.mean_abs_delta_p:.4f}) and flipped "
            f"{flips} at the threshold {a.threshold:.3f}"
        )
        if a.ok:
            return sentence + "."
        return (
            f"**Serving differs from training.** {sentence} (limit {a.limit:g}): the served "
            "model's decisions are not exactly those evaluated here."
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "training": self.training,
            "training_engine": self.training_engine,
            "serving": self.serving,
            "serving_engine": self.serving_engine,
            "agreement": None if self.agreement is None else self.agreement.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Any) -> PrecisionRecord:
        """Read it back from ``config.json``.

        Raises:
            ModelLoadError: naming the field that is missing, unknown or out of range.
        """
        if not isinstance(data, dict):
            raise ModelLoadError("config.json 'precision' must be an object.")
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ModelLoadError(f"config.json 'precision' has unknown keys {unknown}.")
        choices = {
            "training": PRECISIONS,
            "training_engine": ENGINES,
            "serving": PRECISIONS,
            "serving_engine": ENGINES,
        }
        values = {}
        for name, allowed in choices.items():
            default = cls.__dataclass_fields__[name].default
            if name not in data and default is dataclasses.MISSING:
                raise ModelLoadError(f"config.json 'precision.{name}' is missing.")
            value = data.get(name, default)
            if value not in allowed:
                raise ModelLoadError(
                    f"config.json 'precision.{name}' must be one of {list(allowed)}, got {value!r}."
                )
            values[name] = value
        raw = data.get("agreement")
        agreement = None if raw is None else ServingAgreement.from_dict(raw)
        return cls(agreement=agreement, **values)


def serving_twin(backbone: Backbone, cache_dir: str | None = None) -> Backbone:
    """The same backbone (same model object and weights) as the serving path runs it:
    ONNX Runtime fp32 on the CPU, its graph verified like any other.

    Raises:
        EngineError, OnnxGraphError: as :func:`cervix_hf.features.create_backbone` for
            ``engine="onnx"``.
    """
    import copy
    import dataclasses
    from pathlib import Path

    import torch

    from . import hardware
    from .cache import default_cache_dir
    from .onnx_export import OnnxTrunk, onnx_trunk_path
    from .plan import Candidate, plan_for
    from .probe import EngineChoice

    cpu = torch.device("cpu")
    size = tuple(int(s) for s in backbone.data_config["input_size"])
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = onnx_trunk_path(root, backbone.name, backbone.weights_sha256, size)
    model = backbone.model
    if backbone.device.type != "cpu":  # a copy: Module.to would move the caller's model
        model = copy.deepcopy(model).to(cpu)
    runner = OnnxTrunk.load(
        model,
        path,
        size,
        hardware.compute_threads(),
        backbone=backbone.name,
        weights_sha256=backbone.weights_sha256,
    )
    serving = Candidate("onnx", "fp32")
    plan = plan_for(cpu, serving, EngineChoice(serving, "only", note="the serving path"))
    return dataclasses.replace(
        backbone, device=cpu, engine="onnx", precision="fp32", plan=plan, runner=runner
    )
