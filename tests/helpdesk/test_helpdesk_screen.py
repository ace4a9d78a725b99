"""The help desk screens at 80x24, driven by keys: look up, open the family, resend (and the audit
rows it writes), correct an email address, move the channel, and a refused action."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from textual.app import App
from textual.widgets import DataTable, Input

from console.app import SSRConsoleApp
from screens.helpdesk import EmailApprovalsScreen, FamilyScreen, HelpDeskScreen
from services.access import operators
from services.audit import log as audit
from services.audit.tables import AuditEvent
from services.core import db
from services.core.settings import Settings
from services.delivery.ledger import DeliveryItem, ItemState
from services.helpdesk import email_changes
from services.plan.family_channel import FamilyChannel
from services.roster.tables import Guardian, Student, StudentGuardian
from tests.delivery_harness import copy_database, first_school_batch, seeded_template
from tests.pilot import app_for, notices, settle
from widgets.form_dialog import FormDialog
from widgets.timeline import Timeline

SIZE = (80, 24)


@pytest.fixture
def world(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Iterator[Engine]:
    template = seeded_template(tmp_path_factory.getbasetemp(), students=40, seed=7)
    copy_database(template, tmp_path / "ssr.db")
    engine = db.make_engine(f"sqlite:///{tmp_path / 'ssr.db'}")
    yield engine
    engine.dispose()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path / 'ssr.db'}", data_dir=tmp_path / "data")


def sent_family(engine: Engine) -> tuple[int, Student, Guardian]:
    """A secure-email batch for the first school whose first family has been sent everything
    (the states a worker leaves; the real sending is tested in test_helpdesk.py)."""
    batch_id, item = first_school_batch(engine)
    with Session(engine) as session:
        item.state = ItemState.DONE
        session.add(item)
        session.commit()
        guardian = session.get(Guardian, item.guardian_id)
        student = session.exec(
            select(Student)
            .join(StudentGuardian, col(StudentGuardian.student_id) == col(Student.id))
            .where(StudentGuardian.guardian_id == item.guardian_id, StudentGuardian.is_primary)
            .order_by(col(Student.id))
        ).first()
        assert guardian is not None and student is not None and item.id is not None
        return item.id, student, guardian


async def open_family(app: SSRConsoleApp, pilot, text: str) -> FamilyScreen:  # type: ignore[no-untyped-def]
    await pilot.press("h")
    await settle(pilot)
    assert isinstance(app.screen, HelpDeskScreen)
    assert app.focused is app.screen.query_one("#search", Input)
    app.screen.query_one("#search", Input).insert_text_at_cursor(text)  # a paste
    await pilot.press("enter")
    await settle(pilot)
    assert app.screen.query_one("#hits", DataTable).row_count >= 1
    await pilot.press("enter")
    await settle(pilot)
    assert isinstance(app.screen, FamilyScreen)
    return app.screen


def timeline_text(screen: FamilyScreen) -> str:
    timeline = screen.query_one(Timeline)
    return "\n".join(
        str(timeline.get_option_at_index(i).prompt) for i in range(timeline.option_count)
    )


async def type_into_dialog(app: App, pilot, *values: str) -> None:  # type: ignore[no-untyped-def,type-arg]
    assert isinstance(app.screen, FormDialog)
    for value in values:
        field = app.focused
        assert isinstance(field, Input)
        field.value = ""
        field.insert_text_at_cursor(value)
        await pilot.press("enter")
    await settle(pilot)


async def test_lookup_by_ssid_then_resend_with_reason_writes_audit_rows(
    world: Engine, settings: Settings
) -> None:
    item_id, student, guardian = sent_family(world)
    app = app_for(world, settings, "helpdesk")
    async with app.run_test(size=SIZE) as pilot:
        family = await open_family(app, pilot, student.ssid)
        card = str(family.query_one("#card").render())
        assert student.ssid in card and (guardian.email or "") in card
        assert "Secure email batch" in timeline_text(family)

        await pilot.press("f")  # resend the document
        await pilot.pause()
        assert isinstance(app.screen, FormDialog)
        await pilot.press("enter")  # no reason: refused in the dialog, nothing changes
        await settle(pilot)
        assert isinstance(app.screen, FormDialog)
        assert "reason" in str(app.screen.query_one("#error").render()).lower()
        await type_into_dialog(app, pilot, "Guardian says the email never arrived")
        assert app.screen is family
        assert "Resend of the document requested (new password) by helpdesk" in timeline_text(
            family
        )
    with Session(world) as session:
        item = session.get(DeliveryItem, item_id)
        rows = session.exec(
            select(AuditEvent).where(AuditEvent.target == f"delivery_item:{item_id}")
        ).all()
    assert item is not None and item.state is ItemState.PENDING and item.sealed_password is None
    assert [(r.action, r.operator, r.role) for r in rows] == [
        ("delivery.resend_document", "helpdesk", "helpdesk")
    ]
    assert "Guardian says the email never arrived" in rows[0].detail
    assert '"new_password":true' in rows[0].detail
    assert audit.verify(world).ok


async def test_password_resend_by_guardian_name(world: Engine, settings: Settings) -> None:
    item_id, student, guardian = sent_family(world)
    app = app_for(world, settings, "helpdesk")
    async with app.run_test(size=SIZE) as pilot:
        await open_family(app, pilot, f"{guardian.last_name} {guardian.first_name}")
        await pilot.press("k")
        await pilot.pause()
        await type_into_dialog(app, pilot, "Password email went to spam and was deleted")
    with Session(world) as session:
        actions = session.exec(
            select(AuditEvent.action).where(AuditEvent.target == f"delivery_item:{item_id}")
        ).all()
    assert actions == ["delivery.resend_password"]


async def test_correct_email_and_move_channel_by_keys(world: Engine, settings: Settings) -> None:
    item_id, student, guardian = sent_family(world)
    app = app_for(world, settings, "helpdesk")
    async with app.run_test(size=SIZE) as pilot:
        family = await open_family(app, pilot, (guardian.email or "")[:12])
        await pilot.press("e")
        await pilot.pause()
        await type_into_dialog(app, pilot, "not-an-address", "typo")
        assert isinstance(app.screen, FormDialog)  # refused; what was typed stays
        assert "not an email address" in str(app.screen.query_one("#error").render())
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("e")
        await pilot.pause()
        await type_into_dialog(
            app, pilot, "fixed.address@example.org", "typo on the enrolment form"
        )
        assert app.screen is family
        card = str(family.query_one("#card").render())
        assert "New email fixed.address@example.org asked by helpdesk" in card
        assert "waits for a coordinator" in card

        await pilot.press("m")
        await pilot.pause()
        await type_into_dialog(app, pilot, "Z", "wants paper")
        assert "A, B, C or D" in str(app.screen.query_one("#error").render())
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("m")
        await pilot.pause()
        await type_into_dialog(app, pilot, "c", "asked for paper at home")
        assert "Channel: C Print locally" in str(family.query_one("#card").render())
        assert "Moved to C Print locally by helpdesk" in timeline_text(family)
        await pilot.press("escape")  # back to the search results
        await pilot.pause()
        assert isinstance(app.screen, HelpDeskScreen)
    with Session(world) as session:
        guardian_rows = session.exec(
            select(AuditEvent.action).where(AuditEvent.target == f"guardian:{guardian.id}")
        ).all()
        moved = session.exec(select(FamilyChannel)).one()
        stored = session.get(Guardian, guardian.id)
    assert guardian_rows == ["guardian.email_change_requested", "family.channel_moved"]
    assert (moved.channel, moved.set_by, moved.reason) == (
        "C",
        "helpdesk",
        "asked for paper at home",
    )
    assert stored is not None and stored.email == guardian.email  # until a coordinator approves
    assert audit.verify(world).ok


async def test_tech_coordinator_cannot_open_the_help_desk(
    world: Engine, settings: Settings
) -> None:
    app = app_for(world, settings, "tech")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("h")
        await settle(pilot)
        assert not isinstance(app.screen, HelpDeskScreen)


async def test_a_coordinator_approves_a_help_desk_email_change_by_keys(
    world: Engine, settings: Settings
) -> None:
    """The help desk asks (e on the family), may not open the approvals (A); the coordinator
    opens them from the help desk (A), approves (y, enter), and the new address is on file, the
    family's timeline naming who asked and who approved."""
    _, student, guardian = sent_family(world)
    helper_app = app_for(world, settings, "helpdesk")
    async with helper_app.run_test(size=SIZE) as pilot:
        family = await open_family(helper_app, pilot, student.ssid)
        await pilot.press("e")
        await pilot.pause()
        await type_into_dialog(helper_app, pilot, "right.address@example.org", "typo on the form")
        assert helper_app.screen is family
        assert any("a coordinator approves it" in n for n in notices(helper_app))
        await pilot.press("escape")
        await settle(pilot)
        await pilot.press("A")
        await settle(pilot)
        assert isinstance(helper_app.screen, HelpDeskScreen)  # not for the help desk
        assert any("Only a coordinator approves" in n for n in notices(helper_app))

    app = app_for(world, settings, "caaspp")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("h")
        await settle(pilot)
        assert "1 email change(s) wait for your approval: tab, then A" in str(
            app.screen.query_one("#status").render()
        )
        await pilot.press("tab", "A")  # out of the search field, then the approvals
        await settle(pilot)
        approvals = app.screen
        assert isinstance(approvals, EmailApprovalsScreen)
        table = approvals.query_one("#changes", DataTable)
        assert table.row_count == 1
        assert "right.address@example.org" in str(table.get_row_at(0))
        assert "typo on the form" in str(approvals.query_one("#status").render())
        await pilot.press("y")
        await pilot.pause()
        assert isinstance(app.screen, FormDialog)
        await pilot.press("enter")
        await settle(pilot)
        assert app.screen is approvals
        assert any("Approved: the new address is on file" in n for n in notices(app))
        assert table.row_count == 0
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, HelpDeskScreen)
        await pilot.press("slash")
        app.screen.query_one("#search", Input).insert_text_at_cursor(student.ssid)
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        family = app.screen
        assert isinstance(family, FamilyScreen)
        assert "right.address@example.org" in str(family.query_one("#card").render())
        timeline = timeline_text(family)
        assert "Email address change asked (waits for a coordinator) by helpdesk" in timeline
        assert "Email address change approved by caaspp" in timeline
    with Session(world) as session:
        stored = session.get(Guardian, guardian.id)
    assert stored is not None and stored.email == "right.address@example.org"
    assert email_changes.pending(world, operators.resolve(world, "caaspp")) == []
    assert audit.verify(world).ok
