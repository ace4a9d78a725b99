"""The schema is built only by migrations, on SQLite and PostgreSQL alike, and round-trips."""

from __future__ import annotations

from sqlalchemy import inspect
from sqlmodel import SQLModel

import services.schema  # noqa: F401
from services.core import db


def test_upgrade_empty_database_to_head(any_url: str) -> None:
    engine = db.make_engine(any_url)
    assert db.needs_upgrade(engine)
    db.upgrade(engine)
    assert not db.needs_upgrade(engine)
    tables = set(inspect(engine).get_table_names())
    assert set(SQLModel.metadata.tables) <= tables
    engine.dispose()


def test_downgrade_then_upgrade_round_trips(any_url: str) -> None:
    engine = db.make_engine(any_url)
    db.upgrade(engine)
    db.downgrade(engine, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    assert db.current_revisions(engine) == _alembic_current(engine) == set()
    db.upgrade(engine)
    assert db.current_revisions(engine) == db.head_revisions()
    assert db.current_revisions(engine) == _alembic_current(engine)
    engine.dispose()


def test_heads_read_from_the_scripts_are_alembics() -> None:
    """``db`` reads the heads from the scripts' text, so a command need not import Alembic."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(db.MIGRATIONS))
    assert db.head_revisions() == set(ScriptDirectory.from_config(config).get_heads())


def _alembic_current(engine) -> set[str]:  # type: ignore[no-untyped-def]
    """What Alembic itself reads as the database's revisions."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return set(MigrationContext.configure(connection).get_current_heads())


def test_migrations_match_the_models(any_url: str) -> None:
    """A model change without its migration is caught here, not in production."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    engine = db.make_engine(any_url)
    db.upgrade(engine)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, SQLModel.metadata)
    assert diff == []
    engine.dispose()


def test_sqlite_runs_in_wal_mode(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
