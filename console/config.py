"""Configuration: a TOML file, then environment variables, then command-line flags (last wins).

The file is ``$SSR_CONSOLE_CONFIG`` or ``config.toml`` in the user's config directory. The whole
file is checked against ``services.core.settings.ConfigFile`` here, before anything runs: a key it
does not know or a value of the wrong type stops the command with a sentence naming the key and
the file. ``database_url``, ``data_dir``, ``operator``, ``store_dir`` and ``[calendar]`` become
fields of ``Settings``; every other table is kept in ``Settings.extra`` for the service that owns
it (``[delivery]`` and ``[database]`` typed as ``Settings.delivery`` and ``Settings.database``).

Secrets (``password``, ``token``, ``vault_key`` in any table) are best kept out of the file: write
``password_file = "/path"`` (a file only its owner can read) or ``password_env = "NAME"`` (an
environment variable) instead, and the value is read from there. A secret written in the file
itself, or a ``database_url`` with a password in it, is refused when the file is readable by
others: the file would hand it to every account on the server.
"""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path
from typing import Any

import platformdirs
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from services.core import db
from services.core.errors import InvalidInput
from services.core.settings import Settings, check_file
from services.core.working_days import WorkingCalendar

APP = "ssr-console"
ENV_PREFIX = "SSR_CONSOLE_"


def default_config_path() -> Path:
    return Path(
        os.environ.get(f"{ENV_PREFIX}CONFIG") or platformdirs.user_config_path(APP) / "config.toml"
    )


def load(config_path: Path | None = None, **overrides: Any) -> Settings:
    path = config_path or default_config_path()
    values: dict[str, Any] = {}
    if path.exists():
        try:
            values = tomllib.loads(path.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise InvalidInput(f"Config file {path} is not valid TOML: {error}") from None
        _resolve_secrets(values, path)
        _moved_holidays(values, path)
        check_file(values, f"Config file {path}")  # every key and type, once, at start
    origin = {key: f"config file {path}" for key in values}  # named in errors about a setting
    for key in ("database_url", "data_dir", "operator", "store_dir"):
        name = ENV_PREFIX + key.upper()
        if name not in os.environ:
            continue
        if not os.environ[name].strip():  # set but empty: a mistake, never "use the default"
            raise InvalidInput(f"${name} is set but empty: unset it or give the {key}")
        values[key] = os.environ[name]
        origin[key] = f"${name}"
    if env := os.environ.get("SSR_OPERATOR"):  # set per key by OpenSSH's command= / ForceCommand
        values["operator"] = env
    for key, value in overrides.items():
        if value is not None:
            values[key] = value
            origin[key] = f"--{key.replace('_', '-')}"
    data_dir = Path(values.pop("data_dir", None) or platformdirs.user_data_path(APP))
    given = values.pop("database_url", None)
    if given is not None and not str(given).strip():  # never quietly the local SQLite instead
        raise InvalidInput(f"database_url (from {origin['database_url']}) is empty")
    database_url = str(given or f"sqlite:///{data_dir / 'ssr-console.db'}")
    try:
        db.check_url(database_url)
    except InvalidInput as error:
        where = origin.get("database_url", "the default, in the data directory")
        raise InvalidInput(f"database_url (from {where}) {error}") from None
    store = values.pop("store_dir", None)
    if "roster" in values:
        values["roster"] = _roster(values["roster"])
    calendar = WorkingCalendar.parse(values.pop("calendar", {}))
    return Settings(
        database_url=database_url,
        data_dir=data_dir,
        operator=values.pop("operator", None),
        store_dir=Path(store) if store else None,
        extra=values,
        calendar=calendar,
    )


def _moved_holidays(values: dict[str, Any], path: Path) -> None:
    """Say where holidays went, rather than only that [scheduler] has no such key."""
    scheduler = values.get("scheduler")
    if isinstance(scheduler, dict) and "holidays" in scheduler:
        raise InvalidInput(
            f"holidays belong in [calendar] now (with last_day_of_instruction and "
            f"first_day_of_next_year); move them out of [scheduler] in config file {path}"
        )


SECRET_KEYS = ("password", "token", "vault_key")
"""Keys whose value is a secret in whichever table they appear."""


def _roster(table: object) -> dict[str, Any]:
    """``[roster]``: ``preset`` (a SIS contacts CSV layout), ``ssid_user_id_type`` (take the SSID
    from OneRoster ``userIds`` of this type instead of ``identifier``) and ``[roster.columns]``
    (the contacts CSV's header names, ``services.roster.sis_columns``), checked here and handed
    on as plain values: the full column mapping and the userIds type."""
    from dataclasses import asdict

    from services.roster import sis_columns

    if not isinstance(table, dict):
        raise InvalidInput("The [roster] configuration must be a table of keys")
    if unknown := sorted(set(table) - {"preset", "ssid_user_id_type", "columns"}):
        raise InvalidInput(f"Unknown [roster] setting(s): {', '.join(unknown)}")
    columns = table.get("columns", {})
    if not isinstance(columns, dict):
        raise InvalidInput("[roster.columns] must be a table of column names")
    user_id_type = table.get("ssid_user_id_type")
    if user_id_type is not None and (not isinstance(user_id_type, str) or not user_id_type):
        raise InvalidInput('[roster] ssid_user_id_type must be a userIds type such as "SSID"')
    mapping = sis_columns.from_config(str(table.get("preset", "generic")), columns)
    return {"columns": asdict(mapping), "ssid_user_id_type": user_id_type}


def _resolve_secrets(values: dict[str, Any], path: Path) -> None:
    """Read ``<secret>_file`` and ``<secret>_env`` into ``<secret>``; refuse inline secrets in a
    file others can read."""
    shared = _readable_by_others(path)
    url = values.get("database_url")
    if shared and isinstance(url, str) and _has_password(url):
        raise InvalidInput(
            f"Config file {path} holds a database password but is readable by others "
            f"(mode {shared:o}): run `chmod 600 {path}`, or set SSR_CONSOLE_DATABASE_URL "
            "or PostgreSQL's ~/.pgpass instead"
        )
    for table, section in values.items():
        if not isinstance(section, dict):
            continue
        for key in SECRET_KEYS:
            given = [name for name in (key, f"{key}_file", f"{key}_env") if name in section]
            if len(given) > 1:
                raise InvalidInput(f"[{table}] sets {' and '.join(given)}: keep only one")
            if key in section and shared:
                raise InvalidInput(
                    f"Config file {path} holds [{table}] {key} but is readable by others "
                    f"(mode {shared:o}): run `chmod 600 {path}`, or use {key}_file or {key}_env"
                )
            if f"{key}_file" in section:
                section[key] = read_secret_file(
                    Path(str(section.pop(f"{key}_file"))), f"[{table}] {key}_file"
                )
            elif f"{key}_env" in section:
                name = str(section.pop(f"{key}_env"))
                if not os.environ.get(name):
                    raise InvalidInput(f"[{table}] {key}_env names ${name}, which is not set")
                section[key] = os.environ[name]


def _readable_by_others(path: Path) -> int:
    """The file's mode when group or others may read or write it, else 0."""
    mode = stat.S_IMODE(path.stat().st_mode)
    return mode if mode & 0o077 else 0


def _has_password(url: str) -> bool:
    try:
        return make_url(url).password is not None
    except ArgumentError:
        return False  # not a URL; the database layer says so when it is used


def read_secret_file(path: Path, what: str) -> str:
    """A secret kept in a file only its owner can read; ``what`` names the setting in errors."""
    try:
        shared = _readable_by_others(path)
        text = path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInput(f"{what} {path} cannot be read: {error}") from None
    if shared:
        raise InvalidInput(
            f"{what} {path} is readable by others (mode {shared:o}): run `chmod 600 {path}`"
        )
    if not text:
        raise InvalidInput(f"{what} {path} is empty")
    return text
