"""Reading an SIS CSV file row by row with bounded memory, refusing bad lines one at a time.

The file must be UTF-8 (with or without a byte-order mark), as OneRoster 1.1 requires and as
spreadsheet programs write with "CSV UTF-8". A UTF-16 or UTF-32 file is refused whole, with a
sentence saying so; a line holding bytes that are not UTF-8 (typically Windows-1252 accents) is
refused alone. No physical line longer than ``MAX_LINE_BYTES`` is ever held in memory: the rest of
it is skipped in chunks and the record refused; ``csv.field_size_limit`` bounds a quoted field
spread over many lines the same way.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO

from services.core.errors import InvalidInput

MAX_LINE_BYTES = 64 * 1024
"""A roster line is a few hundred bytes; 64 KiB leaves room for long multi-valued cells."""

_WIDE_BOMS = {
    codecs.BOM_UTF32_LE: "UTF-32",
    codecs.BOM_UTF32_BE: "UTF-32",
    codecs.BOM_UTF16_LE: "UTF-16",
    codecs.BOM_UTF16_BE: "UTF-16",
}


@dataclass(frozen=True, slots=True)
class Refused:
    """A line that was not imported: the file, its line number and why (``cells``: what could
    still be read of it, so a record refused for its encoding can be told apart from one absent)."""

    file: str
    line: int
    reason: str
    cells: dict[str, str] | None = field(default=None, compare=False, repr=False)

    def __str__(self) -> str:
        return f"{self.file} line {self.line}: {self.reason}"


@dataclass(frozen=True, slots=True)
class Row:
    """One record: its first line number and its cells, found by header name through ``index``
    (shared by every row of a file, so a row costs no dictionary of its own)."""

    line: int
    values: list[str]
    index: dict[str, int]

    def get(self, column: str) -> str:
        try:
            return self.values[self.index[column]].strip()
        except KeyError:  # an optional column the file does not have
            return ""

    @property
    def cells(self) -> dict[str, str]:
        return {name: self.values[i] for name, i in self.index.items()}


class _Lines:
    """Decoded physical lines of at most MAX_LINE_BYTES; remembers the overlong ones."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.number = 0
        self.overlong: list[int] = []
        self.not_utf8 = False  # since the record began

    def __iter__(self) -> Iterator[str]:
        while True:
            raw = self.stream.readline(MAX_LINE_BYTES + 1)
            if not raw:
                return
            self.number += 1
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                self.overlong.append(self.number)
                while (rest := self.stream.readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                    pass
                yield "\n"
                continue
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError:
                self.not_utf8 = True
                yield raw.decode("utf-8", "surrogateescape")


def rows(stream: IO[bytes], name: str, required: tuple[str, ...]) -> Iterator[Row | Refused]:
    """Each record of ``stream`` as a Row, or a Refused line; the header must name ``required``.

    A file that cannot be read at all (another encoding, no header, a required column missing)
    raises InvalidInput naming the file.
    """
    head = stream.read(4)
    stream.seek(0)
    for bom, encoding in _WIDE_BOMS.items():
        if head.startswith(bom):
            raise InvalidInput(
                f'{name} is {encoding}; save it as UTF-8 ("CSV UTF-8") and import again'
            )
    if head.startswith(codecs.BOM_UTF8):
        stream.read(3)
    elif b"\x00" in head:
        raise InvalidInput(
            f"{name} holds NUL bytes (UTF-16 without a byte-order mark?); save it as UTF-8"
        )
    lines = _Lines(stream)
    reader = csv.reader(lines)
    header: list[str] | None = None
    index: dict[str, int] = {}
    end = 0
    while True:
        start = end + 1
        lines.not_utf8 = False
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            end = lines.number
            yield Refused(name, start, f"not a valid CSV record ({error})")
            continue
        end = lines.number
        if lines.overlong:
            first = lines.overlong[0]
            lines.overlong.clear()
            yield Refused(name, first, f"line is longer than {MAX_LINE_BYTES} bytes; skipped")
            continue
        if not record or record == [""]:
            continue
        if lines.not_utf8:
            if header is None:
                raise InvalidInput(f"{name}: the header is not UTF-8; save the file as UTF-8")
            yield Refused(
                name,
                start,
                "holds bytes that are not UTF-8 (Windows-1252 accents?); the file must be UTF-8",
                {name: record[i] for name, i in index.items() if i < len(record)},
            )
            continue
        if header is None:
            header = [cell.strip() for cell in record]
            if missing := [c for c in required if c not in header]:
                raise InvalidInput(f"{name} lacks the column(s) {', '.join(missing)}")
            index = {column: i for i, column in enumerate(header)}
            continue
        if len(record) != len(header):
            yield Refused(name, start, f"has {len(record)} fields; the header has {len(header)}")
            continue
        yield Row(start, record, index)
    if header is None:
        raise InvalidInput(f"{name} is empty: it needs a header line")


csv.field_size_limit(MAX_LINE_BYTES)
