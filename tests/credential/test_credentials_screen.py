"""The credential screen driven by keys at 80x24, then a scan of every trace for the secrets."""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import pytest
from sqlmodel import Session, select
from textual.widgets import DataTable

from console.app import SSRConsoleApp
from screens.credential import CredentialScreen
from screens.credential_forms import FormDialog
from screens.help import HelpScreen
from services.audit.tables import AuditEvent
from services.core.context import ConsoleContext
from services.core.errors import PermissionDenied
from services.credential import lifecycle as credentials
from tests import credentials_world
from tests.credentials_world import TokenServer
from widgets.banner import BannerBar
from widgets.secret_reveal import MASK, SecretReveal

SIZE = (80, 24)


@pytest.fixture
def world(engine):
    return credentials_world.build(engine)


def _app(engine, settings, world, who: str) -> SSRConsoleApp:
    return SSRConsoleApp(ConsoleContext(engine, settings, world[who]))


async def _open(pilot) -> CredentialScreen:
    await pilot.press("c")
    await pilot.pause()
    screen = pilot.app.screen
    assert isinstance(screen, CredentialScreen)
    return screen


async def _fill(pilot, *values: str, typed: bool = False) -> FormDialog:
    """Enter each value into the dialog's fields in turn (enter moves on, then submits).

    Values are inserted at the focused input's cursor, as a paste would; ``typed`` presses every
    key instead (slower, so only one test does it).
    """
    dialog = pilot.app.screen
    assert isinstance(dialog, FormDialog)
    for value in values:
        if typed:
            await pilot.press(*value)
        else:
            pilot.app.focused.insert_text_at_cursor(value)
        await pilot.press("enter")
    if not values:
        await pilot.press("enter")
    await pilot.pause()
    return dialog


def _shown_secret(screen: CredentialScreen) -> str:
    """Reveal the key with `v` was pressed already; read it off the widget's rendering."""
    return str(screen.query_one(SecretReveal).render()).splitlines()[1]


def _screen_text(app) -> str:
    return app.export_screenshot()


def _systems(screen: CredentialScreen) -> list[list[str]]:
    table = screen.query_one("#systems", DataTable)
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


async def _generate_and_reveal(pilot, engine, world) -> str:
    screen = await _open(pilot)
    await pilot.press("g")
    await pilot.pause()
    reveal = screen.query_one(SecretReveal)
    assert reveal.holding and reveal.has_focus
    assert set(str(reveal.render()).splitlines()[1]) == {MASK}
    await pilot.press("v")
    await pilot.pause()
    secret = _shown_secret(screen)
    assert len(secret) >= 20 and credentials.verify_secret(engine, world.lea_id, secret)
    return secret


async def test_generate_reveal_copy_close_reopen(engine, settings, world):
    app = _app(engine, settings, world, "caaspp")
    async with app.run_test(size=SIZE) as pilot:
        secret = await _generate_and_reveal(pilot, engine, world)
        assert secret in _screen_text(app)
        written: list[str] = []
        app._driver.write = written.append  # the terminal's side of OSC 52
        await pilot.press("y")
        await pilot.pause()
        osc52 = f"\x1b]52;c;{base64.b64encode(secret.encode()).decode()}\a"
        assert osc52 in written
        assert app.clipboard == ""  # Textual's in-app copy is cleared straight away
        await pilot.press("v")
        await pilot.pause()
        assert secret not in _screen_text(app)
        old = app.screen.query_one(SecretReveal)
        await pilot.press("escape")
        await pilot.pause()
        assert not old.holding
        screen = await _open(pilot)
        assert not screen.query_one(SecretReveal).holding
        await pilot.press("v")
        await pilot.pause()
        assert secret not in _screen_text(app)
        assert "ACTIVE" in str(screen.query_one("#status").render())


async def test_forget_drops_the_secret_at_once(engine, settings, world):
    app = _app(engine, settings, world, "elpac")
    async with app.run_test(size=SIZE) as pilot:
        secret = await _generate_and_reveal(pilot, engine, world)
        await pilot.press("f")
        await pilot.pause()
        assert not app.screen.query_one(SecretReveal).holding
        assert secret not in _screen_text(app)


async def _write_note(pilot, typed: bool = False) -> None:
    await pilot.press("R")
    await pilot.pause()
    await _fill(pilot, "Vendor moved hosting", "Friday 18:00", "Jo Park PowerPortal", typed=typed)


async def test_reset_refused_without_coordination(engine, settings, world):
    old = credentials.generate(engine, world["caaspp"], world.lea_id)
    app = _app(engine, settings, world, "caaspp")
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open(pilot)
        await _write_note(pilot, typed=True)
        assert "Waiting for the LEA ELPAC coordinator" in str(screen.query_one("#request").render())
        await pilot.press("x")
        await pilot.pause()
        dialog = await _fill(pilot)
        assert app.screen is dialog  # refused: the dialog stays, with the reason
        error = str(dialog.query_one("#error").render())
        assert "Reset refused" in error and "LEA ELPAC coordinator" in error
        await pilot.press("escape")
        await pilot.pause()
        assert not screen.query_one(SecretReveal).holding
    assert credentials.verify_secret(engine, world.lea_id, old.secret)


async def _acknowledge_as(engine, settings, world, who: str) -> None:
    app = _app(engine, settings, world, who)
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open(pilot)
        await pilot.press("k")
        await pilot.pause()
        await _fill(pilot)
        assert "Acknowledged by" in str(screen.query_one("#request").render()) or (
            "acknowledged" in str(screen.query_one("#status").render())
        )


async def test_reset_with_acknowledgement_by_the_other_coordinator(engine, settings, world):
    old = credentials.generate(engine, world["caaspp"], world.lea_id)
    app = _app(engine, settings, world, "caaspp")
    async with app.run_test(size=SIZE) as pilot:
        await _open(pilot)
        await _write_note(pilot)
    await _acknowledge_as(engine, settings, world, "elpac")
    app = _app(engine, settings, world, "caaspp")
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open(pilot)
        await pilot.press("x")
        await pilot.pause()
        await _fill(pilot)
        assert isinstance(app.screen, CredentialScreen)
        await pilot.press("v")
        await pilot.pause()
        new = _shown_secret(screen)
    assert credentials.verify_secret(engine, world.lea_id, new)
    assert not credentials.verify_secret(engine, world.lea_id, old.secret)
    [latest, _] = credentials.history(engine, world["caaspp"], world.lea_id)
    assert latest.reset.acknowledged_by == "elpac"


async def test_emergency_override_needs_a_reason_and_shows_on_the_dashboard(
    engine, settings, world
):
    credentials.generate(engine, world["elpac"], world.lea_id)
    app = _app(engine, settings, world, "elpac")
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open(pilot)
        await pilot.press("X")
        await pilot.pause()
        dialog = await _fill(pilot, "")
        assert "reason" in str(dialog.query_one("#error").render())
        await _fill(pilot, "Key pasted in a ticket")
        assert isinstance(app.screen, CredentialScreen)
        assert screen.query_one(SecretReveal).holding
        assert "NOT YET ACKNOWLEDGED" in str(screen.query_one("#status").render())
        await pilot.press("escape")
        await app.workers.wait_for_complete()  # the dashboard panels load in threads
        await pilot.pause()
        banner = str(app.screen.query_one(BannerBar).render())
        assert banner.startswith("ERROR: ") and "EMERGENCY reset, unacknowledged" in banner
        assert "EMERGENCY" in str(app.screen.query_one("#credential").render())
    with Session(engine) as session:
        actions = list(session.exec(select(AuditEvent.action)))
    assert "credential.reset.EMERGENCY" in actions
    await _acknowledge_as(engine, settings, world, "caaspp")
    assert credentials.status(engine, world.lea_id).emergency_acknowledged


@pytest.mark.parametrize("who", ["helpdesk", "site"])
async def test_readers_see_status_but_cannot_reach_generate_or_reset(engine, settings, world, who):
    credentials.generate(engine, world["caaspp"], world.lea_id)
    credentials.request_reset(
        engine,
        world["caaspp"],
        world.lea_id,
        reason="Portal vendor rotating keys",
        planned_for="Monday",
        vendor_contact="Kim at PowerPortal",
    )
    app = _app(engine, settings, world, who)
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open(pilot)
        assert "ACTIVE" in str(screen.query_one("#status").render())
        assert "Why: Portal vendor rotating keys" in str(screen.query_one("#request").render())
        notes = screen.query_one("#notes", DataTable)
        assert [str(c) for c in notes.get_row_at(0)][3:5] == [
            "waiting",
            "Portal vendor rotating keys",
        ]
        for key in ("g", "R", "x", "X", "k", "K", "W", "plus", "minus", "m", "t"):
            await pilot.press(key)
            await pilot.pause()
            assert app.screen is screen, key
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        descriptions = " ".join(k.description for k in app.screen.keys).lower()
        for word in ("generate", "reset", "emergency", "acknowledge", "test", "system"):
            assert word not in descriptions, word
    with pytest.raises(PermissionDenied):
        credentials.emergency_reset(engine, world[who], world.lea_id, reason="trying anyway")
    assert len(credentials.history(engine, world[who], world.lea_id)) == 1


async def _add_system(pilot, name: str, url: str) -> None:
    await pilot.press("plus")
    await pilot.pause()
    await _fill(pilot, name, url)


async def _test_connection(pilot, secret: str) -> str:
    await pilot.press("t")
    await pilot.pause()
    await pilot.press("enter")  # the username is filled in: the live credential's
    await _fill(pilot, secret)
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    return _systems(pilot.app.screen)[0][2]


async def test_checklist_after_reset_against_a_loopback_token_endpoint(engine, settings, world):
    credentials.generate(engine, world["caaspp"], world.lea_id)
    with TokenServer() as server:
        app = _app(engine, settings, world, "caaspp")
        async with app.run_test(size=SIZE) as pilot:
            screen = await _open(pilot)
            await _add_system(pilot, "Parent portal", server.url)
            await _write_note(pilot)
            await pilot.press("K")
            await pilot.pause()
            await _fill(pilot, "Eli by phone", "today 9am")
            await pilot.press("x")
            await pilot.pause()
            await _fill(pilot)
            await pilot.press("v")
            await pilot.pause()
            secret = _shown_secret(screen)
            username = credentials.status(engine, world.lea_id).username
            server.accepted = (username, secret)
            items = credentials.checklist(engine, world["helpdesk"], world.lea_id)
            assert [(i.system.name, i.updated) for i in items] == [("Parent portal", False)]
            assert _systems(screen)[0][1] == "STILL ON OLD KEY"

            tested = await _test_connection(pilot, "Wrong" + secret[5:])
            assert tested.startswith("FAILED: Refused (HTTP 401)")
            [item] = credentials.checklist(engine, world["helpdesk"], world.lea_id)
            assert item.entry.test_ok is False
            assert item.entry.test_message.startswith("Refused (HTTP 401)")

            assert (await _test_connection(pilot, secret)).startswith("OK: Token issued")
            [item] = credentials.checklist(engine, world["helpdesk"], world.lea_id)
            assert item.entry.test_ok and "accepts" in item.entry.test_message
            assert server.requests == 2

            await pilot.press("m")
            await pilot.pause()
            [item] = credentials.checklist(engine, world["helpdesk"], world.lea_id)
            assert item.updated and item.entry.updated_by == "caaspp"
            assert _systems(screen)[0][1].startswith("updated ")


async def test_no_trace_of_any_secret_in_database_logs_or_audit(
    engine, settings, world, sqlite_url, caplog
):
    """Run every flow, collecting each secret shown, then look for them everywhere they must not be."""
    caplog.set_level(logging.DEBUG)
    keeper = engine.connect()  # holds the database open so SQLite keeps its -wal file to scan
    keeper.exec_driver_sql("SELECT 1")
    secrets: list[str] = []
    with TokenServer() as server:
        app = _app(engine, settings, world, "caaspp")
        async with app.run_test(size=SIZE) as pilot:
            secrets.append(await _generate_and_reveal(pilot, engine, world))
            await pilot.press("y")
            await pilot.pause()
            await pilot.press("escape")
            screen = await _open(pilot)
            await _add_system(pilot, "Parent portal", server.url)
            await _write_note(pilot)
        await _acknowledge_as(engine, settings, world, "elpac")
        app = _app(engine, settings, world, "caaspp")
        async with app.run_test(size=SIZE) as pilot:
            screen = await _open(pilot)
            await pilot.press("x")
            await pilot.pause()
            await _fill(pilot)
            await pilot.press("v")
            await pilot.pause()
            secrets.append(_shown_secret(screen))
            server.accepted = (credentials.status(engine, world.lea_id).username, secrets[-1])
            await _test_connection(pilot, secrets[-1])
            await _test_connection(pilot, secrets[0])  # the revoked key: refused
            await pilot.press("X")
            await pilot.pause()
            await _fill(pilot, "Key read out on a recorded call")
            await pilot.press("v")
            await pilot.pause()
            secrets.append(_shown_secret(screen))
    assert len(set(secrets)) == 3

    needles = set()
    for secret in secrets:
        needles |= {secret.encode(), secret.encode("utf-16-le")}
        needles.add(base64.b64encode(secret.encode()))
    for entry in credentials.history(engine, world["caaspp"], world.lea_id):
        user = entry.credential.username
        needles |= {base64.b64encode(f"{user}:{s}".encode()) for s in secrets}
    database = Path(sqlite_url.removeprefix("sqlite:///"))
    files = [p for p in database.parent.glob(database.name + "*") if p.is_file()]
    assert database in files and any(p.name.endswith("-wal") for p in files)
    for path in files:
        data = path.read_bytes()
        assert not any(n in data for n in needles), path.name
    keeper.close()

    logged = (
        "\n".join(f"{r.name} {r.getMessage()} {r.args!r}" for r in caplog.records) + caplog.text
    )
    assert "credential.reset.EMERGENCY" in logged or "EMERGENCY" in logged
    assert not any(n.decode(errors="ignore") in logged for n in needles)

    with Session(engine) as session:
        events = session.exec(select(AuditEvent)).all()
    assert len(events) >= 8
    for event in events:
        row = " ".join(str(v) for v in event.model_dump().values())
        assert not any(s in row for s in secrets), event.action


async def test_on_the_demo_district_both_coordinators_share_one_credential(engine, settings):
    from services.access import operators
    from services.demo import district as demo

    demo.seed(engine, settings, students=6, seed=3, pdfs=False)
    caaspp, elpac = (operators.resolve(engine, name) for name in ("caaspp", "elpac"))
    app = SSRConsoleApp(ConsoleContext(engine, settings, caaspp))
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open(pilot)
        await pilot.press("g")
        await pilot.pause()
        assert screen.query_one(SecretReveal).holding
    app = SSRConsoleApp(ConsoleContext(engine, settings, elpac))
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open(pilot)
        assert not screen.query_one(SecretReveal).holding
        assert "ACTIVE" in str(screen.query_one("#status").render())
        await pilot.press("g")  # a valid key exists: generating again is not offered
        await pilot.pause()
        assert not screen.query_one(SecretReveal).holding
    assert len(credentials.history(engine, elpac, elpac.lea_id)) == 1


def test_credential_keys_do_not_shadow_app_destinations():
    from console.navigation import DESTINATIONS

    ours = {b.key for b in CredentialScreen.BINDINGS + SecretReveal.BINDINGS}
    assert ours.isdisjoint({d.key for d in DESTINATIONS} | {"q", "question_mark", "escape"})


async def test_test_connection_without_a_token_url_is_refused_in_a_sentence(
    engine, settings, world
):
    credentials.generate(engine, world["caaspp"], world.lea_id)
    credentials.add_system(engine, world["caaspp"], world.lea_id, "CERS roster sync")
    app = _app(engine, settings, world, "caaspp")
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open(pilot)
        await pilot.press("t")
        await pilot.pause()
        assert app.screen is screen
        assert any("has no token URL" in n.message for n in app._notifications)


async def test_withdraw_a_request_and_retire_a_system_by_keys(engine, settings, world):
    credentials.generate(engine, world["caaspp"], world.lea_id)
    app = _app(engine, settings, world, "caaspp")
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open(pilot)
        await _add_system(pilot, "Special-ed system", "")
        await _write_note(pilot)
        await pilot.press("W")
        await pilot.pause()
        await _fill(pilot)
        assert credentials.open_request(engine, world.lea_id) is None
        assert str(screen.query_one("#notes", DataTable).get_row_at(0)[3]).startswith("withdrawn")
        await pilot.press("minus")
        await pilot.pause()
        await _fill(pilot)
        assert credentials.checklist(engine, world["caaspp"], world.lea_id) == []
        assert _systems(screen) == []
