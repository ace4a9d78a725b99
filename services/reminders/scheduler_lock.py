"""One reminder scheduler per deployment, enforced by the database both schedulers would share.

APScheduler cannot share a job store between processes, and two schedulers would race each other's
notices. On PostgreSQL the lock is a session advisory lock held on a dedicated connection for the
life of the process: it vanishes the moment the process or its connection dies. SQLite has no such
lock, so the single ``scheduler_lock`` row is the lock: a holder keeps it alive with a heartbeat and
another process may take it only after it expired (or when its holder on this host is gone).

The row is kept on both databases because it is also what the console reads to show whether the
scheduler is alive, when it last scanned and what that scan did.
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import text, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel

from services.core.columns import utcnow
from services.core.db import is_sqlite
from services.core.errors import ConsoleError

LOCK_NAME = "notice-scheduler"
# pg_advisory_lock key: a fixed 64-bit number that names this lock ("SSRSCHED" in ASCII).
ADVISORY_KEY = 0x5353525343484544 - (1 << 63)
DEFAULT_TTL = timedelta(seconds=90)


class SchedulerBusy(ConsoleError):
    """Another scheduler already runs against this database."""


class LockLost(ConsoleError):
    """This scheduler no longer holds the lock; it must stop before sending anything."""


class SchedulerLockRow(SQLModel, table=True):
    """Who runs the scheduler, its heartbeat, and what its last scan did."""

    __tablename__ = "scheduler_lock"
    name: str = Field(primary_key=True, max_length=40)
    holder: str = Field(max_length=100)
    host: str = Field(max_length=100)
    pid: int
    acquired_at: datetime
    heartbeat_at: datetime
    expires_at: datetime
    released_at: datetime | None = None
    last_scan_at: datetime | None = None
    last_scan_ms: int | None = None
    last_scan_summary: str | None = Field(default=None, max_length=300)
    last_error: str | None = Field(default=None, max_length=300)


@dataclass(frozen=True)
class SchedulerStatus:
    """The scheduler as the console shows it."""

    running: bool  # a holder that has not released the lock and whose heartbeat is fresh
    host: str | None = None
    pid: int | None = None
    heartbeat_at: datetime | None = None
    last_scan_at: datetime | None = None
    last_scan_ms: int | None = None
    last_scan_summary: str | None = None
    last_error: str | None = None

    def describe(self, now: datetime) -> str:
        if self.heartbeat_at is None:
            return (
                "Scheduler has never run on this database (start it with `ssr-console scheduler`)."
            )
        age = int((now - self.heartbeat_at).total_seconds())
        where = f"{self.host} pid {self.pid}"
        if self.running:
            return f"Scheduler alive on {where}, heartbeat {age} s ago."
        return f"Scheduler NOT running (last seen on {where}, {age} s ago)."


def status(engine: Engine, now: datetime | None = None) -> SchedulerStatus:
    now = now or utcnow()
    with Session(engine) as session:
        row = session.get(SchedulerLockRow, LOCK_NAME)
    if row is None:
        return SchedulerStatus(running=False)
    return SchedulerStatus(
        running=row.released_at is None and row.expires_at > now,
        host=row.host,
        pid=row.pid,
        heartbeat_at=row.heartbeat_at,
        last_scan_at=row.last_scan_at,
        last_scan_ms=row.last_scan_ms,
        last_scan_summary=row.last_scan_summary,
        last_error=row.last_error,
    )


class SchedulerLock:
    """The lock one scheduler process holds from ``acquire`` to ``release``."""

    def __init__(
        self,
        engine: Engine,
        ttl: timedelta = DEFAULT_TTL,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self.ttl = ttl
        self.clock = clock
        self.host = socket.gethostname()[:100]
        self.pid = os.getpid()
        self.holder = f"{self.host}:{self.pid}:{uuid.uuid4().hex[:8]}"
        self._pg: Connection | None = None

    def acquire(self) -> None:
        """Take the lock or raise ``SchedulerBusy`` naming the scheduler that has it."""
        if is_sqlite(self.engine):
            self._acquire_row()
            return
        connection = self.engine.connect()
        got = connection.execute(
            text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_KEY}
        ).scalar()
        connection.commit()  # a session-level advisory lock outlives the transaction
        if not got:
            connection.close()
            raise SchedulerBusy(self._busy_message())
        self._pg = connection
        self._write_row(take_over=True)

    def heartbeat(self) -> None:
        """Prove the lock is still ours and push its expiry forward; ``LockLost`` otherwise."""
        self.verify()
        now = self.clock()
        with Session(self.engine) as session:
            session.execute(
                update(SchedulerLockRow)
                .where(SchedulerLockRow.name == LOCK_NAME)  # type: ignore[arg-type]
                .where(SchedulerLockRow.holder == self.holder)  # type: ignore[arg-type]
                .values(heartbeat_at=now, expires_at=now + self.ttl)
            )
            session.commit()

    def verify(self) -> None:
        """Raise ``LockLost`` unless this process still holds the lock (checked before each send)."""
        if self._pg is not None:
            try:
                self._pg.execute(text("SELECT 1")).scalar()
                self._pg.commit()
            except Exception as error:  # the connection, and with it the advisory lock, is gone
                raise LockLost(f"Scheduler lost its database connection: {error}") from None
            return
        with Session(self.engine) as session:
            row = session.get(SchedulerLockRow, LOCK_NAME)
        if row is None or row.holder != self.holder or row.released_at is not None:
            raise LockLost("Another scheduler took over the lock; this one stops.")
        if row.expires_at <= self.clock():
            raise LockLost("Scheduler heartbeat expired; this one stops before sending anything.")

    def record_scan(self, at: datetime, ms: int, summary: str, error: str | None = None) -> None:
        with Session(self.engine) as session:
            session.execute(
                update(SchedulerLockRow)
                .where(SchedulerLockRow.name == LOCK_NAME)  # type: ignore[arg-type]
                .where(SchedulerLockRow.holder == self.holder)  # type: ignore[arg-type]
                .values(
                    last_scan_at=at,
                    last_scan_ms=ms,
                    last_scan_summary=summary[:300],
                    last_error=error[:300] if error else None,
                )
            )
            session.commit()

    def release(self) -> None:
        with Session(self.engine) as session:
            session.execute(
                update(SchedulerLockRow)
                .where(SchedulerLockRow.name == LOCK_NAME)  # type: ignore[arg-type]
                .where(SchedulerLockRow.holder == self.holder)  # type: ignore[arg-type]
                .values(released_at=self.clock(), expires_at=self.clock())
            )
            session.commit()
        if self._pg is not None:
            # unlock now (the server frees a closed session's locks a moment later), then make
            # sure the connection is really closed rather than returned to the pool
            with contextlib.suppress(Exception):  # a dead connection has dropped the lock already
                self._pg.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_KEY})
            self._pg.invalidate()
            self._pg.close()
            self._pg = None

    # --- SQLite: the row is the lock ---------------------------------------------------------

    def _acquire_row(self) -> None:
        if self._write_row(take_over=False):
            return
        with Session(self.engine) as session:
            row = session.get(SchedulerLockRow, LOCK_NAME)
        # killed on this very host: its pid is gone, so waiting for the expiry helps nobody
        stale = row is not None and row.host == self.host and not _alive(row.pid)
        if stale and self._write_row(take_over=True, previous=row.holder):  # type: ignore[union-attr]
            return
        raise SchedulerBusy(self._busy_message())

    def _write_row(self, take_over: bool, previous: str | None = None) -> bool:
        """Claim the row: always (PostgreSQL, under the advisory lock), else only when free."""
        now = self.clock()
        values = {
            "holder": self.holder,
            "host": self.host,
            "pid": self.pid,
            "acquired_at": now,
            "heartbeat_at": now,
            "expires_at": now + self.ttl,
            "released_at": None,
        }
        with Session(self.engine) as session:
            statement = update(SchedulerLockRow).where(SchedulerLockRow.name == LOCK_NAME)  # type: ignore[arg-type]
            if previous is not None:
                statement = statement.where(SchedulerLockRow.holder == previous)  # type: ignore[arg-type]
            elif not take_over:
                statement = statement.where(
                    (SchedulerLockRow.expires_at <= now)
                    | (SchedulerLockRow.released_at.is_not(None))  # type: ignore[union-attr, operator]
                )
            if session.execute(statement.values(**values)).rowcount:  # type: ignore[attr-defined]
                session.commit()
                return True
            if session.get(SchedulerLockRow, LOCK_NAME) is not None:
                return False
            try:
                session.add(SchedulerLockRow(name=LOCK_NAME, **values))  # type: ignore[arg-type]
                session.commit()
            except IntegrityError:  # another process inserted it first
                session.rollback()
                return False
            return True

    def _busy_message(self) -> str:
        state = status(self.engine, self.clock())
        who = f" on {state.host} (pid {state.pid})" if state.host else ""
        return (
            f"Another reminder scheduler is already running against this database{who}. "
            "Only one may run per deployment; stop it first (or wait for its lock to expire if it "
            "was killed on another machine)."
        )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True
