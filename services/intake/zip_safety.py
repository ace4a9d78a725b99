"""Reading TOMS bulk-download zips without trusting them.

Entries are never extracted by name: each is streamed into a scratch file inside the report store
while its real size is counted, so a zip bomb is stopped by what it actually expands to, not by
what its headers claim. The expansion ratio, too, is taken from bytes actually read: the
compressed bytes the reader pulled from the archive file (``_Counted``) against the bytes they
inflated to, never the header's ``compress_size``, which a crafted zip sets to whatever passes. Entries with absolute paths, ``..``, symlinks or encryption are refused
without being read. Zips inside zips are opened from their scratch copy, sharing one budget for
the total expanded size, down to a fixed depth.
"""

from __future__ import annotations

import hashlib
import io
import re
import stat
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import IO, Any

from services.intake.records import Reason

MiB = 1024 * 1024
CHUNK = 64 * 1024  # what is inflated per step: the ratio is checked at least this often
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
    with ExitStack() as owned:
        handle = owned.enter_context(open(archive, "rb")) if isinstance(archive, str) else archive
        yield from _read_open(handle, source, spool, limits, budget, depth)


def _read_open(
    handle: IO[bytes],
    source: str,
    spool: Spool,
    limits: ZipLimits,
    budget: _Budget,
    depth: int,
) -> Iterator[ZipEntry | Refusal]:
    try:
        directory = _end_record(handle)
    except (_Corrupt, OSError) as error:
        yield Refusal(source, Reason.CORRUPT_ZIP, f"cannot read the zip directory: {error}")
        return
    if directory.entries > limits.max_entries:
        yield Refusal(
            source,
            Reason.TOTAL_TOO_LARGE,
            f"{directory.entries} entries; the limit is {limits.max_entries}",
        )
        return
    members = _members(handle, directory)
    for index in range(directory.entries):
        try:
            info = next(members)
        except (_Corrupt, OSError, StopIteration) as error:
            yield Refusal(source, Reason.CORRUPT_ZIP, f"cannot read the zip directory: {error}")
            return
        name = f"{source}!{info.filename}"
        if info.is_dir():
            continue
        refusal = _refuse_by_header(info, name, limits)
        if refusal is not None:
            yield refusal
            continue
        try:
            stream, size, digest = _stream_entry(handle, info, spool, limits, budget)
        except _Stop as stop:
            yield Refusal(name, stop.reason, stop.detail)
            if stop.reason is Reason.TOTAL_TOO_LARGE:
                left = directory.entries - index - 1
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
                    yield from _read_open(stream, name, spool, limits, budget, depth + 1)
                    if budget.used > budget.limit:
                        return
            else:
                yield ZipEntry(name, stream, size, digest)


# --- the zip format (APPNOTE.TXT, PKWARE's .ZIP File Format Specification, sections 4.3.6-4.3.16),
# read one central-directory record at a time: zipfile.ZipFile holds every record as a ZipInfo
# (about 650 bytes each: 65 MB for 100,000 members), so a large zip would not keep memory flat.

_END = struct.Struct("<4s4H2LH")  # end of central directory record (4.3.16)
_END64 = struct.Struct("<4sQ2H2L4Q")  # zip64 end of central directory record (4.3.14)
_LOCATOR64 = struct.Struct("<4sLQL")  # zip64 end of central directory locator (4.3.15)
_CENTRAL = struct.Struct("<4s6H3L5H2L")  # central directory file header (4.3.12)
_LOCAL = struct.Struct("<4s5H3L2H")  # local file header (4.3.7)
_MAX_COMMENT = 0xFFFF
_DIRECTORY_READ = 64 * 1024
STORED, DEFLATED = 0, 8


class _Corrupt(Exception):
    """The zip's structure is not what its records say."""


@dataclass(frozen=True)
class _Directory:
    entries: int
    offset: int  # where the central directory starts in the file
    shift: int  # bytes before the zip proper (a self-extracting stub): added to every offset


def _end_record(handle: IO[bytes]) -> _Directory:
    """The central directory's place and size, from the end record (zip64's when it is there)."""
    size = handle.seek(0, io.SEEK_END)
    tail_at = max(0, size - _END.size - _MAX_COMMENT)
    handle.seek(tail_at)
    tail = handle.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < _END.size:
        raise _Corrupt("no end of central directory record (not a zip file)")
    _, disk, _, _, entries, length, offset, _ = _END.unpack_from(tail, at)
    end_at = tail_at + at
    if disk != 0:
        raise _Corrupt("a zip split over several disks")
    if end_at >= _LOCATOR64.size:
        handle.seek(end_at - _LOCATOR64.size)
        locator = handle.read(_LOCATOR64.size)
        if locator[:4] == b"PK\x06\x07":
            _, _, end64_at, _ = _LOCATOR64.unpack(locator)
            handle.seek(end64_at)
            record = handle.read(_END64.size)
            if len(record) < _END64.size or record[:4] != b"PK\x06\x06":
                raise _Corrupt("the zip64 end record is missing")
            _, _, _, _, _, _, _, entries, length, offset = _END64.unpack(record)
            end_at = end64_at
    shift = end_at - length - offset
    if shift < 0:
        raise _Corrupt("the central directory lies outside the file")
    return _Directory(entries, offset + shift, shift)


def _members(handle: IO[bytes], directory: _Directory) -> Iterator[zipfile.ZipInfo]:
    """The central directory's records, one at a time. The handle is also read between records
    (each entry's data), so the place in the directory is kept here, not in the file."""
    position, buffer = directory.offset, b""
    while True:
        if len(buffer) < _CENTRAL.size:
            handle.seek(position)
            buffer += handle.read(_DIRECTORY_READ)
            position = handle.tell()
        record = _CENTRAL.unpack_from(buffer) if len(buffer) >= _CENTRAL.size else None
        if record is None or record[0] != b"PK\x01\x02":
            raise _Corrupt("a central directory record is damaged")
        variable = record[10] + record[11] + record[12]  # name, extra field, comment
        while len(buffer) < _CENTRAL.size + variable:
            handle.seek(position)
            more = handle.read(_DIRECTORY_READ)
            if not more:
                raise _Corrupt("the central directory ends early")
            buffer += more
            position = handle.tell()
        yield _info(record, buffer[_CENTRAL.size : _CENTRAL.size + variable], directory.shift)
        buffer = buffer[_CENTRAL.size + variable :]


def _info(record: tuple[Any, ...], variable: bytes, shift: int) -> zipfile.ZipInfo:
    """A ZipInfo from one central directory record, zip64 sizes and offset applied (4.5.3)."""
    (_, made_by, needs, flags, method, time, day, crc, packed, size, name_length,
     extra_length, _, _, internal, external, offset) = record  # fmt: skip
    raw_name = variable[:name_length]
    name = raw_name.decode("utf-8" if flags & 0x800 else "cp437", "replace")
    info = zipfile.ZipInfo(name)
    info.flag_bits, info.compress_type, info.CRC = flags, method, crc
    info.create_version, info.extract_version = made_by & 0xFF, needs
    info.create_system = made_by >> 8
    info.internal_attr, info.external_attr = internal, external
    info.date_time = (
        (day >> 9) + 1980, (day >> 5) & 0xF, day & 0x1F, time >> 11, (time >> 5) & 0x3F,
        (time & 0x1F) * 2,
    )  # fmt: skip
    extra = variable[name_length : name_length + extra_length]
    wide = iter(_zip64_values(extra))
    info.file_size = next(wide) if size == 0xFFFFFFFF else size
    info.compress_size = next(wide) if packed == 0xFFFFFFFF else packed
    info.header_offset = (next(wide) if offset == 0xFFFFFFFF else offset) + shift
    return info


def _zip64_values(extra: bytes) -> list[int]:
    """The 8-byte values of the zip64 extended information extra field (tag 0x0001), in order."""
    at = 0
    while at + 4 <= len(extra):
        tag, length = struct.unpack_from("<2H", extra, at)
        if tag == 0x0001:
            body = extra[at + 4 : at + 4 + length]
            return [v for (v,) in struct.iter_unpack("<Q", body[: len(body) // 8 * 8])]
        at += 4 + length
    return []


def _data_start(handle: IO[bytes], info: zipfile.ZipInfo) -> int:
    """Where an entry's compressed bytes begin, after its local header (4.3.7)."""
    handle.seek(info.header_offset)
    header = handle.read(_LOCAL.size)
    if len(header) < _LOCAL.size or header[:4] != b"PK\x03\x04":
        raise _Stop(Reason.CORRUPT_ZIP, "entry cannot be read: its local header is missing")
    name_length, extra_length = _LOCAL.unpack(header)[9:11]
    return info.header_offset + _LOCAL.size + name_length + extra_length


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
    handle: IO[bytes], info: zipfile.ZipInfo, spool: Spool, limits: ZipLimits, budget: _Budget
) -> tuple[IO[bytes], int, str]:
    """Inflate one entry into a scratch file, counting real bytes against every limit as they
    come: the bytes it inflated to against the compressed bytes the inflater really consumed,
    never the header's ``compress_size`` (a crafted zip sets it to whatever passes), checked
    every ``CHUNK`` of output. The CRC and size are checked against the directory at the end."""
    if info.compress_type not in (STORED, DEFLATED):
        raise _Stop(
            Reason.CORRUPT_ZIP, f"entry uses compression method {info.compress_type}, not deflate"
        )
    out = spool(limits.memory_bytes)
    digest, crc, size, consumed = hashlib.sha256(), 0, 0, 0
    try:
        position = _data_start(handle, info)
        inflater = zlib.decompressobj(-15) if info.compress_type == DEFLATED else None
        pending, left = b"", info.compress_size  # stored: the header's size is the data
        while True:
            if inflater is None:
                if not left:
                    break
                handle.seek(position)
                chunk = handle.read(min(CHUNK, left))
                if not chunk:
                    raise _Stop(Reason.CORRUPT_ZIP, "entry cannot be read: the file ends early")
                position, left, consumed = (
                    position + len(chunk),
                    left - len(chunk),
                    consumed + len(chunk),
                )
            else:
                if inflater.eof:
                    break
                if not pending:
                    handle.seek(position)
                    pending = handle.read(CHUNK)
                    if not pending:
                        raise _Stop(Reason.CORRUPT_ZIP, "entry cannot be read: the file ends early")
                    position += len(pending)
                chunk = inflater.decompress(pending, CHUNK)
                consumed += len(pending) - len(inflater.unconsumed_tail)
                pending = inflater.unconsumed_tail
            size += len(chunk)
            budget.used += len(chunk)
            if size > info.file_size:  # the directory's size is a promise: past it, a lie
                raise _Stop(
                    Reason.CORRUPT_ZIP,
                    f"entry cannot be read: it expands past the {info.file_size} bytes its "
                    "directory record declares",
                )
            if size > limits.max_entry_bytes:
                raise _Stop(Reason.ENTRY_TOO_LARGE, f"expands past {limits.max_entry_bytes} bytes")
            if size > limits.ratio_floor_bytes and size > limits.max_ratio * max(consumed, 1):
                raise _Stop(
                    Reason.ZIP_BOMB,
                    f"{consumed} compressed bytes expand past {size} "
                    f"(over {limits.max_ratio:g} times)",
                )
            if budget.used > budget.limit:
                raise _Stop(
                    Reason.TOTAL_TOO_LARGE,
                    f"the archive expands past {budget.limit} bytes in total",
                )
            crc = zlib.crc32(chunk, crc)
            digest.update(chunk)
            out.write(chunk)
        if size != info.file_size or crc != info.CRC:
            raise _Stop(
                Reason.CORRUPT_ZIP,
                f"entry cannot be read: it inflates to {size} bytes with CRC {crc:08x}, the "
                f"directory says {info.file_size} bytes with CRC {info.CRC:08x}",
            )
    except _Stop:
        out.close()
        raise
    except (zlib.error, OSError) as error:
        out.close()
        raise _Stop(Reason.CORRUPT_ZIP, f"entry cannot be read: {error}") from None
    out.seek(0)
    return out, size, digest.hexdigest()
