"""ETS paper orders (option D) on the demo LEA: counts, cost, the CSV by SSID, coverage, refusals."""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from services.audit.tables import AuditEvent
from services.channels import batches as channel_batches
from services.channels import paper_order
from services.channels.batches import ChannelItemState, Scope
from services.core.channels import Option
from services.core.errors import ConsoleError, InvalidInput, PermissionDenied
from services.delivery.ledger import BatchStatus
from services.intake.score_reports import ScoreReport
from services.plan import coverage
from services.plan.advisor import Rates
from services.roster.tables import School, Student
from tests.channel_world import World, world


@pytest.fixture
def demo(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> World:
    return world(tmp_path_factory.getbasetemp(), tmp_path)


def reports_of(w: World, **where: object) -> list[tuple[str, str]]:
    """(SSID, program) of every SSR of the students matching ``where``, computed here."""
    with Session(w.engine) as session:
        statement = select(Student.ssid, ScoreReport.program).join(
            ScoreReport, col(ScoreReport.student_id) == col(Student.id)
        )
        for name, value in where.items():
            statement = statement.where(getattr(Student, name) == value)
        return sorted((s, str(p)) for s, p in session.exec(statement).all())


def test_order_for_a_school_class_and_the_lea(demo: World) -> None:
    w = demo
    operator = w.operator()
    with Session(w.engine) as session:
        school = session.exec(select(School).order_by(col(School.id))).first()
    assert school is not None and school.id is not None
    grade = min(_grades(w, school.id))
    # A class (one grade of one school), then the school: counts agree with the roster.
    for scope, where in (
        (Scope(school_id=school.id, grade=grade), {"school_id": school.id, "grade": grade}),
        (Scope(school_id=school.id), {"school_id": school.id}),
    ):
        figures = paper_order.preview(w.engine, operator, scope=scope, who=coverage.Who.ALL)
        expected = reports_of(w, **where)
        assert figures.ssrs == len(expected) and figures.offered
        assert figures.ets_cost == Decimal("1.48") * len(expected)

    # The whole LEA, recorded as a batch: every student is now covered by D.
    figures = paper_order.preview(w.engine, operator, who=coverage.Who.ALL)
    batch = paper_order.create(w.engine, operator, name="ETS order 2026", who=coverage.Who.ALL)
    assert batch.channel == "D" and batch.status is BatchStatus.RUNNING
    assert batch.ssrs == figures.ssrs == len(reports_of(w))
    mailing = (Decimal("0.05") + Decimal("0.78")) * figures.mailed_families
    assert figures.cost == Decimal("1.48") * figures.ssrs + mailing
    assert batch.cost_cents == int(figures.cost * 100)
    summary = coverage.summary(w.engine, operator)
    assert summary.by_channel[Option.PAPER] == summary.students == summary.once

    # The CSV: one line per SSR, by SSID, with the school's CDS code.
    (w.folder / "blocked").write_text("a file, not a folder")
    with pytest.raises(ConsoleError, match="Could not write the order list"):
        paper_order.export_csv(w.engine, operator, batch.id, w.folder / "blocked" / "ets.csv")
    path = w.folder / "orders" / "ets.csv"
    assert paper_order.export_csv(w.engine, operator, batch.id, path) == figures.ssrs
    with path.open(encoding="utf-8") as handle:
        lines = list(csv.DictReader(handle))
    assert [(r["ssid"], r["program"]) for r in lines] == reports_of(w)
    assert all(len(r["school_cds"]) == 14 and r["admin_year"] == "2026" for r in lines)

    # Received from ETS: done and finished; a second time is refused.
    paper_order.mark_received(w.engine, operator, batch.id)
    states = channel_batches.progress(w.engine, operator, batch.id)
    assert set(states) == {ChannelItemState.RECEIVED}
    with pytest.raises(InvalidInput, match="not waiting for paper"):
        paper_order.mark_received(w.engine, operator, batch.id)
    with Session(w.engine) as session:
        actions = set(session.exec(select(AuditEvent.action)).all())
    assert {"channel_batch.create.D", "channel_batch.export.D", "channel_batch.finish.D"} <= actions


def _grades(w: World, school_id: int) -> set[int]:
    with Session(w.engine) as session:
        return set(session.exec(select(Student.grade).where(Student.school_id == school_id)).all())


def test_stuffed_rate_and_where_ets_offers_no_paper(demo: World) -> None:
    w = demo
    operator = w.operator()
    stuffed = paper_order.preview(
        w.engine, operator, who=coverage.Who.ALL, rates=Rates(ets_stuffed=True)
    )
    assert stuffed.rate == Decimal("2.00")
    assert (
        stuffed.cost == Decimal("2.00") * stuffed.ssrs + Decimal("0.78") * stuffed.mailed_families
    )
    gone = Rates(ets_offered=False)
    figures = paper_order.preview(w.engine, operator, who=coverage.Who.ALL, rates=gone)
    assert not figures.offered and "no longer offers paper" in figures.note
    with pytest.raises(InvalidInput, match="no longer offers paper"):
        paper_order.create(w.engine, operator, name="x", who=coverage.Who.ALL, rates=gone)
    with pytest.raises(PermissionDenied):
        paper_order.create(w.engine, w.operator("tech"), name="x", who=coverage.Who.ALL)
    site = w.operator("site")
    with pytest.raises(InvalidInput, match="their own school"):
        paper_order.create(
            w.engine,
            site,
            name="x",
            who=coverage.Who.ALL,
            scope=Scope(school_id=site.school_id + 1),
        )
    _plan_without_paper(w)
    with pytest.raises(InvalidInput, match="does not use D"):
        paper_order.create(w.engine, operator, name="Plan", who=coverage.Who.PLAN)


def _plan_without_paper(w: World) -> None:
    from services.plan import decisions as plan
    from services.plan.advisor import Answers
    from services.roster.facts import roster_facts

    operator = w.operator()
    plan.save(
        w.engine,
        operator,
        Answers(True, True, False, 0.6),
        roster_facts(w.engine, operator.lea_id),
    )
