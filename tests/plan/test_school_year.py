"""School years (issue 19): the LEA's current year, and starting the next one, on SQLite and
PostgreSQL: a fresh plan and coverage, batches for the new administration, last year's plan kept
in the history, the credential and operators carried over, the refusals, and the CLI."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from services.access import operators
from services.audit import log as audit
from services.audit.tables import AuditEvent
from services.channels.batches import Scope as ChannelScope
from services.core import db
from services.core.errors import InvalidInput, PermissionDenied
from services.core.programs import Program
from services.core.settings import Settings
from services.core.working_days import WorkingCalendar
from services.credential import lifecycle as credentials
from services.delivery import batches
from services.intake.score_reports import ScoreReport
from services.plan import coverage, school_year
from services.plan import decisions as plan
from services.roster.facts import roster_facts
from services.roster.tables import Student
from tests import advisor_roster
from tests.accounts.test_onboarding_cli import SETUP, Cli
from tests.pilot import app_for, text, until
from tests.plan.test_plan import HALF

CALENDAR = WorkingCalendar(
    last_day_of_instruction=date(2026, 6, 4), first_day_of_next_year=date(2026, 8, 12)
)
IN_AUGUST = date(2026, 8, 20)


def test_starting_the_next_year(migrated_url: str) -> None:
    engine = db.make_engine(migrated_url)
    roster = advisor_roster.build(engine)  # SSRs of 2026 for s1 and s2, one of 2025
    caaspp, helpdesk = roster.operators["caaspp"], roster.operators["helpdesk"]
    assert school_year.current(engine, caaspp) == school_year.SchoolYear(2026, started=False)
    assert "School year 2025-26 (administration 2026)" in school_year.current(engine, caaspp).text()
    saved = plan.save(engine, caaspp, HALF, roster_facts(engine, roster.lea_id))
    assert plan.current(engine, roster.lea_id) == saved
    before = coverage.summary(engine, caaspp)
    assert before.students == 2  # s1 and s2; s3 has a 2025 report only
    credential = credentials.status(engine, roster.lea_id)

    with pytest.raises(PermissionDenied):
        school_year.start(engine, helpdesk, calendar=CALENDAR, today=IN_AUGUST)
    with pytest.raises(PermissionDenied):  # a site coordinator starts no year for the LEA
        school_year.start(engine, roster.operators["site"], calendar=CALENDAR, today=IN_AUGUST)
    with pytest.raises(InvalidInput, match=r"2025-26 is already under way .* next is 2026-27"):
        school_year.start(engine, caaspp, 2026, calendar=CALENDAR, today=IN_AUGUST)
    with pytest.raises(
        InvalidInput,
        match=r"2026-27 begins on 2026-08-12 \(\[calendar\] first_day_of_next_year\)",
    ):
        school_year.start(engine, caaspp, calendar=CALENDAR, today=date(2026, 8, 11))
    with pytest.raises(InvalidInput, match="begins on 2027-08-01"):  # a typo's year, no calendar
        school_year.start(engine, caaspp, 2028, today=IN_AUGUST)
    with pytest.raises(InvalidInput, match=r"2 student\(s\) of 2025-26 still wait .*--leave-owed"):
        school_year.start(engine, caaspp, calendar=CALENDAR, today=IN_AUGUST)
    assert school_year.current(engine, caaspp).year == 2026  # nothing changed

    started = school_year.start(engine, caaspp, calendar=CALENDAR, today=IN_AUGUST, leave_owed=True)
    assert started == school_year.Started(2027, 2026, owed=2, plans_closed=1)
    assert "School year 2026-27 started" in started.text()
    assert school_year.current(engine, helpdesk) == school_year.SchoolYear(2027, started=True)

    # a fresh plan and coverage; last year's plan stays in the history, filed under 2026
    assert plan.current(engine, roster.lea_id) is None
    assert [(p.id, p.school_year) for p in plan.history(engine, caaspp)] == [(saved.id, 2026)]
    assert coverage.summary(engine, caaspp).students == 0
    facts = roster_facts(engine, roster.lea_id)
    assert (facts.ssrs, facts.ssrs_estimated) == (9, True)  # one per student until 2027's arrive
    # last year's figures stay: coverage of 2026, named
    assert coverage.summary(engine, caaspp, ChannelScope(admin_year=2026)).students == 2
    selection = batches.scoped(engine, caaspp, batches.Selection())
    assert selection.admin_year == 2027  # a batch naming no year never takes 2026's reports
    # what is not a year's carries over
    assert credentials.status(engine, roster.lea_id) == credential
    assert operators.resolve(engine, "elpac").active
    this_year = plan.save(
        engine, roster.operators["elpac"], HALF, roster_facts(engine, roster.lea_id)
    )
    assert this_year.school_year == 2027 and plan.current(engine, roster.lea_id) == this_year

    with Session(engine) as session:
        event = session.exec(select(AuditEvent).where(AuditEvent.action == "year.start")).one()
        assert (event.operator, event.target) == ("caaspp", "lea:1234567")
        assert json.loads(event.detail) == {
            "year": 2027, "previous": 2026, "owed": 2, "plans_closed": 1
        }  # fmt: skip
        s1 = session.exec(select(Student).where(Student.ssid == f"{1:010d}")).first()
        assert s1 is not None and s1.id is not None
        session.add(
            ScoreReport(
                student_id=s1.id, program=Program.CAASPP, admin_year=2028, test="ELA",
                file_path="none.pdf", sha256="0" * 64,
            )
        )  # fmt: skip
        session.commit()
    assert audit.verify(engine).ok
    # a started year stays until the next is started, and says when newer SSRs are in
    now = school_year.current(engine, caaspp)
    assert (now.year, now.newer_imported) == (2027, 2028)
    assert "`ssr-console year start 2028` begins that year" in now.text()
    engine.dispose()


def test_year_start_from_the_command_line(tmp_path: Path) -> None:
    cli = Cli(tmp_path, None)
    assert cli(*SETUP).returncode == 0
    shown = cli("--operator", "maria", "year", "show")
    assert "School year: none yet (no SSRs imported)" in shown.stdout, shown.stderr
    started = cli("year", "start", "2027", "--operator", "maria")
    assert started.returncode == 0, started.stderr
    assert "School year 2026-27 started (administration 2027)" in started.stdout
    assert "School year 2026-27" in cli("year", "show", "--operator", "tran").stdout
    again = cli("year", "start", "2027", "--operator", "maria")
    assert again.returncode == 2 and "2026-27 is already under way" in again.stderr
    assert "Traceback" not in again.stderr
    nobody = cli("year", "start")
    assert nobody.returncode == 2 and "year needs an operator" in nobody.stderr


async def test_dashboard_coverage_and_advisor_show_the_school_year(
    engine: Engine, settings: Settings
) -> None:
    roster = advisor_roster.build(engine)
    app = app_for(engine, settings)
    async with app.run_test(size=(100, 40)) as pilot:
        await until(lambda: "all schools · 2025-26" in text(app, "#where"), pilot)
        await pilot.press("u")
        await until(lambda: "School year 2025-26" in text(app, "#summary"), pilot)
        school_year.start(engine, roster.operators["elpac"], today=IN_AUGUST, leave_owed=True)
        await pilot.press("a")
        await until(lambda: "Plan in force for 2026-27: No plan" in text(app, "#history"), pilot)
        await pilot.press("u")
        await until(
            lambda: "School year 2026-27\nNo SSRs received yet." in text(app, "#summary"), pilot
        )
        await pilot.press("d")
        await until(lambda: "all schools · 2026-27" in text(app, "#where"), pilot)
