"""Reading TOMS bulk-download zips without trusting them.

Entries are never extracted by name: each is streamed into a scratch file inside the report store
while its real size is counted, so a zip bomb is stopped by what it actually expands to, not by
what its headers claim. Entries with absolute paths, ``..``, symlinks or encryption are refused
without being read. Zips inside zips are opened from their scratch copy, sharing one budget for
the total expanded size, down to a fixed depth.
"""

from __future__ import annotations

import hashlib
import re
import stat
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO

from services.intake.records import Reason

MiB = 1024 * 1024
CHUNK = 1 * MiB
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class ZipLimits:
    """How much a zip may expand. Merged per-grade PDFs are large, so one entry may be big."""

    max_entry_bytes: int = 1024 * MiB
    max_total_bytes: int = 50 * 1024 * MiB
    max_ratio: float = 100.0  # PDFs barely compress; 100x is a bomb, not a report
    ratio_floor_bytes: int = 1 * MiB  # tiny entries may compress well without harm
    max_depth: int = 3
    max_entries: int = 400_000  # zipfile holds the whole directory in memory (~0.5 KB an entry)
    memory_bytes: int = 16 * MiB  # an entry larger than this spools to the store's scratch folder


@dataclass
class ZipEntry:
    """One readable file from a zip: its display path, content (scratch file) and digest."""

    source: str
    stream: IO[bytes]
    size: int
    sha256: str


@dataclass(frozen=True)
class Refusal:
    """A zip or zip entry that was not read, with the reason code and a sentence of detail."""

    source: str
    reason: Reason
    detail: str


class _Budget:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0


class _Stop(Exception):
    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


Spool = Callable[[int], IO[bytes]]


def read_zip(
    archive: IO[bytes] | str, source: str, spool: Spool, limits: ZipLimits | None = None
) -> Iterator[ZipEntry | Refusal]:
    """Yield each file of ``archive`` (and of zips inside it) or the reason it was refused.

    A yielded entry's stream is valid until the consumer asks for the next item.
    """
    limits = limits or ZipLimits()
    yield from _read(archive, source, spool, limits, _Budget(limits.max_total_bytes), depth=1)


def _read(
    archive: IO[bytes] | str,
    source: str,
    spool: Spool,
    limits: ZipLimits,
    budget: _Budget,
    depth: int,
) -> Iterator[ZipEntry | Refusal]:
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as error:
        yield Refusal(source, Reason.CORRUPT_ZIP, f"cannot read the zip directory: {error}")
        return
    with zf:
        members = zf.infolist()
        if len(members) > limits.max_entries:
            yield Refusal(
                source,
                Reason.TOTAL_TOO_LARGE,
                f"{len(members)} entries; the limit is {limits.max_entries}",
            )
            return
        for index, info in enumerate(members):
            name = f"{source}!{info.filename}"
            if info.is_dir():
                continue
            refusal = _refuse_by_header(info, name, limits)
            if refusal is not None:
                yield refusal
                continue
            try:
                stream, size, digest = _stream_entry(zf, info, spool, limits, budget)
            except _Stop as stop:
                yield Refusal(name, stop.reason, stop.detail)
                if stop.reason is Reason.TOTAL_TOO_LARGE:
                    left = len(members) - index - 1
                    if left:
                        yield Refusal(
                            source,
                            Reason.TOTAL_TOO_LARGE,
                            f"stopped reading; {left} further entries were not imported",
                        )
                    budget.used = budget.limit + 1  # outer levels stop too
                    return
                continue
            with stream:
                if info.filename.lower().endswith(".zip"):
                    if depth >= limits.max_depth:
                        yield Refusal(
                            name, Reason.NESTED_TOO_DEEP, f"more than {limits.max_depth} levels"
                        )
                    else:
                        yield from _read(stream, name, spool, limits, budget, depth + 1)
                        if budget.used > budget.limit:
                            return
                else:
                    yield ZipEntry(name, stream, size, digest)


def _refuse_by_header(info: zipfile.ZipInfo, name: str, limits: ZipLimits) -> Refusal | None:
    path = info.filename
    parts = re.split(r"[\\/]", path)
    if path.startswith(("/", "\\")) or _DRIVE.match(path):
        return Refusal(name, Reason.ABSOLUTE_PATH, f"entry path {path!r} is absolute")
    if ".." in parts:
        return Refusal(name, Reason.PARENT_PATH, f"entry path {path!r} contains '..'")
    if stat.S_ISLNK(info.external_attr >> 16):
        return Refusal(name, Reason.SYMLINK, "zip entry is a symbolic link")
    if info.flag_bits & 0x1:
        return Refusal(name, Reason.ENCRYPTED_ZIP, "zip entry is password-protected")
    if info.file_size > limits.max_entry_bytes:
        return Refusal(
            name,
            Reason.ENTRY_TOO_LARGE,
            f"declares {info.file_size} bytes; the limit is {limits.max_entry_bytes}",
        )
    return None


def _stream_entry(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, spool: Spool, limits: ZipLimits, budget: _Budget
) -> tuple[IO[bytes], int, str]:
    """Copy one entry into a scratch file, counting real bytes against every limit as they come."""
    out = spool(limits.memory_bytes)
    digest = hashlib.sha256()
    size = 0
    compressed = max(info.compress_size, 1)
    try:
        with zf.open(info) as entry:
            while chunk := entry.read(CHUNK):
                size += len(chunk)
                budget.used += len(chunk)
                if size > limits.max_entry_bytes:
                    raise _Stop(
                        Reason.ENTRY_TOO_LARGE,
                        f"expands past {limits.max_entry_bytes} bytes",
                    )
                if size > limits.ratio_floor_bytes and size > limits.max_ratio * compressed:
                    raise _Stop(
                        Reason.ZIP_BOMB,
                        f"{compressed} compressed bytes expand past {size} "
                        f"(over {limits.max_ratio:g} times)",
                    )
                if budget.used > budget.limit:
                    raise _Stop(
                        Reason.TOTAL_TOO_LARGE,
                        f"the archive expands past {budget.limit} bytes in total",
                    )
                digest.update(chunk)
                out.write(chunk)
    except _Stop:
        out.close()
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as error:
        out.close()
        raise _Stop(Reason.CORRUPT_ZIP, f"entry cannot be read: {error}") from None
    out.seek(0)
    return out, size, digest.hexdigest()
