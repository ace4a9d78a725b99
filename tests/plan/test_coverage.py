"""Coverage on the demo LEA: after portal (A), secure email (B) and print (C) batches made from a
combined plan, the uncovered are exactly the families left out on purpose."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from services.channels import batches as channel_batches
from services.channels import paper_order, portal_readiness, print_batch
from services.channels.batches import Scope
from services.channels.print_batch import Handling, PrintOptions
from services.core import db
from services.core.channels import Option, channel_for
from services.core.columns import utcnow
from services.core.settings import Settings
from services.delivery import batches
from services.delivery.ledger import BatchStatus, DeliveryItem
from services.intake.score_reports import ScoreReport
from services.plan import coverage
from services.plan import decisions as plan
from services.plan.advisor import Answers
from services.roster.facts import has_text, roster_facts
from services.roster.tables import Guardian, StudentGuardian
from tests.channel_world import SEED, STUDENTS, World, world
from tests.credentials_world import record_credential
from tests.databases import SeedDemo


@pytest.fixture
def demo(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> World:
    return world(tmp_path_factory.getbasetemp(), tmp_path)


def family_channels(w: World, channels: tuple[Option, ...]) -> dict[int, Option | None]:
    """Each family (primary guardian) and its channel under ``channels``, computed in Python."""
    with Session(w.engine) as session:
        links = session.exec(select(StudentGuardian)).all()
        people = {g.id: g for g in session.exec(select(Guardian)).all()}
    primary: dict[int, int] = {}
    for link in sorted(links, key=lambda k: (not k.is_primary, k.guardian_id)):
        primary.setdefault(link.student_id, link.guardian_id)
    return {
        gid: channel_for(
            channels, portal=people[gid].uses_portal, email=has_text(people[gid].email)
        )
        for gid in set(primary.values())
    }


def combined_plan(w: World) -> tuple[Option, ...]:
    operator = w.operator()
    chosen = (Option.PORTAL, Option.SECURE, Option.PRINT)
    plan.save(
        w.engine,
        operator,
        Answers(True, True, False, 0.6),
        roster_facts(w.engine, operator.lea_id),
        channels=chosen,
        reason="portal first, email, then print for the rest",
    )
    return chosen


def portal_ready(w: World) -> None:
    operator = w.operator()
    record_credential(w.engine, operator)
    portal_readiness.save_setup(
        w.engine, operator, portal_readiness.Setup(True, "Aeries", True, None)
    )


def test_after_a_b_and_c_only_the_families_left_out_are_uncovered(demo: World) -> None:
    after_a_b_and_c(demo)


def test_the_same_on_postgresql(pg_url: str, tmp_path: Path, seed_demo: SeedDemo) -> None:
    engine = db.make_engine(pg_url)
    settings = Settings(database_url=pg_url, data_dir=tmp_path / "data")
    seed_demo(engine, settings, students=STUDENTS, seed=SEED, pdfs=True)
    try:
        after_a_b_and_c(World(engine, settings, tmp_path))
    finally:
        engine.dispose()


def after_a_b_and_c(w: World) -> None:
    """A + B + C from a combined plan, two print families left out; then D and a cancel."""
    operator = w.operator()
    channels = combined_plan(w)
    by_family = family_channels(w, channels)
    print_families = sorted(g for g, o in by_family.items() if o is Option.PRINT)
    assert len(print_families) >= 3 and any(o is Option.PORTAL for o in by_family.values())
    left_out = set(print_families[:2])

    before = coverage.summary(w.engine, operator)
    assert before.uncovered == before.students > 0

    portal_ready(w)
    portal = portal_readiness.publish(w.engine, operator)
    email = batches.create(
        w.engine, operator, batches.Selection(source=batches.Source.PLAN), name="Email"
    )
    printed = print_batch.create(
        w.engine,
        operator,
        name="Print the rest",
        exclude=left_out,
        options=PrintOptions(handling=Handling.HAND_OUT),
    )
    print_batch.run(w.engine, operator, printed.id, w.folder / "print", w.store)

    assert set(coverage.uncovered_families(w.engine, operator)) == left_out
    listed = coverage.uncovered(w.engine, operator, limit=1000)
    assert {u.guardian_id for u in listed} == left_out
    assert {u.why for u in listed} == {coverage.Why.NOT_IN_BATCH}

    after = coverage.summary(w.engine, operator)
    assert after.uncovered == len(listed)
    assert after.by_channel[Option.PORTAL] == portal.students
    assert after.by_channel[Option.PRINT] == printed.students
    assert after.by_channel[Option.SECURE] > 0 and email > 0
    assert after.by_channel[Option.PAPER] == 0
    assert after.several == 0 and after.once + after.uncovered == after.students
    assert f"Uncovered      {after.uncovered:,}" in after.text()

    # The families left out get paper from ETS: nothing is uncovered and no one is counted twice
    # by the batches made here (A, C, D never take a student already on a channel).
    paper_order.create(w.engine, operator, name="ETS for the rest", who=coverage.Who.ALL)
    final = coverage.summary(w.engine, operator)
    assert final.uncovered == 0 and final.several == 0
    assert final.by_channel[Option.PAPER] == sum(u.guardian_id in left_out for u in listed)

    # All four appear in the one batch list, newest first, with state and families done.
    listed_batches = batches.list_batches(w.engine, operator)
    assert [b.channel for b in listed_batches] == ["D", "C", "B", "A"]
    by_channel = {b.channel: b for b in listed_batches}
    assert by_channel["C"].status is BatchStatus.FINISHED
    assert by_channel["C"].done == 0, "printed, not yet mailed: not done"
    channel_batches.confirm_delivered(w.engine, operator, printed.id, utcnow().date())
    by_channel = {b.channel: b for b in batches.list_batches(w.engine, operator)}
    assert by_channel["C"].done == by_channel["C"].total == printed.families
    assert by_channel["D"].status is BatchStatus.RUNNING and by_channel["D"].done == 0

    # Cancelling the print batch takes its students off channel C again.
    channel_batches.cancel(w.engine, operator, printed.id)
    assert coverage.summary(w.engine, operator).uncovered == printed.students


def test_site_coordinator_sees_their_school_only(demo: World) -> None:
    w = demo
    site = w.operator("site")
    whole = coverage.summary(w.engine, w.operator())
    school = coverage.summary(w.engine, site)
    assert 0 < school.students < whole.students
    assert school.uncovered == school.students
    scoped = coverage.summary(w.engine, w.operator(), Scope(school_id=site.school_id))
    assert scoped == school


def test_last_years_reports_are_neither_counted_nor_printed(demo: World) -> None:
    w = demo
    operator = w.operator()
    with Session(w.engine) as session:
        report = session.exec(select(ScoreReport)).first()
        assert report is not None
        this_year = len(session.exec(select(ScoreReport)).all())
        old = ScoreReport.model_validate(report.model_dump(exclude={"id"}) | {"admin_year": 2025})
        session.add(old)
        session.commit()
    assert coverage.summary(w.engine, operator).students == STUDENTS
    batch = print_batch.create(w.engine, operator, name="This year", who=coverage.Who.ALL)
    result = print_batch.run(w.engine, operator, batch.id, w.folder / "print", w.store)
    assert result.reports == this_year
    assert channel_batches.get(w.engine, operator, batch.id).admin_year == 2026


def test_a_second_guardian_with_email_does_not_put_the_child_on_a_second_channel(
    engine: Engine,
) -> None:
    """s9's family is g7 (primary, address only: print); g6, its second guardian, has email. The
    plan's email batch goes to families, so s9 stays on print alone (plan.student_channel)."""
    from tests import advisor_roster
    from tests.plan.test_plan import HALF, _add_reports

    roster = advisor_roster.build(engine, other_lea=False)
    caaspp = roster.operators["caaspp"]
    plan.save(engine, caaspp, HALF, roster_facts(engine, roster.lea_id))
    ids = _add_reports(engine, "349")
    assert plan.student_channel(engine, ids["9"]) is Option.PRINT
    printed = print_batch.create(engine, caaspp, name="Print the rest")
    assert printed.students == 2  # s4 and s9
    batches.create(engine, caaspp, batches.Selection(source=batches.Source.PLAN), name="Email")
    with Session(engine) as session:
        emailed = set(session.exec(select(DeliveryItem.guardian_id)).all())
    assert emailed == {roster.guardians["g2"]}  # s3's family; never g6
    after = coverage.summary(engine, caaspp)
    assert after.several == 0
    assert after.by_channel[Option.PRINT] == 2 and after.by_channel[Option.SECURE] == 1


def test_families_in_english_for_want_of_texts_and_families_sent_a_translated_ssr(
    demo: World,
) -> None:
    """A Hmong-speaking family (no catalog: written to in English) is counted as falling back;
    a family whose Spanish SSR reached them is counted as sent a translated SSR."""
    from services.roster.tables import Student

    w = demo
    operator = w.operator()
    before = coverage.summary(w.engine, operator)
    assert (before.english_fallback, before.translated) == (0, 0)
    with Session(w.engine) as session:
        report = session.exec(select(ScoreReport).order_by(ScoreReport.id)).first()
        assert report is not None
        student = session.get(Student, report.student_id)
        assert student is not None
        link = session.exec(
            select(StudentGuardian).where(StudentGuardian.student_id == student.id)
        ).first()
        assert link is not None
        guardian = session.get(Guardian, link.guardian_id)
        assert guardian is not None
        student.home_language_code, guardian.preferred_language = "hmn", "en"
        session.add(
            ScoreReport.model_validate(report.model_dump(exclude={"id"}) | {"language": "es"})
        )
        session.add_all([student, guardian])
        session.commit()
    fallback = coverage.summary(w.engine, operator)
    assert fallback.english_fallback >= 1 and fallback.translated == 0
    assert "Families written to in English (no texts in their language)" in fallback.text()

    batch = print_batch.create(
        w.engine, operator, name="All", who=coverage.Who.ALL,
        options=PrintOptions(handling=Handling.HAND_OUT),
    )  # fmt: skip
    print_batch.run(w.engine, operator, batch.id, w.folder / "print", w.store)
    assert coverage.summary(w.engine, operator).translated == 0, "printed is not delivered"
    channel_batches.confirm_delivered(w.engine, operator, batch.id, utcnow().date())
    after = coverage.summary(w.engine, operator)
    assert after.translated == 1
    assert "Families sent a translated SSR 1" in after.text()
