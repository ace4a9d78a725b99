"""Paged, scoped reads behind the console's tables: one window of rows at a time, never all.

Filters are prefix matches on indexed columns, written as range conditions
(``col >= "gar" AND col < "gas"``) so they stay index range scans on 300,000 rows, unlike
``LIKE '%x%'``; the bound is the prefix's successor rather than ``x || U+FFFF``, which a
linguistic PostgreSQL collation may ignore. A filtered count stops at ``COUNT_CAP``: "1,000+
matching" is all a person needs while typing, and an SSID-prefix count beyond that costs a row
lookup per match.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from services import audit_filter
from services.models import AuditEvent, Operator, School, ScoreReport, Student
from services.permissions import Permission, allowed, require, school_scope
from services.roster import fold

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


def name_key(text: str) -> str:
    """A typed name in Student.name_key's form: "last first", lower case, diacritics folded."""
    return fold(re.sub(r"\s+", " ", text.replace(",", " ")).strip()).lower()


def student_columns(operator: Operator) -> tuple[str, ...]:
    """Column headings of the students table; the help desk never sees score-report columns."""
    require(operator, Permission.VIEW_STUDENTS)
    base = ("SSID", "Name", "Gr", "School")
    if allowed(operator, Permission.VIEW_SCORES):
        return (*base, "Lang", "EL", "SSRs")
    return base


def students_page(
    engine: Engine, operator: Operator, offset: int, limit: int, filter_text: str = ""
) -> Page:
    """Students of the operator's LEA (a site coordinator: their school), by name or SSID prefix."""
    require(operator, Permission.VIEW_STUDENTS)
    school_id = school_scope(operator)
    text = filter_text.strip()
    by_ssid = text.isdigit()
    # Steer each query to its best index: (lea_id, name_key) for the LEA in name order, the school
    # index for one school, the SSID index for an SSID prefix. "lea_id + 0" still scopes to the
    # LEA but keeps SQLite (which has no statistics) from picking the LEA index instead.
    lea = col(Student.lea_id) if school_id is None and not by_ssid else col(Student.lea_id) + 0
    conditions: list[ColumnElement[bool]] = [lea == operator.lea_id]
    if school_id is not None:
        conditions.append(col(Student.school_id) == school_id)
    order: list[Any]
    if by_ssid:
        conditions.append(prefix(Student.ssid, text))
        order = [col(Student.ssid)]
    else:
        if text:
            conditions.append(prefix(Student.name_key, name_key(text)))
        order = [col(Student.name_key), col(Student.id)]
    scores = allowed(operator, Permission.VIEW_SCORES)
    with Session(engine) as session:
        # Offsets skip through the index alone; only the window's rows are read in full.
        window = (
            select(col(Student.id))
            .where(*conditions)
            .order_by(*order)
            .offset(max(offset, 0))
            .limit(limit)
            .subquery()
        )
        found = session.execute(
            select(
                col(Student.id),
                col(Student.ssid),
                col(Student.last_name),
                col(Student.first_name),
                col(Student.grade),
                col(School.name),
                col(Student.primary_language),
                col(Student.english_learner),
            )
            .join(window, window.c.id == col(Student.id))
            .join(School, col(School.id) == col(Student.school_id))
            .order_by(*order)
        ).all()
        matching = select(col(Student.id)).where(*conditions)
        total, capped = _count(session, matching, exact=not text)
        reports = _report_counts(session, [row[0] for row in found]) if scores else {}
    rows: list[tuple[str, ...]] = []
    for sid, ssid, last, first, grade, school, language, learner in found:
        row: tuple[str, ...] = (ssid, f"{last}, {first}", str(grade), school)
        if scores:
            row += (language, "EL" if learner else "", str(reports.get(sid, 0)))
        rows.append(row)
    return Page(rows, total, capped)


def audit_columns() -> tuple[str, ...]:
    return ("#", "When (UTC)", "Operator", "Action", "Target")


def audit_page(
    engine: Engine, operator: Operator, offset: int, limit: int, filter_text: str = ""
) -> Page:
    """The LEA's audit events (and the console's own, LEA-less ones), newest first.

    The filter (``services.audit_filter``) narrows by operator, action, target and time; a plain
    word matches the start of the operator name, the action or the target.
    """
    require(operator, Permission.VIEW_AUDIT)
    lea = col(AuditEvent.lea_id)
    conditions: list[ColumnElement[bool]] = [or_(lea == operator.lea_id, lea.is_(None))]
    text = filter_text.strip()
    conditions += audit_filter.conditions(text)
    with Session(engine) as session:
        found = session.execute(
            select(
                col(AuditEvent.seq),
                col(AuditEvent.at),
                col(AuditEvent.operator),
                col(AuditEvent.action),
                col(AuditEvent.target),
            )
            .where(*conditions)
            .order_by(col(AuditEvent.seq).desc())
            .offset(max(offset, 0))
            .limit(limit)
        ).all()
        matching = select(col(AuditEvent.id)).where(*conditions)
        total, capped = _count(session, matching, exact=not text)
    rows: list[tuple[str, ...]] = [
        (str(seq), at.strftime("%Y-%m-%d %H:%M"), name, action, target)
        for seq, at, name, action, target in found
    ]
    return Page(rows, total, capped)


def _count(session: Session, query: Select[Any], *, exact: bool) -> tuple[int, bool]:
    """How many rows ``query`` yields; a filtered count stops at COUNT_CAP (and says so)."""
    if exact:
        return int(session.scalar(select(func.count()).select_from(query.subquery())) or 0), False
    limited = query.limit(COUNT_CAP + 1).subquery()
    count = int(session.scalar(select(func.count()).select_from(limited)) or 0)
    return min(count, COUNT_CAP), count > COUNT_CAP


def _report_counts(session: Session, student_ids: list[int]) -> dict[int, int]:
    if not student_ids:
        return {}
    return dict(
        session.execute(
            select(col(ScoreReport.student_id), func.count())
            .where(col(ScoreReport.student_id).in_(student_ids))
            .group_by(col(ScoreReport.student_id))
        ).all()
    )
