"""The roster import screen driven by keys at 80x24: `y`, `/`, paths, enter for the dry run, then
ctrl+s to import what it showed; refused lines listed with file, line and reason."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from textual.widgets import DataTable, Input, Static

from console.app import SSRConsoleApp
from screens.roster_import import RosterImportScreen
from services.access.tables import Operator, Role
from services.core.context import ConsoleContext
from services.core.settings import Settings
from services.roster import records as roster
from services.roster.tables import Student
from tests.roster.test_sis_import import GUARDIANS, LEA_CDS, STUDENTS, write

SIZE = (80, 24)


def coordinator(engine: Engine) -> Operator:
    with Session(engine, expire_on_commit=False) as session:
        lea = roster.create_lea(session, LEA_CDS, "Test Unified")
        operator = Operator(
            username="caaspp", display_name="Dana", role=Role.LEA_CAASPP, lea_id=lea.id
        )
        session.add(operator)
        session.commit()
        return operator


def student_count(engine: Engine) -> int:
    with Session(engine) as session:
        return len(session.exec(select(Student)).all())


async def test_dry_run_then_import_from_the_screen(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    operator = coordinator(engine)
    bad = [*STUDENTS, "u5,active,,true,s1,student,,,Ed,Bad,,12345,,,,,04,"]
    paths = write(tmp_path / "inbox", bad, GUARDIANS)
    app = SSRConsoleApp(ConsoleContext(engine, settings, operator))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("Y")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, RosterImportScreen)
        await pilot.press("ctrl+s")  # no dry run yet: nothing happens but a hint
        await pilot.pause()
        assert student_count(engine) == 0
        await pilot.press("slash")
        assert app.focused is screen.query_one("#paths", Input)
        screen.query_one("#paths", Input).value = ";".join(map(str, paths))
        await pilot.press("enter")
        await screen.workers.wait_for_complete()
        await pilot.pause()
        shown = str(screen.query_one("#result", Static).render())
        assert "Dry run (nothing written)" in shown and "students: 3 new" in shown, shown
        table = screen.query_one("#refused", DataTable)
        row = [str(c) for c in table.get_row_at(0)]
        assert row[:2] == ["users.csv", "6"] and "SSID must be exactly 10 digits" in row[2]
        assert student_count(engine) == 0  # a dry run writes nothing
        await pilot.press("ctrl+s")
        await screen.workers.wait_for_complete()
        await pilot.pause()
        assert "Imported: roster of LEA" in str(screen.query_one("#result", Static).render())
        assert student_count(engine) == 3
        await pilot.press("x")  # partial: a new dry run is needed before importing again
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert screen.checked is None


async def test_a_path_outside_the_intake_folders_is_refused(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    operator = coordinator(engine)
    app = SSRConsoleApp(ConsoleContext(engine, settings, operator))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("Y")
        await pilot.pause()
        screen = app.screen
        await pilot.press("slash")
        screen.query_one("#paths", Input).value = "/etc"
        await pilot.press("enter")
        await screen.workers.wait_for_complete()
        await pilot.pause()
        assert "outside the intake folders" in str(screen.query_one("#result", Static).render())
