"""SIPaKMeD boundary files (``.dat``): one cell outline, one ``x,y`` pixel coordinate per line.

SIPaKMeD ships, beside each cluster image ``NNN.bmp``, the outline of every cell it annotated:
``NNN_cytMM.dat`` (cytoplasm) and ``NNN_nucMM.dat`` (nucleus), and beside each crop
``CROPPED/NNN_MM.bmp`` the same outlines in crop coordinates (``NNN_MM_cyt.dat``,
``NNN_MM_nuc.dat``). :func:`read_boundary` reads them as hostile input: at most
``max_bytes`` are read, every line must hold two finite numbers (separated by a comma,
whitespace or both), and a malformed file raises :class:`~cervix_hf.errors.DatasetLayoutError`
naming the file and the line.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np

from .errors import DatasetLayoutError

#: A boundary file larger than this is refused unread (100k points of ``1234.56,1234.56``).
MAX_BOUNDARY_BYTES = 2 * 1024 * 1024
#: Fewest points of a usable outline (a polygon needs three).
MIN_POINTS = 3
#: Coordinates beyond this magnitude are refused (no microscope field is a million pixels wide).
MAX_COORDINATE = 1_000_000.0

_SEPARATOR = re.compile(r"[,;\s]+")


def write_boundary(path: str | Path, points: np.ndarray) -> None:
    """Write an outline as ``x,y`` lines, two decimals (what :func:`read_boundary` reads)."""
    Path(path).write_text("".join(f"{x:.2f},{y:.2f}\n" for x, y in points), encoding="ascii")


def parse_boundary(text: str, name: str = "boundary") -> np.ndarray:
    """Parse the text of a boundary file into an ``(n, 2)`` float array of ``x, y``.

    Raises:
        DatasetLayoutError: a line does not hold exactly two finite numbers, a coordinate is
            absurdly large, or there are fewer than ``MIN_POINTS`` points.
    """
    points: list[tuple[float, float]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        parts = [p for p in _SEPARATOR.split(line) if p]
        if len(parts) != 2:
            raise DatasetLayoutError(
                f"{name}, line {number}: expected two numbers 'x,y', got {line[:60]!r}."
            )
        try:
            x, y = float(parts[0]), float(parts[1])
        except ValueError:
            raise DatasetLayoutError(
                f"{name}, line {number}: {line[:60]!r} is not two numbers 'x,y'."
            ) from None
        if not (math.isfinite(x) and math.isfinite(y)):
            raise DatasetLayoutError(f"{name}, line {number}: coordinates must be finite.")
        if max(abs(x), abs(y)) > MAX_COORDINATE:
            raise DatasetLayoutError(
                f"{name}, line {number}: coordinate beyond {MAX_COORDINATE:,.0f} pixels."
            )
        points.append((x, y))
    if len(points) < MIN_POINTS:
        raise DatasetLayoutError(
            f"{name}: an outline needs at least {MIN_POINTS} points, found {len(points)}."
        )
    return np.asarray(points, dtype=np.float64)


def read_boundary(path: str | Path, *, max_bytes: int = MAX_BOUNDARY_BYTES) -> np.ndarray:
    """Read one ``.dat`` boundary file into an ``(n, 2)`` float array of ``x, y`` pixels.

    Raises:
        DatasetLayoutError: the file cannot be read, is larger than ``max_bytes``, is not
            text, or is malformed (see :func:`parse_boundary`).
    """
    p = Path(path)
    try:
        with p.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            data = f.read(max_bytes + 1)
    except OSError as exc:
        raise DatasetLayoutError(
            f"{p.name}: cannot read the boundary file ({exc.strerror})."
        ) from None
    if len(data) > max_bytes:
        raise DatasetLayoutError(
            f"{p.name}: {max(size, len(data)):,} bytes, over the {max_bytes:,}-byte limit of a "
            "boundary file."
        )
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise DatasetLayoutError(f"{p.name}: not a text boundary file (non-ASCII bytes).") from None
    return parse_boundary(text, p.name)
