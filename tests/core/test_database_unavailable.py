"""A database that is down, unreachable or unusable is a sentence, not a traceback: services raise
``DatabaseUnavailable`` (a ``ConsoleError``), the CLI prints it and exits 2, and a screen shows
it and keeps the session."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.app import SSRConsoleApp
from console.cli import main
from console.navigation import DESTINATIONS
from screens.audit_log import AuditLogScreen
from screens.reports import ReportsScreen
from services.access import operators
from services.access.permissions import allowed
from services.core import db
from services.core.context import ConsoleContext
from services.core.errors import DatabaseUnavailable
from services.core.settings import Settings
from tests.databases import SeedDemo
from tests.pilot import app_for, settle
from widgets.banner import BannerBar

CLOSED = "postgresql://root@127.0.0.1:1/test"  # nothing listens on port 1


def test_an_unreachable_server_or_unopenable_file_is_a_sentence(tmp_path: Path) -> None:
    for url in (CLOSED, f"sqlite:///{tmp_path}"):  # a directory is no database file
        engine = db.make_engine(url)
        with pytest.raises(DatabaseUnavailable) as refused:
            operators.resolve(engine, "caaspp")
        message = str(refused.value)
        assert message.startswith("The database cannot be used right now (")
        assert "nothing was changed" in message and "\n" not in message
        engine.dispose()


def test_the_cli_prints_the_sentence_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--database-url", CLOSED, "db", "current"]) == 2
    error = capsys.readouterr().err
    assert "cannot be used right now" in error and "Traceback" not in error


async def test_every_destination_says_so_and_the_session_goes_on(
    sqlite_url: str, tmp_path: Path, seed_demo: SeedDemo
) -> None:
    """The server goes away mid-session: a destination is not opened on it, and the operator is
    told why and stays where they were; a screen already open says it in its banner; when the
    server is back, the same session carries on."""
    engine = db.make_engine(sqlite_url)
    settings = Settings(sqlite_url, tmp_path)
    seed_demo(engine, settings, students=20, seed=5, pdfs=False)
    caaspp = operators.resolve(engine, "caaspp")
    context = ConsoleContext(engine, settings, caaspp)
    reachable = [d for d in DESTINATIONS if d.permission is None or allowed(caaspp, d.permission)]
    assert len(reachable) >= 12
    app = SSRConsoleApp(context)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        dashboard = app.screen
        context.engine = db.make_engine(CLOSED)
        for destination in reachable[1:]:
            app.clear_notifications()
            await pilot.press(destination.key)
            await settle(pilot)
            assert app.is_running and app.screen is dashboard, destination.title
            said = [str(n.message) for n in app._notifications]
            assert any("cannot be used right now" in m for m in said), destination.title
        context.engine = engine
        await pilot.press("r")  # opened while the server is up...
        await settle(pilot)
        reports = app.screen
        assert isinstance(reports, ReportsScreen)
        context.engine = db.make_engine(CLOSED)
        await pilot.press("u")  # ...whose refresh then fails: said in place, the screen stays
        await settle(pilot)
        assert app.screen is reports
        assert "cannot be used right now" in str(reports.query_one("#summary").render())
        await pilot.press("question_mark", "question_mark")  # back from help: banners re-read
        await settle(pilot)
        assert "cannot be used right now" in str(reports.query_one(BannerBar).render())
        context.engine = engine  # back again: the same session carries on
        await pilot.press("escape", "l")
        await settle(pilot)
        assert isinstance(app.screen, AuditLogScreen)
        assert "cannot be used" not in str(app.screen.query_one(BannerBar).render())
    engine.dispose()


async def test_a_worker_error_nobody_caught_is_a_notification_not_the_end(
    sqlite_url: str, tmp_path: Path, seed_demo: SeedDemo
) -> None:
    """The app's backstop (a Textual override): a ConsoleError escaping a screen's worker."""
    engine = db.make_engine(sqlite_url)
    settings = Settings(sqlite_url, tmp_path)
    seed_demo(engine, settings, students=5, seed=5, pdfs=False)
    app = app_for(engine, settings)

    def read() -> None:
        operators.resolve(db.make_engine(CLOSED), "caaspp")

    async with app.run_test(size=(80, 24)) as pilot:
        app.run_worker(read, thread=True)
        await settle(pilot)
        assert app.is_running
        assert any("cannot be used right now" in str(n.message) for n in app._notifications)
    engine.dispose()
