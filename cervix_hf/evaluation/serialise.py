"""The report's JSON form: dataclasses to dicts and back, typed all the way down."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar

from ..errors import EvaluationError
from .report import REPORT_FORMAT, REPORT_KEY, EvaluationReport

T = TypeVar("T")


def _build(tp: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return _build(inner, value)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value)
    if origin is list:
        (inner,) = typing.get_args(tp)
        return [_build(inner, v) for v in value]
    if origin is dict:
        _, inner = typing.get_args(tp)
        return {k: _build(inner, v) for k, v in value.items()}
    if tp is float:
        return float(value)
    return value


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Rebuild a report dataclass (nested ones included) from :func:`to_dict` output.

    Raises:
        EvaluationError: keys this version does not know (a report from a newer cervix_hf).
    """
    if not isinstance(data, dict):
        raise EvaluationError(f"{cls.__name__}: expected a JSON object, got {type(data)}.")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise EvaluationError(
            f"{cls.__name__} has keys this cervix_hf does not know: {unknown}; upgrade cervix_hf."
        )
    return cls(**{k: _build(hints[k], v) for k, v in data.items()})


def report_from_metrics(metrics: dict[str, Any]) -> EvaluationReport | None:
    """The evaluation report stored in a model's metrics, or None without one.

    A report written by an older cervix_hf (another layout) also gives None: re-run
    ``scripts/evaluate.py`` to replace it.
    """
    data = metrics.get(REPORT_KEY)
    if not data or data.get("format") != REPORT_FORMAT:
        return None
    return from_dict(EvaluationReport, data)


def has_legacy_report(metrics: dict[str, Any]) -> bool:
    """Whether the metrics hold an evaluation in a layout this version does not read."""
    data = metrics.get(REPORT_KEY)
    return bool(data) and data.get("format") != REPORT_FORMAT
