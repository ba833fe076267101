"""The files of a batch request, one at a time: images, and the images inside zip archives.

A batch may hold images and zip archives (one level of archives inside archives is opened).
:func:`iter_entries` yields one :class:`UploadEntry` at a time, so a request never holds more
than one file's bytes; every failure of one file or member (whatever raised it) becomes that
entry's error, named by the file or member, and the others go on. A file counts as an archive
only if it *starts* like one (a PNG with a zip appended is an image, as ``/predict`` sees it).
"""

from __future__ import annotations

import logging
import os
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..archives import Budget, SafeZip, ZipLimits, looks_like_zip, open_head
from ..errors import ArchiveError

logger = logging.getLogger(__name__)

MAX_NAME_CHARS = 160


@dataclass(frozen=True)
class BatchLimits:
    """What one batch request may hold.

    Attributes:
        max_files: image entries (files plus archive members) analysed per request.
        max_total_bytes: bytes read over the whole request (files plus inflated members).
        archive: limits of each archive.
    """

    max_files: int = 200
    max_total_bytes: int = 1024 * 1024 * 1024
    archive: ZipLimits = field(default_factory=ZipLimits)


@dataclass(frozen=True)
class UploadEntry:
    """One image of a batch: its display name and bytes (or path), or why it was skipped."""

    name: str
    data: bytes | str | None = None
    error: str | None = None


def display_name(name: str) -> str:
    """A file or member name safe to show and to write in a table: printable, bounded."""
    cleaned = "".join(
        c if c.isprintable() and unicodedata.category(c)[0] != "C" else "?" for c in name
    )
    if len(cleaned) > MAX_NAME_CHARS:
        cleaned = cleaned[: MAX_NAME_CHARS - 3] + "..."
    return cleaned or "?"


def _skipped(member: str) -> bool:
    """Folders and the files archivers add beside the images (``__MACOSX``, dot files)."""
    parts = PurePosixPath(member).parts
    hidden = any(p.startswith(".") and p not in (".", "..") for p in parts)
    return member.endswith("/") or "__MACOSX" in parts or hidden


def _members(
    archive: SafeZip, prefix: str, budget: Budget, limits: BatchLimits, depth: int
) -> Iterator[UploadEntry]:
    found = False
    for info in archive.infos:
        if _skipped(info.filename):
            continue
        found = True
        name = f"{prefix}/{display_name(info.filename)}"
        try:
            data = archive.read(info, budget)
        except ArchiveError as exc:
            yield UploadEntry(name, error=str(exc))
            continue
        except Exception:  # a damaged member must not end the batch; the server log has it
            logger.warning("Reading archive member %r failed", name, exc_info=True)
            yield UploadEntry(name, error="could not be read from the archive")
            continue
        if looks_like_zip(data[:8]):
            if depth >= 1:
                yield UploadEntry(name, error="archive inside an archive inside an archive")
                continue
            yield from _archive(data, name, budget, limits, depth + 1)
            continue
        yield UploadEntry(name, data=data)
    if not found:
        yield UploadEntry(prefix, error="the archive holds no files")


def _archive(
    source: str | bytes, name: str, budget: Budget, limits: BatchLimits, depth: int
) -> Iterator[UploadEntry]:
    try:
        archive = SafeZip(source, limits.archive)
    except ArchiveError as exc:
        yield UploadEntry(name, error=str(exc))
        return
    with archive:
        yield from _members(archive, name, budget, limits, depth)


def iter_entries(
    paths: list[str], limits: BatchLimits, budget: Budget | None = None
) -> Iterator[UploadEntry]:
    """The images of a request, one at a time (archives opened), with per-entry errors.

    The caller stops after ``limits.max_files`` entries; the budget counts every byte read.
    """
    budget = budget or Budget(limits.max_total_bytes)
    for path in paths:
        name = display_name(Path(path).name)
        try:
            size = os.path.getsize(path)
            is_zip = looks_like_zip(open_head(path))
        except OSError:
            yield UploadEntry(name, error="the upload could not be read")
            continue
        try:
            budget.take(size, "the batch")
        except ArchiveError as exc:
            yield UploadEntry(name, error=str(exc))
            continue
        if is_zip:
            yield from _archive(path, name, budget, limits, 0)
        else:
            yield UploadEntry(name, data=path)
