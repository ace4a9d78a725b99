"""The console never freezes: every screen's main actions, driven by keys on a district-size demo
LEA (20,000 students), while ``LoopLag`` watches the app's event loop. A service call made on the
loop instead of in a worker stalls every frame of that SSH session, and so does any other stall;
here a service call on the loop, or any stall over 100 ms (issue 21), fails the test, which names
the action and the code it was in.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import insert, literal, select
from sqlalchemy.engine import Engine
from sqlmodel import col
from textual.pilot import Pilot
from textual.widgets import DataTable, Input

from console.app import SSRConsoleApp
from screens.batch_progress import BatchProgressScreen
from screens.new_batch import NewBatchScreen
from services.core import db
from services.core.db import session_scope
from services.core.programs import Program
from services.core.settings import Settings
from services.intake.score_reports import ScoreReport
from services.roster.tables import Student
from tests.databases import SeedDemo
from tests.pilot import LoopLag, app_for, notices, settle, until
from widgets.form_dialog import FormDialog

STUDENTS = 20_000  # seeds (rows, no PDFs) in 13 s; 60,000 seed in 23 s, but a dry run and a
# create over them then take minutes of a shared two-core machine, for the same verdict
SIZE = (100, 30)


@pytest.fixture
def district(tmp_path: Path, seed_demo: SeedDemo) -> Iterator[tuple[SSRConsoleApp, Settings]]:
    settings = Settings(f"sqlite:///{tmp_path / 'ssr.db'}", tmp_path / "data")
    engine = db.make_engine(settings.database_url)
    seed_demo(engine, settings, students=STUDENTS, seed=21, pdfs=False)
    add_report_rows(engine)
    # The seeding ran in this process (once per session), beside pytest and every test module:
    # none of that is the console's, but each full collection the app's allocations trigger
    # walked it with the GIL held (170,000 objects; 0.1-0.2 s of CPU a collection, one per
    # screen opened), and the stall was charged to whatever action was under way.
    gc.collect()
    gc.freeze()
    yield app_for(engine, settings, owns_process=True), settings  # as `ssr-console open` runs it
    gc.unfreeze()


def add_report_rows(engine: Engine) -> None:
    """One CAASPP SSR row per student, all naming one file: the actions driven here choose, count
    and list reports but open none, and rendering 20,000 PDFs would take the machine an hour."""
    table = ScoreReport.__table__  # type: ignore[attr-defined]
    columns = ("student_id", "program", "admin_year", "test", "file_path", "sha256", "size_bytes")
    rows = select(
        col(Student.id),
        literal(Program.CAASPP, table.c.program.type),
        literal(2026),
        literal("SB"),
        literal("demo/placeholder.pdf"),
        literal("0" * 64),
        literal(40_000),
    )
    with session_scope(engine) as session:
        session.execute(insert(table).from_select(columns, rows))


async def step(pilot: Pilot, lag: LoopLag, doing: str, *keys: str) -> None:  # type: ignore[type-arg]
    """Press ``keys`` as ``doing`` and wait until what they started has finished."""
    lag.doing = doing
    await pilot.press(*keys)
    await settle(pilot)


async def fill_dialog(pilot: Pilot, lag: LoopLag, doing: str, *values: str) -> None:  # type: ignore[type-arg]
    """Type ``values`` into the open dialog's fields, one each, and submit it."""
    assert isinstance(pilot.app.screen, FormDialog), pilot.app.screen
    lag.doing = doing
    for value in values:
        field = pilot.app.focused
        assert isinstance(field, Input)
        field.value = value
        await pilot.press("enter")
    await until(lambda: not isinstance(pilot.app.screen, FormDialog), pilot, what=doing)


@pytest.mark.serial  # it measures the event loop's stalls: make test runs it alone
@pytest.mark.slow
async def test_every_screen_action_keeps_the_loop_running(district) -> None:  # type: ignore[no-untyped-def]
    app, settings = district
    exports = settings.data_dir / "exports"
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        async with LoopLag() as lag:
            await step(pilot, lag, "dashboard")
            await step(pilot, lag, "students", "s")
            # Credential: its reads, then a dialog's submit (a system on the checklist).
            await step(pilot, lag, "credential: open", "c")
            await step(pilot, lag, "credential: add system", "plus")
            await fill_dialog(pilot, lag, "credential: add system", "SIS portal", "")
            # Advisor: answer and save the plan (print for those the portal does not reach).
            await step(pilot, lag, "advisor: open", "a")
            await step(pilot, lag, "advisor: answer", "y", "y", "n", "enter")
            await step(pilot, lag, "advisor: save plan", "ctrl+s")
            await step(pilot, lag, "import: open", "i")
            # New batch: dry run, then create over the whole LEA; pause, resume, cancel it.
            await step(pilot, lag, "batches: open", "b")
            await step(pilot, lag, "new batch: open", "e")
            assert isinstance(app.screen, NewBatchScreen)
            await step(pilot, lag, "new batch: dry run", *"Spring", "tab", *"lea", "enter")
            print(app.screen.query_one("#preview").render())
            lag.doing = "new batch: create"
            await pilot.click("#create")
            # Created, the console goes back to the Batches list; enter opens the new batch.
            await until(
                lambda: (
                    not isinstance(app.screen, NewBatchScreen)
                    and app.screen.query_one("#batches", DataTable).row_count > 0
                ),
                pilot,
                timeout=180,  # a batch over the whole LEA, in a worker, on a shared machine
                what=f"the new batch: {app.screen} {notices(app)} {lag.report()}",
            )
            await step(pilot, lag, "batch: open", "enter")
            assert isinstance(app.screen, BatchProgressScreen), app.screen
            await step(pilot, lag, "batch: pause", "p")
            await step(pilot, lag, "batch: resume", "p")
            await step(pilot, lag, "batch: cancel", "x", "y")
            # Print locally: every family not on a channel, create, then cancel it. (p on the
            # batch's progress is pause/resume: esc goes back to the batches first.)
            await step(pilot, lag, "print: open", "escape", "p")
            await step(pilot, lag, "print: families", "f")
            await step(pilot, lag, "print: create", "ctrl+s")
            await step(pilot, lag, "print: cancel", "ctrl+x", "ctrl+x")
            # Paper from ETS: order (writes the CSV), write it again, received, cancel.
            await step(pilot, lag, "paper: open", "o")
            await step(pilot, lag, "paper: families", "f")
            await step(pilot, lag, "paper: order", "ctrl+s")
            await step(pilot, lag, "paper: export", "x")
            await step(pilot, lag, "paper: received", "v")
            await step(pilot, lag, "paper: cancel", "ctrl+x", "ctrl+x")
            await step(pilot, lag, "portal: open", "w")
            await step(pilot, lag, "portal: save", "x", "ctrl+s")
            await step(pilot, lag, "coverage: open", "u")
            await step(pilot, lag, "notices: open", "n")
            await step(pilot, lag, "notices: read one", "enter")
            await step(pilot, lag, "reports: open", "r")
            await step(pilot, lag, "reports: refresh", "u")
            # Both exports ask for the file in a dialog, which writes it when submitted.
            await step(pilot, lag, "reports: export", "x")
            await fill_dialog(pilot, lag, "reports: export", str(exports / "coverage.csv"))
            await step(pilot, lag, "at risk: open", "k")
            await step(pilot, lag, "at risk: export", "x")
            await fill_dialog(pilot, lag, "at risk: export", str(exports / "at-risk.csv"))
            await step(pilot, lag, "audit log: open", "escape", "l")
            await step(pilot, lag, "operators: open", "O")
            await step(pilot, lag, "operators: add", "plus")
            await fill_dialog(
                pilot, lag, "operators: add", "jdoe", "Jo Doe", "", "helpdesk", "", ""
            )
            await step(pilot, lag, "help desk: open", "h")
            lag.doing = "done"
    # A service call on the loop while it was more than 50 ms late fails, whatever the machine's
    # load (on main before issue 21: the advisor's plan.save, New batch create, the credential
    # reads, ...); so does any stall over 100 ms, the bound. LoopLag does not count the
    # time the machine gave other processes, so the bound holds on a shared machine: 44 actions,
    # worst 59 ms at load 6-10 (it was 300-500 ms: full garbage collections of the screens' heap,
    # now frozen by console/collector.py, each screen's stylesheet parsed on its first push, and
    # action_go passing through the dashboard).
    print(f"loop stalls by action: {lag.report()}")
    assert not lag.in_services, f"a service call on the event loop: {lag.in_services}"
    assert (exports / "coverage.csv").exists() and (exports / "at-risk.csv").exists()
    assert lag.worst <= 0.100, f"an event-loop stall over 100 ms: {lag.report()}"
