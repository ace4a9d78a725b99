"""CSV export whose cells a spreadsheet never runs as a formula.

A report opened in Excel or LibreOffice treats a cell that begins with ``=``, ``+``, ``-`` or ``@``
(and, in some versions, a tab or carriage return) as a formula, so a guardian name such as
``=HYPERLINK(...)`` could run on a coordinator's machine. Such cells are written with a leading
single quote, which spreadsheets show as text (OWASP's CSV-injection advice). ``SafeWriter`` is
the one CSV writer of the console: this export, the print manifest and the ETS paper-order list
all write through it. Rows are written as they come, so an export of 300,000 rows holds one row in
memory at a time. Files are created for their owner only (0600): they name students.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from services.core import private_files
from services.core.errors import InvalidInput

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> str:
    """The cell's text, quoted with ``'`` when it begins like a formula; None is empty."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


class SafeWriter:
    """A ``csv.writer`` whose every cell goes through ``safe_cell``."""

    def __init__(self, out: IO[str]) -> None:
        self._writer = csv.writer(out, lineterminator="\r\n")

    def writerow(self, row: Iterable[object]) -> None:
        self._writer.writerow([safe_cell(c) for c in row])

    def writerows(self, rows: Iterable[Iterable[object]]) -> None:
        for row in rows:
            self.writerow(row)


def write_rows(out: IO[str], header: Iterable[object], rows: Iterable[Iterable[object]]) -> int:
    """Write a header and rows to an open text stream; returns how many data rows were written."""
    writer = SafeWriter(out)
    writer.writerow(header)
    count = 0
    for row in rows:
        writer.writerow(row)
        count += 1
    return count


def export(path: Path, header: Iterable[object], rows: Iterable[Iterable[object]]) -> int:
    """Write a CSV file (UTF-8 with a byte-order mark, so Excel reads accents and CJK names).

    The file is written beside its final name and renamed at the end, so a failed export never
    leaves half a file under that name.
    """
    if path.suffix.lower() != ".csv":
        raise InvalidInput(f"Export to a file ending in .csv, not {path.name}")
    if not path.parent.is_dir():
        raise InvalidInput(f"Folder {path.parent} does not exist")
    partial = path.with_name(path.name + ".part")
    try:
        with open(
            partial, "w", encoding="utf-8-sig", newline="", opener=private_files.opener
        ) as out:
            count = write_rows(out, header, rows)
        partial.replace(path)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise InvalidInput(f"Could not write {path}: {error.strerror or error}") from None
    return count
