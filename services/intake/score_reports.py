"""The table of SSRs: one row per version of a student's report, pointing into the report store."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Column, Date, UniqueConstraint, cast, func
from sqlalchemy.engine import Engine
from sqlmodel import Field, SQLModel, col

from services.core.columns import enum_column, utcnow
from services.core.programs import Program


class ScoreReport(SQLModel, table=True):
    """One SSR PDF: a student's report for one test of one administration, in one language."""

    __tablename__ = "score_report"
    __table_args__ = (
        UniqueConstraint(
            "student_id",
            "program",
            "admin_year",
            "test",
            "language",
            "version",
            name="uq_score_report_identity",
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    student_id: int = Field(foreign_key="student.id", index=True)
    program: Program = Field(sa_column=Column(enum_column(Program, "program"), nullable=False))
    admin_year: int  # the spring of the administration: 2026 means 2025-26
    test: str = Field(max_length=40)
    language: str = Field(default="en", max_length=16)
    version: int = 1
    file_path: str = Field(max_length=500)
    sha256: str = Field(max_length=64, index=True)
    size_bytes: int = 0
    received_at: datetime = Field(default_factory=utcnow)


def receipt_day(bind: Engine | Any) -> Any:
    """SQL: the day (UTC) an SSR became available to the LEA, the day its delivery clock starts,
    as the database of ``bind`` spells a date; read it back with ``as_date``."""
    if bind.dialect.name == "sqlite":
        return func.date(col(ScoreReport.received_at))
    return cast(func.timezone("UTC", col(ScoreReport.received_at)), Date)


def as_date(value: date | str | datetime) -> date:
    """A receipt day as read back from either database (SQLite returns text)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).date() if value.tzinfo else value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(value[:10])
