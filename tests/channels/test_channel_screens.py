"""The print (p), ETS paper (o) and portal readiness (w) screens at 80x24, driven by keys only,
on the demo LEA; the batch list and the dashboard's coverage panel show what they did."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import pytest
from textual.widgets import DataTable

from console.app import SSRConsoleApp
from screens.batches import BatchesScreen
from screens.coverage import CoverageScreen
from screens.paper_order import PaperOrderScreen
from screens.portal_readiness import PortalReadinessScreen
from screens.print_batch import PrintBatchScreen
from services.channels import batches as channel_batches
from services.channels import print_batch
from services.core.channels import Option
from services.delivery.ledger import BatchStatus
from services.plan import coverage
from tests.channel_world import World, pdf_pages, world
from tests.credentials_world import record_credential
from tests.pilot import app_for, notices, settle, text, until

SIZE = (80, 24)


@pytest.fixture
def demo(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> World:
    return world(tmp_path_factory.getbasetemp(), tmp_path)


def console(w: World, who: str = "caaspp", **extra: object) -> SSRConsoleApp:
    """The console for ``who`` on the demo world, with ``extra`` settings sections."""
    return app_for(w.engine, replace(w.settings, extra={**w.settings.extra, **extra}), who)


async def test_print_screen_creates_and_prints_by_keys(demo: World) -> None:
    w = demo
    app = console(w)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("p")
        await settle(pilot)
        assert isinstance(app.screen, PrintBatchScreen)
        assert "the plan's print families" in text(app, "#choices")
        assert "no distribution plan" in text(app, "#preview")
        await pilot.press("f", "m", "minus")
        await settle(pilot)
        choices = text(app, "#choices")
        assert "every family not yet on a channel" in choices
        assert "hand out at school" in choices and "split at 25 MB" in choices
        assert "40 students" in text(app, "#preview")
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert "waiting for `ssr-console worker`" in text(app, "#last"), notices(app)
        # The worker prints it (outside this session); the screen reads its progress each second.
        assert print_batch.print_queued(w.engine, w.settings, "test-worker") == 1
        await until(lambda: "families printed" in text(app, "#last"), pilot)
        folder = w.settings.data_dir / "print" / "batch-1"
        files = sorted(folder.glob("print-1-*.pdf"))
        with (folder / "print-1-manifest.csv").open(encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        padded = sum(int(r["pages"]) + int(r["pages"]) % 2 for r in rows)  # a sheet per family
        assert sum(pdf_pages(f) for f in files) == padded
        table = app.screen.query_one("#batches")
        assert table.row_count == 1 and "finished" in str(table.get_row_at(0))
        # The batch list shows it beside option B batches; enter comes back here.
        await pilot.press("b")
        await settle(pilot)
        assert isinstance(app.screen, BatchesScreen)
        assert str(app.screen.query_one("#batches").get_row_at(0)[0]) == "C1"
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, PrintBatchScreen)
        # Nothing left: a second batch is refused with a sentence, not a traceback.
        await pilot.press("f", "ctrl+s")
        await settle(pilot)
        assert any("Not created: No student with an SSR" in n for n in notices(app)), notices(app)
        # The dashboard's coverage panel counts every student on channel C.
        await pilot.press("d")
        await settle(pilot)
        assert "On one channel 40 of 40 (100%)" in text(app, "#coverage")


async def test_paper_order_screen_for_a_class_then_received(demo: World) -> None:
    w = demo
    app = console(w)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("o")
        await settle(pilot)
        assert isinstance(app.screen, PaperOrderScreen)
        await pilot.press("j")  # a class needs a school first
        await settle(pilot)
        assert any("Choose a school first" in n for n in notices(app))
        await pilot.press("f", "k")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, PaperOrderScreen)
        school_id = screen.schools[1][0]
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert "SSRs listed in" in text(app, "#last"), notices(app)
        path = w.settings.data_dir / "orders" / "ets-order-1.csv"
        with path.open(encoding="utf-8") as handle:
            ssids = [r["ssid"] for r in csv.DictReader(handle)]
        assert ssids == sorted(ssids) and ssids
        batch = channel_batches.get(w.engine, w.operator(), 1)
        assert batch.school_id == school_id and batch.status is BatchStatus.RUNNING
        await pilot.press("v")
        await settle(pilot)
        assert channel_batches.get(w.engine, w.operator(), 1).status is BatchStatus.FINISHED
        assert "finished" in str(app.screen.query_one("#orders").get_row_at(0))
        # Cancelling asks for a second ctrl+x; then the students leave channel D.
        await pilot.press("ctrl+x")
        await settle(pilot)
        assert any("Press ctrl+x again to cancel batch 1" in n for n in notices(app))
        assert channel_batches.get(w.engine, w.operator(), 1).status is BatchStatus.FINISHED
        await pilot.press("ctrl+x")
        await settle(pilot)
        assert channel_batches.get(w.engine, w.operator(), 1).status is BatchStatus.CANCELLED
        assert coverage.summary(w.engine, w.operator()).by_channel[Option.PAPER] == 0


async def test_paper_order_screen_says_where_ets_offers_no_paper(demo: World) -> None:
    w = demo
    app = console(w, advisor={"ets_offered": False})
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("o", "f")
        await settle(pilot)
        assert "NOTE: ETS no longer offers paper" in text(app, "#note")
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert any("Not ordered: ETS no longer offers paper" in n for n in notices(app))
        assert channel_batches.summaries(w.engine, w.operator()) == []


async def test_portal_readiness_screen_answers_and_hand_off(demo: World) -> None:
    w = demo
    operator = w.operator()
    record_credential(w.engine, operator)
    app = console(w)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("w")
        await settle(pilot)
        assert isinstance(app.screen, PortalReadinessScreen)
        checklist = text(app, "#checklist")
        assert "[no] Parent/student portal active" in checklist
        assert "[ok] SIS-vendor credential valid" in checklist
        assert "Portal share trend: " in text(app, "#trend") and "%" in text(app, "#trend")
        not_reached = app.screen.query_one("#families").row_count
        assert not_reached > 0
        # A bad date is refused and nothing is saved.
        await pilot.press("x", "y", "tab", *"Aeries", "tab", *"2026-13-01", "ctrl+s")
        await settle(pilot)
        assert any("Not saved: Type the CALPADS update date" in n for n in notices(app))
        assert "[no] Parent/student portal active" in text(app, "#checklist")
        await pilot.press(*["backspace"] * 10, *"2026-11-01", "ctrl+s")
        await settle(pilot)
        checklist = text(app, "#checklist")
        assert "[ok] Parent/student portal active" in checklist
        assert "[ok] Vendor on the Vendor Integration list: Aeries" in checklist
        # One key hands the families the portal does not reach to print.
        app.screen.query_one("#families").focus()
        await pilot.press("m")
        await settle(pilot)
        assert any("handed to C Print locally" in n for n in notices(app)), notices(app)
        assert "[ok] Families the portal does not reach: none left" in text(app, "#checklist")
        assert app.screen.query_one("#families").row_count == 0
    summary = coverage.summary(w.engine, operator)
    assert summary.by_channel[Option.PRINT] > 0 and summary.several == 0


async def test_coverage_screen_lists_the_uncovered_and_finds_one_by_ssid(demo: World) -> None:
    w = demo
    operator = w.operator()
    first = coverage.uncovered(w.engine, operator, limit=1)[0]
    app = console(w)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("u")
        await settle(pilot)
        assert isinstance(app.screen, CoverageScreen)
        assert "Uncovered      40" in text(app, "#summary")
        window = app.screen.query_one(DataTable)
        assert window.row_count > 0
        assert str(window.get_row_at(0)[0]) == first.ssid
        await pilot.press("slash", *first.ssid[:8], "enter")
        await settle(pilot)
        rows = [window.get_row_at(i) for i in range(window.row_count)]
        assert rows and all(str(r[0]).startswith(first.ssid[:8]) for r in rows)
        assert str(rows[0][4]) == "in no batch yet"


async def test_portal_checklist_for_the_tech_coordinator_without_family_details(
    demo: World,
) -> None:
    app = console(demo, "tech")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("w")
        await settle(pilot)
        assert isinstance(app.screen, PortalReadinessScreen)
        assert "[no] Parent/student portal active" in text(app, "#checklist")
        assert app.screen.query_one("#families").row_count == 0
        await pilot.press("m")
        await settle(pilot)
        assert any("Not handed off: A technology coordinator may not" in n for n in notices(app))


async def test_print_and_paper_screens_confirm_the_mailing_day(demo: World) -> None:
    """Printed or received is not delivered: e asks the day the envelopes went out, at 80x24."""
    from services.channels.batches import ChannelItemState
    from services.channels.print_batch import Handling, PrintOptions

    w = demo
    operator = w.operator()
    school = channel_batches.Scope(school_id=1)
    printed = print_batch.create(
        w.engine, operator, name="Hand out", scope=school, who=coverage.Who.ALL,
        options=PrintOptions(handling=Handling.HAND_OUT),
    )  # fmt: skip
    assert printed.id is not None
    print_batch.run(w.engine, operator, printed.id, w.folder / "print", w.store)
    app = console(w)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("p")
        await settle(pilot)
        assert isinstance(app.screen, PrintBatchScreen)
        await pilot.press("e")
        await settle(pilot)
        await pilot.press("enter")  # today, as offered
        await settle(pilot)
        states = channel_batches.progress(w.engine, operator, printed.id)
        assert set(states) == {ChannelItemState.DONE}, notices(app)
        await pilot.press("escape", "o")
        await settle(pilot)
        assert isinstance(app.screen, PaperOrderScreen)
        await pilot.press("f", "ctrl+s")
        await settle(pilot)
        order = max(s.id for s in channel_batches.summaries(w.engine, operator))
        await pilot.press("v")
        await settle(pilot)
        assert channel_batches.progress(w.engine, operator, order).keys() == {
            ChannelItemState.RECEIVED
        }
        await pilot.press("e")
        await settle(pilot)
        field = app.screen.query_one("#day")
        field.value = "2020-01-01"  # type: ignore[attr-defined]
        await pilot.press("enter")
        await settle(pilot)
        assert any("Not confirmed" in n for n in notices(app))
        await pilot.press("e")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert channel_batches.progress(w.engine, operator, order).keys() == {ChannelItemState.DONE}
        assert any("delivered on" in n for n in notices(app))
