"""The command line: version, schema commands, configuration, clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from console import config
from console.cli import main
from services import db


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
