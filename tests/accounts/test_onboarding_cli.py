"""Onboarding a real LEA with the CLI only, as real ``ssr-console`` processes: setup, operators and
their keys, the refusals, and signing in over ``serve-ssh`` with an added key (issue 17)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from console.ssh_server import HOST_KEY_NAME, load_host_key
from tests.ssh_harness import Terminal, known_hosts, make_key, run_ssh, ssh_argv

SETUP = [
    "setup",
    "--cds",
    "1964733",
    "--name",
    "Sierra Vista Unified",
    "--county",
    "Los Angeles",
    "--caaspp",
    "maria",
    "--caaspp-name",
    "Maria López",
    "--caaspp-email",
    "maria@svusd.example",
    "--elpac",
    "tran",
    "--elpac-name",
    "Tran Nguyen",
]


@dataclass
class Cli:
    """The real ``ssr-console``, on one data directory (and a PostgreSQL URL when given)."""

    tmp: Path
    url: str | None

    def __call__(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SSR_")}
        env["SSR_CONSOLE_CONFIG"] = str(self.tmp / "absent.toml")
        command = [sys.executable, "-m", "console.cli", *self.globals(), *args]
        return subprocess.run(
            command, env=env, input=stdin, capture_output=True, text=True, timeout=60, check=False
        )

    def globals(self) -> list[str]:
        url = ["--database-url", self.url] if self.url else []
        return ["--data-dir", str(self.tmp / "data"), *url]

    def as_(self, who: str, *args: str) -> subprocess.CompletedProcess[str]:
        return self("--operator", who, "operator", *args)


def _ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout


def _refused(done: subprocess.CompletedProcess[str], sentence: str, code: int = 1) -> None:
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert sentence in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


@pytest.fixture(params=["sqlite", "postgresql"])
def cli(request: pytest.FixtureRequest, tmp_path: Path) -> Cli:
    """SQLite in the empty data directory (no URL given at all), or an empty PostgreSQL."""
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    return Cli(tmp_path, url)


def test_setup_then_operators_with_keys_and_the_refusals(cli: Cli, tmp_path: Path) -> None:
    first = _ok(cli(*SETUP))
    assert "LEA 1964733 Sierra Vista Unified (Los Angeles) created" in first
    assert "maria (Maria López) added" in first and "tran (Tran Nguyen) added" in first
    again = cli(*SETUP)
    assert "unchanged" in _ok(again) and "added" not in again.stdout
    _refused(
        cli(*[v if v != "Sierra Vista Unified" else "Another District" for v in SETUP]),
        "CDS code 1964733 is already used by 'Sierra Vista Unified'",
    )
    _refused(cli(*[v if v != "1964733" else "19647" for v in SETUP]), "exactly 7 digits")
    _refused(cli("setup", "--cds", "1964734", "--name", "X"), "--caaspp is needed", code=2)

    tech_key, help_key = (make_key(tmp_path, who) for who in ("tina", "hugo"))
    added = cli.as_(
        "maria", "add", "tina", "--name", "Tina Tech", "--role", "tech",
        "--key", str(tech_key.with_suffix(".pub")),
    )  # fmt: skip
    assert "tina added: Technology coordinator, 1 key(s)" in _ok(added)
    _ok(cli.as_("tina", "add", "hugo", "--name", "Hugo Help", "--role", "helpdesk"))
    _ok(
        cli(
            "--operator", "tina", "operator", "add-key", "hugo", "-",
            stdin=help_key.with_suffix(".pub").read_text(),
        )
    )  # fmt: skip

    _refused(
        cli.as_("tina", "add", "carl", "--name", "Carl", "--role", "lea_caaspp"),
        "A technology coordinator may not grant the role of an LEA CAASPP coordinator",
    )
    _refused(
        cli.as_("tina", "set-role", "hugo", "--role", "lea_elpac"),
        "may not grant the role of an LEA ELPAC coordinator",
    )
    _refused(
        cli.as_("maria", "set-role", "maria", "--role", "tech"), "Nobody changes their own role"
    )
    _refused(
        cli.as_("hugo", "add", "hana", "--name", "Hana", "--role", "helpdesk"),
        "A help desk may not manage operators",
    )
    _refused(cli.as_("maria", "add-key", "tran", "ssh-ed25519 AAAAnotakey"), "not valid base64")
    _refused(
        cli.as_("maria", "add-key", "tran", str(tech_key)),  # the private half, by mistake
        "unsupported key type",
    )
    _refused(
        cli.as_("maria", "add-key", "tran", str(tech_key.with_suffix(".pub"))),
        "already signs in as operator tina",
    )
    _refused(cli.as_("maria", "add"), "the following arguments are required", code=2)

    listed = json.loads(_ok(cli.as_("maria", "list", "--json")))
    by_name = {o["username"]: o for o in listed}
    assert sorted(by_name) == ["hugo", "maria", "tina", "tran"]
    assert by_name["maria"]["roles"] == ["lea_caaspp"] and by_name["tran"]["roles"] == ["lea_elpac"]
    assert len(by_name["tina"]["keys"]) == 1 and by_name["tina"]["keys"][0].startswith("SHA256:")
    assert len(by_name["hugo"]["keys"]) == 1
    assert "Technology coordinator" in _ok(cli.as_("tina", "list"))

    audit = _ok(cli("audit", "verify"))
    assert "audit log intact" in audit


def test_one_person_holds_both_coordinator_roles(cli: Cli) -> None:
    solo = [*SETUP[:7], "--caaspp", "ana", "--caaspp-name", "Ana Ruiz", "--elpac", "ana"]
    assert "LEA CAASPP coordinator and LEA ELPAC coordinator: ana (Ana Ruiz) added" in _ok(
        cli(*solo)
    )
    [ana] = json.loads(_ok(cli.as_("ana", "list", "--json")))
    assert ana["roles"] == ["lea_caaspp", "lea_elpac"]
    assert "unchanged" in _ok(cli(*solo))


def test_a_second_lea_in_the_same_database(cli: Cli) -> None:
    _ok(cli(*SETUP))
    other = [
        "setup",
        "--cds",
        "1964212",
        "--name",
        "Hillside Elementary",
        "--county",
        "Los Angeles",
    ]
    _ok(cli(*other, "--caaspp", "lee", "--caaspp-name", "Lee Park", "--elpac", "lee"))
    names = {o["username"] for o in json.loads(_ok(cli.as_("lee", "list", "--json")))}
    assert names == {"lee"}  # each LEA's coordinators see their own LEA only
    _refused(cli.as_("lee", "disable", "maria"), "No operator named 'maria' in your LEA")


# --- signing in over serve-ssh with a key added from the CLI ------------------------------------


@dataclass
class Served:
    cli: Cli
    port: int
    hosts: Path
    keys: dict[str, Path]


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    """setup, operators with keys, and ``serve-ssh``: all real processes, SQLite by default."""
    cli = Cli(tmp_path, None)
    _ok(cli(*SETUP))
    keys = {who: make_key(tmp_path, who) for who in ("maria", "hugo")}
    _ok(cli.as_("maria", "add-key", "maria", str(keys["maria"].with_suffix(".pub"))))
    _ok(
        cli.as_(
            "maria", "add", "hugo", "--name", "Hugo Help", "--role", "helpdesk",
            "--key", str(keys["hugo"].with_suffix(".pub")),
        )
    )  # fmt: skip
    argv = [sys.executable, "-m", "console.cli", *cli.globals(), "serve-ssh", "--port", "0"]
    server = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, env=os.environ | {"SSR_CONSOLE_CONFIG": "/none"}
    )
    assert server.stdout is not None
    try:
        banner = (await asyncio.wait_for(server.stdout.readline(), 30)).decode()
        assert "2 authorized keys" in banner, banner
        port = int(banner.split("127.0.0.1:", 1)[1].split()[0])
        host_key = load_host_key(tmp_path / "data" / HOST_KEY_NAME)
        yield Served(cli, port, known_hosts(tmp_path / "known_hosts", host_key, port), keys)
    finally:
        server.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(server.wait(), 30) == 0


async def test_sign_in_with_an_added_key_and_disabling_ends_the_session(served: Served) -> None:
    term = Terminal()
    await term.start(ssh_argv(served.port, served.keys["maria"], served.hosts, "-tt"))
    await term.expect(r"Dashboard")
    await term.expect(r"LEA CAASPP coordinator")

    helpdesk = Terminal()
    await helpdesk.start(ssh_argv(served.port, served.keys["hugo"], served.hosts, "-tt"))
    await helpdesk.expect(r"Help desk")
    disabled = await asyncio.to_thread(served.cli.as_, "maria", "disable", "hugo")
    assert "hugo disabled" in _ok(disabled)
    started = asyncio.get_running_loop().time()
    await helpdesk.expect(r"this account was disabled", timeout=10)
    assert await helpdesk.wait() != 0
    assert asyncio.get_running_loop().time() - started < 6  # within seconds (checked every 2)

    code, said = await run_ssh(ssh_argv(served.port, served.keys["hugo"], served.hosts, "-T"))
    assert code != 0 and "Permission denied" in said
    term.press("q")
    assert await term.wait() == 0  # the coordinator's own session was left alone


async def test_setup_asks_in_a_terminal_for_what_the_flags_leave_out(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "console.cli", "--data-dir", str(tmp_path / "data"), "setup"]
    term = Terminal()
    await term.start(
        [*argv, "--cds", "1964733", "--caaspp", "ana", "--elpac", "ana"],
        SSR_CONSOLE_CONFIG=str(tmp_path / "absent.toml"),
        PYTHONPATH=os.environ.get("PYTHONPATH", ""),
    )
    mark = 0
    for prompt, answer in [
        (r"LEA name: ", "Hillside Elementary"),
        (r"county \(optional\): ", ""),
        (r"full name: ", "Ana Ruiz"),
        (r"email \(optional\): ", "ana@hillside.example"),
    ]:
        await term.expect(prompt, since=mark)
        mark = len(term.output)  # the next prompt comes after this answer
        term.press(answer + "\r")
    await term.expect(r"ana \(Ana Ruiz\) added")
    assert await term.wait() == 0
    assert "unchanged" in _ok(
        Cli(tmp_path, None)(
            "setup", "--cds", "1964733", "--name", "Hillside Elementary", "--caaspp", "ana",
            "--caaspp-name", "Ana Ruiz", "--caaspp-email", "ana@hillside.example", "--elpac", "ana",
        )
    )  # fmt: skip
