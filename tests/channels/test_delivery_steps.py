"""What "delivered" means per channel, on SQLite and PostgreSQL: ETS paper is ordered by SSID from
the roster (no download needed), received at the LEA, then mailed; a print run is printed, then
mailed. Only the operator's confirmation of the mailing day delivers, and the deadline clock
(``services.delivery.delivered``, read by the deadlines panel and the reports) stops on that day."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from services.access import operators
from services.channels import batches as channel_batches
from services.channels import paper_order
from services.channels.batches import ChannelItem, ChannelItemState
from services.core import db
from services.core.channels import Option
from services.core.columns import utcnow
from services.core.errors import InvalidInput
from services.core.programs import Program
from services.core.settings import Settings
from services.core.working_days import WorkingCalendar
from services.intake.score_reports import ScoreReport
from services.plan import decisions as plan
from services.plan.advisor import Answers
from services.reports import aggregates, deadlines
from services.roster.facts import roster_facts
from services.roster.tables import Guardian, Student, StudentGuardian
from tests.databases import SeedDemo

NO_PORTAL = Answers(has_sis=True, sis_portal=False, third_party_portal=False, portal_share=0.0)


@pytest.fixture
def roster_only(any_url: str, tmp_path: Path, seed_demo: SeedDemo) -> Iterator[Engine]:
    """The demo LEA's roster, on either database, with no SSR downloaded from TOMS."""
    engine = db.make_engine(any_url)
    settings = Settings(database_url=any_url, data_dir=tmp_path / "data")
    seed_demo(engine, settings, students=30, seed=5, pdfs=False)
    yield engine
    engine.dispose()


def families_without_email(engine: Engine) -> set[str]:
    """SSIDs of the students whose family (primary guardian, else the first) has no email:
    the families a B-then-D plan sends paper to. Worked out here in Python."""
    with Session(engine) as session:
        links = session.exec(select(StudentGuardian)).all()
        emails = {g.id: g.email for g in session.exec(select(Guardian)).all()}
        ssids = dict(session.exec(select(Student.id, Student.ssid)).all())
    family: dict[int, tuple[bool, int]] = {}
    for link in links:
        key = (not link.is_primary, link.guardian_id)
        family[link.student_id] = min(family.get(link.student_id, key), key)
    return {
        ssids[sid]
        for sid, (_, gid) in family.items()
        if not (emails[gid] and emails[gid].strip())  # type: ignore[union-attr]
    }


def paper_plan(engine: Engine) -> None:
    caaspp = operators.resolve(engine, "caaspp")
    facts = roster_facts(engine, caaspp.lea_id)
    plan.save(
        engine,
        caaspp,
        NO_PORTAL,
        facts,
        channels=[Option.SECURE, Option.PAPER],
        reason="paper from ETS for families without email",
    )


def test_an_ets_paper_order_needs_no_downloaded_ssr(roster_only: Engine, tmp_path: Path) -> None:
    engine = roster_only
    paper_plan(engine)
    expected = families_without_email(engine)
    assert expected, "the demo has families without email"
    caaspp = operators.resolve(engine, "caaspp")
    figures = paper_order.preview(engine, caaspp)
    assert figures.students == figures.estimated == figures.ssrs == len(expected)
    assert figures.ets_cost == figures.rate * len(expected)
    batch = paper_order.create(engine, caaspp, name="ETS paper")
    assert batch.students == len(expected)
    path = tmp_path / "ets.csv"
    assert paper_order.export_csv(engine, caaspp, batch.id, path) == len(expected)  # type: ignore[arg-type]
    lines = path.read_text(encoding="utf-8").splitlines()[1:]
    assert {line.split(",")[0] for line in lines} == expected


def add_reports(engine: Engine, received: date) -> None:
    """A CAASPP SSR for every student, received on ``received`` (paper and print never open
    the file, so none is written)."""
    with Session(engine) as session:
        for sid in session.exec(select(Student.id)).all():
            session.add(
                ScoreReport(
                    student_id=sid,
                    program=Program.CAASPP,
                    admin_year=2026,
                    test="ELA",
                    file_path=f"none/{sid}.pdf",
                    sha256="0" * 64,
                    received_at=utcnow().replace(
                        year=received.year, month=received.month, day=received.day
                    ),
                )
            )
        session.commit()


def undelivered(engine: Engine) -> int:
    caaspp = operators.resolve(engine, "caaspp")
    found = deadlines.by_program(engine, caaspp, WorkingCalendar(), utcnow().date())
    return sum(p.undelivered for p in found)


def test_paper_is_delivered_when_mailed_not_when_received(roster_only: Engine) -> None:
    engine = roster_only
    today = utcnow().date()
    add_reports(engine, today - timedelta(days=3))
    paper_plan(engine)
    caaspp = operators.resolve(engine, "caaspp")
    before = undelivered(engine)
    batch = paper_order.create(engine, caaspp, name="ETS paper")
    assert batch.id is not None
    assert undelivered(engine) == before  # ordered: on its way, not delivered
    paper_order.mark_received(engine, caaspp, batch.id)
    progress = channel_batches.progress(engine, caaspp, batch.id)
    assert progress == {ChannelItemState.RECEIVED: batch.students}
    assert undelivered(engine) == before  # at the LEA, not with the families
    aggregates.refresh(engine, caaspp)
    whole = aggregates.total(aggregates.coverage(engine, caaspp, aggregates.Dimension.CHANNEL))
    assert whole.in_hand == batch.students and whole.delivered == 0

    with pytest.raises(InvalidInput, match="between"):
        channel_batches.confirm_delivered(engine, caaspp, batch.id, today + timedelta(days=1))
    mailed = today - timedelta(days=0)
    assert channel_batches.confirm_delivered(engine, caaspp, batch.id, mailed) == batch.students
    assert undelivered(engine) == before - batch.students
    with Session(engine) as session:
        days = set(
            session.exec(
                select(ChannelItem.delivered_on).where(col(ChannelItem.batch_id) == batch.id)
            ).all()
        )
    assert days == {mailed}
    aggregates.refresh(engine, caaspp)
    whole = aggregates.total(aggregates.coverage(engine, caaspp, aggregates.Dimension.CHANNEL))
    assert whole.in_hand == 0 and whole.delivered == batch.students
    with pytest.raises(InvalidInput, match="waiting to be mailed"):
        channel_batches.confirm_delivered(engine, caaspp, batch.id, mailed)
