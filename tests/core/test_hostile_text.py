"""Hostile text from a roster, a zip or a help desk form never drives the operator's terminal.

Names, emails, school and batch names and zip member names carry an OSC 52 clipboard write, a
clear-screen, an OSC 0 title change, unbalanced Rich markup, a C1 CSI, a right-to-left override
and a NUL. Every screen each role may open shows them as visible escapes (no raw control byte in
what the compositor draws, no markup error, the session goes on); the real `ssr-console import`
process prints them escaped; typed control characters are refused with a sentence.
"""

from __future__ import annotations

import html
import io
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from textual import events
from textual.widgets import DataTable, Input

from console.app import SSRConsoleApp
from console.navigation import DESTINATIONS, LazyScreen
from screens.batch_progress import BatchProgressScreen
from screens.dashboard import DashboardScreen
from screens.helpdesk import FamilyScreen
from screens.import_reports import ImportReportsScreen
from services.access import operators
from services.access.permissions import require
from services.audit import log as audit
from services.audit.log import Actor
from services.core import db
from services.core.context import ConsoleContext
from services.core.display import safe_text
from services.core.errors import ConsoleError, InvalidInput
from services.core.settings import Settings
from services.core.validation import plain_text
from services.helpdesk import email_changes
from services.roster.tables import Guardian, Student
from tests.delivery_harness import copy_database, first_school_batch, seeded_template
from tests.intake_fixtures import LEA_CDS, SSIDS, name, seed_roster, ssr, worker_runs
from tests.pilot import settle
from widgets.form_dialog import FormDialog

SIZE = (80, 24)
OSC52 = "\x1b]52;c;aGFja2Vk\x07"  # sets the operator's clipboard to "hacked"
CLEAR = "\x1b[2J"
TITLE = "\x1b]0;pwned\x07"
HOSTILE = f"{OSC52}[/bold]{CLEAR}[red]x{TITLE}\x9b2J\u202e\x00"
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
"""What must never reach the terminal from data (tab and newline are layout, not data)."""


def test_safe_text_shows_every_control_character_as_an_escape() -> None:
    shown = safe_text(f"Ana{HOSTILE}\n\u2066")
    assert not RAW.search(shown) and "\n" not in shown
    assert shown.startswith("Ana\\x1b]52;c;aGFja2Vk\\x07[/bold]\\x1b[2J")
    assert "\\x9b2J\\u202e\\x00\\x0a\\u2066" in shown
    assert safe_text("a\nb\x1b", multiline=True) == "a\nb\\x1b"
    assert safe_text("Nguyễn 阮 عربي") == "Nguyễn 阮 عربي"  # letters of every script stay


def test_typed_text_with_a_control_character_is_refused_with_a_sentence() -> None:
    assert plain_text("  guardian  asked\tagain ", "the reason") == "guardian asked again"
    for bad in (CLEAR, "\x9b", "\u202e", "\x00"):
        with pytest.raises(InvalidInput, match="contains a control character"):
            plain_text(f"typo{bad}", "the reason")


@pytest.fixture
def world(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Iterator[Engine]:
    """The demo LEA with a batch, then every name, email, school, the LEA, the batch and an
    audit target made hostile, as a roster or an API could deliver them."""
    template = seeded_template(tmp_path_factory.getbasetemp(), students=40, seed=7)
    copy_database(template, tmp_path / "ssr.db")
    engine = db.make_engine(f"sqlite:///{tmp_path / 'ssr.db'}")
    first_school_batch(engine)
    with Session(engine) as session:
        for statement in (
            "UPDATE student SET first_name = first_name || :h, last_name = last_name || :h",
            "UPDATE guardian SET first_name = first_name || :h, last_name = :h || last_name",
            "UPDATE guardian SET email = replace(email, '@', :h || '@')",
            "UPDATE school SET name = name || :h",
            "UPDATE lea SET name = name || :h",
            "UPDATE delivery_batch SET name = :h",
        ):
            session.execute(text(statement), {"h": HOSTILE})
        audit.record(session, Actor("tech", "tech"), "test.hostile", HOSTILE, {"name": HOSTILE})
        session.commit()
    yield engine
    engine.dispose()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path / 'ssr.db'}", data_dir=tmp_path / "data")


def hostile_zip(settings: Settings, ssids: list[str]) -> Path:
    """Real SSRs, and two members with hostile names: a report and a text file (without the
    NUL: zipfile ends a member name there)."""
    hostile = HOSTILE.replace("\x00", "")
    inbox = settings.data_dir / "inbox"  # the default intake folder
    inbox.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = inbox / "ssrs.zip"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for ssid in ssids:
            archive.writestr(name(ssid), ssr(ssid))
        archive.writestr(f"{hostile}.pdf", ssr(ssids[0]))
        archive.writestr(f"notes{hostile}.txt", "not a report")
    path.write_bytes(buffer.getvalue())
    return path


async def drawn(app: SSRConsoleApp, pilot) -> str:  # type: ignore[no-untyped-def]
    """The text the compositor draws now (screen, dialogs, notifications), checked for raw
    control bytes."""
    await settle(pilot)
    picture = app.export_screenshot()
    found = RAW.search(picture)
    assert found is None, f"{app.screen!r} drew {found.group()!r} from the data"
    return html.unescape(re.sub(r"<[^>]*>", "", picture)).replace("\xa0", " ")


def allowed(operator, permission) -> bool:  # type: ignore[no-untyped-def]
    try:
        require(operator, permission)
    except ConsoleError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.parametrize("role", ["caaspp", "elpac", "site", "tech", "helpdesk"])
async def test_every_screen_shows_hostile_data_as_plain_escaped_text(
    world: Engine, settings: Settings, role: str
) -> None:
    operator = operators.resolve(world, role)
    own = [Student.school_id == operator.school_id] if operator.school_id else []
    with Session(world) as session:
        student = session.exec(select(Student).where(*own).order_by(col(Student.id))).first()
        ssids = list(session.exec(select(Student.ssid).order_by(col(Student.id)).limit(2)))
    assert student is not None
    archive = hostile_zip(settings, ssids)
    app = SSRConsoleApp(ConsoleContext(world, settings, operator))
    async with app.run_test(size=SIZE) as pilot:
        shown = [await drawn(app, pilot)]
        for destination in DESTINATIONS[1:]:
            if destination.permission and not allowed(operator, destination.permission):
                continue
            await pilot.press(destination.key)
            shown.append(await drawn(app, pilot))
            screen = app.screen
            factory = destination.factory
            expected = factory.name if isinstance(factory, LazyScreen) else factory.__name__
            assert type(screen).__name__ == expected
            if isinstance(screen, ImportReportsScreen):
                await pilot.press("slash")
                screen.query_one("#paths", Input).value = str(archive)
                await pilot.press("enter")
                await worker_runs(pilot, world, settings)
                shown.append(await drawn(app, pilot))
                table = screen.query_one("#exceptions", DataTable)
                sources = [str(table.get_row_at(i)[1]) for i in range(table.row_count)]
                assert any("\\x1b]0;pwned\\x07\\x9b2J\\u202e.txt" in s for s in sources)
                summary = screen.query_one("#summary", DataTable)
                assert all("\\x1b]52" in str(summary.get_row_at(i)[0]) for i in range(1))
                table.focus()  # keys are destinations again
            elif destination.key == "b":
                await pilot.press("enter")
                shown.append(await drawn(app, pilot))
                assert isinstance(app.screen, BatchProgressScreen)
                await pilot.press("escape")
            elif destination.key == "h":
                screen.query_one("#search", Input).insert_text_at_cursor(student.ssid)
                await pilot.press("enter")
                shown.append(await drawn(app, pilot))
                await pilot.press("enter")
                shown.append(await drawn(app, pilot))
                assert isinstance(app.screen, FamilyScreen)
                await pilot.press("e")  # the dialog's intro names the hostile guardian
                shown.append(await drawn(app, pilot))
                await pilot.press("escape")
            await settle(pilot)
        if role != "tech":  # the tech coordinator sees no names, only counts
            assert sum("\\x1b" in picture for picture in shown) >= 3
        await pilot.press("d")  # the session still answers
        await settle(pilot)
        assert isinstance(app.screen, DashboardScreen)
    assert app.return_code in (None, 0)


async def test_correct_email_refuses_a_control_character_with_a_sentence(
    world: Engine, settings: Settings
) -> None:
    operator = operators.resolve(world, "helpdesk")
    with Session(world) as session:
        student = session.exec(select(Student).order_by(col(Student.id))).first()
    assert student is not None
    app = SSRConsoleApp(ConsoleContext(world, settings, operator))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("h")
        await settle(pilot)
        app.screen.query_one("#search", Input).insert_text_at_cursor(student.ssid)
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("e")
        await settle(pilot)
        dialog = app.screen
        assert isinstance(dialog, FormDialog)
        email = dialog.query_one("#field-email", Input)
        assert not RAW.search(email.value)  # the hostile address on file is shown escaped
        email.value = ""
        email.post_message(events.Paste(f"new{OSC52}@example.org"))  # the terminal's paste
        await drawn(app, pilot)
        assert app.screen is dialog and email.value == ""
        said = [n.message for n in app._notifications]  # Textual lists toasts nowhere public
        assert "The text contains a control character (\\x1b); type plain text" in said
        email.insert_text_at_cursor("new@example.org")
        assert email.value == "new@example.org"  # plain text goes in as before
    with Session(world) as session:
        guardian_id = session.exec(select(Guardian.id).order_by(col(Guardian.id))).first()
    assert guardian_id is not None
    with pytest.raises(InvalidInput, match="control character"):  # the service refuses too
        email_changes.correct_email(world, operator, guardian_id, "a\x1b[2J@example.org", "typo")
    with pytest.raises(InvalidInput, match="control character"):
        email_changes.correct_email(world, operator, guardian_id, "a@example.org", f"typo{TITLE}")


def test_import_command_prints_hostile_names_escaped(engine: Engine, settings: Settings) -> None:
    seed_roster(engine)
    with Session(engine) as session:
        session.execute(text("UPDATE school SET name = name || :h"), {"h": HOSTILE})
        session.commit()
    archive = hostile_zip(settings, [SSIDS[0], SSIDS[3]])
    run = subprocess.run(  # noqa: S603 - our own CLI
        [
            sys.executable,
            "-m",
            "console.cli",
            "--database-url",
            settings.database_url,
            "--data-dir",
            str(settings.data_dir),
            "import",
            str(archive),
            "--lea",
            LEA_CDS,
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    output = (run.stdout + run.stderr).decode()
    assert "\x1b" not in output.replace("\r", "") and not RAW.search(output.replace("\r", ""))
    assert "Alder Elementary\\x1b]52;c;aGFja2Vk\\x07[/bold]\\x1b[2J" in output  # the summary
    assert "notes\\x1b]52;c;aGFja2Vk\\x07[/bold]" in output  # the refused members
    assert "2 stored" in output
