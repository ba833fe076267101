"""Tests of the SIPaKMeD boundary-file reader and writer (cervix_hf.boundaries)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cervix_hf.boundaries import parse_boundary, read_boundary, write_boundary
from cervix_hf.errors import DatasetLayoutError


def test_round_trip(tmp_path: Path) -> None:
    pts = np.array([[1.234, 5.0], [10.0, 5.5], [7.777, 12.0]])
    write_boundary(tmp_path / "a.dat", pts)
    assert (tmp_path / "a.dat").read_text() == "1.23,5.00\n10.00,5.50\n7.78,12.00\n"
    np.testing.assert_allclose(read_boundary(tmp_path / "a.dat"), np.round(pts, 2))


def test_separators_blank_lines_and_exponents() -> None:
    text = "1,2\n\n  3 4  \r\n5.5e1;\t6\n7 , 8\n"
    np.testing.assert_array_equal(parse_boundary(text), [[1, 2], [3, 4], [55, 6], [7, 8]])


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("1,2\n3\n4,5\n", "line 2: expected two numbers"),
        ("1,2,3\n4,5\n6,7\n", "line 1: expected two numbers"),
        ("1,2\na,b\n4,5\n", "line 2: .* is not two numbers"),
        ("1,2\nnan,3\n4,5\n", "line 2: coordinates must be finite"),
        ("1,2\n1e9,3\n4,5\n", "line 2: coordinate beyond"),
        ("1,2\n3,4\n", "at least 3 points, found 2"),
        ("", "found 0"),
    ],
)
def test_malformed_text_names_the_line(text: str, match: str) -> None:
    with pytest.raises(DatasetLayoutError, match=match):
        parse_boundary(text, "x.dat")


def test_hostile_files(tmp_path: Path) -> None:
    big = tmp_path / "big.dat"
    big.write_bytes(b"1,2\n" * 1000)
    with pytest.raises(DatasetLayoutError, match=r"big\.dat: 4,000 bytes, over the 100-byte"):
        read_boundary(big, max_bytes=100)
    binary = tmp_path / "bin.dat"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(DatasetLayoutError, match=r"bin\.dat: not a text boundary file"):
        read_boundary(binary)
    with pytest.raises(DatasetLayoutError, match=r"missing\.dat: cannot read"):
        read_boundary(tmp_path / "missing.dat")
    with pytest.raises(DatasetLayoutError, match="cannot read"):
        read_boundary(tmp_path)  # a folder
