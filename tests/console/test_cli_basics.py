"""The command line: version, schema commands, configuration, clear errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from console import config
from console.cli import main
from services.core import db


def test_version(capsys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.startswith("ssr-console 0.")


def test_db_upgrade_and_current(sqlite_url: str, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["--database-url", sqlite_url, "db", "current"]) == 0
    assert "empty" in capsys.readouterr().out
    assert main(["--database-url", sqlite_url, "db", "upgrade"]) == 0
    assert not db.needs_upgrade(db.make_engine(sqlite_url))
    assert main(["--database-url", sqlite_url, "db", "downgrade", "base"]) == 0
    assert db.needs_upgrade(db.make_engine(sqlite_url))


def test_opening_an_unmigrated_database_says_what_to_do(sqlite_url: str, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["--database-url", sqlite_url]) == 2
    assert "run `ssr-console db upgrade`" in capsys.readouterr().err


def test_unknown_operator_is_a_message_not_a_traceback(sqlite_url: str, capsys) -> None:  # type: ignore[no-untyped-def]
    main(["--database-url", sqlite_url, "db", "upgrade"])
    assert main(["--database-url", sqlite_url, "--operator", "nobody"]) == 2
    assert "Unknown operator 'nobody'" in capsys.readouterr().err


def test_config_file_then_environment_then_flags(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "config.toml"
    path.write_text(
        'database_url = "sqlite:///from-file.db"\noperator = "elpac"\n[smtp]\nhost = "relay"\n'
    )
    monkeypatch.delenv("SSR_OPERATOR", raising=False)
    settings = config.load(path)
    assert settings.database_url == "sqlite:///from-file.db" and settings.operator == "elpac"
    assert settings.extra["smtp"] == {"host": "relay"}
    monkeypatch.setenv("SSR_CONSOLE_DATABASE_URL", "sqlite:///from-env.db")
    monkeypatch.setenv("SSR_OPERATOR", "helpdesk")
    settings = config.load(path)
    assert settings.database_url == "sqlite:///from-env.db" and settings.operator == "helpdesk"
    settings = config.load(path, database_url="sqlite:///from-flag.db")
    assert settings.database_url == "sqlite:///from-flag.db"


def test_broken_config_file_is_reported(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "config.toml"
    path.write_text("database_url = [unclosed")
    assert main(["--config", str(path), "db", "current"]) == 2
    assert "is not valid TOML" in capsys.readouterr().err


def _cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The real ``ssr-console`` process, with no config file or database URL of the caller's."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SSR_")}
    clean["SSR_CONSOLE_CONFIG"] = str(tmp_path / "absent.toml")
    command = [sys.executable, "-m", "console.cli", "--data-dir", str(tmp_path / "data"), *args]
    return subprocess.run(
        command, env=clean | env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("nonsense://x", "names the database 'nonsense', which SSR Console does not support"),
        ("mysql://dana:hunter2@db/ssr", "names the database 'mysql'"),
        ("postgresql://dana:hunter2@db:port/ssr", "is not a URL SSR Console can read"),
        ("sqlite+nodriver:///x.db", "names the driver 'sqlite+nodriver', which is not installed"),
    ],
)
def test_a_bad_database_url_is_a_sentence_naming_the_setting(
    tmp_path: Path, url: str, reason: str
) -> None:
    done = _cli(tmp_path, "--database-url", url, "db", "current")
    assert done.returncode == 2
    assert done.stderr.startswith(f"ssr-console: database_url (from --database-url) {reason}")
    assert "sqlite:///PATH or postgresql://" in done.stderr  # what would do instead
    assert len(done.stderr.splitlines()) == 1, done.stderr  # a sentence, no traceback
    assert "hunter2" not in done.stderr


def test_a_bad_database_url_says_where_it_came_from(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('database_url = "nonsense://from-file"\n')
    from_file = _cli(tmp_path, "--config", str(path), "db", "current")
    assert from_file.returncode == 2
    assert f"database_url (from config file {path}) names the database" in from_file.stderr
    from_env = _cli(tmp_path, "db", "current", SSR_CONSOLE_DATABASE_URL="nonsense://from-env")
    assert from_env.returncode == 2
    assert "database_url (from $SSR_CONSOLE_DATABASE_URL) names" in from_env.stderr


def test_services_never_import_the_ui() -> None:
    """DESIGN.md: services/ is plain Python; importing all of it must not pull in Textual."""
    code = (
        "import pkgutil, importlib, sys, services\n"
        "for m in pkgutil.walk_packages(services.__path__, 'services.'):\n"
        "    if '.migrations' not in m.name: importlib.import_module(m.name)\n"
        "bad = [n for n in sys.modules if n.split('.')[0] in ('textual', 'screens', 'widgets', 'console')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_reader_that_stops_early_gets_no_traceback(sqlite_url: str) -> None:
    """``ssr-console ... | head`` closes the pipe before the command has written everything."""
    command = [sys.executable, "-m", "console.cli", "--database-url", sqlite_url, "db", "current"]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert child.stdout is not None and child.stderr is not None
    child.stdout.close()  # long before the interpreter has started and printed anything
    errors = child.stderr.read().decode()
    assert child.wait(timeout=60) in (0, 1)
    assert "Traceback" not in errors and "Exception ignored" not in errors, errors
