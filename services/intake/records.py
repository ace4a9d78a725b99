"""What an SSR import leaves behind: the run, every file it refused and why, and each report's origin.

Kept apart from ``services.models`` because only intake writes these tables. An exception row is
how "nothing lost" is kept: every file or zip entry that did not become a stored report is named
here with a reason code the import screen and the tests can rely on.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Column, Text
from sqlmodel import Field, SQLModel

from services.core.columns import utcnow


class Reason(enum.StrEnum):
    """Why a file or zip entry was not imported; the value is what is stored and tested."""

    ABSOLUTE_PATH = "absolute_path"
    PARENT_PATH = "parent_path"
    SYMLINK = "symlink"
    ENCRYPTED_ZIP = "encrypted_zip"
    CORRUPT_ZIP = "corrupt_zip"
    ZIP_BOMB = "zip_bomb"
    ENTRY_TOO_LARGE = "entry_too_large"
    TOTAL_TOO_LARGE = "total_too_large"
    NESTED_TOO_DEEP = "nested_too_deep"
    NOT_A_REPORT = "not_a_report"
    BAD_NAME = "bad_name"
    PDF_TOO_LARGE = "pdf_too_large"
    CORRUPT_PDF = "corrupt_pdf"
    ENCRYPTED_PDF = "encrypted_pdf"
    ACTIVE_CONTENT = "active_content"
    NO_SSID = "no_ssid"
    SSID_MISMATCH = "ssid_mismatch"
    UNKNOWN_SSID = "unknown_ssid"
    CONFLICT = "conflict"
    DOWNLOAD_FAILED = "download_failed"
    BAD_LISTING = "bad_listing"
    FOREIGN_LINK = "foreign_link"

    @property
    def label(self) -> str:
        return REASON_LABELS[self]


REASON_LABELS = {
    Reason.ABSOLUTE_PATH: "zip entry has an absolute path",
    Reason.PARENT_PATH: "zip entry path climbs out with '..'",
    Reason.SYMLINK: "symbolic link (not followed)",
    Reason.ENCRYPTED_ZIP: "zip entry is encrypted",
    Reason.CORRUPT_ZIP: "zip file is damaged or not a zip",
    Reason.ZIP_BOMB: "zip entry expands far more than its compressed size (zip bomb)",
    Reason.ENTRY_TOO_LARGE: "zip entry is over the size limit",
    Reason.TOTAL_TOO_LARGE: "zip contents add up to more than the total size limit",
    Reason.NESTED_TOO_DEEP: "zip files nested too deep",
    Reason.NOT_A_REPORT: "neither a PDF nor a zip file",
    Reason.BAD_NAME: "file name does not carry the report details",
    Reason.PDF_TOO_LARGE: "PDF is over the size limit",
    Reason.CORRUPT_PDF: "PDF is damaged or truncated",
    Reason.ENCRYPTED_PDF: "PDF is encrypted",
    Reason.ACTIVE_CONTENT: "PDF holds scripts, actions, embedded files or media",
    Reason.NO_SSID: "no SSID found on the report's first page",
    Reason.SSID_MISMATCH: "SSID in the file name differs from the SSID in the PDF",
    Reason.UNKNOWN_SSID: "SSID is not a known student",
    Reason.CONFLICT: "two files in this import hold different content for the same report",
    Reason.DOWNLOAD_FAILED: "download failed after retries",
    Reason.BAD_LISTING: "the API's report list is too large, too deep or not understood",
    Reason.FOREIGN_LINK: "report link leads to a host that is not allowed, or is not https",
}


class RunStatus(enum.StrEnum):
    QUEUED = "queued"  # waiting for ``ssr-console worker`` (the import screen queues runs)
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # its process died (killed, power lost) before it could finish


class ImportRun(SQLModel, table=True):
    """One import (files or API), with running counts the import screen reads while it works."""

    __tablename__ = "import_run"
    id: int | None = Field(default=None, primary_key=True)
    started_at: datetime = Field(default_factory=utcnow, index=True)
    finished_at: datetime | None = None
    operator: str = Field(max_length=64)
    lea_id: int | None = Field(default=None, foreign_key="lea.id", index=True)
    source: str = Field(default="", max_length=500)
    status: str = Field(default=RunStatus.RUNNING.value, max_length=16)
    files: int = 0
    reports: int = 0
    stored: int = 0
    duplicates: int = 0
    new_versions: int = 0
    exceptions: int = 0
    bytes_stored: int = 0
    host: str = Field(default="", max_length=255)  # the process that runs it, and when it last
    pid: int | None = None  # wrote: a run whose process is gone is interrupted, not running
    heartbeat_at: datetime | None = None
    request: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    """What to import, as JSON (``{"paths": [...]}`` or ``{"api": true}``): a worker runs a queued
    run from it, and an interrupted one is resumed from it. None: not resumable (an API import
    with a credential typed at the command line)."""


class ImportException(SQLModel, table=True):
    """A file, zip entry or page range an import refused, with the reason and where it came from."""

    __tablename__ = "import_exception"
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="import_run.id", index=True)
    at: datetime = Field(default_factory=utcnow)
    source: str = Field(max_length=1000)
    reason: str = Field(max_length=32, index=True)
    detail: str = Field(default="", max_length=500)
    ssid: str | None = Field(default=None, max_length=10)


class ReportReceipt(SQLModel, table=True):
    """Where a stored report came from, and for a later version why it was kept beside the old one."""

    __tablename__ = "report_receipt"
    score_report_id: int = Field(foreign_key="score_report.id", primary_key=True)
    run_id: int = Field(foreign_key="import_run.id", index=True)
    source: str = Field(max_length=1000)
    reason: str = Field(default="", max_length=500)
