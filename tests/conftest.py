"""Shared fixtures: a migrated SQLite database per test, and PostgreSQL when it is reachable.

PostgreSQL tests get a database of their own (created on the server at 127.0.0.1:5432 and dropped
afterwards). With SSR_REQUIRE_POSTGRES=1 (as in CI) an unreachable server fails instead of skipping.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
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


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test."""
    name = f"ssr_test_{uuid.uuid4().hex[:12]}"
    admin = _pg_admin_connection()
    admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0]
    try:
        yield f"postgresql+psycopg://{base.split('://', 1)[1]}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ssr.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def any_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on both databases."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ssr.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[Engine]:
    """A migrated, empty SQLite database."""
    eng = db.make_engine(sqlite_url)
    db.upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def settings(tmp_path: Path, sqlite_url: str) -> Settings:
    """Imports may read anywhere under the test's own folder (the default would be data/inbox)."""
    intake = {"folders": [str(tmp_path)]}
    return Settings(database_url=sqlite_url, data_dir=tmp_path / "data", extra={"intake": intake})
