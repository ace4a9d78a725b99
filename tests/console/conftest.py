"""The real ``ssr-console`` run in-process (``console.cli.main`` with an argv) against the seeded
demo LEA, on SQLite and on PostgreSQL: what the command-group tests here share."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from console import cli
from services.core import db
from services.core.settings import Settings
from tests.databases import SeedDemo

DEMO_STUDENTS = 40
"""Small enough to seed once per session in a second, big enough for every school and channel."""


@dataclass(frozen=True)
class Ran:
    """One command's exit status and what it printed."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        assert self.code == 0, self.err
        return json.loads(self.out)

    def ok(self) -> str:
        assert self.code == 0, (self.code, self.out, self.err)
        assert not self.err or "Traceback" not in self.err
        return self.out

    def refused(self, sentence: str, code: int = 1) -> None:
        assert self.code == code, (self.code, self.out, self.err)
        assert sentence in self.err, self.err
        assert "Traceback" not in self.err


@dataclass
class Cli:
    """``ssr-console --config C --database-url U --data-dir D --operator O ARGS`` in this process."""

    settings: Settings
    config: Path
    engine: Engine

    def __call__(self, *argv: str, operator: str | None = "caaspp") -> Ran:
        globals_ = [
            "--config",
            str(self.config),
            "--database-url",
            self.settings.database_url,
            "--data-dir",
            str(self.settings.data_dir),
        ]
        if operator:
            globals_ += ["--operator", operator]
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            try:
                code = cli.main([*globals_, *argv])
            except SystemExit as stop:  # argparse: bad usage
                code = int(stop.code or 0)
        return Ran(code, out.getvalue(), err.getvalue())


@contextmanager
def _demo(url: str, request: pytest.FixtureRequest) -> Iterator[Cli]:
    monkeypatch: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
    tmp_path: Path = request.getfixturevalue("tmp_path")
    seed_demo: SeedDemo = request.getfixturevalue("seed_demo")
    for name in [n for n in os.environ if n.startswith("SSR_")]:
        monkeypatch.delenv(name)
    settings = Settings(database_url=url, data_dir=tmp_path / "data")
    engine = db.make_engine(url)
    seed_demo(engine, settings, students=DEMO_STUDENTS)
    config = tmp_path / "config.toml"
    config.write_text("")
    config.chmod(0o600)
    yield Cli(settings, config, engine)
    engine.dispose()


@pytest.fixture
def demo_cli(any_url: str, request: pytest.FixtureRequest) -> Iterator[Cli]:
    """The demo LEA (with SSR PDFs) and an empty config file, on both databases."""
    with _demo(any_url, request) as made:
        yield made


@pytest.fixture
def sqlite_cli(sqlite_url: str, request: pytest.FixtureRequest) -> Iterator[Cli]:
    """The same on SQLite only, for refusals (read before anything is stored)."""
    with _demo(sqlite_url, request) as made:
        yield made
