"""The schema ``config.json`` is checked against: field types from the dataclass annotations,
and the checks of the fields whose values need more than a type (file names, the timm data
config). Every failure is a :class:`~cervix_hf.errors.ModelLoadError` naming the field.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from typing import Any

from .errors import CervixError, ConfigMismatchError, ModelLoadError

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
SHA256 = re.compile(r"^[0-9a-f]{64}$")
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
#: names a model directory uses for other things than the files a config may name
RESERVED_NAMES = frozenset({"config.json", "metrics.json", "README.md", ".gitattributes"})


def bad(name: str, what: str, value: Any) -> ConfigMismatchError:
    shown = repr(value)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return ConfigMismatchError(f"config.json: {name} must be {what}, got {shown}.")


def finite(value: Any) -> bool:
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
        or value in RESERVED_NAMES
    ):
        raise bad(name, f"a plain file name ending in {suffix} inside the model directory", value)


def check_data_config(name: str, data_config: Any) -> None:
    """The timm data config: keys, input size, interpolation, normalisation and crop.

    Raises:
        ConfigMismatchError: naming the field.
    """
    if not isinstance(data_config, dict):
        raise bad(name, "an object", data_config)
    unknown = sorted(set(data_config) - set(DATA_CONFIG_KEYS))
    if unknown:
        raise bad(name, f"an object with keys among {list(DATA_CONFIG_KEYS)}", unknown)
    size = data_config.get("input_size")
    if (
        not isinstance(size, (list, tuple))
        or len(size) != 3
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in size)
        or size[0] != 3
        or not all(16 <= v <= MAX_INPUT_SIDE for v in size[1:])
    ):
        raise bad(
            f"{name}.input_size", f"[3, height, width] with sides from 16 to {MAX_INPUT_SIDE}", size
        )
    for key, low in (("mean", 0.0), ("std", 1e-6)):
        values = data_config.get(key)
        if (
            not isinstance(values, (list, tuple))
            or len(values) != 3
            or not all(finite(v) and low <= v <= 1.0 for v in values)
        ):
            raise bad(f"{name}.{key}", f"three numbers in [{low:g}, 1]", values)
    interpolation = data_config.get("interpolation", "bilinear")
    if interpolation not in INTERPOLATIONS:
        raise bad(f"{name}.interpolation", f"one of {list(INTERPOLATIONS)}", interpolation)
    crop_mode = data_config.get("crop_mode", "center")
    if crop_mode not in CROP_MODES:
        raise bad(f"{name}.crop_mode", f"one of {list(CROP_MODES)}", crop_mode)
    crop_pct = data_config.get("crop_pct", 0.875)
    if not finite(crop_pct) or not 0.0 < crop_pct <= 1.0:
        raise bad(f"{name}.crop_pct", "a number in (0, 1]", crop_pct)


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
        return finite(value)
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


def build(cls: Any, data: dict[str, Any], prefix: str) -> Any:
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
            reader = getattr(nested, "from_dict", None)
            try:
                value = reader(value) if reader else build(nested, value, f"{prefix}{name}.")
            except ModelLoadError:
                raise
            except CervixError as exc:  # a record's own check (e.g. the locator's)
                raise ModelLoadError(f"config.json: {prefix}{name}: {exc}") from None
        elif typing.get_origin(tp) is tuple or tuple in map(typing.get_origin, typing.get_args(tp)):
            value = tuple(value) if value is not None else None
        values[name] = value
    return cls(**values)
