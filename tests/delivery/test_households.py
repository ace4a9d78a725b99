"""Entitled guardians (issue 19): every guardian the roster entitles to a student's records gets
the reports, one delivery per household; a guardian marked "do not contact", or without custody,
gets nothing on any channel; the advisor, coverage and the batches count the same families.

One demo student is given, besides their primary guardian: a parent at another address (a second
household, writing in Filipino), a parent in the primary guardian's household, one marked "do not
contact" and one without custody. The relay is aiosmtpd on loopback; storage SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from services.access import operators
from services.access.tables import Operator
from services.channels import print_batch
from services.channels.batches import ChannelItem
from services.core import db
from services.core.channels import Option
from services.core.errors import InvalidInput
from services.core.settings import Settings
from services.delivery import batches
from services.delivery.delivered import report_delivered, report_undelivered
from services.delivery.ledger import DeliveryItem
from services.delivery.worker import Worker, WorkerConfig
from services.intake.score_reports import ScoreReport
from services.plan import coverage
from services.plan import decisions as plan
from services.plan.advisor import Answers
from services.roster.facts import roster_facts
from services.roster.tables import Guardian, Student, StudentGuardian
from tests.databases import SeedDemo
from tests.delivery_harness import MailSink, check_family, smtp_settings

FAST = WorkerConfig(processes=1, poll_seconds=0.05, heartbeat_seconds=1.0, once_horizon_seconds=5)


@dataclass(frozen=True)
class World:
    engine: Engine
    settings: Settings
    operator: Operator
    student: int
    ssid: str
    first: int  # the primary guardian: the first household
    second: int  # a parent at another address: the second household
    barred: tuple[int, ...]  # same household as the first, "do not contact", no custody


def _guardian(session: Session, lea_id: int, name: str, **fields: object) -> int:
    guardian = Guardian(
        lea_id=lea_id, first_name=name, last_name="Santos", name_key=f"santos {name}", **fields
    )
    session.add(guardian)
    session.flush()
    assert guardian.id is not None
    return guardian.id


@pytest.fixture
def world(any_url: str, tmp_path: Path, sink: MailSink, seed_demo: SeedDemo) -> Iterator[World]:
    engine = db.make_engine(any_url)
    settings = Settings(any_url, tmp_path / "data", extra={"smtp": smtp_settings(sink)})
    seed_demo(engine, settings, students=12, seed=7)
    with Session(engine) as session:
        student = session.exec(select(Student).order_by(col(Student.id))).first()
        assert student is not None and student.id is not None
        links = session.exec(
            select(StudentGuardian).where(col(StudentGuardian.student_id) == student.id)
        ).all()
        primary = next(link for link in links if link.is_primary)
        for link in links:  # the student's guardians are only the ones made here
            if link is not primary:
                session.delete(link)
        first = session.get(Guardian, primary.guardian_id)
        assert first is not None
        first.email, first.household, first.do_not_contact = "ben@families.example", "h1", False
        session.add(first)
        extra = {
            "second": {"email": "maria@families.example", "preferred_language": "fil"},
            "same": {"email": "same@families.example", "household": "h1"},
            "barred": {"email": "barred@families.example", "do_not_contact": True},
            "custody": {"email": "custody@families.example"},
        }
        made = {k: _guardian(session, student.lea_id, k, **v) for k, v in extra.items()}
        for key, gid in made.items():
            session.add(
                StudentGuardian(
                    student_id=student.id,
                    guardian_id=gid,
                    is_primary=False,
                    receives_records=key != "custody",
                )
            )
        session.commit()
        world = World(
            engine,
            settings,
            operators.resolve(engine, "caaspp"),
            student.id,
            student.ssid,
            primary.guardian_id,
            made["second"],
            (made["same"], made["barred"], made["custody"]),
        )
    yield world
    engine.dispose()


def _items(w: World, batch_id: int) -> dict[int, int]:
    """The batch's items for the student's guardians: guardian id -> SSRs."""
    guardians = [w.first, w.second, *w.barred]
    with Session(w.engine) as session:
        rows = session.exec(
            select(DeliveryItem.guardian_id, DeliveryItem.ssr_count).where(
                col(DeliveryItem.batch_id) == batch_id, col(DeliveryItem.guardian_id).in_(guardians)
            )
        ).all()
    return {int(g): int(n) for g, n in rows}


def _delivered(w: World) -> bool:
    """The student's reports are with every household (``report_delivered``); on the way, every
    SSR of the LEA is either delivered or ``report_undelivered``, never both."""
    with Session(w.engine) as session:
        query = (
            select(
                func.count(),
                func.count().filter(report_delivered()),
                func.count().filter(report_undelivered()),
            )
            .select_from(ScoreReport)
            .join(Student, col(Student.id) == col(ScoreReport.student_id))
        )
        counts = session.execute(query.where(col(Student.id) == w.student)).one()
        everyone = session.execute(query).one()
    assert counts[0] > 0
    assert everyone[0] == everyone[1] + everyone[2] and counts[0] == counts[1] + counts[2]
    return bool(counts[0] == counts[1])


async def test_two_households_each_get_the_report_and_a_second_batch_sends_nothing(
    world: World, sink: MailSink, tmp_path: Path
) -> None:
    w = world
    lea = batches.Selection()
    batch_id = batches.create(w.engine, w.operator, lea, name="all", password_delay=timedelta(0))
    items = _items(w, batch_id)
    assert set(items) == {w.first, w.second}  # the same household, barred, no custody: nothing
    await Worker(w.engine, w.settings, config=FAST).run(once=True)

    received = {r.recipient: r for r in sink.received if r.step == "document"}
    passwords = {r.recipient: r for r in sink.received if r.step == "password"}
    for address in ("ben@families.example", "maria@families.example"):
        check_family(tmp_path, received[address], passwords[address])
    assert received["maria@families.example"].message["Content-Language"] == "fil"
    for address in ("same@families.example", "barred@families.example", "custody@"):
        assert not [r for r in sink.received if r.recipient.startswith(address)]
    assert _delivered(w)

    before = len(sink.received)
    with pytest.raises(InvalidInput, match="re-send"):
        batches.create(w.engine, w.operator, lea, name="again", password_delay=timedelta(0))
    assert batches.dry_run(w.engine, w.operator, lea).families == 0
    await Worker(w.engine, w.settings, config=FAST).run(once=True)
    assert len(sink.received) == before


async def test_a_household_not_yet_served_is_still_owed_the_report(world: World) -> None:
    w = world
    only_first = batches.Selection(source=batches.Source.LIST, guardian_ids=(w.first,))
    first = batches.create(
        w.engine, w.operator, only_first, name="first", password_delay=timedelta(0)
    )
    await Worker(w.engine, w.settings, config=FAST).run(once=True)
    assert set(_items(w, first)) == {w.first}
    assert not _delivered(w)  # the second household has nothing yet
    uncovered = coverage.uncovered(w.engine, w.operator, limit=500)
    assert [u.guardian_id for u in uncovered if u.ssid == w.ssid] == [w.second]

    second = batches.create(
        w.engine, w.operator, batches.Selection(), name="second", password_delay=timedelta(0)
    )
    items = _items(w, second)
    assert set(items) == {w.second}  # the first household's reports were taken: not again
    await Worker(w.engine, w.settings, config=FAST).run(once=True)
    assert _delivered(w)


def test_the_advisor_the_plan_batch_and_coverage_count_the_same_families(world: World) -> None:
    w = world
    facts = roster_facts(w.engine, w.operator.lea_id)
    plan.save(
        w.engine,
        w.operator,
        Answers(True, False, False, 0.0),
        facts,
        channels=(Option.SECURE, Option.PRINT),
        reason="secure email first, print for the rest",
    )
    preview = batches.dry_run(w.engine, w.operator, batches.Selection(batches.Source.PLAN))
    assert preview.families == facts.email_families > 0
    summary = coverage.summary(w.engine, w.operator)
    assert summary.families == facts.families
    assert summary.guardians == facts.guardians
    # the student's two households are two families, of three guardians entitled
    assert facts.guardians - facts.families >= 1
    batch_id = batches.create(
        w.engine, w.operator, batches.Selection(batches.Source.PLAN), name="plan"
    )
    assert set(_items(w, batch_id)) == {w.first, w.second}
    with Session(w.engine) as session:
        addressed = session.exec(
            select(func.count()).where(col(DeliveryItem.batch_id) == batch_id)
        ).one()
    assert addressed == preview.families


def test_print_mails_each_household_and_paper_orders_each_student_once(world: World) -> None:
    """A print run holds the student once per household (one envelope each); an ETS paper order
    once (ETS prints one set per student); the barred guardians are on neither."""
    w = world
    _, chosen = coverage.choose(w.engine, w.operator, Option.PAPER, who=coverage.Who.ALL)
    rows = chosen.subquery()
    with Session(w.engine) as session:
        ordered = session.exec(select(rows.c.gid).where(rows.c.sid == w.student)).all()
    assert ordered == [w.first]
    batch = print_batch.create(w.engine, w.operator, name="print", who=coverage.Who.ALL)
    with Session(w.engine) as session:
        printed = session.exec(
            select(ChannelItem.guardian_id).where(
                col(ChannelItem.batch_id) == batch.id, col(ChannelItem.student_id) == w.student
            )
        ).all()
    assert sorted(printed) == sorted([w.first, w.second])
