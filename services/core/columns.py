"""Column helpers every table module shares: UTC timestamps and enums stored as their values."""

from __future__ import annotations

import enum
from datetime import UTC, datetime

from sqlalchemy import Enum as SAEnum


def utcnow() -> datetime:
    """Timestamps are timezone-aware UTC; SQLModel's UTCDateTime stores them alike on both databases."""
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """A stored moment as an aware UTC datetime (SQLite hands them back naive, in UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def enum_column(e: type[enum.Enum], name: str) -> SAEnum:
    # Stored as the value strings (not the Python names), as a VARCHAR with a CHECK on SQLite.
    return SAEnum(e, name=name, values_callable=lambda x: [m.value for m in x], native_enum=False)
