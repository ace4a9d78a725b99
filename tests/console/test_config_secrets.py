"""Secrets in the configuration: read from an owner-only file or the environment, and refused when
written into a config file that other accounts on the server can read."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from console import config
from services.core.errors import InvalidInput


def write(path: Path, text: str, mode: int) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def test_a_secret_is_read_from_an_owner_only_file_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = write(tmp_path / "relay", "s3cret-relay\n", 0o600)
    monkeypatch.setenv("GATEWAY_TOKEN", "t0ken")
    path = write(
        tmp_path / "config.toml",
        f'[smtp]\npassword_file = "{secret}"\n[sms]\nurl = "http://x"\ntoken_env = "GATEWAY_TOKEN"\n',
        0o644,  # no secret in the file itself, so others may read it
    )
    settings = config.load(path)
    assert settings.extra["smtp"] == {"password": "s3cret-relay"}
    assert settings.extra["sms"] == {"url": "http://x", "token": "t0ken"}


def test_an_inline_secret_is_accepted_only_in_an_owner_only_file(tmp_path: Path) -> None:
    text = '[smtp]\nhost = "relay"\npassword = "inline-secret"\n'
    path = write(tmp_path / "config.toml", text, 0o600)
    assert config.load(path).extra["smtp"]["password"] == "inline-secret"  # type: ignore[index]
    path.chmod(0o640)
    with pytest.raises(InvalidInput) as refused:
        config.load(path)
    message = str(refused.value)
    assert "[smtp] password" in message and "chmod 600" in message and "password_file" in message
    assert "inline-secret" not in message


def test_a_database_password_in_a_shared_file_is_refused(tmp_path: Path) -> None:
    url = 'database_url = "postgresql://ssr:hunter2@db.example.org/ssr"\n'
    path = write(tmp_path / "config.toml", url, 0o644)
    with pytest.raises(InvalidInput, match="database password") as refused:
        config.load(path)
    assert "hunter2" not in str(refused.value)
    path.write_text('database_url = "postgresql://ssr@db.example.org/ssr"\n')  # .pgpass instead
    assert config.load(path).database_url.endswith("/ssr")


@pytest.mark.parametrize(
    ("section", "error"),
    [
        ('password_file = "{missing}"', "cannot be read"),
        ('password_file = "{shared}"', "readable by others (mode 644)"),
        ('password_file = "{empty}"', "is empty"),
        ('password_env = "SSR_TEST_UNSET_VARIABLE"', "$SSR_TEST_UNSET_VARIABLE, which is not set"),
        ('password = "x"\npassword_env = "HOME"', "sets password and password_env: keep only one"),
    ],
)
def test_a_bad_secret_reference_is_a_sentence(tmp_path: Path, section: str, error: str) -> None:
    files = {
        "missing": tmp_path / "nope",
        "shared": write(tmp_path / "shared", "s3cret", 0o644),
        "empty": write(tmp_path / "empty", "\n", 0o600),
    }
    path = write(tmp_path / "config.toml", "[smtp]\n" + section.format(**files) + "\n", 0o600)
    with pytest.raises(InvalidInput, match=re.escape(error)):
        config.load(path)
