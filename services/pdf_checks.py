"""The checks every SSR PDF passes before it is stored, as pure functions a worker process can run.

A PDF must open with pikepdf without recovery (a truncated or damaged file fails here rather than
being silently repaired), must not be encrypted, must have pages, and for a single SSR must carry
the expected SSID on page 1. ``check_single`` takes and returns plain values so intake can run it
in a process pool: parsing is the costly part of an import and parallelises across cores.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import IO, BinaryIO, cast

import pikepdf

from services.intake_records import Reason
from services.ssid_extract import UnreadablePdf, page_ssids


@dataclass(frozen=True)
class Verdict:
    """None as ``reason`` means the PDF passed; ``ssid`` is the SSID found, when one was read."""

    reason: Reason | None
    detail: str = ""
    ssid: str | None = None


PASSED = Verdict(None)


def open_checked(stream: IO[bytes]) -> tuple[pikepdf.Pdf | None, Verdict]:
    """The opened PDF, or None with the reason it cannot be used."""
    try:
        pdf = pikepdf.open(cast(BinaryIO, stream), attempt_recovery=False)
    except pikepdf.PasswordError:
        return None, Verdict(Reason.ENCRYPTED_PDF, "the PDF needs a password to open")
    except (pikepdf.PdfError, ValueError, OSError) as error:
        return None, Verdict(Reason.CORRUPT_PDF, _first_line(error))
    if pdf.is_encrypted:
        pdf.close()
        return None, Verdict(Reason.ENCRYPTED_PDF, "the PDF is already encrypted")
    if len(pdf.pages) == 0:
        pdf.close()
        return None, Verdict(Reason.CORRUPT_PDF, "the PDF has no pages")
    return pdf, PASSED


def check_single(data: bytes, expected_ssid: str) -> Verdict:
    """Whether ``data`` is a usable SSR of the student ``expected_ssid``."""
    pdf, verdict = open_checked(io.BytesIO(data))
    if pdf is None:
        return verdict
    pdf.close()
    try:
        found = page_ssids(data, first_only=True)[0]
    except (UnreadablePdf, IndexError) as error:
        return Verdict(Reason.CORRUPT_PDF, f"text cannot be read: {error}")
    if found is None:
        return Verdict(Reason.NO_SSID, "no 'SSID: ' followed by ten digits on page 1")
    if found != expected_ssid:
        return Verdict(
            Reason.SSID_MISMATCH, f"file name has {expected_ssid}, PDF has {found}", found
        )
    return Verdict(None, ssid=found)


def _first_line(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return re.sub(r"<_io\.\w+ object at 0x[0-9a-f]+>", "stream", text)[:300]
