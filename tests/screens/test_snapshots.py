"""Every screen as a picture at 80x24, for one demo LEA, compared with the SVG committed beside
this file (``__snapshots__``): a layout regression shows up as a picture diff.

The demo is seeded from a fixed seed and the clock is frozen (time-machine) before the seed and
while the app runs, so today's date, countdowns and "as of" times come out the same every run.
After an intended change of layout, look at the new pictures and accept them with
``pytest tests/screens/test_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import time_machine
from textual.pilot import Pilot
from textual.widgets import Input
from textual.worker import WorkerState

from console.app import SSRConsoleApp
from console.navigation import DESTINATIONS
from screens.base import ConsoleScreen
from services.access import operators
from services.core import db
from services.core.context import ConsoleContext
from services.core.settings import Settings
from services.demo import district as demo
from tests.databases import copy_database, copy_sqlite_file

SIZE = (80, 24)
STUDENTS, SEED = 60, 16
# A fixed moment (a Monday, 08:00 in California) for every date, countdown and "as of" time shown.
NOW = datetime(2026, 11, 30, 16, 0, tzinfo=UTC)

POLLING = ("screens.batches", "screens.batch_progress", "screens.print_batch", "screens.notices")

BUSY = (WorkerState.PENDING, WorkerState.RUNNING)

SnapCompare = Callable[..., bool]
RunBefore = Callable[[Pilot[None]], Awaitable[None]]


# One xdist worker runs this module (make test: --dist loadgroup): its fixture is built once.
pytestmark = pytest.mark.xdist_group("snapshots")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Path:
    """The demo LEA with its SSR PDFs, seeded once for these tests with the clock at NOW (on a
    copy of the session's migrated database)."""
    folder = tmp_path_factory.mktemp("snapshot-demo")
    copy_sqlite_file(sqlite_template, folder / "ssr.db")
    settings = Settings(database_url=f"sqlite:///{folder / 'ssr.db'}", data_dir=folder)
    engine = db.make_engine(settings.database_url)
    with time_machine.travel(NOW, tick=False):
        demo.seed(engine, settings, students=STUDENTS, seed=SEED, pdfs=True, workers=2)
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return folder / "ssr.db"


@pytest.fixture
def app(
    template: Path, tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SSRConsoleApp]:
    """The LEA CAASPP coordinator's console on a copy of the demo, with the clock stopped at NOW
    and the screens that poll the database asked to wait an hour, so that none redraws while
    its picture is taken."""
    for module in POLLING:
        monkeypatch.setattr(f"{module}.REFRESH_SECONDS", 3600.0)
    monkeypatch.setattr(ConsoleScreen, "CHANGES_SECONDS", 3600.0)
    copy_database(template, tmp_path / "ssr.db")
    engine = db.make_engine(settings.database_url)
    with time_machine.travel(NOW, tick=False):
        yield SSRConsoleApp(ConsoleContext(engine, settings, operators.resolve(engine, "caaspp")))
    engine.dispose()


async def settle(pilot: Pilot[None]) -> None:
    """Workers done (including those they start), and what they changed laid out and drawn."""
    await pilot.pause()
    while any(worker.state in BUSY for worker in pilot.app.workers):  # some start others
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
    await pilot.pause(0.1)
    await pilot.pause()


def pressing(*keys: str) -> RunBefore:
    """Press each key in turn, letting the screen's workers finish after each."""

    async def run_before(pilot: Pilot[None]) -> None:
        await settle(pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)
        for field in pilot.app.screen.query(Input):  # a blinking cursor is a picture of the time
            field.cursor_blink = False

    return run_before


def slug(title: str) -> str:
    """A snapshot's file name part: ``Paper from ETS`` -> ``paper-from-ets``."""
    return title.lower().replace(" ", "-")


@pytest.mark.parametrize(
    "key", [d.key for d in DESTINATIONS], ids=[slug(d.title) for d in DESTINATIONS]
)
def test_destination(app: SSRConsoleApp, snap_compare: SnapCompare, key: str) -> None:
    assert snap_compare(app, terminal_size=SIZE, run_before=pressing(key))


# The screens that open from a destination: (how to get there, what is pictured).
OPENED = {
    "help overlay": ("question_mark",),
    "help desk family": ("h", *"1750680006", "enter", "enter"),
    "reports at risk": ("r", "k"),
    "reports group dialog": ("r", "g"),
    "advisor overrule dialog": ("a", "ctrl+o"),
    "new batch": ("b", "e"),
    "notice batch": ("b", "f"),
}
# Not pictured: batch progress and its cancel confirmation. The header of its schools table is
# drawn now with the column widths of the rows, now with those of the header alone (the table is
# cleared and refilled from a worker), so neither picture is stable.


@pytest.mark.parametrize("keys", OPENED.values(), ids=map(slug, OPENED))
def test_opened_screen(
    app: SSRConsoleApp, snap_compare: SnapCompare, keys: tuple[str, ...]
) -> None:
    assert snap_compare(app, terminal_size=SIZE, run_before=pressing(*keys))
