"""The credential screen driven by keys at 80x24 against a TOMS-style token endpoint and a real SMTP
server (aiosmtpd) on loopback, then a scan of every trace for the secrets."""

from __future__ import annotations

import base64
import logging
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from sqlmodel import Session, select
from textual.widgets import DataTable

from console.app import SSRConsoleApp
from screens import credential as credential_screen
from screens.credential import CredentialScreen
from screens.help import HelpScreen
from services.access.tables import Operator
from services.audit.tables import AuditEvent
from services.core.context import ConsoleContext
from services.core.errors import PermissionDenied
from services.credential import lifecycle as credentials
from services.credential import reset as resets
from services.credential import systems
from services.reminders import ledger
from tests import credentials_world
from tests.credentials_world import TokenServer
from tests.reminders_world import SmtpServer
from widgets.banner import BannerBar
from widgets.form_dialog import FormDialog
from widgets.secret_reveal import SecretReveal

SIZE = (80, 24)
USER = "lea-1964733-sis"
FIRST, SECOND, THIRD = "Zq4vN8wX2mR7tK3pL9sB", "Hy6cD1fG5jW9nQ2rT8uE", "Pm3kS7vB1xC5zL9qW2eR"


@pytest.fixture
def world(engine):
    return credentials_world.build(engine)


@pytest.fixture
def toms():
    with TokenServer(accepted=(USER, FIRST)) as server:
        yield server


@pytest.fixture
def smtp():
    with SmtpServer() as server:
        yield server


@pytest.fixture
def wired(settings, toms, smtp):
    """Settings pointing at the loopback TOMS (``[toms] url``) and SMTP server."""
    extra = {
        **settings.extra,
        "toms": {"url": toms.url.removesuffix("/api/v1/token")},
        "smtp": {"host": "127.0.0.1", "port": smtp.port, "from_address": "ssr@lrusd.example"},
    }
    return replace(settings, extra=extra)


def _app(engine, settings, world, who: str) -> SSRConsoleApp:
    return SSRConsoleApp(ConsoleContext(engine, settings, world[who]))


async def _open(pilot, key: str = "c"):
    await pilot.press(key)
    await pilot.pause()
    return pilot.app.screen


async def _fill(pilot, *values: str) -> FormDialog:
    """Enter each value into the dialog's fields in turn (enter moves on, then submits); a
    pre-filled field is replaced."""
    dialog = pilot.app.screen
    assert isinstance(dialog, FormDialog)
    for value in values:
        field = pilot.app.focused
        if value is not None:
            field.value = ""
            field.insert_text_at_cursor(value)
        await pilot.press("enter")
    if not values:
        await pilot.press("enter")
    await pilot.pause()
    return dialog


async def _settle(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def _record(pilot, secret: str, generated: str | None = None) -> None:
    await pilot.press("e")
    await pilot.pause()
    await _fill(pilot, USER, secret, generated or f"{date.today()}")
    await _settle(pilot)


async def _until(pilot, condition, within: float = 30) -> float:
    """Wait (pausing the app) until ``condition()`` holds; the monotonic time it did."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await pilot.pause(0.05)
    return time.monotonic()


def _text(screen, selector: str) -> str:
    return str(screen.query_one(selector).render())


def _systems(screen: CredentialScreen) -> list[list[str]]:
    table = screen.query_one("#systems", DataTable)
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


def _notices(app) -> list[str]:
    return [n.message for n in app._notifications]


async def test_record_verified_then_reveal_masks_after_30_s_and_on_leaving(
    engine, wired, world, toms, monkeypatch
):
    monkeypatch.setattr(credential_screen, "REVEAL_SECONDS", 6)
    app = _app(engine, wired, world, "caaspp")
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open(pilot)
        assert "Press e to enter the one TOMS issued" in _text(screen, "#status")
        await _record(pilot, "Wrong0000Wrong0000XX")
        assert any("TOMS refused" in m and "invalid_client" in m for m in _notices(app))
        assert credentials.status(engine, world.lea_id).credential_id is None
        await _record(pilot, FIRST, "2026-02-20")
        assert "verified" in _text(screen, "#status") and "2027-02-20" in _text(screen, "#status")
        assert toms.requests == 2
        reveal = screen.query_one(SecretReveal)
        await pilot.press("v")
        shown_at = await _until(pilot, lambda: reveal.holding)
        assert reveal.revealed and FIRST in _text(screen, SecretReveal)
        written: list[str] = []
        app._driver.write = written.append  # the terminal's side of OSC 52
        await pilot.press("y")
        await pilot.pause()
        assert f"\x1b]52;c;{base64.b64encode(FIRST.encode()).decode()}\a" in written
        assert app.clipboard == ""  # Textual's in-app copy is cleared straight away
        hidden_at = await _until(pilot, lambda: not reveal.holding, within=20)
        assert hidden_at - shown_at >= 3  # REVEAL_SECONDS, patched from 30 to 6
        assert FIRST not in app.export_screenshot()
        await pilot.press("v")
        await _until(pilot, lambda: reveal.holding)
        await pilot.press("d")  # another screen: the secret goes at once
        await pilot.pause()
        assert not reveal.holding
    with Session(engine) as session:
        actions = list(session.exec(select(AuditEvent.action).order_by(AuditEvent.seq)))
    assert actions == ["credential.record", "credential.reveal", "credential.reveal"]


async def test_toms_down_records_unverified_and_verify_later(engine, settings, world):
    port = credentials_world.free_port()
    toms_url = credentials_world.token_url(port).removesuffix("/api/v1/token")
    down = replace(settings, extra={**settings.extra, "toms": {"url": toms_url}})
    app = _app(engine, down, world, "elpac")
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open(pilot)
        await _record(pilot, FIRST)
        await _until(pilot, lambda: any("Recorded UNVERIFIED" in m for m in _notices(app)))
        await _until(pilot, lambda: "NOT VERIFIED YET" in _text(screen, "#status"))
        with TokenServer(port, accepted=(USER, FIRST)):
            await pilot.press("V")
            await _settle(pilot)
            # the worker's answer reaches the status panel through a message: wait for it
            await _until(pilot, lambda: "TOMS      verified" in _text(screen, "#status"))


async def test_full_reset_with_two_coordinators_and_the_email(engine, wired, world, toms, smtp):
    credentials.record(
        engine,
        world["caaspp"],
        world.lea_id,
        _vault(wired),
        toms.url,
        username=USER,
        secret=FIRST,
    )
    systems.add_system(engine, world["caaspp"], world.lea_id, "Parent portal", toms.url)
    app = _app(engine, wired, world, "caaspp")
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open(pilot)
        await pilot.press("e")  # a valid credential: entering another is not offered
        await pilot.pause()
        assert app.screen is screen
        await pilot.press("R")
        await pilot.pause()
        await _fill(pilot, "Vendor moved hosting", "Friday 18:00", "Jo Park PowerPortal")
        await _settle(pilot)
        assert "Waiting for the LEA ELPAC coordinator" in _text(screen, "#request")
    [(to, subject)] = smtp.inbox.subjects()
    assert to == "eli@lrusd.example"
    assert (
        subject
        == "The LEA CAASPP coordinator of Los Ranchos Unified asks to reset the TOMS credential"
    )

    app = _app(engine, wired, world, "elpac")
    async with app.run_test(size=SIZE) as pilot:
        notices = await _open(pilot, "n")
        await _settle(pilot)
        inbox = notices.query_one("#inbox-table", DataTable)
        rows = " ".join(str(c) for i in range(inbox.row_count) for c in inbox.get_row_at(i))
        assert "LEA CAASPP coordinator asks to reset the credential" in rows
        screen = await _open(pilot, "c")
        assert isinstance(screen, CredentialScreen) and notices is not screen
        await pilot.press("k")
        await pilot.pause()
        await _fill(pilot)
        assert "Acknowledged by elpac" in _text(screen, "#request")

    toms.accepted = (USER, SECOND)  # regenerated in TOMS: the first one is dead
    app = _app(engine, wired, world, "caaspp")
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open(pilot)
        assert "Next: regenerate in TOMS, then record it here (e)" in _text(screen, "#request")
        await pilot.press("e")
        await pilot.pause()
        assert "2. Regenerate it." in _text(app.screen, ".intro")  # the steps, in words
        await pilot.press("escape")
        await pilot.pause()
        await _record(pilot, SECOND)
        assert any("Now give it to every system" in m for m in _notices(app))
        assert _systems(screen)[0][1] == "STILL ON OLD KEY"
        await pilot.press("t")
        await _settle(pilot)
        assert _systems(screen)[0][2].startswith("OK: Token issued")
        await pilot.press("m")
        await pilot.pause()
        assert _systems(screen)[0][1].startswith("updated ")
    [latest, previous] = credentials.history(engine, world["helpdesk"], world.lea_id)
    assert latest.how.endswith("acknowledged by elpac") and previous.superseded_by == "caaspp"
    assert credentials.api_credential(engine, world.lea_id, _vault(wired)) == (USER, SECOND)
    assert len(smtp.inbox.subjects()) == 1  # acknowledged: no further notes


async def test_one_person_holding_both_roles_is_self_coordinated(engine, wired, world, toms, smtp):
    with Session(engine) as session:
        elpac = session.get(Operator, world["elpac"].id)
        elpac.email = "ana@lrusd.example"
        session.add(elpac)
        session.commit()
    credentials.record(
        engine, world["caaspp"], world.lea_id, _vault(wired), None, username=USER, secret=FIRST
    )
    toms.accepted = (USER, SECOND)
    app = _app(engine, wired, world, "caaspp")
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open(pilot)
        await pilot.press("R")
        await pilot.pause()
        await _fill(pilot, "Annual regeneration", "today", "Jo Park PowerPortal")
        await _settle(pilot)
        assert "Self-coordinated" in _text(screen, "#request")
        await _record(pilot, SECOND)
        assert credentials.status(engine, world.lea_id).verified
    assert smtp.inbox.subjects() == []
    [latest, _] = credentials.history(engine, world["site"], world.lea_id)
    assert "self-coordinated" in latest.how


async def test_emergency_emails_both_coordinators_at_once(engine, wired, world, toms, smtp):
    credentials.record(
        engine, world["elpac"], world.lea_id, _vault(wired), None, username=USER, secret=FIRST
    )
    app = _app(engine, wired, world, "elpac")
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open(pilot)
        await pilot.press("X")
        await pilot.pause()
        dialog = await _fill(pilot, "")
        assert "reason" in _text(dialog, "#error")
        await _fill(pilot, "Key pasted in a ticket")
        await _settle(pilot)
        assert sorted(to for to, _ in smtp.inbox.subjects()) == [
            "ana@lrusd.example",
            "eli@lrusd.example",
        ]
        assert all(s.startswith("EMERGENCY reset") for _, s in smtp.inbox.subjects())
        toms.accepted = (USER, SECOND)
        await _record(pilot, SECOND)
        assert "NOT YET ACKNOWLEDGED" in _text(screen, "#status")
        await pilot.press("escape")
        await _settle(pilot)
        banner = _text(app.screen, BannerBar)
        assert banner.startswith("ERROR: ") and "EMERGENCY reset, unacknowledged" in banner
    app = _app(engine, wired, world, "caaspp")
    async with app.run_test(size=SIZE) as pilot:
        await _open(pilot)
        await pilot.press("k")
        await pilot.pause()
        await _fill(pilot)
    assert credentials.status(engine, world.lea_id).emergency_acknowledged


@pytest.mark.parametrize("who", ["helpdesk", "site"])
async def test_readers_see_dates_and_names_but_no_key(engine, wired, world, who):
    credentials.record(
        engine, world["caaspp"], world.lea_id, _vault(wired), None, username=USER, secret=FIRST
    )
    resets.request_reset(
        engine,
        world["caaspp"],
        world.lea_id,
        reason="Portal vendor rotating keys",
        planned_for="Monday",
        vendor_contact="Kim at PowerPortal",
    )
    app = _app(engine, wired, world, who)
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open(pilot)
        assert "ACTIVE" in _text(screen, "#status") and USER not in _text(screen, "#status")
        assert "Why: Portal vendor rotating keys" in _text(screen, "#request")
        for key in ("e", "v", "V", "R", "X", "k", "K", "W", "plus", "minus", "m", "t"):
            await pilot.press(key)
            await pilot.pause()
            assert app.screen is screen, key
        assert not screen.query_one(SecretReveal).holding
        assert USER not in app.export_screenshot()
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        descriptions = " ".join(k.description for k in app.screen.keys).lower()
        for word in ("enter from toms", "reveal", "reset", "acknowledge", "test", "system"):
            assert word not in descriptions, word
    with pytest.raises(PermissionDenied):
        resets.emergency_reset(engine, world[who], world.lea_id, reason="trying anyway")


async def test_the_screenshot_command_is_gone(engine, wired, world, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_DOWNLOAD_DIR", str(tmp_path / "home" / "Downloads"))
    app = _app(engine, wired, world, "caaspp")
    async with app.run_test(size=SIZE) as pilot:
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Screenshot" not in titles and titles  # the rest of the palette stays
        assert not [b for b in app._bindings.key_to_bindings if "screenshot" in str(b)]
        for bindings in app._bindings.key_to_bindings.values():
            assert all("screenshot" not in b.action for b in bindings)
        await app.run_action("screenshot")
        app.deliver_screenshot()
        await pilot.pause(0.3)
    assert not list((tmp_path / "home").rglob("*.svg"))
    assert not list(Path.cwd().glob("*.svg"))


def test_credential_keys_do_not_shadow_app_destinations():
    from console.navigation import DESTINATIONS

    ours = {b.key for b in CredentialScreen.BINDINGS + SecretReveal.BINDINGS}
    assert ours.isdisjoint({d.key for d in DESTINATIONS} | {"q", "question_mark", "escape"})


async def test_withdraw_retire_and_a_test_without_token_url(engine, wired, world):
    credentials.record(
        engine, world["caaspp"], world.lea_id, _vault(wired), None, username=USER, secret=FIRST
    )
    app = _app(engine, wired, world, "caaspp")
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open(pilot)
        await pilot.press("plus")
        await pilot.pause()
        await _fill(pilot, "Special-ed system", "")
        await pilot.press("t")
        await _settle(pilot)
        assert any("has no token URL" in m for m in _notices(app))
        await pilot.press("R")
        await pilot.pause()
        await _fill(pilot, "Vendor moved hosting", "Friday 18:00", "Jo Park PowerPortal")
        await _settle(pilot)  # no SMTP answer is fine: the note waits in the ledger
        await pilot.press("W")
        await pilot.pause()
        await _fill(pilot)
        assert resets.open_request(engine, world.lea_id) is None
        assert str(screen.query_one("#notes", DataTable).get_row_at(0)[3]).startswith("withdrawn")
        await pilot.press("minus")
        await pilot.pause()
        await _fill(pilot)
        assert _systems(screen) == []


async def test_no_trace_of_any_secret_in_database_logs_audit_or_files(
    engine, wired, world, toms, smtp, sqlite_url, caplog, tmp_path
):
    """Run every flow, then look for each secret, in clear, base64, hex, UTF-16 and inside an
    HTTP Basic header, in the database and its WAL, the log, the audit rows and every file."""
    caplog.set_level(logging.DEBUG)
    keeper = engine.connect()  # holds the database open so SQLite keeps its -wal file to scan
    keeper.exec_driver_sql("SELECT 1")
    systems.add_system(engine, world["caaspp"], world.lea_id, "Parent portal", toms.url)
    app = _app(engine, wired, world, "caaspp")
    async with app.run_test(size=SIZE) as pilot:
        await _open(pilot)
        await _record(pilot, FIRST)
        await pilot.press("v")
        await _settle(pilot)
        await pilot.press("y")
        await pilot.press("R")
        await pilot.pause()
        await _fill(pilot, "Vendor moved hosting", "Friday 18:00", "Jo Park PowerPortal")
        await _settle(pilot)
    resets.acknowledge_reset(engine, world["elpac"], resets.open_request(engine, world.lea_id).id)
    toms.accepted = (USER, SECOND)
    app = _app(engine, wired, world, "caaspp")
    async with app.run_test(size=SIZE) as pilot:
        await _open(pilot)
        await _record(pilot, SECOND)
        await pilot.press("t")
        await _settle(pilot)
        await pilot.press("X")
        await pilot.pause()
        await _fill(pilot, "Key read out on a recorded call")
        await _settle(pilot)
        toms.accepted = (USER, THIRD)
        await _record(pilot, THIRD)
        await pilot.press("v")
        await _settle(pilot)
    assert credentials.api_credential(engine, world.lea_id, _vault(wired)) == (USER, THIRD)
    export = tmp_path / "data" / "audit.csv"
    _export_audit(engine, world, export)

    needles: set[bytes] = set()
    for secret in (FIRST, SECOND, THIRD):
        raw = secret.encode()
        needles |= {raw, secret.encode("utf-16-le"), base64.b64encode(raw), raw.hex().encode()}
        needles |= {raw.hex().upper().encode(), base64.b64encode(f"{USER}:{secret}".encode())}
    database = Path(sqlite_url.removeprefix("sqlite:///"))
    files = [p for p in database.parent.rglob("*") if p.is_file()]
    files += [p for p in (tmp_path / "data").rglob("*") if p.is_file()]
    assert database in files and any(p.name.endswith("-wal") for p in files) and export in files
    for path in files:
        data = path.read_bytes()
        assert not any(n in data for n in needles), path.name
    keeper.close()

    logged = "\n".join(f"{r.name} {r.getMessage()} {r.args!r}" for r in caplog.records)
    assert "credential.record" in logged and "EMERGENCY" in logged
    assert not any(n.decode(errors="ignore") in logged + caplog.text for n in needles)
    with Session(engine) as session:
        events = session.exec(select(AuditEvent)).all()
        notices = session.exec(select(ledger.Notice)).all()
    assert {"credential.reveal", "credential.system.test"} <= {e.action for e in events}
    for row in [*events, *notices]:
        text = " ".join(str(v) for v in row.model_dump().values())
        assert not any(n.decode(errors="ignore") in text for n in needles)
    mail = b"".join(m.as_bytes() for m in smtp.inbox.messages)
    assert mail and not any(n in mail for n in needles)


def _vault(settings):
    from services.core import vault

    return vault.load(settings)


def _export_audit(engine, world, path: Path) -> None:
    """The audit rows written through the console's one CSV writer, as an export would."""
    from services.core.csv_export import export

    with Session(engine) as session:
        rows = [
            [e.at, e.operator, e.action, e.target, e.detail]
            for e in session.exec(select(AuditEvent))
        ]
    export(path, ["at", "operator", "action", "target", "detail"], rows)
