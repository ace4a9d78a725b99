"""What the roster import decides reaches every channel: a withdrawn student leaves new batches,
coverage and deadlines; a guardian the SIS bars (do not contact, no custody) is sent nothing on
any channel; a household gets one envelope. On the demo LEA, which came in through the import."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlmodel import Session, col, select

from services.channels import print_batch
from services.core.channels import Option
from services.core.columns import utcnow
from services.core.errors import InvalidInput
from services.core.working_days import WorkingCalendar
from services.delivery import batches
from services.intake.score_reports import ScoreReport
from services.plan import coverage
from services.reports import deadlines
from services.roster.tables import Guardian, Student, StudentGuardian
from tests.channel_world import World, world

CHANNELS = (Option.PORTAL, Option.PRINT, Option.PAPER)


@pytest.fixture
def demo(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> World:
    return world(tmp_path_factory.getbasetemp(), tmp_path)


def chosen(w: World, channel: Option) -> set[tuple[int, int]]:
    _, students = coverage.choose(w.engine, w.operator(), channel, who=coverage.Who.ALL)
    with Session(w.engine) as session:
        return {(sid, gid) for sid, gid in session.execute(students)}


def secure_families(w: World, selection: batches.Selection | None = None) -> int:
    """Families a secure-email batch would take, with an email address or without."""
    dry = batches.dry_run(w.engine, w.operator(), selection or batches.Selection())
    return dry.families + dry.without_email


def undelivered(w: World) -> int:
    rows = deadlines.by_program(w.engine, w.operator(), WorkingCalendar(), date(2026, 8, 1))
    return sum(r.undelivered for r in rows)


def first_family(w: World) -> tuple[int, int, int]:
    """(student id, their primary guardian, that student's SSR count) of a one-guardian family."""
    with Session(w.engine) as session:
        for link in session.exec(select(StudentGuardian).order_by(col(StudentGuardian.student_id))):
            others = session.exec(
                select(StudentGuardian).where(col(StudentGuardian.guardian_id) == link.guardian_id)
            ).all()
            guardians = session.exec(
                select(StudentGuardian).where(col(StudentGuardian.student_id) == link.student_id)
            ).all()
            if len(others) == 1 and len(guardians) == 1:
                ssrs = session.exec(
                    select(ScoreReport).where(col(ScoreReport.student_id) == link.student_id)
                ).all()
                return link.student_id, link.guardian_id, len(ssrs)
    raise AssertionError("the demo has no one-child, one-guardian family")


def test_a_withdrawn_student_leaves_batches_coverage_and_deadlines(demo: World) -> None:
    w = demo
    sid, gid, ssrs = first_family(w)
    before = (secure_families(w), undelivered(w), coverage.summary(w.engine, w.operator()).students)
    assert all((sid, gid) in chosen(w, c) for c in CHANNELS)
    with Session(w.engine) as session:
        session.execute(update(Student).where(col(Student.id) == sid).values(withdrawn_at=utcnow()))
        session.commit()
    assert not any(sid in {s for s, _ in chosen(w, c)} for c in CHANNELS)
    after = (secure_families(w), undelivered(w), coverage.summary(w.engine, w.operator()).students)
    assert after == (before[0] - 1, before[1] - ssrs, before[2] - 1)
    with Session(w.engine) as session:
        assert session.get(Student, sid) is not None  # kept, with their history


@pytest.mark.parametrize("bar", [{"do_not_contact": True}, "custody"])
def test_a_barred_guardian_is_sent_nothing_on_any_channel(demo: World, bar: object) -> None:
    w = demo
    sid, gid, _ = first_family(w)
    families = secure_families(w)
    with Session(w.engine) as session:
        if bar == "custody":
            session.execute(
                update(StudentGuardian)
                .where(col(StudentGuardian.guardian_id) == gid)
                .values(receives_records=False)
            )
        else:
            session.execute(update(Guardian).where(col(Guardian.id) == gid).values(**bar))  # type: ignore[arg-type]
        session.commit()
    for channel in CHANNELS:
        assert not any(g == gid for _, g in chosen(w, channel)), channel
    assert secure_families(w) == families - 1
    only_them = batches.Selection(source=batches.Source.LIST, guardian_ids=(gid,))
    assert secure_families(w, only_them) == 0
    with pytest.raises(InvalidInput):
        batches.create(w.engine, w.operator(), only_them, name="Only them")


def test_one_envelope_per_household(demo: World) -> None:
    w = demo
    operator = w.operator()
    families = sorted({g for _, g in chosen(w, Option.PRINT)})  # one guardian per student
    with Session(w.engine) as session:
        one, two = (session.get(Guardian, g) for g in families[:2])
        assert one and two and one.household and two.household != one.household
        # the same home: as the import keys two parents of the same children at one address
        session.execute(
            update(Guardian)
            .where(col(Guardian.id) == two.id)
            .values(household=one.household, address_line1=one.address_line1, zip_code=one.zip_code)
        )
        session.commit()
        one_id, two_id = one.id, two.id
    preview = print_batch.preview(w.engine, operator, who=coverage.Who.ALL)
    batch = print_batch.create(w.engine, operator, name="Households", who=coverage.Who.ALL)
    result = print_batch.run(w.engine, operator, batch.id, w.folder / "print", w.store)
    assert result.families == preview.families
    with open(result.manifest, encoding="utf-8") as handle:  # type: ignore[arg-type]
        families = [line.split(",")[0] for line in handle.readlines()[1:]]
    assert [f for f in families if f in (str(one_id), str(two_id))] != []
    assert (str(one_id) in families) != (str(two_id) in families)  # one envelope for both
    assert len(families) == len(set(families))
