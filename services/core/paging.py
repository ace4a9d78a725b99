"""Paged reads behind the console's tables: one window of rows at a time, never all.

Filters are prefix matches on indexed columns, written as range conditions
(``col >= "gar" AND col < "gas"``) so they stay index range scans on 300,000 rows, unlike
``LIKE '%x%'``; the bound is the prefix's successor rather than ``x || U+FFFF``, which a
linguistic PostgreSQL collation may ignore. A filtered count stops at ``COUNT_CAP``: "1,000+
matching" is all a person needs while typing, and an SSID-prefix count beyond that costs a row
lookup per match.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, select
from sqlmodel import Session

COUNT_CAP = 1_000


@dataclass(frozen=True)
class Page:
    """One window of display rows and how many rows match in all (a lower bound when capped)."""

    rows: list[tuple[str, ...]]
    total: int
    capped: bool = False


def prefix(column: Any, text: str) -> ColumnElement[bool]:
    """``column`` starts with ``text`` (not empty), as a range an index can answer."""
    return and_(column >= text, column < text[:-1] + chr(ord(text[-1]) + 1))


def count_rows(session: Session, query: Select[Any], *, exact: bool) -> tuple[int, bool]:
    """How many rows ``query`` yields; a filtered count stops at COUNT_CAP (and says so)."""
    if exact:
        return int(session.scalar(select(func.count()).select_from(query.subquery())) or 0), False
    limited = query.limit(COUNT_CAP + 1).subquery()
    count = int(session.scalar(select(func.count()).select_from(limited)) or 0)
    return min(count, COUNT_CAP), count > COUNT_CAP
