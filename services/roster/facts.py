"""The roster facts the advisor needs, for one LEA or one school, computed by SQL aggregates.

Who receives a student's SSRs (``recipient``): every guardian the SIS entitles to the student's
records and does not mark "do not contact" (``may_receive``), one per household: guardians of the
same students at the same mailing address (``services.roster.households``) are one household, and
its primary guardian (the lowest id among several) represents it; a guardian without a household
is their own. Parents at two addresses get two deliveries; two parents at one get one. A family is
such a representative guardian: siblings sharing it are one family (one message, one envelope),
and every count of families here, in coverage and in the batches' dry runs is of them.
A family's SSR count is the number of SSRs of its children: distinct programs of the LEA's
current administration (``current_year``), or one per student while none are imported (then
``ssrs_estimated``), so a student of two households counts twice (two deliveries). The result is
at most eight groups (portal user? email? mailing address?) however large the roster: nothing is
loaded row by row.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, and_, case, exists, func, literal, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col

from services.core.errors import NotFound
from services.core.validation import LANGUAGES
from services.intake.score_reports import ScoreReport
from services.plan.advisor import FamilyGroup, RosterFacts
from services.roster import calpads
from services.roster.tables import LEA, Guardian, School, Student, StudentGuardian


def latest_year(session: Session, lea_id: int) -> int | None:
    """The most recent administration year with SSRs imported for the LEA."""
    return session.execute(
        select(func.max(ScoreReport.admin_year))
        .join(Student, col(Student.id) == col(ScoreReport.student_id))
        .where(col(Student.lea_id) == lea_id)
    ).scalar()


def current_year(session: Session, lea_id: int) -> int | None:
    """The LEA's current administration (the spring: 2026 is school year 2025-26): the one started
    with ``ssr-console year start``, else the latest imported. Batches, coverage, the advisor's
    SSR counts and the reports count this year only: TOMS keeps three years of SSRs, and last
    year's went out last year."""
    started = started_year(session, lea_id)
    return started if started is not None else latest_year(session, lea_id)


def started_year(session: Session, lea_id: int) -> int | None:
    """The school year the LEA started with ``year start``; None while it never did."""
    started = session.execute(select(col(LEA.school_year)).where(col(LEA.id) == lea_id)).scalar()
    return None if started is None else int(started)


def school_year_label(year: int) -> str:
    """An administration year as people name the school year: 2026 -> "2025-26"."""
    return f"{year - 1}-{year % 100:02d}"


def _filled(column: Any) -> ColumnElement[bool]:
    return and_(column.is_not(None), func.length(func.trim(column)) > 0)


HAS_EMAIL = _filled(col(Guardian.email))
"""A guardian with an email address on file (SQL); ``has_text`` is the same test in Python."""
HAS_ADDRESS = and_(_filled(col(Guardian.address_line1)), _filled(col(Guardian.zip_code)))
"""A guardian with a mailing address: a street line and a ZIP code."""


def has_text(value: str | None) -> bool:
    return bool(value and value.strip())


def may_receive(link: Any = StudentGuardian) -> ColumnElement[bool]:
    """SQL: the guardian of ``link`` may be sent this student's reports, on any channel: entitled
    to the student's records (custody, from the SIS) and not flagged "do not contact"."""
    barred = aliased(Guardian)  # its own alias: the outer query may hold Guardian too
    return and_(
        col(link.receives_records),
        ~exists().where(col(barred.id) == link.guardian_id, col(barred.do_not_contact)),
    )


def recipient(link: Any = StudentGuardian) -> ColumnElement[bool]:
    """SQL on ``link`` (StudentGuardian or an alias): its guardian receives this student's reports:
    they may (``may_receive``), and represent their household among the student's guardians who
    may: no other of them in the same household is primary when this one is not, or has a lower id
    at the same rank."""
    other = aliased(StudentGuardian)
    mine, theirs = aliased(Guardian), aliased(Guardian)
    represented = exists().where(
        other.student_id == link.student_id,
        other.guardian_id != link.guardian_id,
        may_receive(other),
        col(mine.id) == link.guardian_id,
        col(theirs.id) == other.guardian_id,
        col(mine.household) == theirs.household,  # NULL (no shared household) matches nobody
        or_(
            and_(col(other.is_primary), ~col(link.is_primary)),
            and_(other.is_primary == link.is_primary, other.guardian_id < link.guardian_id),
        ),
    )
    return and_(may_receive(link), ~represented)


def household_guardians(guardian: Any = Guardian) -> ColumnElement[int]:
    """SQL, correlated on ``guardian``: how many guardians of their household may receive some
    student's reports (``may_receive``): the guardians one family's delivery serves."""
    member, link = aliased(Guardian), aliased(StudentGuardian)
    shared = (
        select(func.count(func.distinct(member.id)))
        .join(link, col(link.guardian_id) == member.id)
        .where(col(member.household) == guardian.household, may_receive(link))
        .scalar_subquery()
    )
    return case((guardian.household.is_(None), 1), else_=shared)


def delivery_guardians(students: Any) -> Any:
    """Per student of ``students`` (columns ``sid``, ``ssrs``) and household: ``gid``, the family's
    guardian (``recipient``); a student nobody may receive the reports of has no row, one of two
    households has two."""
    return (
        select(
            students.c.sid,
            students.c.ssrs,
            col(StudentGuardian.guardian_id).label("gid"),
        )
        .join(students, students.c.sid == col(StudentGuardian.student_id))
        .where(recipient())
        .subquery("family_of")
    )


def english_fallback() -> ColumnElement[bool]:
    """SQL on Guardian: the console writes to this family in English although the roster gives
    it another language, one without a parent-message catalog: the guardian's own language is not
    one of ``validation.LANGUAGES``, or it is English and a child's CALPADS home language code is
    neither English nor one the console writes (``services.roster.calpads``)."""
    served = [*calpads.TO_FAMILY_LANGUAGE, *calpads.ENGLISH]
    other_home_language = (
        exists()
        .where(
            col(StudentGuardian.guardian_id) == col(Guardian.id),
            col(Student.id) == col(StudentGuardian.student_id),
            col(Student.home_language_code).is_not(None),
            col(Student.home_language_code).not_in(served),
        )
        .correlate(Guardian)
    )
    return or_(
        col(Guardian.preferred_language).not_in(list(LANGUAGES)),
        and_(col(Guardian.preferred_language) == "en", other_home_language),
    )


def roster_facts(engine: Engine, lea_id: int, school_id: int | None = None) -> RosterFacts:
    """Counts of students, families (households) by (portal, email, address), their SSRs, and
    the guardians entitled, for a scope."""
    with Session(engine) as session:
        lea = session.get(LEA, lea_id)
        if lea is None:
            raise NotFound(f"No LEA with id {lea_id}")
        scope_name = lea.name
        in_scope = [col(Student.lea_id) == lea_id, col(Student.withdrawn_at).is_(None)]
        if school_id is not None:
            school = session.get(School, school_id)
            if school is None or school.lea_id != lea_id:
                raise NotFound(f"No school with id {school_id} in {lea.name}")
            scope_name = school.name
            in_scope.append(col(Student.school_id) == school_id)
        year = current_year(session, lea_id)
        if (
            year is not None
            and not session.execute(
                select(
                    exists().where(
                        col(ScoreReport.admin_year) == year,
                        col(ScoreReport.student_id) == col(Student.id),
                        col(Student.lea_id) == lea_id,
                    )
                )
            ).scalar()
        ):
            year = None  # a year started before its SSRs arrive: one estimated SSR per student
        per_student: Select[Any, Any]
        if year is None:
            per_student = select(col(Student.id).label("sid"), literal(1).label("ssrs")).where(
                *in_scope
            )
        else:
            programs = func.count(func.distinct(col(ScoreReport.program)))
            per_student = (
                select(
                    col(Student.id).label("sid"),
                    case((programs == 0, 1), else_=programs).label("ssrs"),
                )
                .outerjoin(
                    ScoreReport,
                    and_(
                        col(ScoreReport.student_id) == col(Student.id),
                        col(ScoreReport.admin_year) == year,
                    ),
                )
                .where(*in_scope)
                .group_by(col(Student.id))
            )
        students = per_student.subquery("students")
        family_of = delivery_guardians(students)
        per_family = (
            select(family_of.c.gid, func.sum(family_of.c.ssrs).label("ssrs"))
            .group_by(family_of.c.gid)
            .subquery("families")
        )
        flags = (
            select(
                case((col(Guardian.uses_portal), 1), else_=0).label("portal"),
                case((HAS_EMAIL, 1), else_=0).label("email"),
                case((HAS_ADDRESS, 1), else_=0).label("address"),
                per_family.c.ssrs,
            )
            .join(per_family, per_family.c.gid == col(Guardian.id))
            .subquery("flags")
        )
        groups = session.execute(
            select(
                flags.c.portal, flags.c.email, flags.c.address, func.count(), func.sum(flags.c.ssrs)
            ).group_by(flags.c.portal, flags.c.email, flags.c.address)
        ).all()
        guardians = session.execute(
            select(func.count(func.distinct(col(StudentGuardian.guardian_id)))).where(
                col(StudentGuardian.student_id).in_(select(students.c.sid)), may_receive()
            )
        ).scalar_one()
        linked = exists().where(col(StudentGuardian.student_id) == students.c.sid)
        total, unlinked, unlinked_ssrs = session.execute(
            select(
                func.count(),
                func.coalesce(func.sum(case((~linked, 1), else_=0)), 0),
                func.coalesce(func.sum(case((~linked, students.c.ssrs), else_=0)), 0),
            ).select_from(students)
        ).one()
    return RosterFacts(
        scope=scope_name,
        students=int(total),
        groups=tuple(
            FamilyGroup(bool(p), bool(e), bool(a), int(n), int(s or 0))
            for p, e, a, n, s in sorted(groups, reverse=True)
        ),
        unlinked_students=int(unlinked),
        unlinked_ssrs=int(unlinked_ssrs),
        ssrs_estimated=year is None,
        guardians=int(guardians),
    )


def schools(engine: Engine, lea_id: int) -> list[tuple[int, str]]:
    """The LEA's schools as (id, name), by name, for choosing the advisor's scope."""
    with Session(engine) as session:
        rows = session.execute(
            select(col(School.id), col(School.name))
            .where(col(School.lea_id) == lea_id)
            .order_by(col(School.name))
        ).all()
    return [(int(i), str(n)) for i, n in rows]
