"""Databases for tests, built once per test session and copied for each test.

Running every migration costs one to two seconds and seeding the demo LEA several more, so each is
done once per session into a template that tests copy: a file copy on SQLite,
``CREATE DATABASE ... TEMPLATE`` on PostgreSQL (which copies only a database nobody is connected
to). A copy of a demo with SSR PDFs shares the template's report store, linked read-only as the
test's own; the store is content-addressed, so nothing a test writes there is ever rewritten.
The fixtures in ``conftest.py`` hand these out; this module is the machinery behind them.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import pytest
from sqlalchemy.engine import Engine

from services.core import db
from services.core.settings import Settings

PG_ADMIN = os.environ.get("SSR_TEST_POSTGRES", "postgresql://127.0.0.1:5432/test")
DEMO_SEED = 2026  # demo.seed's own default


def pg_admin_connection():  # type: ignore[no-untyped-def]
    """An autocommit connection to the test server; the test skips (or, with
    SSR_REQUIRE_POSTGRES=1 as in CI, fails) when the server is unreachable."""
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


def create_pg_database(prefix: str, template: str | None = None) -> str:
    """A new database on the test server (a copy of ``template`` if given); returns its name.

    PostgreSQL refuses to copy a template somebody is connected to (after waiting five seconds
    for them to leave), so templates are only ever used with every engine on them disposed."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = pg_admin_connection()
    try:
        copy = f' TEMPLATE "{template}"' if template else ""
        admin.execute(f'CREATE DATABASE "{name}"{copy}')
    finally:
        admin.close()
    return name


def drop_pg_database(name: str) -> None:
    admin = pg_admin_connection()
    try:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.close()


@contextmanager
def pg_database(prefix: str, template: str | None = None) -> Iterator[str]:
    """A database of its own on the test server (a copy of ``template`` if given), dropped after."""
    name = create_pg_database(prefix, template)
    try:
        yield name
    finally:
        drop_pg_database(name)


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


def link_reports(reports: Path, store: Path) -> None:
    """Share the SSR files in ``reports`` (if a demo template has any) as the report store ``store``."""
    if not reports.is_dir():
        return
    store.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if store.is_dir() and not store.is_symlink() and not any(store.iterdir()):
        store.rmdir()  # an empty store someone opened before the copy
    store.symlink_to(reports, target_is_directory=True)


def copy_database(template: Path, target: Path) -> None:
    """A private copy of a seeded SQLite database. Its SSR files are shared, read-only: the
    template's report store is linked as ``data/reports`` beside the copy, the tests' data dir."""
    copy_sqlite_file(template, target)
    link_reports(template.parent / "reports", target.parent / "data" / "reports")


class SeedDemo(Protocol):
    """The ``seed_demo`` fixture: ``Templates.seed_demo``."""

    def __call__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        students: int,
        seed: int = ...,
        pdfs: bool = ...,
    ) -> None: ...


_MIGRATED: dict[Path, Path] = {}
_SEEDED: dict[tuple[int, int, bool], Path] = {}


def migrated_template(base: Path) -> Path:
    """An SQLite database at the head revision, migrated once per test session."""
    if base not in _MIGRATED:
        path = base / "migrated" / "ssr.db"
        engine = db.make_engine(f"sqlite:///{path}")
        db.upgrade(engine)
        close_sqlite(engine)
        _MIGRATED[base] = path
    return _MIGRATED[base]


def seeded_template(base: Path, students: int, seed: int, pdfs: bool = True) -> Path:
    """A demo LEA (with real SSR PDFs unless ``pdfs`` is false) on SQLite, seeded once per test
    session and size, checkpointed; its report store is ``reports`` beside it."""
    from services.demo import district as demo

    key = (students, seed, pdfs)
    if key not in _SEEDED:
        folder = base / f"demo-{students}-{seed}{'' if pdfs else '-rows'}"
        copy_sqlite_file(migrated_template(base), folder / "ssr.db")
        settings = Settings(database_url=f"sqlite:///{folder / 'ssr.db'}", data_dir=folder)
        engine = db.make_engine(settings.database_url)
        demo.seed(engine, settings, students=students, seed=seed, pdfs=pdfs, workers=2)
        close_sqlite(engine)
        _SEEDED[key] = folder / "ssr.db"
    return _SEEDED[key]


class Templates:
    """The session's templates: SQLite files under ``base``, PostgreSQL databases made on first
    use and dropped by ``close``."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self._pg_migrated: str | None = None
        self._pg_seeded: dict[tuple[int, int, bool], tuple[str, Path]] = {}

    def migrated_sqlite(self) -> Path:
        return migrated_template(self.base)

    def migrated_pg(self) -> str:
        """The name of a PostgreSQL database at the head revision."""
        if self._pg_migrated is None:
            name = self._pg_migrated = create_pg_database("ssr_template")
            engine = db.make_engine(pg_database_url(name))
            db.upgrade(engine)
            engine.dispose()
        return self._pg_migrated

    def seeded_pg(self, students: int, seed: int, pdfs: bool) -> tuple[str, Path]:
        """A PostgreSQL database holding the demo LEA, and the folder of its report store."""
        from services.demo import district as demo

        key = (students, seed, pdfs)
        if key not in self._pg_seeded:
            name = create_pg_database("ssr_template", template=self.migrated_pg())
            folder = self.base / f"pg-demo-{students}-{seed}{'' if pdfs else '-rows'}"
            self._pg_seeded[key] = (name, folder / "reports")
            settings = Settings(database_url=pg_database_url(name), data_dir=folder)
            engine = db.make_engine(settings.database_url)
            demo.seed(engine, settings, students=students, seed=seed, pdfs=pdfs, workers=2)
            engine.dispose()
        return self._pg_seeded[key]

    def seed_demo(
        self,
        engine: Engine,
        settings: Settings,
        *,
        students: int,
        seed: int = DEMO_SEED,
        pdfs: bool = True,
    ) -> None:
        """Leave ``engine``'s database (unused so far) and ``settings``' report store as
        ``demo.seed(engine, settings, ...)`` would, by copying a template seeded once per session.

        Every connection of ``engine`` is closed first; the engine stays usable."""
        engine.dispose()
        database = engine.url.database
        assert database, "the engine names no database"
        if engine.dialect.name == "sqlite":
            template = seeded_template(self.base, students, seed, pdfs)
            copy_sqlite_file(template, Path(database))
            link_reports(template.parent / "reports", settings.report_store)
            return
        source, reports = self.seeded_pg(students, seed, pdfs)
        admin = pg_admin_connection()
        try:
            admin.execute(f'DROP DATABASE "{database}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{database}" TEMPLATE "{source}"')
        finally:
            admin.close()
        link_reports(reports, settings.report_store)

    def close(self) -> None:
        """Drop the PostgreSQL templates."""
        for name, _ in self._pg_seeded.values():
            drop_pg_database(name)
        if self._pg_migrated is not None:
            drop_pg_database(self._pg_migrated)
        self._pg_seeded.clear()
        self._pg_migrated = None
