"""The batch list and live progress screens at 80x24, driven by keys with Textual's Pilot."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from textual.widgets import DataTable, Static

from screens.batch_progress import BatchProgressScreen
from screens.batches import BatchesScreen
from screens.new_batch import NewBatchScreen
from services.access import operators
from services.core import db
from services.core.db import session_scope
from services.core.settings import Settings
from services.delivery import batches
from services.delivery.ledger import BatchStatus, DeliveryBatch, DeliveryItem, ItemState
from services.roster.tables import Guardian
from tests.delivery_harness import copy_database, seeded_template
from tests.pilot import app_for, settle, text, until
from widgets.resolve_dialog import ResolveScreen

SIZE = (80, 24)


@pytest.fixture
def engine(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Iterator[Engine]:
    template = seeded_template(tmp_path_factory.getbasetemp(), students=40, seed=7)
    copy_database(template, tmp_path / "ssr.db")
    engine = db.make_engine(f"sqlite:///{tmp_path / 'ssr.db'}")
    yield engine
    engine.dispose()


def batch_with_problems(engine: Engine) -> tuple[int, list[int]]:
    """A batch whose first item failed (550) and second is uncertain mid-document."""
    batch_id = batches.create(
        engine, operators.resolve(engine, "caaspp"), batches.Selection(), name="Spring SSRs"
    )
    with session_scope(engine) as session:
        ids = list(
            session.exec(
                select(DeliveryItem.id)
                .where(DeliveryItem.batch_id == batch_id)
                .order_by(DeliveryItem.id)  # type: ignore[arg-type]
            ).all()
        )
        session.execute(
            update(DeliveryItem)
            .where(DeliveryItem.id == ids[0])  # type: ignore[arg-type]
            .values(state=ItemState.FAILED, error="document: 550 5.1.1 mailbox unavailable")
        )
        session.execute(
            update(DeliveryItem)
            .where(DeliveryItem.id == ids[1])  # type: ignore[arg-type]
            .values(
                state=ItemState.UNCERTAIN,
                uncertain_step="document",
                sealed_password="x",
                error="no answer after the message data",
                message_id="<42.doubt@example.org>",
                handed_at=datetime(2026, 11, 20, 9, 30, tzinfo=UTC),
            )
        )
    return batch_id, ids  # type: ignore[return-value]


def state_of(engine: Engine, item_id: int) -> ItemState:
    with Session(engine) as session:
        item = session.get(DeliveryItem, item_id)
        assert item is not None
        return item.state


def status_of(engine: Engine, batch_id: int) -> BatchStatus:
    with Session(engine) as session:
        batch = session.get(DeliveryBatch, batch_id)
        assert batch is not None
        return batch.status


async def test_progress_screen_keys_pause_resume_retry_resolve_cancel(
    engine: Engine, settings: Settings
) -> None:
    batch_id, ids = batch_with_problems(engine)
    app = app_for(engine, settings)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("b")
        await settle(pilot)
        assert isinstance(app.screen, BatchesScreen)
        assert app.screen.query_one(DataTable).row_count == 1
        await pilot.press("enter")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, BatchProgressScreen)
        assert "running" in text(screen, "#headline")
        figures = text(screen, "#figures")
        assert "failed 1" in figures and "uncertain 1" in figures and "ETA" in figures
        problems = screen.query_one("#problem-table", DataTable)
        assert problems.row_count == 2
        assert "550 5.1.1" in str(problems.get_row_at(0)[2])

        await pilot.press("p")
        await settle(pilot)
        assert status_of(engine, batch_id) is BatchStatus.PAUSED
        assert "paused" in text(screen, "#headline")
        await pilot.press("p")
        await settle(pilot)
        assert status_of(engine, batch_id) is BatchStatus.RUNNING

        await pilot.press("f")
        await settle(pilot)
        assert state_of(engine, ids[0]) is ItemState.PENDING

        problems.move_cursor(row=0)  # the uncertain item is now the only problem
        await pilot.press("u")
        await settle(pilot)
        assert isinstance(app.screen, ResolveScreen)
        dialog = str(app.screen.query_one(Static).render())
        with Session(engine) as session:
            item = session.get(DeliveryItem, ids[1])
            assert item is not None
            guardian = session.get(Guardian, item.guardian_id)
            assert guardian is not None
        assert f"family {guardian.last_name}, {guardian.first_name}" in dialog
        assert f"In doubt: the document (the PDF), email to {item.address}" in dialog
        assert "Message-ID <42.doubt@example.org>" in dialog
        assert "Handed to the relay 2026-11-20 09:30:00 UTC" in dialog
        await pilot.press("r")
        await settle(pilot)
        assert state_of(engine, ids[1]) is ItemState.PACKAGED

        await pilot.press("x")
        await settle(pilot)
        await pilot.press("n")  # not confirmed: nothing happens
        await settle(pilot)
        assert status_of(engine, batch_id) is BatchStatus.RUNNING
        await pilot.press("x")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        assert status_of(engine, batch_id) is BatchStatus.CANCELLED
        assert state_of(engine, ids[0]) is ItemState.CANCELLED


async def open_new_batch(app: Any, pilot: Any) -> None:
    """From the main menu to the New batch screen, as a coordinator presses it."""
    await pilot.press("b")
    await settle(pilot)
    await pilot.press("e")
    await settle(pilot)
    assert isinstance(app.screen, NewBatchScreen)


async def test_progress_refreshes_from_the_database_within_a_second(
    engine: Engine, settings: Settings
) -> None:
    batch_id, ids = batch_with_problems(engine)
    app = app_for(engine, settings)
    async with app.run_test(size=SIZE) as pilot:
        await app.push_screen(BatchProgressScreen(app.ctx, batch_id))
        await settle(pilot)
        screen = app.screen
        assert "0/" in text(screen, "#headline")
        with session_scope(engine) as session:  # a worker elsewhere finishes three families
            session.execute(
                update(DeliveryItem)
                .where(DeliveryItem.id.in_(ids[2:5]))  # type: ignore[union-attr]
                .values(state=ItemState.DONE)
            )
        await until(lambda: "3/" in text(screen, "#headline"), pilot, timeout=1.2)


async def test_new_batch_needs_a_dry_run_before_create(engine: Engine, settings: Settings) -> None:
    app = app_for(engine, settings)
    async with app.run_test(size=SIZE) as pilot:
        await open_new_batch(app, pilot)
        await pilot.press(*"Grade 3 spring", "tab", *"grade 33", "enter")
        await settle(pilot)
        assert "Not possible" in text(app.screen, "#preview")
        assert app.screen.query_one("#create").disabled
        for _ in range(2):
            await pilot.press("backspace")
        await pilot.press("3", "enter")
        await settle(pilot)
        preview = text(app.screen, "#preview")
        assert "families will get" in preview and "Spanish" in preview
        assert "Passwords go by email, 5 minutes after" in preview
        assert not app.screen.query_one("#create").disabled
        await pilot.click("#create")
        await settle(pilot)
        assert isinstance(app.screen, BatchesScreen)
        operator = operators.resolve(engine, "caaspp")
        [created] = batches.list_batches(engine, operator)
        assert created.name == "Grade 3 spring" and created.total > 0


async def test_new_batch_dry_run_says_what_was_left_out_and_a_resend_needs_a_reason(
    engine: Engine, settings: Settings
) -> None:
    """Grade 3 was delivered: a second grade 3 batch would send nobody anything, and the dry run
    says how many SSRs it leaves out and why; a re-send reason takes them again, audited."""
    caaspp = operators.resolve(engine, "caaspp")
    grade3 = batches.Selection(batches.Source.GRADE, grade=3)
    first = batches.dry_run(engine, caaspp, grade3)
    delivered = batches.create(engine, caaspp, grade3, name="Grade 3")
    with session_scope(engine) as session:
        session.execute(
            update(DeliveryItem)
            .where(DeliveryItem.batch_id == delivered)  # type: ignore[arg-type]
            .values(state=ItemState.DONE)
        )
    app = app_for(engine, settings)
    async with app.run_test(size=SIZE) as pilot:
        await open_new_batch(app, pilot)
        await pilot.press(*"Grade 3 again", "tab", *"grade 3", "enter")
        await settle(pilot)
        preview = text(app.screen, "#preview")
        assert "0 families will get 0 SSRs by email." in preview
        assert (
            f"Left out: {first.ssrs} SSRs ({first.ssrs} already sent, 0 in another batch); "
            f"{first.families} families have nothing new." in " ".join(preview.split())
        )
        assert app.screen.query_one("#create").disabled
        await pilot.press("tab", "tab", "tab", *"Lost in a mail outage", "enter")
        await settle(pilot)
        preview = text(app.screen, "#preview")
        assert f"{first.families} families will get {first.ssrs} SSRs by email." in preview
        assert "Re-send: SSRs families already have are sent again" in preview
        assert not app.screen.query_one("#create").disabled
        await pilot.click("#create")
        await settle(pilot)
        assert isinstance(app.screen, BatchesScreen)
    with Session(engine) as session:
        again = session.exec(select(DeliveryBatch).where(DeliveryBatch.id != delivered)).one()
    assert again.resend_reason == "Lost in a mail outage"
    assert again.total_items == first.families


async def test_helpdesk_may_not_open_batches(engine: Engine, settings: Settings) -> None:
    app = app_for(engine, settings, "helpdesk")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("b")
        await settle(pilot)
        assert not isinstance(app.screen, BatchesScreen)


async def test_new_batch_for_a_student_group_program_and_year(
    engine: Engine, settings: Settings
) -> None:
    """Scope ``group <name>`` sends to the families of the group's students (at its school),
    narrowed to one program and one administration year; a bad program is a plain refusal."""
    from sqlalchemy import func

    from services.intake.score_reports import ScoreReport
    from services.roster import groups as student_groups
    from services.roster.tables import School, Student

    caaspp = operators.resolve(engine, "caaspp")
    with Session(engine) as session:
        school_id, grade = session.exec(
            select(Student.school_id, Student.grade).order_by(Student.id).limit(1)
        ).one()
        year = session.exec(select(func.max(ScoreReport.admin_year))).one()
        assert session.get(School, school_id) is not None
    group = student_groups.create_from_filter(
        engine, caaspp, "Readers", "2025-26", student_groups.Filter(school_id, grade)
    )
    families = set(student_groups.guardian_ids(engine, caaspp, group.id))
    app = app_for(engine, settings)
    async with app.run_test(size=SIZE) as pilot:
        await open_new_batch(app, pilot)
        await pilot.press(*"Readers", "tab", *"group readers", "tab", *"SBAC", "enter")
        await settle(pilot)
        assert "'SBAC' is not a program" in text(app.screen, "#preview")
        for _ in range(4):
            await pilot.press("backspace")
        await pilot.press(*"caaspp", "tab", *str(year), "enter")
        await settle(pilot)
        assert "families will get" in text(app.screen, "#preview")
        assert not app.screen.query_one("#create").disabled
        await pilot.click("#create")
        await settle(pilot)
        assert isinstance(app.screen, BatchesScreen)
    with Session(engine) as session:
        [batch] = session.exec(select(DeliveryBatch)).all()
        chosen = set(
            session.exec(select(DeliveryItem.guardian_id).where(DeliveryItem.batch_id == batch.id))
        )
    assert (batch.source, batch.school_id, batch.program, batch.admin_year) == (
        "group",
        school_id,
        "CAASPP",
        year,
    )
    assert chosen and chosen <= families


async def test_dry_run_and_progress_say_the_days_a_daily_cap_needs(
    engine: Engine, settings: Settings
) -> None:
    settings.extra["smtp"] = {"per_minute": 60, "per_day": 20}  # ten families a day
    app = app_for(engine, settings)
    async with app.run_test(size=SIZE) as pilot:
        await open_new_batch(app, pilot)
        await pilot.press(*"Grade 3 spring", "tab", *"grade 3", "enter")
        await until(lambda: "daily cap" in text(app.screen, "#preview"), pilot)
        assert "daily cap of 20 messages spreads it over" in text(app.screen, "#preview")
        batch_id, _ = batch_with_problems(engine)
        await app.push_screen(BatchProgressScreen(app.ctx, batch_id))
        await until(lambda: "daily cap" in text(app.screen, "#figures"), pilot)
        assert "daily cap of 20 messages spreads it over" in text(app.screen, "#figures")
