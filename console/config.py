"""Configuration: a TOML file, then environment variables, then command-line flags (last wins).

The file is ``$SSR_CONSOLE_CONFIG`` or ``config.toml`` in the user's config directory. Keys:
``database_url``, ``data_dir``, ``operator``, ``store_dir``; every other table or key is kept in
``Settings.extra`` for the service that owns it (``[smtp]``, ``[ssh]``...).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import platformdirs

from services.errors import InvalidInput
from services.settings import Settings

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
    for key in ("database_url", "data_dir", "operator", "store_dir"):
        if env := os.environ.get(ENV_PREFIX + key.upper()):
            values[key] = env
    if env := os.environ.get("SSR_OPERATOR"):  # set per key by OpenSSH's command= / ForceCommand
        values["operator"] = env
    values.update({k: v for k, v in overrides.items() if v is not None})
    data_dir = Path(values.pop("data_dir", None) or platformdirs.user_data_path(APP))
    database_url = values.pop("database_url", None) or f"sqlite:///{data_dir / 'ssr-console.db'}"
    store = values.pop("store_dir", None)
    return Settings(
        database_url=str(database_url),
        data_dir=data_dir,
        operator=values.pop("operator", None),
        store_dir=Path(store) if store else None,
        extra=values,
    )
