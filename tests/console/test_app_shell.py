"""The app shell driven by keys at 80x24: every destination, help overlay, palette, refusals."""

from __future__ import annotations

import gc

import pytest
from sqlalchemy import func, select
from sqlmodel import Session
from textual.binding import Binding
from textual.command import CommandList
from textual.filter import Monochrome
from textual.widgets import Input, TextArea

from console.navigation import DESTINATIONS
from screens.audit_log import AuditLogScreen
from screens.dashboard import DashboardScreen
from screens.help import HelpScreen
from screens.students import StudentsScreen
from services.reports.dashboard import Banner
from services.roster.tables import Guardian, Student
from tests.pilot import app_for, notices, settle, until
from widgets.banner import BannerBar

SIZE = (80, 24)


@pytest.fixture
def seeded(engine, settings, seed_demo):  # type: ignore[no-untyped-def]
    """The demo LEA (rows only): three schools, one operator per role."""
    seed_demo(engine, settings, students=150, seed=7, pdfs=False)
    return engine


async def test_dashboard_opens_first_with_operator_role_and_lea_in_title(seeded, settings) -> None:  # type: ignore[no-untyped-def]
    app = app_for(seeded, settings, "caaspp")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, DashboardScreen)
        assert app.sub_title.startswith("Dana Whitfield · LEA CAASPP coordinator · Sierra Vista")
        with Session(seeded) as session:
            students = session.scalar(select(func.count()).select_from(Student))
            guardians = session.scalar(select(func.count()).select_from(Guardian))
        roster = str(app.screen.query_one("#roster").render())
        assert f"Students   {students:,}" in roster and f"Guardians  {guardians:,}" in roster


async def test_every_destination_by_key_with_help_overlay_and_esc_back(seeded, settings) -> None:  # type: ignore[no-untyped-def]
    app = app_for(seeded, settings, "caaspp")
    async with app.run_test(size=SIZE) as pilot:
        for destination in DESTINATIONS:
            await pilot.press(destination.key)
            await settle(pilot)
            screen = app.screen
            assert len(app.screen_stack) == (1 if destination.key == "d" else 2)
            typing = isinstance(app.focused, Input | TextArea)  # there ? is a character; f1 helps
            await pilot.press("f1" if typing else "question_mark")
            await pilot.pause()
            assert isinstance(app.screen, HelpScreen), destination.title
            listed = {(k.key, k.description) for k in app.screen.keys}
            # the overlay lists exactly the keys that work there: while typing in a field,
            # letters and ? are text, so only the other keys are listed
            bindings = screen.active_bindings
            active = {k for k, b in bindings.items() if not b.binding.system}
            assert {app.get_key_display(Binding(k, "")) for k in active} == {k for k, _ in listed}
            assert ("esc", "Back") in listed or bindings["escape"].node is not app
            if not typing:
                assert {("?", "Help"), ("q", "Quit")} <= listed
            for d in DESTINATIONS:
                if d.key in active and bindings[d.key].node is app:  # not taken by the screen
                    assert (d.key, f"Go to {d.title}") in listed
            await pilot.press("escape")
            await pilot.pause()
            assert app.screen is screen
            await pilot.press("escape")
            await pilot.pause()
            assert isinstance(app.screen, DashboardScreen), (
                app.focused,
                app.screen.active_bindings.get("escape"),
            )
            assert len(app.screen_stack) == 1


async def test_help_lists_the_screens_own_keys(seeded, settings) -> None:  # type: ignore[no-untyped-def]
    app = app_for(seeded, settings, "caaspp")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("s")
        await settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        table_keys = {k.key: k.description for k in app.screen.keys if k.group == "Table"}
        assert table_keys["/"] == "Filter"
        assert {"pgup", "pgdn", "home", "end"} <= set(table_keys)
        await pilot.press("question_mark")  # ? toggles it closed too
        await pilot.pause()
        assert isinstance(app.screen, StudentsScreen)


async def test_command_palette_opens_a_destination(seeded, settings) -> None:  # type: ignore[no-untyped-def]
    app = app_for(seeded, settings, "caaspp")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"audit log")
        await until(lambda: app.screen.query_one(CommandList).option_count > 0, pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, AuditLogScreen)


async def test_moving_between_destinations_keeps_the_stack_shallow(seeded, settings) -> None:  # type: ignore[no-untyped-def]
    app = app_for(seeded, settings, "caaspp")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("s")
        await settle(pilot)
        students = app.screen
        await pilot.press("s")  # already open: the same screen, filter and all
        await settle(pilot)
        assert app.screen is students and len(app.screen_stack) == 2
        await pilot.press("l")  # straight from one destination to the next, no esc
        await settle(pilot)
        assert app.screen is not students and len(app.screen_stack) == 2
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, DashboardScreen) and len(app.screen_stack) == 1


async def test_a_destination_replaces_the_screens_above_the_dashboard(seeded, settings) -> None:  # type: ignore[no-untyped-def]
    """Neither the dashboard nor a screen beneath the top is made current on the way (laid out,
    drawn, reading its figures, to be covered at once): the next destination replaces them."""
    app = app_for(seeded, settings, "caaspp")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("l")
        await settle(pilot)
        audit = app.screen
        await app.push_screen(StudentsScreen(app.ctx))  # as a screen opens one of its own
        await settle(pilot)
        shown: list[object] = []
        app.screen_change_signal.subscribe(app, shown.append, immediate=True)
        await pilot.press("s")
        await settle(pilot)
        assert isinstance(app.screen, StudentsScreen) and len(app.screen_stack) == 2
        assert shown == [app.screen] and not audit.is_attached
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, DashboardScreen) and len(app.screen_stack) == 1


async def test_tech_coordinator_is_refused_students_with_a_notification(seeded, settings) -> None:  # type: ignore[no-untyped-def]
    app = app_for(seeded, settings, "tech")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("s")
        await settle(pilot)
        assert isinstance(app.screen, DashboardScreen)
        assert any("may not view students" in n for n in notices(app))
        guardians = str(app.screen.query_one("#guardians").render())
        assert "does not view guardian contact details" in guardians


async def test_help_desk_is_refused_the_audit_log(seeded, settings) -> None:  # type: ignore[no-untyped-def]
    app = app_for(seeded, settings, "helpdesk")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("l")
        await settle(pilot)
        assert isinstance(app.screen, DashboardScreen)
        assert any(
            "Audit log: not allowed: A help desk may not view the audit log" in n
            for n in notices(app)
        )
        await pilot.press("s")  # but may look students up
        await settle(pilot)
        assert isinstance(app.screen, StudentsScreen)


async def test_banners_show_on_every_screen(seeded, settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from services.reports import dashboard

    warning = Banner("warning", "The SIS-vendor credential expires in 9 days")
    monkeypatch.setattr(dashboard, "banners", lambda engine, operator: [warning])
    app = app_for(seeded, settings, "caaspp")
    async with app.run_test(size=SIZE) as pilot:
        for key in "dsc":
            await pilot.press(key)
            await settle(pilot)
            bar = app.screen.query_one(BannerBar)
            assert bar.display and "WARNING: The SIS-vendor credential expires" in str(bar.render())


async def test_ctrl_z_is_unbound_and_q_quits(seeded, settings) -> None:  # type: ignore[no-untyped-def]
    app = app_for(seeded, settings, "caaspp")
    async with app.run_test(size=SIZE) as pilot:
        bound = {b.binding.action for b in app.screen.active_bindings.values()}
        assert "suspend_process" not in bound and "app.suspend_process" not in bound
        assert "ctrl+z" not in app.screen.active_bindings
        await pilot.press("ctrl+z")
        await pilot.pause()
        assert app.is_running and isinstance(app.screen, DashboardScreen)
        await pilot.press("q")
        await pilot.pause()
        assert not app.is_running


async def test_no_color_renders_monochrome(seeded, settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("NO_COLOR", "1")
    app = app_for(seeded, settings, "caaspp")
    assert app.no_color
    assert any(isinstance(f, Monochrome) for f in app.get_line_filters())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("s")
        await settle(pilot)
        assert isinstance(app.screen, StudentsScreen)


async def test_a_refused_table_fetch_is_a_notification(seeded, settings) -> None:  # type: ignore[no-untyped-def]
    app = app_for(seeded, settings, "caaspp")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("s")
        await settle(pilot)
        app.ctx.operator.active = False  # e.g. disabled while the screen is open
        await pilot.press("slash", "a")
        await settle(pilot)
        assert isinstance(app.screen, StudentsScreen) and app.is_running
        assert "Students: Operator caaspp is disabled" in notices(app)


@pytest.mark.parametrize("owns_process", [True, False])
async def test_a_console_in_its_own_process_hides_what_it_loaded_from_the_collector(
    seeded, settings, owns_process: bool
) -> None:  # type: ignore[no-untyped-def]
    """Once the screens are loaded, ``ssr-console open`` freezes the heap (no full collection walks
    it again mid-keypress); a console hosted in another process (this test run) leaves it be."""
    gc.unfreeze()
    app = app_for(seeded, settings, "caaspp", owns_process=owns_process)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause(1.0)  # the app starts the preload half a second after ready
            await app.workers.wait_for_complete()
            assert bool(gc.get_freeze_count()) is owns_process
    finally:
        gc.unfreeze()
