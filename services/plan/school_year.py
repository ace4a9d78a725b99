"""School years: which one an LEA is in, and starting the next (``ssr-console year start``).

A year is named by its administration, the spring of the tests (2026 is school year 2025-26), as
TOMS and ETS name SSRs (``ScoreReport.admin_year``). The LEA is in the year it started, or, until
it starts one, in the latest administration imported (``services.roster.facts.current_year``).
Batches that name no year, coverage, the advisor's counts and the reports take that year only.

Starting the next year keeps what is not a year's: the TOMS credential, the operators and their
keys, the roster, each family's own channel. It starts what is: no plan yet (``decisions.current``
looks at the plans of the started year only) and coverage of the new administration's SSRs. Last
year's batches, items and plans stay as they were, in the help desk's history and in the batch
list; a batch that names last year still sends its reports.

When a year may start agrees with the deadline calendar (``services.core.working_days``): the
school year after ``[calendar] last_day_of_instruction`` begins on ``first_day_of_next_year``;
without a calendar a year begins on August 1, as the advisor counts (``advisor.administration_year``).
SSRs received after the last day of instruction are due in the first working days of the next
school year (5 CCR § 863(b); 5 CCR § 11518.15(b)), so a year with families still waiting for
their SSRs starts only when the coordinator says so (``leave_owed``), and the count is audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, or_, select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from services.access.permissions import Permission, require
from services.access.tables import Operator
from services.audit import log as audit
from services.core.db import session_scope
from services.core.errors import InvalidInput, NotFound
from services.core.scope import report_filters
from services.core.working_days import WorkingCalendar
from services.delivery.delivered import correction_owed, report_undelivered
from services.intake.score_reports import ScoreReport
from services.plan.advisor import administration_year
from services.plan.tables import DistributionPlan
from services.roster.facts import current_year, latest_year, school_year_label, started_year
from services.roster.tables import LEA, Student


@dataclass(frozen=True)
class SchoolYear:
    """The LEA's current year: ``year`` None before any SSR is imported or any year started."""

    year: int | None
    started: bool  # with ``year start``; else it follows the latest administration imported
    newer_imported: int | None = None  # SSRs of a later administration are in, not yet started

    def text(self) -> str:
        if self.year is None:
            return "School year: none yet (no SSRs imported)"
        line = f"School year {school_year_label(self.year)} (administration {self.year})"
        if self.newer_imported is not None:
            line += (
                f"; SSRs of {self.newer_imported} are imported: "
                f"`ssr-console year start {self.newer_imported}` begins that year"
            )
        return line


def current(engine: Engine, operator: Operator) -> SchoolYear:
    """The operator's LEA's school year, for the dashboard, the advisor and coverage."""
    require(operator, Permission.VIEW_DASHBOARD)
    with Session(engine) as session:
        started = started_year(session, operator.lea_id)
        latest = latest_year(session, operator.lea_id)
    if started is None:
        return SchoolYear(latest, started=False)
    newer = latest if latest is not None and latest > started else None
    return SchoolYear(started, started=True, newer_imported=newer)


@dataclass(frozen=True)
class Started:
    """What ``start`` did: the year begun, the one it follows, and what was left behind."""

    year: int
    previous: int | None
    owed: int  # students of the previous year whose SSRs no family has yet
    plans_closed: int  # plans saved before any year was started, now filed under ``previous``

    def text(self) -> str:
        lines = [
            f"School year {school_year_label(self.year)} started (administration {self.year})."
        ]
        if self.previous is not None:
            lines.append(
                f"{school_year_label(self.previous)} stays in the history and its reports; its plan is "
                "closed: save this year's plan in the advisor."
            )
        if self.owed:
            lines.append(
                f"{self.owed:,} student(s) of {school_year_label(self.previous or self.year)} still wait for "
                f"their SSRs: a batch naming year {self.previous} still sends them."
            )
        lines.append("The credential, operators, roster and family channels carry over.")
        return "\n".join(lines)


def earliest_start(year: int, calendar: WorkingCalendar) -> tuple[date, str]:
    """The first day school year ``year`` (its administration) may be started, and where that
    day comes from: the calendar's ``first_day_of_next_year`` when that day begins it, else
    August 1 before its spring."""
    first = calendar.first_day_of_next_year
    if first is not None and first.year + 1 == year:
        return first, " ([calendar] first_day_of_next_year)"
    return date(year - 1, 8, 1), ""


def owed_students(session: Session, lea_id: int, year: int) -> int:
    """Students (not withdrawn) with an SSR of ``year`` that has not reached their family, or
    whose corrected version has not."""
    return int(
        session.execute(
            select(func.count(func.distinct(col(Student.id))))
            .select_from(ScoreReport)
            .join(Student, col(Student.id) == col(ScoreReport.student_id))
            .where(
                *report_filters(lea_id, None, None, None, year),
                or_(report_undelivered(), correction_owed(lea_id)),
            )
        ).scalar_one()
    )


def start(
    engine: Engine,
    operator: Operator,
    year: int | None = None,
    *,
    calendar: WorkingCalendar | None = None,
    today: date | None = None,
    leave_owed: bool = False,
) -> Started:
    """Start school year ``year`` (default: the one after the current) for the operator's LEA.

    Refused with a sentence: a year not after the current one, a year the calendar has not begun
    yet, and, unless ``leave_owed``, while students of the current year still wait for SSRs.
    """
    require(operator, Permission.CHOOSE_PLAN, lea_id=operator.lea_id)
    calendar = calendar or WorkingCalendar()
    today = today or date.today()
    with session_scope(engine) as session:
        lea = session.get(LEA, operator.lea_id, with_for_update=True)
        if lea is None:
            raise NotFound(f"LEA {operator.lea_id} of operator {operator.username} does not exist")
        previous = current_year(session, operator.lea_id)
        if year is None:
            year = previous + 1 if previous is not None else administration_year(today)
        if previous is not None and year <= previous:
            raise InvalidInput(
                f"School year {school_year_label(previous)} is already under way and years only move "
                f"forward: the next is {school_year_label(previous + 1)} (year start {previous + 1})"
            )
        begins, source = earliest_start(year, calendar)
        if today < begins:
            raise InvalidInput(
                f"School year {school_year_label(year)} begins on {begins.isoformat()}{source}; "
                f"it cannot be started on {today.isoformat()}"
            )
        owed = owed_students(session, operator.lea_id, previous) if previous is not None else 0
        if owed and not leave_owed:
            raise InvalidInput(
                f"{owed:,} student(s) of {school_year_label(previous or year)} still wait for their SSRs "
                "(see Coverage and the deadlines): deliver them first, or start the year anyway "
                "with --leave-owed (a batch naming the year still sends them)"
            )
        closed = session.execute(
            update(DistributionPlan)
            .where(
                col(DistributionPlan.lea_id) == operator.lea_id,
                col(DistributionPlan.school_year).is_(None),
            )
            .values(school_year=previous)
        ).rowcount  # type: ignore[attr-defined]
        lea.school_year = year
        session.add(lea)
        audit.record(
            session,
            audit.Actor.of(operator),
            "year.start",
            f"lea:{lea.cds_code}",
            {"year": year, "previous": previous, "owed": owed, "plans_closed": closed},
            lea_id=operator.lea_id,
        )
    return Started(year, previous, owed, int(closed or 0))
