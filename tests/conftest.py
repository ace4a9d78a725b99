"""Shared fixtures: databases for tests, on SQLite and on PostgreSQL when it is reachable.

Running every migration costs a second or two, and most tests want a migrated database, so each
backend is migrated once per test session into a template that every test copies (see
``tests/databases.py``). ``sqlite_url``, ``pg_url`` and ``any_url`` stay empty (for the migration
tests and the CLI's ``db upgrade``); ``migrated_sqlite_url``, ``migrated_pg_url``, ``migrated_url``
and ``engine`` are at the head revision. ``seed_demo`` puts the demo LEA in a test's database the
way ``demo.seed`` would, copied from a template seeded once per session and size.

PostgreSQL tests get a database of their own (created on the server at 127.0.0.1:5432 and dropped
afterwards). With SSR_REQUIRE_POSTGRES=1 (as in CI) an unreachable server fails instead of skipping.
"""

from __future__ import annotations

import compileall
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from services.core import db
from services.core.settings import Settings
from tests.databases import SeedDemo, Templates, copy_sqlite_file, pg_database, pg_database_url
from tests.delivery_harness import MailSink

ROOT = Path(__file__).parents[1]
PACKAGES = ("console", "services", "screens", "widgets")  # what pyproject installs


def pytest_configure(config: pytest.Config) -> None:
    """Compile the console's modules once, before any test starts a process of it.

    Installing the console compiles it (pip writes the bytecode of what it installs); with
    PYTHONDONTWRITEBYTECODE in the environment (as in CI) nothing does, and every ``ssr-console``,
    worker, SSH session and pool process the tests start compiled the console's own modules
    again: 0.1 s of CPU per command, 0.25 s per process that loads the screens. The xdist workers
    start after the controller has done it."""
    if not hasattr(config, "workerinput"):
        for package in PACKAGES:
            compileall.compile_dir(ROOT / package, quiet=1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` first, the longest (``slow(minutes=N)``, 1 if unsaid) first of all;
    then the modules that run on one worker (``xdist_group``); then the rest, in their order.

    xdist (``--dist loadgroup --no-loadscope-reorder`` in ``make test``) hands tests out one at a
    time in this order (a group as one unit, where its first test is), so the long ones start at
    once, on both workers, and no worker is left running one alone at the end while the other has
    finished. A group is a minute or more of tests in one go: the snapshots, last in file order,
    were handed out with 50 tests left and ran on while the other worker had nothing to do."""
    items.sort(
        key=lambda item: (-_slow_minutes(item), item.get_closest_marker("xdist_group") is None)
    )


def _slow_minutes(item: pytest.Item) -> float:
    marker = item.get_closest_marker("slow")
    return 0.0 if marker is None else float(marker.kwargs.get("minutes", 1))


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Templates]:
    """The session's template databases (PostgreSQL ones are dropped at the end)."""
    made = Templates(tmp_path_factory.getbasetemp())
    yield made
    made.close()


@pytest.fixture(scope="session")
def sqlite_template(templates: Templates) -> Path:
    """An SQLite database file at the head revision, migrated once per test session."""
    return templates.migrated_sqlite()


@pytest.fixture(scope="session")
def pg_template(templates: Templates) -> str:
    """The name of a PostgreSQL database at the head revision, migrated once per test session."""
    return templates.migrated_pg()


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
def seed_demo(templates: Templates) -> SeedDemo:
    """``seed_demo(engine, settings, students=, seed=, pdfs=)``: the demo LEA in the test's own
    database and report store, as ``demo.seed`` leaves them, copied from a session template."""
    return templates.seed_demo


@pytest.fixture
def settings(tmp_path: Path, sqlite_url: str) -> Settings:
    """Imports may read anywhere under the test's own folder (the default would be data/inbox)."""
    intake = {"folders": [str(tmp_path)]}
    return Settings(database_url=sqlite_url, data_dir=tmp_path / "data", extra={"intake": intake})


@pytest.fixture
def sink() -> Iterator[MailSink]:
    """A real SMTP server (aiosmtpd) on a free loopback port, keeping what it receives."""
    server = MailSink().start()
    yield server
    server.stop()
