"""The database never holds a session for ever: PostgreSQL gets a connect timeout and a statement
timeout, SQLite a busy timeout, each from ``[database]`` and each a sentence when it runs out."""

from __future__ import annotations

import socket
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from console.cli import command_engine
from services.core import db
from services.core.errors import DatabaseUnavailable
from services.core.settings import DatabaseSection, Settings


def test_a_statement_over_the_postgresql_statement_timeout_is_cancelled(pg_url: str) -> None:
    engine = db.make_engine(pg_url, DatabaseSection(statement_timeout_seconds=0.2))
    with pytest.raises(DatabaseUnavailable) as stopped, engine.connect() as connection:
        connection.execute(text("SELECT pg_sleep(30)"))
    assert "ran longer than 0.2 s ([database] statement_timeout_seconds)" in str(stopped.value)
    with engine.connect() as connection:  # the next statement runs: the session carries on
        assert connection.execute(text("SHOW statement_timeout")).scalar_one() == "200ms"
    engine.dispose()


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A loopback port that accepts connections (the kernel's backlog) and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    yield listener.getsockname()[1]
    listener.close()


def test_a_postgresql_server_that_never_answers_is_given_up_after_the_connect_timeout(
    silent_server: int,
) -> None:
    url = f"postgresql://postgres@127.0.0.1:{silent_server}/ssr"
    engine = db.make_engine(url, DatabaseSection(connect_timeout_seconds=2))
    outcome: list[BaseException | None] = []

    def connect() -> None:
        try:
            db.ping(engine)
            outcome.append(None)
        except BaseException as error:  # noqa: BLE001 - handed to the test's thread
            outcome.append(error)

    worker = threading.Thread(target=connect, daemon=True)
    worker.start()
    worker.join(120)  # a guard against hanging for ever, not a measure of time
    assert outcome, "connecting to a server that never answers did not give up"
    assert isinstance(outcome[0], DatabaseUnavailable)
    assert str(outcome[0]).startswith("The database cannot be used right now")
    engine.dispose()


def test_sqlite_waits_the_configured_busy_timeout_for_another_writer(tmp_path: Path) -> None:
    path = tmp_path / "ssr.db"
    engine = db.make_engine(f"sqlite:///{path}", DatabaseSection(busy_timeout_seconds=0.25))
    with engine.begin() as connection:
        assert connection.execute(text("PRAGMA busy_timeout")).scalar_one() == 250
        connection.execute(text("CREATE TABLE t (n INTEGER)"))
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        with (
            pytest.raises(DatabaseUnavailable, match="database is locked"),
            engine.begin() as connection,
        ):
            connection.execute(text("INSERT INTO t VALUES (1)"))
    finally:
        other.execute("ROLLBACK")
        other.close()
    with engine.begin() as connection:  # once the lock is gone, the write goes through
        connection.execute(text("INSERT INTO t VALUES (1)"))
    engine.dispose()


@pytest.mark.parametrize(
    ("command", "shown"), [("open", "200ms"), ("worker", "0"), ("roster", "0")]
)
def test_unattended_long_work_takes_its_own_statement_timeout(
    pg_url: str, tmp_path: Path, command: str, shown: str
) -> None:
    """A person's console gives up on a slow statement; the worker, imports, seeding and
    migrations run for as long as their work takes (``long_work_statement_timeout_seconds``)."""
    settings = Settings(
        database_url=pg_url,
        data_dir=tmp_path,
        extra={"database": {"statement_timeout_seconds": 0.2}},
    )
    engine = command_engine(command, settings)
    with engine.connect() as connection:
        assert connection.execute(text("SHOW statement_timeout")).scalar_one() == shown
    engine.dispose()
