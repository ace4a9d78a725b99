"""Aggregate reports: delivery states per channel, breakdowns that add up, deadline risk, cost,
scope (site coordinator, student group) — on SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from services.access import operators
from services.channels import paper_order
from services.channels.batches import Scope as ChannelScope
from services.core import db
from services.core.errors import NotFound, PermissionDenied
from services.core.programs import Program
from services.core.settings import Settings
from services.core.working_days import WorkingCalendar
from services.delivery import batches
from services.delivery.ledger import DeliveryItem, ItemState
from services.intake.score_reports import ScoreReport
from services.plan import coverage
from services.reports import aggregates as reports
from services.reports.aggregates import Dimension
from services.roster import groups as student_groups
from services.roster.groups import Filter
from services.roster.tables import School, Student, StudentGuardian

CAASPP_RECEIVED = datetime(2026, 6, 1, 16, 0, tzinfo=UTC)  # a Monday
ELPAC_RECEIVED = datetime(2026, 5, 20, 16, 0, tzinfo=UTC)


@pytest.fixture
def world(any_url: str, tmp_path, seed_demo) -> Engine:  # type: ignore[no-untyped-def]
    engine = db.make_engine(any_url)
    seed_demo(engine, Settings(any_url, tmp_path), students=60, seed=3, pdfs=False)
    with Session(engine) as session:
        students = session.exec(select(Student).order_by(Student.id)).all()
        for s in students:
            session.add(_report(s, Program.CAASPP, "SB", CAASPP_RECEIVED))
            if s.english_learner:
                session.add(_report(s, Program.ELPAC, "SUMMATIVE", ELPAC_RECEIVED))
        session.commit()
    yield engine
    engine.dispose()


def _report(student: Student, program: Program, test: str, at: datetime) -> ScoreReport:
    return ScoreReport(
        student_id=student.id,  # type: ignore[arg-type]
        program=program,
        admin_year=2026,
        test=test,
        language="en",
        file_path=f"/nowhere/{student.ssid}-{program.value}.pdf",
        sha256=f"{student.id:064d}",
        received_at=at,
    )


def _schools(engine: Engine) -> list[School]:
    with Session(engine) as session:
        return list(session.exec(select(School).order_by(School.id)))


def test_states_per_channel_and_breakdowns_add_up(world: Engine) -> None:
    caaspp = operators.resolve(world, "caaspp")
    first, second = _schools(world)[:2]
    batch_id = batches.create(
        world,
        caaspp,
        batches.Selection(source=batches.Source.SCHOOL, school_id=first.id),
        name="first school",
    )
    with Session(world) as session:
        items = session.exec(
            select(DeliveryItem).where(DeliveryItem.batch_id == batch_id).order_by(DeliveryItem.id)
        ).all()
        done, failed = items[0].guardian_id, items[1].guardian_id
        emailed = {i.guardian_id for i in items}
        session.execute(
            update(DeliveryItem).where(DeliveryItem.id == items[0].id).values(state=ItemState.DONE)
        )
        session.execute(
            update(DeliveryItem)
            .where(DeliveryItem.id == items[1].id)
            .values(state=ItemState.FAILED)
        )
        session.commit()
        links = session.exec(select(StudentGuardian.student_id, StudentGuardian.guardian_id)).all()
        students = {s.id: s for s in session.exec(select(Student))}
        programs = Counter(r for r in session.exec(select(ScoreReport.student_id)))
    order = paper_order.create(
        world,
        caaspp,
        name="second school paper",
        scope=ChannelScope(school_id=second.id),
        who=coverage.Who.ALL,
    )

    assert reports.refresh(world, caaspp) == sum(programs.values())

    # Expected, worked out here in Python from the same rows.
    guardians: dict[int, set[int]] = {}
    for sid, gid in links:
        guardians.setdefault(sid, set()).add(gid)
    expected: Counter[tuple[str, str]] = Counter()
    for sid, units in programs.items():
        student = students[sid]
        family = guardians.get(sid, set())
        if student.school_id == first.id and done in family:
            state = ("B Secure electronic", "delivered")
        elif student.school_id == first.id and family & (emailed - {failed}):
            state = ("B Secure electronic", "under way")
        elif student.school_id == first.id and failed in family:
            state = ("B Secure electronic", "failed")
        elif student.school_id == second.id and family:
            state = ("D Paper from ETS", "under way")
        else:
            state = ("No channel", "none")
        expected[state] += units
    by_channel = {r.label: r for r in reports.coverage(world, caaspp, Dimension.CHANNEL)}
    got: Counter[tuple[str, str]] = Counter()
    for label, row in by_channel.items():
        for name, n in (
            ("delivered", row.delivered),
            ("under way", row.on_channel),
            ("failed", row.failed),
            ("none", row.uncovered),
        ):
            if n:
                got[(label, name)] += n
    assert got == expected
    whole = reports.total(list(by_channel.values()))
    for dimension in Dimension:
        rows = reports.coverage(world, caaspp, dimension)
        assert reports.total(rows) == whole, dimension
    by_program = {r.label: r.units for r in reports.coverage(world, caaspp, Dimension.PROGRAM)}
    assert by_program["CAASPP"] == len(students)
    grades = [r.label for r in reports.coverage(world, caaspp, Dimension.GRADE)]
    assert grades == sorted(grades, key=lambda g: int(g.split()[-1]))

    costs = {c.option.value: c for c in reports.cost_by_channel(world, caaspp)}
    assert costs["D"].cost == Decimal(order.cost_cents) / 100 > 0  # as the order recorded it
    assert costs["B"].batches == 1 and costs["B"].cost == 0 and costs["C"].batches == 0


def test_deadline_risk_counts_only_undelivered_units_near_or_past_their_deadline(
    world: Engine,
) -> None:
    caaspp = operators.resolve(world, "caaspp")
    reports.refresh(world, caaspp)
    calendar = WorkingCalendar()
    caaspp_due = calendar.deadline(Program.CAASPP, CAASPP_RECEIVED.date())
    elpac_due = calendar.deadline(Program.ELPAC, ELPAC_RECEIVED.date())
    with Session(world) as session:
        learners = len(session.exec(select(Student.id).where(col(Student.english_learner))).all())
        everyone = len(session.exec(select(Student.id)).all())
    early = date(2026, 5, 21)
    assert reports.at_risk_count(world, caaspp, early, calendar) == 0
    # five working days before the ELPAC deadline only the ELPAC units are at risk
    near_elpac = calendar.add(elpac_due, -5)
    assert near_elpac < calendar.add(caaspp_due, -5)
    assert reports.at_risk_count(world, caaspp, near_elpac, calendar) == learners
    late = caaspp_due + timedelta(days=1)
    assert reports.at_risk_count(world, caaspp, late, calendar) == everyone + learners
    page = reports.at_risk(world, caaspp, late, calendar, limit=5)
    with pytest.raises(PermissionDenied):
        reports.at_risk(world, operators.resolve(world, "tech"), late, calendar)
    assert len(page) == 5 and page[0].program == "ELPAC" and page[0].deadline == elpac_due
    assert page[0].state == "in no batch"


def test_site_coordinator_and_group_scope(world: Engine) -> None:
    caaspp, site = operators.resolve(world, "caaspp"), operators.resolve(world, "site")
    reports.refresh(world, caaspp)
    assert reports.scope_for(world, site).school_id == site.school_id
    rows = reports.coverage(world, site, Dimension.SCHOOL)
    with Session(world) as session:
        school = session.get(School, site.school_id)
        members = session.exec(select(Student).where(Student.school_id == site.school_id)).all()
    assert [r.label for r in rows] == [school.name]  # type: ignore[union-attr]
    grade = members[0].grade
    group = student_groups.create_from_filter(
        world, caaspp, "One grade", "2025-26", Filter(school_id=site.school_id, grade=grade)
    )
    in_group = reports.coverage(world, caaspp, Dimension.GRADE, group.id)
    assert [(r.label, r.units) for r in in_group][0] == (
        f"Grade {grade}",
        reports.total(in_group).units,
    )
    other = next(s for s in _schools(world) if s.id != site.school_id)
    theirs = student_groups.create_from_filter(
        world, caaspp, "Elsewhere", "2025-26", Filter(school_id=other.id)
    )
    with pytest.raises(NotFound):
        reports.scope_for(world, site, theirs.id)
    with pytest.raises(PermissionDenied):
        reports.scope_for(world, operators.resolve(world, "helpdesk"))
    assert reports.is_stale(None)
    moment = reports.refreshed_at(world, site)
    assert moment is not None and not reports.is_stale(moment)


def test_two_refreshes_at_once_take_turns(world: Engine) -> None:
    from concurrent.futures import ThreadPoolExecutor

    caaspp = operators.resolve(world, "caaspp")
    with ThreadPoolExecutor(2) as pool:
        counts = list(pool.map(lambda _: reports.refresh(world, caaspp), range(2)))
    assert counts[0] == counts[1] > 0
    assert reports.total(reports.coverage(world, caaspp, Dimension.PROGRAM)).units == counts[0]


def test_only_the_latest_administration_counts(world: Engine) -> None:
    caaspp = operators.resolve(world, "caaspp")
    before = reports.refresh(world, caaspp)
    with Session(world) as session:
        student = session.exec(select(Student).order_by(Student.id)).first()
        assert student is not None
        old = _report(student, Program.CAASPP, "SB", datetime(2025, 6, 2, 16, 0, tzinfo=UTC))
        old.admin_year, old.sha256 = 2025, "f" * 64
        session.add(old)
        session.commit()
    assert reports.refresh(world, caaspp) == before
    # last year's SSR, received long ago, does not make the student overdue now
    assert reports.at_risk_count(world, caaspp, date(2026, 5, 21), WorkingCalendar()) == 0
