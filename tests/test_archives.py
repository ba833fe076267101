"""Zip archives from strangers: bounded by what is actually inflated, not by the headers."""

import io
import struct
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from cervix_hf.archives import Budget, SafeZip, ZipLimits, looks_like_zip
from cervix_hf.errors import ArchiveError

ROOT = Path(__file__).resolve().parents[1]
METHODS = [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA]
SMALL = ZipLimits(max_members=10, max_member_bytes=1024 * 1024, max_total_bytes=3 * 1024 * 1024)


def make_zip(members, method=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return buf.getvalue()


def lie_about_size(data: bytes, declared: int) -> bytes:
    """Patch every member's uncompressed size, in the local and central headers."""
    out = bytearray(data)
    at = 0
    while (at := out.find(b"PK\x03\x04", at)) >= 0:
        struct.pack_into("<I", out, at + 22, declared)
        at += 4
    at = 0
    while (at := out.find(b"PK\x01\x02", at)) >= 0:
        struct.pack_into("<I", out, at + 24, declared)
        at += 4
    return bytes(out)


@pytest.mark.parametrize("method", METHODS)
def test_members_read_back_exactly(method):
    payload = bytes(range(256)) * 1000
    with SafeZip(make_zip([("a/b.bin", payload), ("c.txt", b"hello")], method), SMALL) as z:
        assert [i.filename for i in z.infos] == ["a/b.bin", "c.txt"]
        assert z.read(z.infos[0]) == payload
        assert z.read(z.infos[1]) == b"hello"


@pytest.mark.parametrize("method", METHODS[1:])
def test_a_liar_is_stopped_at_the_limit_whatever_it_declares(method):
    bomb = lie_about_size(make_zip([("bomb.png", b"\0" * (8 * 1024 * 1024))], method), 1024)
    assert len(bomb) < 64 * 1024
    with SafeZip(bomb, SMALL) as z:
        assert z.infos[0].file_size == 1024  # what the header claims
        with pytest.raises(ArchiveError, match="expands beyond 1 MiB"):
            z.read(z.infos[0])


@pytest.mark.parametrize("method", METHODS[1:])
def test_a_512_mib_liar_stays_within_bounded_memory(method):
    # a member that really inflates to 512 MiB while declaring 1 KB, read in a fresh process:
    # its peak RSS must stay far below what inflating it would take
    script = textwrap.dedent(
        f"""
        import io, resource, sys, zipfile
        sys.path.insert(0, {str(ROOT)!r})
        from cervix_hf.archives import SafeZip, ZipLimits
        from cervix_hf.errors import ArchiveError
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression={method}) as zf:
            with zf.open("bomb.bmp", "w", force_zip64=True) as fh:
                block = bytes(1 << 20)
                for _ in range(512):
                    fh.write(block)
        data = buf.getvalue()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with SafeZip(data, ZipLimits()) as z:
            try:
                z.read(z.infos[0])
            except ArchiveError as exc:
                print("refused:", exc)
        print("grew_kb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    assert "refused:" in out and "expands beyond 20 MiB" in out
    grew_mib = int(out.split("grew_kb")[1]) / 1024
    assert grew_mib < 100, out


def test_member_count_is_refused_before_the_directory_is_parsed():
    many = make_zip([(f".{i}", b"") for i in range(50)])
    with pytest.raises(ArchiveError, match="lists 50 entries, over the limit of 10"):
        SafeZip(many, SMALL)


def test_a_huge_directory_is_refused():
    long_names = make_zip([("x" * 60000 + str(i), b"") for i in range(5)])
    with pytest.raises(ArchiveError, match="directory is"):
        SafeZip(long_names, ZipLimits(max_directory_bytes=100_000))


def test_total_inflated_bytes_are_capped_across_members():
    members = [(f"m{i}", bytes([i]) * (900 * 1024)) for i in range(5)]
    with SafeZip(make_zip(members), SMALL) as z:
        for info in z.infos[:3]:
            z.read(info)
        with pytest.raises(ArchiveError, match="archive expands beyond 3 MiB"):
            z.read(z.infos[3])


def test_the_request_budget_is_shared():
    budget = Budget(left=1500 * 1024)
    with SafeZip(make_zip([("a", b"a" * (1000 * 1024)), ("b", b"b" * (1000 * 1024))]), SMALL) as z:
        z.read(z.infos[0], budget)
        with pytest.raises(ArchiveError, match="size limit"):
            z.read(z.infos[1], budget)


@pytest.mark.parametrize(
    "data, match",
    [
        (b"PK\x03\x04" + b"\0" * 100, "end record"),
        (b"", "end record"),
        (b"not a zip at all", "end record"),
    ],
)
def test_damaged_archives_give_one_clear_error(data, match):
    with pytest.raises(ArchiveError, match=match):
        SafeZip(data, SMALL)


def test_truncated_and_corrupt_members():
    good = make_zip([("a.png", b"x" * 5000)])
    corrupt = bytearray(good)
    data_at = corrupt.find(b"a.png") + len("a.png")
    corrupt[data_at + 10 : data_at + 20] = b"\xff" * 10  # inside the deflate stream
    with SafeZip(bytes(corrupt), SMALL) as z, pytest.raises(ArchiveError, match="damaged"):
        z.read(z.infos[0])


def test_encrypted_and_unknown_methods_are_refused_per_member():
    data = bytearray(make_zip([("secret.png", b"x" * 100), ("ok.png", b"y" * 100)]))
    central = data.find(b"PK\x01\x02")
    struct.pack_into("<H", data, central + 8, 0x1)  # flag: encrypted
    with SafeZip(bytes(data), SMALL) as z:
        with pytest.raises(ArchiveError, match="encrypted"):
            z.read(z.infos[0])
        assert z.read(z.infos[1]) == b"y" * 100


def test_looks_like_zip_reads_the_start_only():
    png_with_zip = b"\x89PNG\r\n\x1a\n" + b"\0" * 20 + make_zip([("a", b"a")])
    assert not looks_like_zip(png_with_zip[:8])
    assert looks_like_zip(make_zip([("a", b"a")])[:8])
    assert looks_like_zip(make_zip([])[:8])
