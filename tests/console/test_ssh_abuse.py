"""The built-in SSH server under abuse (issue 21): rapid unauthenticated connections, too many
sessions, agent and X11 requests, an authorized-keys file others may write, a session that fails
unexpectedly, and a flood of env requests. The real OpenSSH client where it can do it; asyncssh's
client for what it cannot (300 connections at once, thousands of env requests)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import pytest
from sqlalchemy.engine import Engine

from console.ssh_launcher import ExecLauncher
from console.ssh_server import ConsoleServer, SSHOptions
from console.ssh_throttle import Throttle
from services.core.errors import InvalidInput
from tests.console.test_ssh_server import Lab, add_operators, open_lab, stand_in
from tests.ssh_harness import Terminal, run_ssh

BURST = 10


@pytest.fixture
async def lab(engine: Engine, tmp_path: Path) -> AsyncIterator[Lab]:
    add_operators(engine)
    lab = await open_lab(
        engine,
        tmp_path,
        stand_in,
        connection_burst=BURST,
        connections_per_minute=1,
        max_sessions=3,
        max_sessions_per_operator=2,
    )
    yield lab
    await lab.server.close()


async def _stranger(lab: Lab) -> str:
    """One connection with a key nobody listed: how it ended."""
    try:
        async with lab.client("stranger", connect_timeout=20):
            return "signed in"
    except asyncssh.PermissionDenied:
        return "key refused"
    except (OSError, asyncssh.Error):
        return "dropped"


async def test_rapid_unauthenticated_connections_are_throttled_with_one_summary_row(
    lab: Lab,
) -> None:
    outcomes = await asyncio.gather(*(_stranger(lab) for _ in range(300)))
    refused_keys = outcomes.count("key refused")
    assert "signed in" not in outcomes
    assert BURST <= refused_keys <= BURST + 2  # the burst, and what trickles in at 1 a minute
    assert outcomes.count("dropped") == 300 - refused_keys

    rows = await lab.flushed_audit("ssh.refused", count=refused_keys)
    throttled = [e for e in lab.audit() if e.action == "ssh.throttled"]
    assert len(rows) == refused_keys  # one row per connection that got as far as a key
    assert len(throttled) == 1  # one summary row, not one per dropped connection
    summary = json.loads(throttled[0].detail)
    assert summary["starting"] is True and summary["refused"] == 1
    assert throttled[0].target == "127.0.0.1"
    assert len(lab.audit()) == refused_keys + 1

    # a real client from the throttled address is dropped too, and still no more rows
    code, _ = await run_ssh(lab.argv("caaspp", "-tt"))
    assert code == 255
    await asyncio.sleep(0)
    assert [e.action for e in lab.audit()].count("ssh.throttled") == 1


async def test_a_school_signing_in_together_is_not_throttled_by_the_shipped_limits(
    engine: Engine, tmp_path: Path
) -> None:
    """Coordinators behind one school NAT sign in at once (issue 22: 20 of them)."""
    add_operators(engine)
    lab = await open_lab(engine, tmp_path, stand_in)

    async def sign_in(who: str) -> bool:
        async with lab.client(who, connect_timeout=30):
            return True

    try:
        signed_in = await asyncio.gather(
            *(sign_in(("caaspp", "helpdesk")[i % 2]) for i in range(20))
        )
        assert all(signed_in)
        await lab.flushed_audit("ssh.login", count=20)
        assert "ssh.throttled" not in [e.action for e in lab.audit()]
    finally:
        await lab.server.close()


def test_throttle_reports_an_address_once_per_interval_and_forgives_signed_in_connections() -> None:
    now = [0.0]
    throttle = Throttle(burst=2, per_minute=0.6, report_seconds=60, clock=lambda: now[0])
    assert throttle.check("a").admitted and throttle.check("a").admitted
    first = throttle.check("a")
    assert not first.admitted and first.report is not None
    assert (first.report.refused, first.report.starting) == (1, True)
    assert [throttle.check("a").report for _ in range(50)] == [None] * 50
    assert throttle.check("b").admitted  # another address has its own bucket
    now[0] = 61.0  # an interval later: one row, with the count since the last
    later = [throttle.check("a") for _ in range(20)]
    assert not any(v.admitted for v in later)
    reports = [v.report for v in later if v.report is not None]
    assert [(r.refused, r.starting) for r in reports] == [(51, False)]
    throttle.refund("a")  # a connection that signed in gives its token back
    assert throttle.check("a").admitted


async def test_session_caps_refuse_with_a_sentence(lab: Lab) -> None:
    terms = []
    for who in ("caaspp", "caaspp"):
        term = Terminal()
        await term.start(lab.argv(who, "-tt"))
        await term.expect(r"PIDS console=")
        terms.append(term)
    code, said = await run_ssh(lab.argv("caaspp", "-tt"))
    assert code == 1
    assert "caaspp already has 2 consoles open, the most one operator may; close one first" in said
    helper = Terminal()
    await helper.start(lab.argv("helpdesk", "-tt"))
    await helper.expect(r"PIDS console=")
    terms.append(helper)
    code, said = await run_ssh(lab.argv("helpdesk", "-tt"))
    assert code == 1 and "the server already has 3 consoles open, its most" in said
    refused = await lab.flushed_audit("ssh.request_refused", count=2)
    assert [json.loads(e.detail)["request"] for e in refused] == ["session limit"] * 2
    for term in terms:
        term.press("q")
        assert await term.wait() == 0


async def test_agent_and_x11_forwarding_are_refused_and_audited(lab: Lab) -> None:
    socket_path = lab.tmp / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(socket_path)], stdout=subprocess.DEVNULL)
    try:
        for _ in range(200):
            if socket_path.exists():
                break
            await asyncio.sleep(0.05)
        term = Terminal()
        argv = lab.argv(
            "caaspp", "-tt", "-A", "-o", "ForwardX11=yes", "-o", "ForwardX11Trusted=yes"
        )
        await term.start(argv, SSH_AUTH_SOCK=str(socket_path), DISPLAY="127.0.0.1:99")
        await term.expect(r"PIDS console=")  # the console opens; the forwarding does not
        term.press("q")
        assert await term.wait() == 0
    finally:
        agent.terminate()
        agent.wait()
    refused = await lab.flushed_audit("ssh.request_refused", count=2)
    requests = {json.loads(e.detail)["request"] for e in refused}
    assert requests == {"agent forwarding", "X11 forwarding"}
    assert all(e.operator == "caaspp" for e in refused)


@pytest.mark.parametrize("mode", [0o664, 0o606])
async def test_an_authorized_keys_file_others_may_write_stops_the_server(
    engine: Engine, tmp_path: Path, mode: int
) -> None:
    keys = tmp_path / "listed"
    keys.write_text("# nobody yet\n")
    keys.chmod(mode)
    options = SSHOptions.in_data_dir(tmp_path / "data", port=0, authorized_keys=keys)
    with pytest.raises(InvalidInput, match="can be changed by other accounts") as refused:
        await ConsoleServer(options, engine, ExecLauncher(stand_in)).start()
    assert f"chmod go-w {keys}" in str(refused.value)
    keys.chmod(0o600)
    server = ConsoleServer(options, engine, ExecLauncher(stand_in))
    await server.start()
    await server.close()


def test_serve_ssh_refuses_a_writable_keys_file_with_a_sentence(
    sqlite_url: str, tmp_path: Path
) -> None:
    from console.cli import main

    main(["--database-url", sqlite_url, "db", "upgrade"])
    keys = tmp_path / "listed"
    keys.write_text("# nobody yet\n")
    keys.chmod(0o666)
    done = subprocess.run(
        [sys.executable, "-m", "console.cli", "--database-url", sqlite_url, "--data-dir"]
        + [str(tmp_path / "data"), "serve-ssh", "--port", "0", "--authorized-keys", str(keys)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 2
    assert "can be changed by other accounts (mode 0666)" in done.stderr
    assert "Traceback" not in done.stderr


def _broken(operator: str) -> list[str]:
    secret = "hunter2-do-not-show"  # noqa: S105 - what a local variable may hold
    raise RuntimeError(f"launcher bug while holding {secret}")


async def test_an_unexpected_error_shows_one_sentence_and_logs_no_secrets(
    engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    add_operators(engine)
    lab = await open_lab(engine, tmp_path, _broken)
    try:
        term = Terminal()
        await term.start(lab.argv("caaspp", "-tt"))
        await term.expect(r"unexpected error and could not open this session \(reference \w+\)")
        assert await term.wait() == 1
        assert "Traceback" not in term.text and "hunter2" not in term.text
        errors = await lab.flushed_audit("ssh.session_error")
        assert json.loads(errors[0].detail)["error"] == "RuntimeError"
    finally:
        await lab.server.close()
    logged = capsys.readouterr().err
    assert "failed to start" in logged and "builtins.RuntimeError" in logged
    assert "hunter2" not in logged  # neither the message nor the local variable
    assert "_broken" in logged  # where it happened is there


async def test_env_requests_are_bounded(lab: Lab) -> None:
    flood = {f"FLOOD_{n}": "x" * 1000 for n in range(2000)}  # names the console never takes
    flood |= {"LANG": "es_US.UTF-8"}
    async with lab.client("caaspp") as conn:
        chan, _ = await conn.create_session(asyncssh.SSHClientSession, term_type="xterm", env=flood)
        for _ in range(400):
            if lab.server.sessions:
                break
            await asyncio.sleep(0.05)
        (session,) = lab.server.sessions
        assert session.sent_env == {b"LANG": b"es_US.UTF-8"}  # the rest was not even stored
        assert session.chan is not None and session.chan.get_environment_bytes() == {}
        chan.close()
    assert os.environ.get("FLOOD_1") is None


async def test_a_console_crash_shows_one_sentence_never_the_traceback_with_locals(
    engine: Engine, settings, seed_demo, monkeypatch, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    """What the person at the terminal (over SSH, a remote person) sees when the console hits a
    bug: one sentence with a reference; the log in the data folder has the stack, not the locals."""
    from console.app import SSRConsoleApp
    from tests.pilot import app_for, settle

    seed_demo(engine, settings, students=30, seed=7, pdfs=False)

    def buggy_help(self: SSRConsoleApp) -> None:
        revealed_secret = "hunter2-do-not-show"  # noqa: S105 - what a local variable may hold
        raise RuntimeError(f"bug while showing {revealed_secret}")

    monkeypatch.setattr(SSRConsoleApp, "action_help", buggy_help)
    app = app_for(engine, settings, "caaspp")
    with pytest.raises(RuntimeError):  # Textual's test harness re-raises what ended the app
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("question_mark")
            await settle(pilot)
    shown = capsys.readouterr()
    screen = shown.out + shown.err
    assert "SSR Console stopped on an unexpected error (reference" in screen
    assert "Traceback" not in screen and "hunter2" not in screen
    log = settings.data_dir / "console-errors.log"
    assert log.stat().st_mode & 0o777 == 0o600
    logged = log.read_text()
    assert "buggy_help" in logged and "builtins.RuntimeError" in logged
    assert "hunter2" not in logged
