"""The dashboard's deadline and batch panels: undelivered SSRs against the 20/30-day deadlines."""

from __future__ import annotations

from datetime import date

import pytest
from sqlmodel import Session, select

from services.access.tables import Operator
from services.core.programs import Program
from services.core.working_days import WorkingCalendar
from services.delivery import batches
from services.demo.district import RECEIVED
from services.reports import deadlines

CALENDAR = WorkingCalendar()


# One xdist worker runs this module (make test: --dist loadgroup): its fixture is built once.
pytestmark = pytest.mark.xdist_group("deadlines")


@pytest.fixture(scope="module")
def seeded(tmp_path_factory, templates):  # type: ignore[no-untyped-def]
    from services.core import db
    from services.core.settings import Settings

    root = tmp_path_factory.mktemp("deadlines")
    url = f"sqlite:///{root / 'ssr.db'}"
    engine = db.make_engine(url)
    templates.seed_demo(engine, Settings(url, root / "data"), students=40, seed=7)
    with Session(engine) as session:
        ops = {o.username: o for o in session.exec(select(Operator)).all()}
    return engine, ops


def test_nothing_is_past_due_the_day_after_receipt(seeded) -> None:  # type: ignore[no-untyped-def]
    engine, ops = seeded
    today = RECEIVED[Program.CAASPP].date()
    found = {p.program: p for p in deadlines.by_program(engine, ops["caaspp"], CALENDAR, today)}
    caaspp = found[Program.CAASPP]
    assert caaspp.undelivered == 40 and caaspp.past_due == 0
    assert caaspp.next_deadline == CALENDAR.deadline(Program.CAASPP, today)
    assert caaspp.due_next == 40


def test_everything_undelivered_is_past_due_months_later(seeded) -> None:  # type: ignore[no-untyped-def]
    engine, ops = seeded
    programs = deadlines.by_program(engine, ops["elpac"], CALENDAR, date(2026, 11, 25))
    assert {p.program for p in programs} == {Program.CAASPP, Program.ELPAC}
    for p in programs:
        assert p.past_due == p.undelivered > 0 and p.next_deadline is None
    text = deadlines.dashboard_text(engine, ops["caaspp"], CALENDAR, date(2026, 11, 25))
    assert "CAASPP: 40 SSRs not yet delivered" in text and "PAST DUE: 40" in text


def test_a_site_coordinator_counts_their_school_only(seeded) -> None:  # type: ignore[no-untyped-def]
    engine, ops = seeded
    today = date(2026, 11, 25)
    lea = deadlines.by_program(engine, ops["caaspp"], CALENDAR, today)
    site = deadlines.by_program(engine, ops["site"], CALENDAR, today)
    assert 0 < site[0].undelivered < lea[0].undelivered


def test_batches_panel_by_role(seeded) -> None:  # type: ignore[no-untyped-def]
    engine, ops = seeded
    assert "No delivery batches yet" in batches.dashboard_text(engine, ops["caaspp"])
    assert "run by the LEA and site coordinators" in batches.dashboard_text(engine, ops["helpdesk"])


def test_the_same_on_postgresql(pg_url: str, tmp_path, seed_demo) -> None:  # type: ignore[no-untyped-def]
    from services.core import db
    from services.core.settings import Settings

    engine = db.make_engine(pg_url)
    seed_demo(engine, Settings(pg_url, tmp_path / "data"), students=12, seed=7)
    with Session(engine) as session:
        caaspp = session.exec(select(Operator).where(Operator.username == "caaspp")).one()
    today = RECEIVED[Program.CAASPP].date()
    found = {p.program: p for p in deadlines.by_program(engine, caaspp, CALENDAR, today)}
    assert found[Program.CAASPP].undelivered == 12
    assert found[Program.CAASPP].next_deadline == CALENDAR.deadline(Program.CAASPP, today)
    engine.dispose()
