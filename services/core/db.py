"""Database engine and schema migrations.

SQLite (WAL, foreign keys on) is the embedded default; PostgreSQL through psycopg 3 serves
deployments with many operators. The schema is only ever changed by Alembic migrations.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import math
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import column, event, select, table
from sqlalchemy.engine import URL, Engine, ExceptionContext, make_url
from sqlalchemy.exc import ArgumentError, InterfaceError, NoSuchModuleError, OperationalError
from sqlmodel import Session, create_engine

from services.core import private_files
from services.core.errors import DatabaseUnavailable, InvalidInput
from services.core.settings import DatabaseSection

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic and psycopg are imported where they are used: together they are a third of the
# console's imports, and a console on SQLite with a current schema needs neither to paint.

MIGRATIONS = Path(__file__).parents[1] / "migrations"
BACKENDS = ("sqlite", "postgresql")  # the databases the migrations and tests run on
URL_FORMS = "sqlite:///PATH or postgresql://USER@HOST/DATABASE"
VERSION_TABLE = "alembic_version"  # Alembic's default, which env.py keeps
_REVISION_LINE = re.compile(r"^(revision|down_revision)\b[^=\n]*=\s*(.+?)\s*$", re.MULTILINE)


def normalise_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` and use the psycopg 3 driver for them."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def check_url(url: str) -> URL:
    """The parsed URL, or ``InvalidInput`` saying why it names no database the console can use.

    The reason never repeats the URL itself, which may hold a password; the caller adds which
    setting it came from."""
    try:
        parsed = make_url(normalise_url(url))
    except (ArgumentError, ValueError):
        raise InvalidInput(f"is not a URL SSR Console can read; use {URL_FORMS}") from None
    if parsed.get_backend_name() not in BACKENDS:
        raise InvalidInput(
            f"names the database {parsed.get_backend_name()!r}, which SSR Console does not "
            f"support; use {URL_FORMS}"
        )
    try:
        parsed.get_dialect().import_dbapi()
    except (NoSuchModuleError, ImportError):
        raise InvalidInput(
            f"names the driver {parsed.drivername!r}, which is not installed; use {URL_FORMS}"
        ) from None
    return parsed


def make_engine(url: str, timeouts: DatabaseSection | None = None) -> Engine:
    """An engine configured for the console: WAL and a busy timeout on SQLite; a connect
    timeout and a statement timeout on PostgreSQL (``[database]``, ``DatabaseSection``), so a
    database that does not answer, or one slow statement, holds nobody's session for ever."""
    timeouts = timeouts or DatabaseSection()
    try:
        parsed = check_url(url)
    except InvalidInput as error:
        raise InvalidInput(f"The database URL {error}") from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            _private_database(Path(parsed.database))
        # Pooled connections (SQLAlchemy's default): opening one and setting its pragmas costs
        # about 2 ms, paid on every session with no pool. A pooled connection is used by one
        # thread at a time; processes never inherit one (the SSH launcher forks before any
        # database use, the encryption pool starts from a fork server).
        busy = timeouts.busy_timeout_seconds
        engine = create_engine(parsed, connect_args={"check_same_thread": False, "timeout": busy})
        event.listen(engine, "connect", partial(_sqlite_pragmas, busy_ms=round(busy * 1000)))
        canceled: tuple[type[Exception], ...] = ()  # SQLite has no statement timeout
    else:
        from psycopg.errors import QueryCanceled

        # connect_timeout is whole seconds ("The minimum allowed timeout is 2 seconds, therefore
        # a value of 1 is interpreted as 2", postgresql.org/docs/current/libpq-connect.html);
        # statement_timeout, a server setting passed in the startup options, is milliseconds
        # and 0 turns it off (postgresql.org/docs/current/runtime-config-client.html).
        statement_ms = round(timeouts.statement_timeout_seconds * 1000)
        connect_args = {
            "connect_timeout": max(1, math.ceil(timeouts.connect_timeout_seconds)),
            "options": f"-c statement_timeout={statement_ms}",
        }
        engine = create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
        canceled = (QueryCanceled,)
    event.listen(
        engine, "handle_error", partial(_unavailable, timeouts=timeouts, canceled=canceled)
    )
    return engine


def _private_database(path: Path) -> None:
    """Create the database file 0600 (and its folder 0700) before SQLite opens it, and tighten
    one that exists: SQLite gives its ``-wal``, ``-shm`` and journal files the database file's
    mode, so they are the owner's alone too, whatever the umask of the process."""
    private_files.make_dirs(path.parent)
    with contextlib.suppress(FileExistsError):  # another process made it a moment ago
        os.close(private_files.opener(str(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL))
    for suffix in ("", "-wal", "-shm", "-journal"):
        private_files.tighten(path.with_name(path.name + suffix))


def _unavailable(
    context: ExceptionContext,
    *,
    timeouts: DatabaseSection,
    canceled: tuple[type[Exception], ...],
) -> None:
    """A database that is down, unreachable or locked becomes a sentence every screen and command
    already knows how to show (a ``ConsoleError``), instead of a traceback that ends the session."""
    if context.is_pre_ping:  # the pool reconnects by itself
        return
    if isinstance(context.original_exception, canceled):
        limit = timeouts.statement_timeout_seconds
        raise DatabaseUnavailable(
            f"The database stopped a statement that ran longer than {limit:g} s "
            "([database] statement_timeout_seconds); nothing was changed. Try again, or ask the "
            "technology coordinator to raise the limit if this keeps happening."
        ) from context.original_exception
    if isinstance(context.sqlalchemy_exception, OperationalError | InterfaceError):
        reason = str(context.original_exception).strip().splitlines()
        raise DatabaseUnavailable(
            f"The database cannot be used right now ({reason[0] if reason else 'no reason given'}); "
            "nothing was changed. Try again in a moment, or tell the technology coordinator."
        ) from context.original_exception


def _sqlite_pragmas(dbapi_connection, _record, *, busy_ms: int) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
    cursor.close()


def ping(engine: Engine) -> None:
    """Raise ``DatabaseUnavailable`` unless the database answers a trivial query now."""
    with engine.connect() as connection:
        connection.exec_driver_sql("SELECT 1")


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def _alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "heads") -> None:
    """Bring the schema to ``revision`` (every head by default)."""
    from alembic import command

    command.upgrade(_alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str) -> None:
    from alembic import command

    command.downgrade(_alembic_config(engine), revision)


def current_revisions(engine: Engine) -> set[str]:
    """The revisions the database records in Alembic's version table (none without the table).
    Read with one query rather than through Alembic's ``MigrationContext``: importing Alembic
    costs every ``ssr-console`` command about 0.1 s of CPU, for a table of one column."""
    with engine.connect() as connection:
        if not engine.dialect.has_table(connection, VERSION_TABLE):
            return set()
        return set(
            connection.execute(
                select(column("version_num")).select_from(table(VERSION_TABLE))
            ).scalars()
        )


@functools.cache
def head_revisions() -> frozenset[str]:
    """The migrations' heads, the revisions no script names as its ``down_revision``, read once
    per process from the scripts' text: loading them through Alembic imports Alembic and every
    migration module, a tenth of a second of CPU in every command (tests hold this to Alembic's
    own heads). The SSH launcher reads them before it forks, so no session pays for it."""
    revisions: set[str] = set()
    replaced: set[str] = set()
    for script in (MIGRATIONS / "versions").glob("*.py"):
        names = dict(_REVISION_LINE.findall(script.read_text(encoding="utf-8")))
        revisions.add(ast.literal_eval(names["revision"]))
        down = ast.literal_eval(names["down_revision"])
        replaced.update([down] if isinstance(down, str) else down or ())
    return frozenset(revisions - replaced)


def needs_upgrade(engine: Engine) -> bool:
    return current_revisions(engine) != head_revisions()


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One unit of work: committed on success, rolled back on any error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
