"""Cell types of SIPaKMeD and how they are grouped into Normal vs Abnormal.

The grouping is explicit and recorded in every model's config:

* ``clinical`` (default): Metaplastic cells are benign (as the SIPaKMeD authors class them).
* ``seed``: Metaplastic counted as Abnormal, as the original Flask project did, so its protocol
  can be reproduced.
* ``given``: the data was labelled Normal/Abnormal already; no cell types involved.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .errors import LabelError

CELL_TYPES: tuple[str, ...] = (
    "Superficial-Intermediate",
    "Parabasal",
    "Metaplastic",
    "Koilocytotic",
    "Dyskeratotic",
)
LABELS: tuple[str, ...] = ("Normal", "Abnormal")
POSITIVE_LABEL = "Abnormal"

GROUPINGS: dict[str, dict[str, str]] = {
    "clinical": {
        "Superficial-Intermediate": "Normal",
        "Parabasal": "Normal",
        "Metaplastic": "Normal",
        "Koilocytotic": "Abnormal",
        "Dyskeratotic": "Abnormal",
    },
    "seed": {
        "Superficial-Intermediate": "Normal",
        "Parabasal": "Normal",
        "Metaplastic": "Abnormal",
        "Koilocytotic": "Abnormal",
        "Dyskeratotic": "Abnormal",
    },
}
GROUPING_CHOICES: tuple[str, ...] = (*GROUPINGS, "given")


def _key(name: str) -> str:
    """Normalise a folder or class name: case, ``im_`` prefix, separators."""
    name = name.strip().lower()
    name = re.sub(r"^im[_-]", "", name)
    return re.sub(r"[^a-z]", "", name)


_CELL_TYPE_KEYS = {_key(t): t for t in CELL_TYPES}
_LABEL_KEYS = {_key(t): t for t in LABELS}


def match_cell_type(name: str) -> str | None:
    """Return the canonical cell type for a folder/class name, or None if it is not one.

    Matching ignores case, an ``im_`` prefix and separators, so ``im_Superficial-Intermediate``,
    ``superficial_intermediate`` and ``SUPERFICIAL INTERMEDIATE`` all match.
    """
    return _CELL_TYPE_KEYS.get(_key(name))


def match_label(name: str) -> str | None:
    """Return ``"Normal"``/``"Abnormal"`` for a class name, ignoring case, or None."""
    return _LABEL_KEYS.get(_key(name))


def classify_names(names: Iterable[str]) -> str | None:
    """Say what a set of class names is: ``"cell_type"``, ``"label"`` or None (unknown)."""
    names = list(names)
    if names and all(match_cell_type(n) for n in names):
        return "cell_type"
    if names and all(match_label(n) for n in names):
        return "label"
    return None


def binary_label(cell_type: str, grouping: str) -> str:
    """Map a canonical cell type to Normal/Abnormal under a grouping.

    Raises:
        LabelError: if the grouping or the cell type is unknown.
    """
    if grouping not in GROUPINGS:
        raise LabelError(
            f"Unknown grouping {grouping!r}: choose one of {sorted(GROUPINGS)} "
            "(use 'given' only for data labelled Normal/Abnormal already)."
        )
    try:
        return GROUPINGS[grouping][cell_type]
    except KeyError:
        raise LabelError(
            f"Unknown cell type {cell_type!r}: expected one of {list(CELL_TYPES)}."
        ) from None
