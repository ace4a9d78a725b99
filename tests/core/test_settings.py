"""The configuration is checked once, at start, against one model of every section: a key the
console does not know, or a value of the wrong type, stops the command with a sentence naming the
key and the file, and a mistyped database_url never quietly means the local SQLite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from console import config
from services.core.errors import InvalidInput
from services.core.settings import Settings
from services.delivery.batches import PasswordPolicy
from services.delivery.worker import WorkerConfig


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    path.chmod(0o600)
    return path


@pytest.mark.parametrize(
    ("text", "sentence"),
    [
        ('database_ur = "postgresql://ssr@db/ssr"\n', "database_ur is not a setting"),
        ("[delivery]\nlookahed = 32\n", "[delivery] lookahed is not a setting"),
        ('[delivery]\nlookahead = "64"\n', "[delivery] lookahead must be a whole number"),
        ('[delivery]\npassword_channel = "fax"\n', "[delivery] password_channel must be"),
        ("[smtp]\nport = 0\n", "[smtp] port must be greater than or equal to 1"),
        ('[smtp]\nstarttls = "yes"\n', "[smtp] starttls must be true or false"),
        ("[database]\nstatement_timeout_seconds = -1\n", "[database] statement_timeout_seconds"),
        ("[sshh]\nport = 2222\n", "sshh is not a setting"),
        ('[intake]\nfolders = "/srv/inbox"\n', "[intake] folders must be a list"),
    ],
)
def test_unknown_keys_and_wrong_types_are_refused_naming_key_and_file(
    tmp_path: Path, text: str, sentence: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(InvalidInput) as refused:
        config.load(path, data_dir=str(tmp_path))
    assert sentence in str(refused.value)
    assert str(path) in str(refused.value)


def test_a_mistyped_database_url_never_falls_back_to_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSR_CONSOLE_DATABASE_URL", raising=False)
    with pytest.raises(InvalidInput, match="database_url cannot be empty"):
        config.load(_write(tmp_path, 'database_url = ""\n'))
    with pytest.raises(InvalidInput, match="'database_url ' is not a setting"):
        config.load(_write(tmp_path, '"database_url " = "postgresql://ssr@db/ssr"\n'))
    with pytest.raises(InvalidInput, match=r"database_url \(from --database-url\) is empty"):
        config.load(tmp_path / "none.toml", database_url="")
    monkeypatch.setenv("SSR_CONSOLE_DATABASE_URL", " ")
    with pytest.raises(InvalidInput, match=r"\$SSR_CONSOLE_DATABASE_URL is set but empty"):
        config.load(tmp_path / "none.toml")


def test_delivery_is_read_from_the_model(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        '[delivery]\npassword_channel = "sms"\npassword_delay_minutes = 2\nlookahead = 8\n'
        "reconnect_max_seconds = 5\n",
    )
    settings = config.load(path, data_dir=str(tmp_path))
    assert settings.delivery.lookahead == 8
    assert WorkerConfig.from_settings(settings).reconnect_max_seconds == 5.0
    policy = PasswordPolicy.from_settings(settings)
    assert (policy.channel, policy.delay.total_seconds()) == ("sms", 120)
    by_hand = Settings("sqlite://", tmp_path, extra={"delivery": {"lookahead": "many"}})
    with pytest.raises(InvalidInput, match=r"\[delivery\] lookahead must be a whole number"):
        WorkerConfig.from_settings(by_hand)


def test_ssr_console_exits_with_the_sentence_on_a_bad_key(tmp_path: Path) -> None:
    path = _write(tmp_path, "[delivery]\nlookahead = 64\nprocesess = 2\n")
    done = subprocess.run(
        [sys.executable, "-m", "console.cli", "--config", str(path), "db", "current"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SSR_CONSOLE_DATA_DIR": str(tmp_path)},
    )
    assert done.returncode == 2
    assert f"Config file {path}: [delivery] procesess is not a setting" in done.stderr
    assert "Traceback" not in done.stderr
    assert not list(tmp_path.glob("*.db"))  # nothing was opened, SQLite least of all
