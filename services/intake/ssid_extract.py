"""Reading the SSID printed on an SSR page, which is what ties a PDF to a student.

Text comes from PDFium (pypdfium2): it extracts a page in about a millisecond, several times faster
than pure-Python readers or a pdftotext process per file, which decides whether 300,000 SSRs take
minutes or hours. PDFium is not thread-safe, so callers use it from one thread at a time.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import IO

import pypdfium2 as pdfium

SSID_LABEL = re.compile(r"\bSSID\b\s*[:#]?\s*(\d{10})(?!\d)")
"""``SSID: 1234567890`` as printed on an SSR (the label, optional colon, ten digits)."""


class UnreadablePdf(Exception):
    """PDFium could not open the document or read a page's text."""


def ssid_in(text: str) -> str | None:
    """The first labelled SSID in ``text``, or None."""
    match = SSID_LABEL.search(text)
    return match.group(1) if match else None


def page_ssids(source: bytes | IO[bytes] | str, first_only: bool = False) -> list[str | None]:
    """The SSID printed on each page (None where a page has none); only page 1 if ``first_only``."""
    return list(_page_ssids(source, first_only))


def _page_ssids(source: bytes | IO[bytes] | str, first_only: bool) -> Iterator[str | None]:
    try:
        document = pdfium.PdfDocument(source)
    except pdfium.PdfiumError as error:
        raise UnreadablePdf(str(error)) from None
    try:
        count = 1 if first_only else len(document)
        for index in range(min(count, len(document))):
            page = document[index]
            try:
                textpage = page.get_textpage()
                try:
                    yield ssid_in(textpage.get_text_range())
                finally:
                    textpage.close()
            except pdfium.PdfiumError as error:
                raise UnreadablePdf(f"page {index + 1}: {error}") from None
            finally:
                page.close()
    finally:
        document.close()


def report_ranges(ssids: list[str | None]) -> Iterator[tuple[str | None, int, int]]:
    """Split a merged file's pages into reports: ``(ssid, first, stop)`` page ranges.

    A report starts on a page whose SSID differs from the current one; pages without an SSID
    belong to the report before them (a report's later pages need not repeat it). Leading pages
    with no SSID form a range with ``None``, for the caller to refuse.
    """
    start, current = 0, None
    for index, found in enumerate(ssids):
        if found is not None and found != current:
            if index > start:
                yield current, start, index
            start, current = index, found
    if ssids:
        yield current, start, len(ssids)
