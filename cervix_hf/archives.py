"""Zip archives from strangers, read with bounded memory.

Python's ``zipfile`` trusts an archive more than a public upload deserves: it parses the whole
central directory when opened, and it inflates bzip2 and LZMA members in one call with no
output limit (a 1.6 KB archive can expand to gigabytes in memory). :class:`SafeZip` checks the
end-of-directory record first (member count and directory size, before anything is parsed),
then inflates each member itself in 64 KiB steps, counting the bytes it actually produces
and stopping at the limit, whatever the headers declare. Stored, deflate, bzip2 and LZMA
members are read; encrypted ones and other methods are refused one by one.
"""

from __future__ import annotations

import bz2
import io
import itertools
import lzma
import os
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, BinaryIO

from .errors import ArchiveError

CHUNK = 64 * 1024
_EOCD = b"PK\x05\x06"
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_EOCD = b"PK\x06\x06"
_LOCAL = b"PK\x03\x04"
_METHODS = {
    zipfile.ZIP_STORED: "stored",
    zipfile.ZIP_DEFLATED: "deflate",
    zipfile.ZIP_BZIP2: "bzip2",
    zipfile.ZIP_LZMA: "lzma",
}


def _mib(n: int) -> str:
    return f"{n / 2**20:.0f} MiB"


def looks_like_zip(head: bytes) -> bool:
    """Whether data starts like a zip archive (a local header, or an empty archive).

    Only the start counts: a PNG with a zip appended is an image, as the single-image path
    reads it.
    """
    return head.startswith(_LOCAL) or head.startswith(_EOCD)


@dataclass(frozen=True)
class ZipLimits:
    """What an archive may hold.

    Attributes:
        max_members: entries in the central directory, folders and skipped files included.
        max_directory_bytes: size of the central directory.
        max_member_bytes: bytes one member may inflate to.
        max_total_bytes: bytes all members together may inflate to.
    """

    max_members: int = 1000
    max_directory_bytes: int = 1024 * 1024
    max_member_bytes: int = 20 * 1024 * 1024
    max_total_bytes: int = 256 * 1024 * 1024


@dataclass
class Budget:
    """Bytes left to read in one request, shared by every file and member it holds."""

    left: int

    def take(self, n: int, what: str) -> None:
        """Spend ``n`` bytes.

        Raises:
            ArchiveError: the budget is spent.
        """
        self.left -= n
        if self.left < 0:
            raise ArchiveError(f"{what}: the upload expands beyond its size limit; send less.")


def _directory(fh: BinaryIO) -> tuple[int, int]:
    """(members, central directory bytes) from the end-of-directory record(s).

    Raises:
        ArchiveError: no end record (not a zip, or truncated).
    """
    fh.seek(0, os.SEEK_END)
    size = fh.tell()
    tail_len = min(size, 22 + 65535)
    fh.seek(size - tail_len)
    tail = fh.read(tail_len)
    at = tail.rfind(_EOCD)
    if at < 0 or len(tail) - at < 22:
        raise ArchiveError("not a complete zip archive (its end record is missing)")
    members, cd_size, cd_offset = struct.unpack("<10xHLL2x", tail[at : at + 22])
    if members == 0xFFFF or cd_size == 0xFFFFFFFF or cd_offset == 0xFFFFFFFF:
        locator_at = size - tail_len + at - 20
        if locator_at < 0:
            raise ArchiveError("damaged zip64 archive (no locator)")
        fh.seek(locator_at)
        locator = fh.read(20)
        if not locator.startswith(_ZIP64_LOCATOR):
            raise ArchiveError("damaged zip64 archive (no locator)")
        (record_at,) = struct.unpack("<8xQ4x", locator)
        fh.seek(record_at)
        record = fh.read(56)
        if len(record) < 56 or not record.startswith(_ZIP64_EOCD):
            raise ArchiveError("damaged zip64 archive (no end record)")
        members, cd_size = struct.unpack("<32xQQ8x", record)
    return members, cd_size


class SafeZip:
    """A zip archive opened only after its directory passed :class:`ZipLimits`.

    Args:
        source: a path or the archive's bytes.
        limits: what it may hold.

    Raises:
        ArchiveError: too many members, an oversized directory, or not a readable zip.
    """

    def __init__(self, source: str | os.PathLike | bytes, limits: ZipLimits) -> None:
        self.limits = limits
        self._fh: BinaryIO = (
            io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")  # noqa: SIM115
        )
        try:
            members, cd_size = _directory(self._fh)
            if members > limits.max_members:
                raise ArchiveError(
                    f"the archive lists {members:,} entries, over the limit of "
                    f"{limits.max_members:,}"
                )
            if cd_size > limits.max_directory_bytes:
                raise ArchiveError(
                    f"the archive's directory is {_mib(cd_size)}, over the limit of "
                    f"{_mib(limits.max_directory_bytes)}"
                )
            self._fh.seek(0)
            self._zip = zipfile.ZipFile(self._fh)
            infos = self._zip.infolist()
        except ArchiveError:
            self._fh.close()
            raise
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
            self._fh.close()
            raise ArchiveError(f"not a readable zip archive ({type(exc).__name__})") from None
        except (UnicodeDecodeError, struct.error, IndexError, KeyError, NotImplementedError):
            self._fh.close()
            raise ArchiveError("not a readable zip archive (damaged directory)") from None
        if len(infos) > limits.max_members:  # a directory that lied about its count
            self.close()
            raise ArchiveError(f"the archive holds over {limits.max_members:,} entries")
        self.infos = infos
        self._total = 0

    def __enter__(self) -> SafeZip:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the archive (idempotent)."""
        self._fh.close()

    def _raw_chunks(self, info: zipfile.ZipInfo) -> Iterator[bytes]:
        """The member's compressed bytes, ``CHUNK`` at a time, from its local header on."""
        fh = self._fh
        fh.seek(info.header_offset)
        header = fh.read(30)
        if len(header) < 30 or not header.startswith(_LOCAL):
            raise ArchiveError("damaged member (bad local header)")
        name_len, extra_len = struct.unpack("<26xHH", header)
        fh.seek(name_len + extra_len, os.SEEK_CUR)
        left = info.compress_size
        while left > 0:
            chunk = fh.read(min(CHUNK, left))
            if not chunk:
                raise ArchiveError("damaged member (truncated data)")
            left -= len(chunk)
            yield chunk

    def _inflate(self, info: zipfile.ZipInfo) -> Iterator[bytes]:
        """Decompressed pieces of a member, each at most ``CHUNK`` bytes."""
        method = info.compress_type
        raw = self._raw_chunks(info)
        if method == zipfile.ZIP_STORED:
            yield from raw
            return
        if method == zipfile.ZIP_DEFLATED:
            inflater = zlib.decompressobj(-15)
            for chunk in raw:
                data = chunk
                while data:
                    yield inflater.decompress(data, CHUNK)
                    data = inflater.unconsumed_tail
            yield inflater.flush()
            return
        if method == zipfile.ZIP_BZIP2:
            decoder: bz2.BZ2Decompressor | lzma.LZMADecompressor = bz2.BZ2Decompressor()
        else:  # LZMA: 2-byte version, 2-byte properties size (5), properties, raw LZMA1
            head = b""
            for chunk in raw:
                head += chunk
                if len(head) >= 9:
                    break
            if len(head) < 9 or struct.unpack("<2xH", head[:4])[0] != 5:
                raise ArchiveError("damaged LZMA member (bad properties)")
            lc_lp_pb, dict_size = head[4], struct.unpack("<I", head[5:9])[0]
            if lc_lp_pb >= 9 * 5 * 5:
                raise ArchiveError("damaged LZMA member (bad properties)")
            filters = [
                {
                    "id": lzma.FILTER_LZMA1,
                    "dict_size": dict_size,
                    "lc": lc_lp_pb % 9,
                    "lp": (lc_lp_pb // 9) % 5,
                    "pb": lc_lp_pb // 45,
                }
            ]
            decoder = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=filters)
            raw = itertools.chain([head[9:]], raw)
        for chunk in raw:
            data = chunk
            while not decoder.eof:
                piece = decoder.decompress(data, CHUNK)
                data = b""
                yield piece
                if decoder.needs_input:
                    break

    def read(self, info: zipfile.ZipInfo, budget: Budget | None = None) -> bytes:
        """A member's bytes, counted as they are inflated.

        Raises:
            ArchiveError: encrypted, unsupported method, over a limit, or damaged (CRC).
        """
        if info.flag_bits & 0x1:
            raise ArchiveError("encrypted: not read")
        if info.compress_type not in _METHODS:
            raise ArchiveError(f"compression method {info.compress_type} is not supported")
        cap = self.limits.max_member_bytes
        out = io.BytesIO()
        crc = 0
        try:
            for piece in self._inflate(info):
                if not piece:
                    continue
                if out.tell() + len(piece) > cap:
                    raise ArchiveError(f"expands beyond {_mib(cap)}, over the per-file limit")
                self._total += len(piece)
                if self._total > self.limits.max_total_bytes:
                    raise ArchiveError(
                        f"the archive expands beyond {_mib(self.limits.max_total_bytes)}"
                    )
                if budget is not None:
                    budget.take(len(piece), "the batch")
                crc = zlib.crc32(piece, crc)
                out.write(piece)
        except (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError):
            raise ArchiveError("damaged member (it cannot be decompressed)") from None
        if crc != info.CRC:
            raise ArchiveError("damaged member (checksum mismatch)")
        return out.getvalue()


def open_head(path: str | os.PathLike, n: int = 8) -> bytes:
    """The first ``n`` bytes of a file (to tell archives from images)."""
    with open(path, "rb") as fh:
        return fh.read(n)


def read_bounded(fh: IO[bytes], limit: int, what: str) -> bytes:
    """Read at most ``limit`` bytes; more is refused unread.

    Raises:
        ArchiveError: the stream holds more than ``limit`` bytes.
    """
    data = fh.read(limit + 1)
    if len(data) > limit:
        raise ArchiveError(f"{what}: over the {_mib(limit)} limit")
    return data
