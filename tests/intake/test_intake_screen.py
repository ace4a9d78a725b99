"""The import screen driven by keys at 80x24: `i`, type a path, enter; the import is queued, the
worker runs it (``run_queued`` here, a real ``ssr-console worker`` in test_import_queue.py) and the
counts and refusals appear, read from the database."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session
from textual.widgets import DataTable, Input

from console.app import SSRConsoleApp
from screens.import_reports import ImportReportsScreen
from services.access.tables import Operator, Role
from services.core.context import ConsoleContext
from services.core.settings import Settings
from services.intake import importer as intake
from services.intake import queue as import_queue
from tests.intake_fixtures import SSIDS, STRANGER, name, seed_roster, ssr, stats, worker_runs
from tests.pilot import settle, until

SIZE = (80, 24)


def coordinator(engine: Engine) -> Operator:
    with Session(engine, expire_on_commit=False) as session:
        operator = Operator(username="caaspp", display_name="Dana", role=Role.LEA_CAASPP, lea_id=1)
        session.add(operator)
        session.commit()
        return operator


def cells(table: DataTable) -> list[list[str]]:
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


async def test_import_screen_runs_an_import_off_the_ui_thread(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    seed_roster(engine)
    operator = coordinator(engine)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for ssid in (SSIDS[0], SSIDS[1], SSIDS[3], STRANGER):
        (inbox / name(ssid)).write_bytes(ssr(ssid))
    (inbox / "notes.txt").write_text("hello")
    app = SSRConsoleApp(ConsoleContext(engine, settings, operator))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("i")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ImportReportsScreen)
        await pilot.press("slash")
        assert app.focused is screen.query_one("#paths", Input)
        screen.query_one("#paths", Input).value = str(inbox)  # typing 60 keys adds seconds
        await pilot.press("enter")
        await worker_runs(pilot, engine, settings)
        shown = stats(screen)
        assert "finished" in shown and "5 files" in shown, shown
        assert "matched 3" in shown and "Exceptions 2" in shown
        refusals = cells(screen.query_one("#exceptions", DataTable))
        assert sorted(row[0] for row in refusals) == [
            "SSID is not a known student",
            "neither a PDF nor a zip file",
        ]
        assert any(row[1].endswith("notes.txt") for row in refusals)
        assert cells(screen.query_one("#summary", DataTable)) == [
            ["Alder Elementary", "5", "2"],
            ["Birch Middle", "8", "1"],
        ]
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("i")  # reopened: the last run is read back from the database
        await settle(pilot)
        again = app.screen
        assert isinstance(again, ImportReportsScreen)
        assert "finished" in stats(again) and "5 files" in stats(again)
        assert len(cells(again.query_one("#exceptions", DataTable))) == 2

        await pilot.press("slash", "x")
        assert again.query_one("#paths", Input).value == "x"
        again.query_one("#paths", Input).value = str(tmp_path / "missing")
        await pilot.press("enter")
        await settle(pilot)
        assert "Import not started: No such file or folder" in stats(again)
        assert import_queue.latest(engine, operator).id == 1  # nothing was queued


async def test_leaving_the_screen_does_not_stop_the_import(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    seed_roster(engine)
    operator = coordinator(engine)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for ssid in SSIDS:
        (inbox / name(ssid)).write_bytes(ssr(ssid))
    app = SSRConsoleApp(ConsoleContext(engine, settings, operator))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("i", "slash")
        screen = app.screen
        screen.query_one("#paths", Input).value = str(inbox)
        await pilot.press("enter")
        await until(lambda: "queued" in stats(screen), pilot)
        await pilot.press("escape")  # gone before the worker starts
        assert not screen.is_attached
    # the session is closed: the worker runs the queued import regardless
    assert import_queue.run_queued(engine, settings) == 1
    run = intake.latest_run(engine, operator)
    assert run is not None and (run.status, run.stored) == ("finished", 6)


async def test_import_screen_fetches_from_the_toms_api_with_the_recorded_credential(
    engine: Engine, settings: Settings
) -> None:
    """`t` on the Import screen: the API in ``[toms] url``, the credential recorded for the LEA
    (sealed in the vault), nothing typed."""
    import threading
    from dataclasses import replace
    from http.server import ThreadingHTTPServer

    from services.core import vault
    from services.credential import lifecycle as credentials
    from tests.intake.test_toms_api import SECRET, USERNAME, Toms, handler_for

    seed_roster(engine)
    operator = coordinator(engine)
    state = Toms({f"{ssid}.pdf": ssr(ssid) for ssid in SSIDS[:3]})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(state))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    wired = replace(settings, extra={**settings.extra, "toms": {"url": url}})
    credentials.record(
        engine, operator, 1, vault.load(wired), None, username=USERNAME, secret=SECRET
    )
    try:
        app = SSRConsoleApp(ConsoleContext(engine, wired, operator))
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await pilot.press("i")
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, ImportReportsScreen)
            await pilot.press("t")
            await worker_runs(pilot, engine, wired)
            assert "finished" in stats(screen) and "matched 3" in stats(screen), stats(screen)
        assert state.tokens_issued >= 1
    finally:
        server.shutdown()
        server.server_close()
