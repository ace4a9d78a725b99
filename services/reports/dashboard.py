"""What the dashboard shows: roster counts for the operator's scope, and the banners over every screen.

A site coordinator's figures cover their school only. A technology coordinator gets the totals but
not the breakdown of guardians' contact details, which their role may not view.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from services.access.permissions import Permission, allowed, require, school_scope
from services.access.tables import Operator
from services.core.errors import NotFound
from services.intake.score_reports import ScoreReport
from services.roster.facts import current_year, school_year_label
from services.roster.tables import LEA, Guardian, School, Student, StudentGuardian


@dataclass(frozen=True)
class DashboardSummary:
    """Counts for one LEA, or one school of it; contact breakdowns are None when not shown."""

    lea_name: str
    lea_cds: str
    scope: str
    schools: int
    students: int
    guardians: int
    reports_by_program: dict[str, int] = field(default_factory=dict)
    guardians_by_language: dict[str, int] | None = None
    guardians_with_email: int | None = None
    guardians_using_portal: int | None = None
    guardians_without_address: int | None = None
    school_year: int | None = None  # the administration counted (``plan.school_year``)

    @property
    def contacts_shown(self) -> bool:
        return self.guardians_by_language is not None

    @property
    def where(self) -> str:
        """The heading line: LEA, scope and school year (short, to fit 80 columns)."""
        year = f" · {school_year_label(self.school_year)}" if self.school_year else ""
        return f"{self.lea_name} (CDS {self.lea_cds}) · {self.scope}{year}"


@dataclass(frozen=True)
class Banner:
    """A message the console keeps above every screen until its cause is dealt with."""

    level: str  # "info", "warning" or "error"
    text: str


def lea_label(engine: Engine, operator: Operator) -> str:
    """The operator's LEA as people name it: "Name (CDS 1234567)"."""
    with Session(engine) as session:
        lea = session.get(LEA, operator.lea_id)
        if lea is None:
            raise NotFound(f"LEA {operator.lea_id} of operator {operator.username} does not exist")
        return f"{lea.name} (CDS {lea.cds_code})"


def summary(engine: Engine, operator: Operator) -> DashboardSummary:
    """Roster and SSR counts for the operator's scope, each one aggregate query."""
    require(operator, Permission.VIEW_DASHBOARD)
    school_id = school_scope(operator)
    with Session(engine) as session:
        lea = session.get(LEA, operator.lea_id)
        if lea is None:
            raise NotFound(f"LEA {operator.lea_id} of operator {operator.username} does not exist")
        students = select(col(Student.id)).where(col(Student.lea_id) == lea.id)
        guardian_filter: ColumnElement[bool]
        if school_id is None:
            scope = "all schools"
            schools = session.scalar(select(func.count()).where(col(School.lea_id) == lea.id))
            guardian_filter = col(Guardian.lea_id) == lea.id
        else:
            school = session.get(School, school_id)
            scope = school.name if school else f"school {school_id}"
            schools = 1
            students = students.where(col(Student.school_id) == school_id)
            guardian_filter = col(Guardian.id).in_(
                select(col(StudentGuardian.guardian_id)).where(
                    col(StudentGuardian.student_id).in_(students)
                )
            )
        student_count = session.scalar(select(func.count()).select_from(students.subquery()))
        reports = session.execute(
            select(col(ScoreReport.program), func.count())
            .where(col(ScoreReport.student_id).in_(students))
            .group_by(col(ScoreReport.program))
            .order_by(col(ScoreReport.program))
        ).all()
        contacts = _guardian_breakdown(session, guardian_filter)
        year = current_year(session, operator.lea_id)
    shown = allowed(operator, Permission.VIEW_CONTACTS)
    return DashboardSummary(
        lea_name=lea.name,
        lea_cds=lea.cds_code,
        scope=scope,
        schools=int(schools or 0),
        students=int(student_count or 0),
        guardians=sum(contacts.by_language.values()),
        reports_by_program={str(program): int(count) for program, count in reports},
        guardians_by_language=contacts.by_language if shown else None,
        guardians_with_email=contacts.with_email if shown else None,
        guardians_using_portal=contacts.using_portal if shown else None,
        guardians_without_address=contacts.without_address if shown else None,
        school_year=year,
    )


@dataclass(frozen=True)
class _Contacts:
    by_language: dict[str, int]
    with_email: int
    using_portal: int
    without_address: int


def _guardian_breakdown(session: Session, guardian_filter: ColumnElement[bool]) -> _Contacts:
    """One pass over the guardians in scope, grouped by language."""
    email, address = col(Guardian.email), col(Guardian.address_line1)
    has_email = and_(email.is_not(None), email != "")
    no_address = or_(address.is_(None), address == "")
    rows = session.execute(
        select(
            col(Guardian.preferred_language),
            func.count(),
            func.count().filter(has_email),
            func.count().filter(col(Guardian.uses_portal)),
            func.count().filter(no_address),
        )
        .where(guardian_filter)
        .group_by(col(Guardian.preferred_language))
        .order_by(func.count().desc())
    ).all()
    return _Contacts(
        by_language={str(language): int(count) for language, count, *_ in rows},
        with_email=sum(int(row[2]) for row in rows),
        using_portal=sum(int(row[3]) for row in rows),
        without_address=sum(int(row[4]) for row in rows),
    )


def banners(engine: Engine, operator: Operator) -> list[Banner]:
    """Banners for every screen: the SIS-vendor credential from 14 days before expiry (issue 3)."""
    from services.credential import (
        lifecycle as credentials,  # imported on first use: keeps it off the cold start's path
    )

    credential = credentials.banner(engine, operator.lea_id)
    return [Banner(*credential)] if credential else []
