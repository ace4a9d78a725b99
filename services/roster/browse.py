"""The students table as the console pages it: the operator's LEA (or school), by name or SSID prefix
(see ``services.core.paging`` for how prefixes stay index scans)."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from services.access.permissions import Permission, allowed, require, school_scope
from services.access.tables import Operator
from services.core.paging import Page, count_rows, prefix
from services.intake.score_reports import ScoreReport
from services.roster.records import fold
from services.roster.tables import School, Student


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
        total, capped = count_rows(session, matching, exact=not text)
        reports = _report_counts(session, [row[0] for row in found]) if scores else {}
    rows: list[tuple[str, ...]] = []
    for sid, ssid, last, first, grade, school, language, learner in found:
        row: tuple[str, ...] = (ssid, f"{last}, {first}", str(grade), school)
        if scores:
            row += (language, "EL" if learner else "", str(reports.get(sid, 0)))
        rows.append(row)
    return Page(rows, total, capped)


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
