"""A real LEA's first day, from an empty data directory with the CLI only (issue 17 acceptance):
``setup``, ``operator add`` with a key, ``roster import`` of a OneRoster zip and an SIS contacts
CSV made here, then ``serve-ssh`` as its own process and the real OpenSSH client signing in with
the added key and finding a student of that import on the Students screen. SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from console.ssh_server import HOST_KEY_NAME, load_host_key
from tests.accounts.test_onboarding_cli import SETUP, Cli
from tests.roster.test_sis_import import write
from tests.ssh_harness import Terminal, known_hosts, make_key, ssh_argv


def _ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout


def _oneroster_export(inbox: Path) -> list[Path]:
    """What an SIS hands over: a OneRoster 1.1 zip (orgs.csv, users.csv) and a contacts CSV, in
    the intake folder (``<data_dir>/inbox`` by default) where imports may read."""
    folder, contacts = write(inbox / "export")
    archive = inbox / "oneroster.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in ("orgs.csv", "users.csv"):
            zf.write(folder / name, name)
    return [archive, contacts]


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
async def test_from_an_empty_data_directory_to_the_roster_over_ssh(
    database: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("pg_url") if database == "postgresql" else None
    cli = Cli(tmp_path, url)
    assert not (tmp_path / "data").exists()

    _ok(cli(*SETUP))  # the LEA 1964733, maria (LEA CAASPP) and tran (LEA ELPAC)
    key = make_key(tmp_path, "rosa")
    added = cli.as_(
        "maria", "add", "rosa", "--name", "Rosa Diaz", "--role", "lea_caaspp",
        "--key", str(key.with_suffix(".pub")),
    )  # fmt: skip
    assert "rosa added" in _ok(added)

    files = _oneroster_export(tmp_path / "data" / "inbox")
    imported = cli("--operator", "rosa", "roster", "import", *map(str, files))
    assert "Imported: roster of LEA 1964733" in _ok(imported)
    assert "students: 3 new" in imported.stdout, imported.stdout

    argv = [sys.executable, "-m", "console.cli", *cli.globals(), "serve-ssh", "--port", "0"]
    server = await asyncio.create_subprocess_exec(
        *argv,
        stdout=asyncio.subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if not k.startswith("SSR_")}
        | {"SSR_CONSOLE_CONFIG": str(tmp_path / "absent.toml")},
    )
    assert server.stdout is not None
    term = Terminal()
    try:
        banner = (await asyncio.wait_for(server.stdout.readline(), 30)).decode()
        assert "1 authorized key" in banner, banner  # rosa's, added with operator add
        port = int(banner.split("127.0.0.1:", 1)[1].split()[0])
        hosts = known_hosts(
            tmp_path / "known_hosts", load_host_key(tmp_path / "data" / HOST_KEY_NAME), port
        )
        await term.start(ssh_argv(port, key, hosts, "-tt"))
        await term.expect(r"Dashboard")
        await term.expect(r"Rosa Diaz")
        mark = len(term.output)
        term.press("s")
        await term.expect(r"Students", since=mark)
        await term.expect(r"1000000001", since=mark)  # Ana Lopez, from the zip
        await term.expect(r"Lopez", since=mark)
        term.press("q")
        assert await term.wait() == 0
    finally:
        if term.exit_code is None and term.process is not None:
            await term.hang_up()
        server.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(server.wait(), 30) == 0
