"""Shared fixtures: databases for tests, on SQLite and on PostgreSQL when it is reachable.

Running every migration costs a second or two, and most tests want a migrated database, so each
backend is migrated once per test session into a template that every test copies: a file copy on
SQLite, ``CREATE DATABASE ... TEMPLATE`` on PostgreSQL. ``sqlite_url``, ``pg_url`` and ``any_url``
stay empty (for the migration tests and the CLI's ``db upgrade``); ``migrated_sqlite_url``,
``migrated_pg_url``, ``migrated_url`` and ``engine`` are at the head revision.

PostgreSQL tests get a database of their own (created on the server at 127.0.0.1:5432 and dropped
afterwards). With SSR_REQUIRE_POSTGRES=1 (as in CI) an unreachable server fails instead of skipping.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from services.core import db
from services.core.settings import Settings

PG_ADMIN = os.environ.get("SSR_TEST_POSTGRES", "postgresql://127.0.0.1:5432/test")


def _pg_admin_connection():  # type: ignore[no-untyped-def]
    import psycopg

    try:
        return psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        if os.environ.get("SSR_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL required but unreachable at {PG_ADMIN}: {error}")
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN}")


def pg_database_url(name: str) -> str:
    """The URL of database ``name`` on the test server."""
    base = PG_ADMIN.rsplit("/", 1)[0]
    return f"postgresql+psycopg://{base.split('://', 1)[1]}/{name}"


@contextmanager
def pg_database(prefix: str, template: str | None = None) -> Iterator[str]:
    """A database of its own on the test server (a copy of ``template`` if given), dropped after.

    A template must have no open connection while it is copied: PostgreSQL refuses the copy
    otherwise (after waiting five seconds for them to go)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = _pg_admin_connection()
    try:
        copy = f' TEMPLATE "{template}"' if template else ""
        admin.execute(f'CREATE DATABASE "{name}"{copy}')
        yield name
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def close_sqlite(engine: Engine) -> None:
    """Fold the write-ahead log into the database file and close every connection, so that a
    plain copy of the file is the whole database."""
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()


def copy_sqlite_file(template: Path, target: Path) -> None:
    """``target`` becomes a private (0600) copy of the database file ``template``."""
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    for suffix in ("-wal", "-shm", "-journal"):  # a stale log would be replayed into the copy
        target.with_name(target.name + suffix).unlink(missing_ok=True)
    shutil.copyfile(template, target)
    target.chmod(0o600)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite database file at the head revision, migrated once per test session."""
    path = tmp_path_factory.mktemp("migrated") / "ssr.db"
    engine = db.make_engine(f"sqlite:///{path}")
    db.upgrade(engine)
    close_sqlite(engine)
    return path


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """The name of a PostgreSQL database at the head revision, migrated once per test session."""
    with pg_database("ssr_template") as name:
        engine = db.make_engine(pg_database_url(name))
        db.upgrade(engine)
        engine.dispose()
        yield name


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test."""
    with pg_database("ssr_test") as name:
        yield pg_database_url(name)


@pytest.fixture
def migrated_pg_url(pg_template: str) -> Iterator[str]:
    """A PostgreSQL database of this test's own, at the head revision."""
    with pg_database("ssr_test", template=pg_template) as name:
        yield pg_database_url(name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """An SQLite database in the test's folder, not created yet."""
    return f"sqlite:///{tmp_path / 'ssr.db'}"


@pytest.fixture
def migrated_sqlite_url(sqlite_url: str, sqlite_template: Path) -> str:
    """``sqlite_url`` (the same file), at the head revision."""
    copy_sqlite_file(sqlite_template, Path(sqlite_url.removeprefix("sqlite:///")))
    return sqlite_url


@pytest.fixture(params=["sqlite", "postgresql"])
def any_url(request: pytest.FixtureRequest) -> str:
    """The same test on both databases, empty."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


@pytest.fixture(params=["sqlite", "postgresql"])
def migrated_url(request: pytest.FixtureRequest) -> str:
    """The same test on both databases, at the head revision."""
    kind = "migrated_sqlite_url" if request.param == "sqlite" else "migrated_pg_url"
    return request.getfixturevalue(kind)


@pytest.fixture
def engine(migrated_sqlite_url: str) -> Iterator[Engine]:
    """A migrated, empty SQLite database (the file of ``sqlite_url``)."""
    eng = db.make_engine(migrated_sqlite_url)
    yield eng
    eng.dispose()


@pytest.fixture
def settings(tmp_path: Path, sqlite_url: str) -> Settings:
    """Imports may read anywhere under the test's own folder (the default would be data/inbox)."""
    intake = {"folders": [str(tmp_path)]}
    return Settings(database_url=sqlite_url, data_dir=tmp_path / "data", extra={"intake": intake})
