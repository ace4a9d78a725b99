"""The advisor screen driven by keys at 80x24: answer, read, save, overrule, find it on the dashboard."""

from __future__ import annotations

from sqlmodel import Session, select

from console.app import SSRConsoleApp
from screens.advisor import AdvisorScreen, OverruleDialog
from screens.dashboard import DashboardScreen
from services.audit.tables import AuditEvent
from services.core.channels import Option
from services.core.context import ConsoleContext
from services.plan import decisions as plan
from tests import advisor_roster
from tests.pilot import settle, text

SIZE = (80, 24)


def _app(engine, settings, who: str = "caaspp"):  # type: ignore[no-untyped-def]
    roster = advisor_roster.build(engine)
    return roster, SSRConsoleApp(ConsoleContext(engine, settings, roster.operators[who]))


async def test_answer_read_save_and_see_it_on_the_dashboard(engine, settings) -> None:  # type: ignore[no-untyped-def]
    roster, app = _app(engine, settings)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
        assert isinstance(app.screen, AdvisorScreen)
        assert "No plan saved yet" in text(app, "#history")
        # The roster knows portal users, so questions 1, 2 and the share (2 of 6) are pre-filled.
        assert app.screen.query_one("#share").value == "33.3"
        # Keyboard only: y/n answer and move on; the share is typed over the pre-filled value.
        await pilot.press("y", "y", "n")
        await pilot.press(*"50", "enter")
        await pilot.pause()
        panel = text(app, "#recommendation")
        assert "Combined: A + B + C" in panel
        assert "A Parent portal: 2 families, 5 SSRs" in panel
        assert "B Secure electronic: 1 family, 1 SSR," in panel
        assert "C Print locally: 3 families, 4 SSRs, $2.46" in panel
        assert "Good option for districts with an SIS and parent portal" in panel
        await pilot.press("ctrl+s")
        await settle(pilot)
        saved = plan.current(engine, roster.lea_id)
        assert saved is not None and saved.channels == (Option.PORTAL, Option.SECURE, Option.PRINT)
        assert saved.answers.portal_share == 0.5 and not saved.overruled
        assert "by caaspp" in text(app, "#history")
        assert app.screen.query_one("#share").value == "50"  # the answers stay as given
        await pilot.press("d")
        await settle(pilot)
        assert isinstance(app.screen, DashboardScreen)
        panel = text(app, "#plan")
        assert "Combined: A + B + C" in panel and "By caaspp" in panel


async def test_overrule_needs_a_reason_and_keeps_it(engine, settings) -> None:  # type: ignore[no-untyped-def]
    roster, app = _app(engine, settings)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("a")
        await settle(pilot)
        await pilot.press("y", "y", "n")
        await pilot.press("ctrl+o")
        await pilot.pause()
        assert isinstance(app.screen, OverruleDialog)
        # Untick A (first row): B + C, then try to save without a reason.
        await pilot.press("space", "tab", "enter")
        await pilot.pause()
        assert "Say why" in text(app, "#problem")
        await pilot.press(*"portal vendor not ready", "enter")
        await settle(pilot)
        assert isinstance(app.screen, AdvisorScreen)
        saved = plan.current(engine, roster.lea_id)
        assert saved is not None and saved.overruled
        assert saved.channels == (Option.SECURE, Option.PRINT)
        assert saved.reason == "portal vendor not ready"
        assert "overruled: portal vendor not ready" in text(app, "#history")
    with Session(engine) as session:
        actions = session.exec(select(AuditEvent.action)).all()
    assert actions == ["plan.overrule"]


async def test_help_desk_views_but_cannot_save(engine, settings) -> None:  # type: ignore[no-untyped-def]
    roster, app = _app(engine, settings, "helpdesk")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("a")
        await settle(pilot)
        assert isinstance(app.screen, AdvisorScreen)
        await pilot.press("y", "y", "n")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert plan.current(engine, roster.lea_id) is None
        assert any(
            "may not choose the distribution plan" in str(n.message) for n in app._notifications
        )


async def test_demo_lea_end_to_end(engine, settings, seed_demo) -> None:  # type: ignore[no-untyped-def]
    """On the shared demo data: pre-filled from the roster, saved by keys, shown on the dashboard."""
    from services.access import operators
    from services.roster.facts import roster_facts

    seed_demo(engine, settings, students=120, seed=7, pdfs=False)
    caaspp = operators.resolve(engine, "caaspp")
    facts = roster_facts(engine, caaspp.lea_id)
    assert facts.ssrs_estimated and 0.2 < (facts.portal_share or 0) < 0.8
    app = SSRConsoleApp(ConsoleContext(engine, settings, caaspp))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("a")
        await settle(pilot)
        assert app.screen.query_one("#share").value == f"{round(facts.portal_share * 100, 1):g}"
        await pilot.press("y", "y", "n", "enter")
        await pilot.pause()
        panel = text(app, "#recommendation")
        assert panel.startswith("Combined: A + B + C: a combined approach.")
        assert f"A Parent portal: {facts.portal_families} families" in panel
        await pilot.press("ctrl+s")
        await settle(pilot)
        await pilot.press("d")
        await settle(pilot)
        assert f"A Parent portal: {facts.portal_families} families" in text(app, "#plan")


async def test_answer_for_one_school(engine, settings) -> None:  # type: ignore[no-untyped-def]
    roster, app = _app(engine, settings)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("a")
        await settle(pilot)
        await pilot.press("shift+tab", "enter", "down", "down", "enter")  # scope: Birch Middle
        await settle(pilot)
        assert "Birch Middle: 2 of 3 families" in text(app, "#share-hint")
        assert app.screen.query_one("#share").value == "66.7"
        await pilot.press("tab", "y", "y", "n", "enter", "ctrl+s")
        await settle(pilot)
    birch = plan.current(engine, roster.lea_id, roster.birch_id)
    assert birch is not None and birch.school_id == roster.birch_id
    # Birch's only family off the portal has no email: portal and print, no secure email.
    assert [(f.option, f.families) for f in birch.figures] == [
        (Option.PORTAL, 2),
        (Option.PRINT, 1),
    ]
    assert plan.current(engine, roster.lea_id) is None  # the LEA itself has no plan yet


async def test_configured_rates_apply_and_bad_ones_are_reported(engine, settings) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    roster = advisor_roster.build(engine)
    caaspp = roster.operators["caaspp"]
    handed_out = replace(settings, extra={"advisor": {"postage": 0, "envelope": 0}})
    app = SSRConsoleApp(ConsoleContext(engine, handed_out, caaspp))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("a")
        await settle(pilot)
        await pilot.press("y", "y", "n", *"50", "enter")
        await pilot.pause()
        assert "C Print locally: 3 families, 4 SSRs, $0.80" in text(app, "#recommendation")
    broken = replace(settings, extra={"advisor": {"postage": "free"}})
    app = SSRConsoleApp(ConsoleContext(engine, broken, caaspp))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("a")
        await settle(pilot)
        assert isinstance(app.screen, AdvisorScreen)
        assert any("using the default rates" in str(n.message) for n in app._notifications)
