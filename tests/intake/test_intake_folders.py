"""Imports read only from the intake folders: a site coordinator typing server paths on the
Import screen, or anyone running `ssr-console import`, is refused with a sentence and nothing is
listed or opened."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from textual.widgets import DataTable, Input, Static

from console.app import SSRConsoleApp
from screens.import_reports import ImportReportsScreen
from services.access.tables import Operator, Role
from services.core.context import ConsoleContext
from services.core.errors import InvalidInput
from services.core.settings import Settings
from services.intake.importer import import_paths, intake_folders
from services.intake.records import ImportRun
from tests.intake_fixtures import LEA_CDS, SSIDS, name, seed_roster, ssr, worker_runs
from tests.pilot import settle

OUTSIDE = "outside the intake folders"


@pytest.fixture
def plain(settings: Settings) -> Settings:
    """Settings as a fresh install has them: no ``[intake] folders``, so the inbox is the default."""
    return Settings(settings.database_url, settings.data_dir)


def _runs(engine: Engine) -> list[ImportRun]:
    with Session(engine) as session:
        return list(session.exec(select(ImportRun)).all())


def test_the_default_intake_folder_is_an_owner_only_inbox_in_the_data_dir(plain: Settings) -> None:
    (inbox,) = intake_folders(plain)
    assert inbox == (plain.data_dir / "inbox").resolve()
    assert stat.S_IMODE(inbox.stat().st_mode) == 0o700


def test_paths_outside_the_intake_folders_are_refused(
    engine: Engine, plain: Settings, tmp_path: Path
) -> None:
    seed_roster(engine)
    (inbox,) = intake_folders(plain)
    (inbox / name(SSIDS[0])).write_bytes(ssr(SSIDS[0]))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / name(SSIDS[1])).write_bytes(ssr(SSIDS[1]))
    (inbox / "link").symlink_to(elsewhere)
    for path in ("/etc/ssh", "/root", elsewhere, inbox / ".." / "..", inbox / "link", "../../x"):
        with pytest.raises(InvalidInput, match=OUTSIDE):
            import_paths(engine, plain, [inbox, path], None, lea_cds=LEA_CDS)
    with pytest.raises(InvalidInput, match="No such file"):
        import_paths(engine, plain, ["missing.zip"], None, lea_cds=LEA_CDS)
    assert _runs(engine) == []  # refused before a run starts: nothing listed, nothing opened

    summary = import_paths(
        engine, plain, [name(SSIDS[0])], None, lea_cds=LEA_CDS
    )  # relative: in the inbox
    assert summary.progress.stored == 1


def test_the_import_command_is_bound_to_the_intake_folders(engine: Engine, plain: Settings) -> None:
    seed_roster(engine)
    (inbox,) = intake_folders(plain)
    (inbox / name(SSIDS[0])).write_bytes(ssr(SSIDS[0]))
    base = [sys.executable, "-m", "console.cli", "--database-url", plain.database_url]
    base += ["--data-dir", str(plain.data_dir), "import", "--lea", LEA_CDS]

    refused = subprocess.run([*base, "/etc/ssh"], capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2
    assert OUTSIDE in refused.stderr and "Traceback" not in refused.stderr
    assert _runs(engine) == []

    done = subprocess.run([*base, str(inbox)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "1 stored" in done.stdout


async def test_a_site_coordinator_typing_server_paths_gets_a_sentence_and_no_listing(
    engine: Engine, plain: Settings
) -> None:
    seed_roster(engine)
    with Session(engine, expire_on_commit=False) as session:
        site = Operator(username="site", display_name="Sam", role=Role.SITE, lea_id=1, school_id=1)
        session.add(site)
        session.commit()
    (inbox,) = intake_folders(plain)
    (inbox / name(SSIDS[0])).write_bytes(ssr(SSIDS[0]))
    app = SSRConsoleApp(ConsoleContext(engine, plain, site))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("i")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ImportReportsScreen)
        await pilot.press("slash", *"/etc/ssh;/root", "enter")
        await settle(pilot)
        stats = str(screen.query_one("#stats", Static).render())
        assert "Import not started" in stats and OUTSIDE in stats
        assert screen.query_one("#exceptions", DataTable).row_count == 0
        assert _runs(engine) == []

        screen.query_one("#paths", Input).value = name(SSIDS[0])  # a file in the inbox
        await pilot.press("enter")
        await worker_runs(pilot, engine, plain)
        assert "matched 1" in str(screen.query_one("#stats", Static).render())


async def test_a_name_that_is_not_utf8_is_listed_and_the_session_goes_on(
    engine: Engine, plain: Settings
) -> None:
    seed_roster(engine)
    with Session(engine, expire_on_commit=False) as session:
        lea = Operator(username="caaspp", display_name="Dana", role=Role.LEA_CAASPP, lea_id=1)
        session.add(lea)
        session.commit()
    (inbox,) = intake_folders(plain)
    (inbox / name(SSIDS[0])).write_bytes(ssr(SSIDS[0]))
    with open(os.path.join(os.fsencode(inbox), b"bad\xff.pdf"), "wb") as handle:
        handle.write(ssr(SSIDS[1]))
    app = SSRConsoleApp(ConsoleContext(engine, plain, lea))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("i")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ImportReportsScreen)
        screen.query_one("#paths", Input).value = str(inbox)
        await pilot.press("slash", "enter")
        await worker_runs(pilot, engine, plain)
        assert app.is_running and app.screen is screen
        shown = str(screen.query_one("#stats", Static).render())
        assert "finished" in shown and "2 files" in shown
        table = screen.query_one("#exceptions", DataTable)
        (row,) = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
        assert row[0] == "file name does not carry the report details"
        assert row[1].endswith("bad\\xff.pdf")
