"""How close the operator's LEA (or school) is to the statutory SSR deadlines.

CAASPP results are due to families within 20 working days of the LEA receiving them, ELPAC within
30 calendar days, and results received after the last day of instruction early in the next school
year (5 CCR § 863, § 11518.15(b); ``services.core.working_days``). The dashboard needs, per program, how many SSRs are
still not delivered (``services.delivery.delivered``), how many of those are already past their deadline
and when the next deadline falls. SSRs are grouped by program and receipt day in SQL, so a
300,000-SSR LEA is a handful of rows however many reports it holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from babel.dates import format_date
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from services.access.permissions import Permission, require, school_scope
from services.access.tables import Operator
from services.core.columns import utcnow
from services.core.programs import Program
from services.core.working_days import WorkingCalendar
from services.delivery.delivered import report_undelivered
from services.intake.score_reports import ScoreReport, as_date, receipt_day
from services.roster.tables import Student


@dataclass(frozen=True)
class ProgramDeadlines:
    """Undelivered SSRs of one program: how many, how many past due, the next deadline ahead."""

    program: Program
    undelivered: int
    past_due: int
    next_deadline: date | None
    due_next: int

    def text(self, locale: str = "en") -> str:
        head = f"{self.program.value}: {self.undelivered:,} SSRs not yet delivered"
        lines = [head]
        if self.past_due:
            lines.append(f"  PAST DUE: {self.past_due:,}")
        if self.next_deadline is not None:
            when = format_date(self.next_deadline, "medium", locale=locale)
            lines.append(f"  next deadline {when}: {self.due_next:,}")
        return "\n".join(lines)


def by_program(
    engine: Engine, operator: Operator, calendar: WorkingCalendar, today: date
) -> list[ProgramDeadlines]:
    """Per program, the undelivered SSRs of the operator's scope and their deadlines."""
    require(operator, Permission.VIEW_DASHBOARD)
    with Session(engine) as session:
        day = receipt_day(session.get_bind())
        query = (
            select(col(ScoreReport.program), day, func.count())
            .join(Student, col(Student.id) == col(ScoreReport.student_id))
            .where(
                col(Student.lea_id) == operator.lea_id,
                col(Student.withdrawn_at).is_(None),  # withdrawn: no longer ours to deliver
                report_undelivered(),
            )
            .group_by(col(ScoreReport.program), day)
        )
        if (school := school_scope(operator)) is not None:
            query = query.where(col(Student.school_id) == school)
        rows = session.execute(query).all()
    result = []
    for program in Program:
        groups = [
            (calendar.deadline(program, as_date(received)), int(n))
            for p, received, n in rows
            if Program(p) is program
        ]
        if not groups:
            continue
        ahead = sorted((d, n) for d, n in groups if d >= today)
        next_deadline = ahead[0][0] if ahead else None
        result.append(
            ProgramDeadlines(
                program,
                undelivered=sum(n for _, n in groups),
                past_due=sum(n for d, n in groups if d < today),
                next_deadline=next_deadline,
                due_next=sum(n for d, n in ahead if d == next_deadline),
            )
        )
    return result


def dashboard_text(
    engine: Engine, operator: Operator, calendar: WorkingCalendar, today: date | None = None
) -> str:
    """The dashboard's deadlines panel."""
    programs = by_program(engine, operator, calendar, today or utcnow().date())
    if not programs:
        return "Every SSR received so far has reached its family (or none are received yet)."
    return "\n".join(p.text(operator.language) for p in programs)
