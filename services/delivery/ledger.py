"""The delivery ledger: batches, one item per family, and the state machine every send goes through.

The ledger is what makes a crash harmless. An item's state is written (and committed) *before* each
send, as ``sending_document`` or ``sending_password``, and again after the server's answer. A worker
that dies between the two leaves the item in a sending state; recovery turns such items into
``uncertain`` for an operator to decide (resend or count as sent) instead of resending blindly.
Every other state resumes exactly where it was. The password message is only ever claimed from
``document_sent``, so no family can get a password without its document.

Workers claim items with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several workers (on several
machines) share a batch; SQLite runs one worker. Each claim is also a guarded update
(``WHERE state = <expected>``), so a lost race claims nothing rather than claiming twice.
"""

from __future__ import annotations

import enum
import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Column, Index, Text, UniqueConstraint, bindparam, case, func, update
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.selectable import GenerativeSelect
from sqlmodel import Field, Session, SQLModel, col, select

from services.audit import log as audit
from services.audit.log import SYSTEM_ACTOR, Actor
from services.core.columns import enum_column, utcnow
from services.core.db import is_sqlite, session_scope
from services.core.errors import ConsoleError, InvalidInput, NotFound
from services.roster.tables import Guardian


class BatchStatus(enum.StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    FINISHED = "finished"


class ItemState(enum.StrEnum):
    """Where one family's delivery stands; the two ``sending_*`` states are the in-flight markers."""

    PENDING = "pending"
    PACKAGED = "packaged"
    SENDING_DOCUMENT = "sending_document"
    DOCUMENT_SENT = "document_sent"
    SENDING_PASSWORD = "sending_password"  # noqa: S105 - a state name
    PASSWORD_SENT = "password_sent"  # noqa: S105 - a state name
    DONE = "done"
    FAILED = "failed"
    UNCERTAIN = "uncertain"
    CANCELLED = "cancelled"
    # The relay accepted a message, then a bounce said the family's server gave up on it
    # (``services.bounces``): not delivered, ``error`` holds the reason.
    BOUNCED = "bounced"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ")


IN_FLIGHT = (ItemState.SENDING_DOCUMENT, ItemState.SENDING_PASSWORD)
OPEN_STATES = (
    ItemState.PENDING,
    ItemState.PACKAGED,
    ItemState.SENDING_DOCUMENT,
    ItemState.DOCUMENT_SENT,
    ItemState.SENDING_PASSWORD,
    ItemState.PASSWORD_SENT,
)
GAVE_UP = (ItemState.FAILED, ItemState.BOUNCED)
"""States in which an item no longer carries the family's SSRs: another batch may take them."""
BOUNCEABLE = (
    ItemState.DOCUMENT_SENT,
    ItemState.PASSWORD_SENT,
    ItemState.DONE,
    ItemState.UNCERTAIN,
)
"""States a hard bounce moves to ``bounced``: a message of the item was handed to the relay and
none is in flight (an item being sent is bounced once its send is recorded)."""


class BatchKind(enum.StrEnum):
    """What a batch sends: SSRs (a document and its password), or a notice telling families how
    the SSRs will come (one message, no attachment, no password; ``services.delivery.notices``)."""

    DELIVERY = "delivery"
    NOTICE = "notice"


class Step(enum.StrEnum):
    """The two messages of a delivery, and the one message of a notice batch."""

    DOCUMENT = "document"
    PASSWORD = "password"  # noqa: S105 - the name of a step, not a secret
    NOTICE = "notice"


class DeliveryBatch(SQLModel, table=True):
    """A run of deliveries chosen together (a school, a grade, a list, or the plan's families)."""

    __tablename__ = "delivery_batch"
    id: int | None = Field(default=None, primary_key=True)
    lea_id: int = Field(foreign_key="lea.id", index=True)
    name: str = Field(max_length=200)
    source: str = Field(max_length=20)  # lea, school, grade, list, plan
    school_id: int | None = Field(default=None, foreign_key="school.id")
    grade: int | None = None
    program: str | None = Field(default=None, max_length=10)
    admin_year: int | None = None
    status: BatchStatus = Field(
        sa_column=Column(enum_column(BatchStatus, "batch_status"), nullable=False, index=True)
    )
    password_channel: str = Field(default="email", max_length=10)  # email or sms
    password_delay_seconds: int = 0
    total_items: int = 0
    created_by: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
    # A deliberate re-send (services.delivery.batches.create): takes SSRs families already have; why.
    resend_reason: str | None = Field(default=None, max_length=500)
    kind: BatchKind = Field(
        default=BatchKind.DELIVERY,
        sa_column=Column(
            enum_column(BatchKind, "batch_kind"), nullable=False, server_default="delivery"
        ),
    )
    send_at: datetime | None = None  # a notice batch: nothing goes out before this moment


class DeliveryItem(SQLModel, table=True):
    """One family (one guardian) in a batch: their children's SSRs and the two messages about them."""

    __tablename__ = "delivery_item"
    __table_args__ = (
        UniqueConstraint("batch_id", "guardian_id", name="uq_delivery_item_family"),
        Index("ix_delivery_item_batch_state", "batch_id", "state"),
        Index("ix_delivery_item_state_due", "state", "next_attempt_at"),
        # a bounce names the message it is about (services.bounces.matching)
        Index("ix_delivery_item_document_message_id", "document_message_id"),
        Index("ix_delivery_item_message_id", "message_id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    batch_id: int = Field(foreign_key="delivery_batch.id")
    guardian_id: int = Field(foreign_key="guardian.id", index=True)
    school_id: int | None = Field(default=None, foreign_key="school.id")
    language: str = Field(default="en", max_length=16)
    address: str = Field(max_length=254)
    phone: str | None = Field(default=None, max_length=32)
    ssr_count: int = 0
    state: ItemState = Field(sa_column=Column(enum_column(ItemState, "item_state"), nullable=False))
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow)
    claimed_by: str | None = Field(default=None, max_length=100)
    claimed_at: datetime | None = None
    uncertain_step: str | None = Field(default=None, max_length=10)
    package_dir: str | None = Field(default=None, max_length=500)
    # SHA-256 (hex) of the package file as verified: checked against the file before it is sent.
    package_sha256: str | None = Field(default=None, max_length=64)
    # Fernet token of the PDF password (services.core.vault); erased once the password is sent.
    sealed_password: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # The message last handed to the relay (either step): its Message-ID and when, so an item in
    # doubt can be traced in the relay's log before an operator decides it.
    message_id: str | None = Field(default=None, max_length=200)
    handed_at: datetime | None = None
    document_message_id: str | None = Field(default=None, max_length=200)
    document_sent_at: datetime | None = None
    password_due_at: datetime | None = None
    password_sent_at: datetime | None = None
    error: str | None = Field(default=None, max_length=500)
    updated_at: datetime = Field(default_factory=utcnow)


class DeliveryWorker(SQLModel, table=True):
    """A running worker's heartbeat: an in-flight item whose worker went silent is uncertain."""

    __tablename__ = "delivery_worker"
    id: str = Field(primary_key=True, max_length=100)
    host: str = Field(max_length=200)
    pid: int
    started_at: datetime = Field(default_factory=utcnow)
    heartbeat_at: datetime = Field(default_factory=utcnow)
    # Since when this worker cannot reach the mail relay, and why (None while it can).
    relay_down_since: datetime | None = None
    relay_error: str | None = Field(default=None, max_length=500)


class SendQuota(SQLModel, table=True):
    """Messages handed to the relay per minute and per day, kept so caps hold across restarts."""

    __tablename__ = "send_quota"
    window: str = Field(primary_key=True, max_length=20)  # "m:202611251523" or "d:20261125"
    count: int = 0


@dataclass(frozen=True)
class Claim:
    """An item a worker is about to send one message for (the sending state is already committed)."""

    item_id: int
    batch_id: int
    step: Step
    guardian_id: int
    address: str
    phone: str | None
    language: str
    package_dir: str | None
    package_sha256: str | None
    sealed_password: str | None
    attempts: int
    ssr_count: int
    message_id: str = ""  # the Message-ID the message goes out with (kept in the ledger)
    guardian_name: str = ""  # how the message addresses the family

    @property
    def sending(self) -> ItemState:
        """The in-flight state this claim holds the item in."""
        return (
            ItemState.SENDING_PASSWORD if self.step is Step.PASSWORD else ItemState.SENDING_DOCUMENT
        )


def _item_target(item_id: int) -> str:
    return f"delivery_item:{item_id}"


RUNNABLE = (BatchStatus.RUNNING,)
# A cancelled batch sends no new document, but a family whose document went out still gets its
# password: cancelling must not strand a locked PDF.
FINISHING = (BatchStatus.RUNNING, BatchStatus.CANCELLED)


def batch_ids(statuses: Sequence[BatchStatus] = RUNNABLE, kind: BatchKind | None = None) -> Any:
    """Subquery of the batches in these statuses (by default those whose items may move now),
    of one ``kind`` if given."""
    statement = select(DeliveryBatch.id).where(col(DeliveryBatch.status).in_(statuses))
    return statement if kind is None else statement.where(col(DeliveryBatch.kind) == kind)


_S = TypeVar("_S", bound=GenerativeSelect)


def _lock(statement: _S, engine: Engine) -> _S:
    return statement if is_sqlite(engine) else statement.with_for_update(skip_locked=True)


_ITEMS = DeliveryItem.__table__  # type: ignore[attr-defined]


@functools.lru_cache(maxsize=64)
def _move(columns: tuple[str, ...], held: bool) -> Any:
    """The guarded update of ``_set_state`` for one set of columns, built once: composing a
    statement costs SQLAlchemy more Python than running it, and the worker moves items hundreds
    of times a second."""
    statement = update(_ITEMS).where(
        _ITEMS.c.id == bindparam("item_id"),
        _ITEMS.c.state.in_(bindparam("expected", expanding=True)),
    )
    if held:
        statement = statement.where(_ITEMS.c.claimed_by == bindparam("holder"))
    return statement.values({name: bindparam(f"new_{name}") for name in columns})


def _set_state(
    session: Session,
    item_id: int | None,
    expected: Sequence[str],
    holder: str | None = None,
    **values: Any,
) -> bool:
    """Move an item only if it is still in an expected state (and, given ``holder``, still claimed
    by that worker): a lost race or a claim another worker took over changes nothing."""
    values.setdefault("updated_at", utcnow())
    parameters = {f"new_{name}": value for name, value in values.items()}
    parameters.update(item_id=item_id, expected=list(expected))
    if holder is not None:
        parameters["holder"] = holder
    result = session.execute(_move(tuple(values), holder is not None), parameters)
    moved = result.rowcount == 1  # type: ignore[attr-defined]
    loaded = session.identity_map.get(session.identity_key(DeliveryItem, item_id))
    if moved and loaded is not None:  # a caller that read the item sees it moved
        for name, value in values.items():
            set_committed_value(loaded, name, value)
    return moved


def _settle(session: Session, claim: Claim, **values: Any) -> bool:
    """Move a claimed item out of its in-flight state and release the claim; False if it had
    already moved (a recovery or an operator got there first)."""
    return _set_state(
        session, claim.item_id, [claim.sending], claimed_by=None, claimed_at=None, **values
    )


# --- workers -------------------------------------------------------------------------------------


def register_worker(engine: Engine, worker_id: str, host: str, pid: int) -> None:
    """Record a starting worker. On SQLite, refuse while another worker process on this host is
    alive: SQLite runs one worker, and a second would mistake the first's sends for a crash's.

    The check and the insert are one write transaction: its first statement takes SQLite's write
    lock (an update that changes nothing still takes it), so two workers started at the same
    instant run one after the other and the second sees the first."""
    with session_scope(engine) as session:
        if is_sqlite(engine):
            session.execute(
                update(DeliveryWorker).where(col(DeliveryWorker.id) == worker_id).values(pid=pid)
            )
            for other in session.exec(select(DeliveryWorker)).all():
                if other.id != worker_id and other.host == host and _alive(other.pid):
                    raise ConsoleError(
                        f"Another worker (pid {other.pid}) is running on this SQLite database; "
                        "SQLite runs one worker (use PostgreSQL for several)"
                    )
        session.merge(DeliveryWorker(id=worker_id, host=host, pid=pid))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def heartbeat(engine: Engine, worker_id: str, host: str, pid: int) -> None:
    """Prove this worker alive; re-register it if another worker's recovery removed it during a
    database outage longer than ``stale_after`` (else its claims would be taken again and again)."""
    with session_scope(engine) as session:
        beat = session.execute(
            update(DeliveryWorker)
            .where(DeliveryWorker.id == worker_id)  # type: ignore[arg-type]
            .values(heartbeat_at=utcnow())
        )
        if not beat.rowcount:  # type: ignore[attr-defined]
            session.add(DeliveryWorker(id=worker_id, host=host, pid=pid))


def unregister_worker(engine: Engine, worker_id: str) -> None:
    with session_scope(engine) as session:
        if row := session.get(DeliveryWorker, worker_id):
            session.delete(row)


STALE_AFTER = timedelta(minutes=2)
"""A worker silent this long is dead (``[delivery] stale_after_seconds`` overrides it)."""


def _worker_alive(worker: DeliveryWorker, host: str, now: datetime, stale_after: timedelta) -> bool:
    """Alive: a recent heartbeat, and on this host a process that still exists (a SIGKILLed
    worker is known dead at once, without waiting for its heartbeat to go stale)."""
    if worker.host == host and not _alive(worker.pid):
        return False
    return worker.heartbeat_at >= now - stale_after


@dataclass(frozen=True)
class WorkerPresence:
    """Whether any worker runs now, and when one was last seen (a heartbeat, or a batch item
    moving), so a screen can say "no worker is running since ..." instead of "running"."""

    running: int
    last_seen: datetime | None
    relay_down_since: datetime | None = None  # a live worker cannot reach the relay since then
    relay_error: str = ""


def worker_presence(
    engine: Engine,
    host: str,
    batch_id: int | None = None,
    *,
    now: datetime | None = None,
    stale_after: timedelta = STALE_AFTER,
) -> WorkerPresence:
    """The live workers (by heartbeat and process) and, with none, the last sign of one: the
    newest heartbeat a dead worker left or the last change to one of ``batch_id``'s items."""
    now = now or utcnow()
    with Session(engine) as session:
        workers = session.exec(select(DeliveryWorker)).all()
        alive = [w for w in workers if _worker_alive(w, host, now, stale_after)]
        down = sorted(
            (w for w in alive if w.relay_down_since is not None),
            key=lambda w: w.relay_down_since,  # type: ignore[arg-type,return-value]
        )
        seen = [w.heartbeat_at for w in workers]
        if batch_id is not None:
            seen.append(
                session.exec(
                    select(func.max(DeliveryItem.updated_at)).where(
                        DeliveryItem.batch_id == batch_id
                    )
                ).one()
            )
    known = [moment for moment in seen if moment is not None]
    return WorkerPresence(
        len(alive),
        max(known) if known else None,
        down[0].relay_down_since if down else None,
        (down[0].relay_error or "") if down else "",
    )


def relay_state(engine: Engine, worker_id: str, since: datetime | None, error: str = "") -> None:
    """Record that this worker cannot reach the relay since ``since`` (None: it can again), for
    the progress screen."""
    with session_scope(engine) as session:
        session.execute(
            update(DeliveryWorker)
            .where(col(DeliveryWorker.id) == worker_id)
            .values(relay_down_since=since, relay_error=error[:500] or None)
        )


def retry_now(engine: Engine, actor: Actor, batch_id: int) -> int:
    """Make the batch's messages waiting for a later try due now (the relay is back, say); the
    worker claims them on its next look at the database. Returns how many."""
    now = utcnow()
    with session_scope(engine) as session:
        batch = _batch(session, batch_id)
        moved = session.execute(
            update(DeliveryItem)
            .where(
                col(DeliveryItem.batch_id) == batch_id,
                col(DeliveryItem.state).in_([ItemState.PACKAGED, ItemState.DOCUMENT_SENT]),
                col(DeliveryItem.next_attempt_at) > now,
            )
            .values(next_attempt_at=now, updated_at=now)
        ).rowcount  # type: ignore[attr-defined]
        audit.record(
            session,
            actor,
            "batch.retry_now",
            f"delivery_batch:{batch_id}",
            {"items": moved},
            lea_id=batch.lea_id,
        )
    return int(moved)


def recover(engine: Engine, worker_id: str, host: str, stale_after: timedelta = STALE_AFTER) -> int:
    """Settle the items of workers that died: in-flight ones become uncertain, others are released.

    On SQLite only one worker runs, so every claim not ours is from a dead worker. On PostgreSQL a
    worker is dead when its heartbeat is older than ``stale_after``, or at once when it ran on this
    host and its process is gone (a SIGKILLed worker restarted by systemd). Runs at start and with
    every heartbeat. Returns how many items were marked uncertain.
    """
    with session_scope(engine) as session:
        alive, dead = {worker_id}, set[str]()

        def read_workers() -> None:
            now = utcnow()
            for other in session.exec(select(DeliveryWorker)).all():
                (alive if _worker_alive(other, host, now, stale_after) else dead).add(other.id)

        if not is_sqlite(engine):
            read_workers()
        claimed = col(DeliveryItem.claimed_by)
        rows = session.exec(
            _lock(
                select(DeliveryItem.id, DeliveryItem.state, DeliveryItem.batch_id, claimed).where(
                    claimed.is_not(None), claimed.not_in(alive)
                ),
                engine,
            )
        ).all()
        if rows and not is_sqlite(engine):
            # A worker that registered after the list above was read (while this one waited for
            # the item locks) claimed only after registering: read the list again, now that its
            # claims are seen, so a starting worker is never taken for a dead one.
            read_workers()
        uncertain = 0
        for item_id, state, batch_id, owner in rows:
            if owner in alive:
                continue
            if state in IN_FLIGHT:
                step = Step.DOCUMENT if state == ItemState.SENDING_DOCUMENT else Step.PASSWORD
                if _kind(session, batch_id) is BatchKind.NOTICE:
                    step = Step.NOTICE
                if _set_state(
                    session,
                    item_id,
                    [state],
                    state=ItemState.UNCERTAIN,
                    uncertain_step=step.value,
                    claimed_by=None,
                    error=f"the worker stopped while the {step.value} message was being sent",
                ):
                    uncertain += 1
                    audit.record(
                        session,
                        SYSTEM_ACTOR,
                        "delivery.uncertain",
                        f"delivery_item:{item_id}",
                        {"batch": batch_id, "step": step.value},
                    )
            else:
                _set_state(session, item_id, [state], claimed_by=None, claimed_at=None)
        # A batch whose last open items were in flight has nothing left to run: it is finished
        # (its uncertain items wait for an operator, who reopens it by deciding one).
        _finish_batches(session)
        # Only the workers found dead go: one that registered after the reads above (several
        # started at once) is neither, and removed, its claims would look like a dead worker's
        # until its next heartbeat. On SQLite one worker runs, so every other one is dead.
        gone = (
            col(DeliveryWorker.id).not_in(alive)
            if is_sqlite(engine)
            else col(DeliveryWorker.id).in_(dead - alive)
        )
        session.execute(DeliveryWorker.__table__.delete().where(gone))  # type: ignore[attr-defined]
    return uncertain


# --- packaging -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PackagingClaim:
    """A pending item a worker took to package: the family it is for."""

    item_id: int
    batch_id: int
    guardian_id: int


@functools.cache
def _packaging_claim(locking: bool) -> tuple[Any, Any]:
    """The two statements of ``claim_for_packaging``, built once per kind of database: the
    packager claims a family or two at a time, and composing them cost more than running them."""
    items = _ITEMS.c
    pending = (
        sa_select(items.id)
        .where(
            items.state == ItemState.PENDING,
            items.claimed_by.is_(None),
            items.batch_id.in_(batch_ids(kind=BatchKind.DELIVERY)),
        )
        .order_by(items.id)
        .limit(bindparam("limit"))
    )
    if locking:
        pending = pending.with_for_update(skip_locked=True)
    # One guarded update for them all: an item that moved meanwhile (a cancelled batch) is not
    # returned, so it is not claimed.
    claim = (
        update(_ITEMS)
        .where(
            items.id.in_(bindparam("ids", expanding=True)),
            items.state == ItemState.PENDING,
            items.claimed_by.is_(None),
        )
        .values(
            claimed_by=bindparam("worker_id"),
            claimed_at=bindparam("now"),
            updated_at=bindparam("updated_at"),
        )
        .returning(items.id, items.batch_id, items.guardian_id)
    )
    return pending, claim


def claim_for_packaging(engine: Engine, worker_id: str, limit: int) -> list[PackagingClaim]:
    """Take up to ``limit`` pending items of running batches to package."""
    now = utcnow()
    pending, claim = _packaging_claim(not is_sqlite(engine))
    with session_scope(engine) as session:
        ids = session.execute(pending, {"limit": limit}).scalars().all()
        if not ids:
            return []
        rows = session.execute(
            claim, {"ids": list(ids), "worker_id": worker_id, "now": now, "updated_at": now}
        ).all()
    return [PackagingClaim(*row) for row in sorted(rows)]


_BACKLOG = sa_select(func.count()).select_from(_ITEMS).where(_ITEMS.c.state == ItemState.PACKAGED)


def packaged_backlog(engine: Engine) -> int:
    """Packaged items not yet sent: the worker packages just ahead of sending, not the whole batch."""
    with engine.connect() as connection:
        return int(connection.execute(_BACKLOG).scalar_one())


@dataclass(frozen=True)
class Package:
    """A family's package, made and verified under a packaging claim, with its sealed password."""

    claim: PackagingClaim
    package_dir: str
    package_sha256: str  # of the verified file in ``package_dir``
    sealed_password: str
    ssr_count: int


def mark_packaged(engine: Engine, worker_id: str, packages: Sequence[Package]) -> set[int]:
    """The families' packages are verified and their passwords sealed: ready for the document
    message. One transaction for them all; returns the items recorded.

    Only while ``worker_id`` still holds an item's packaging claim: a package made under a claim
    that recovery gave to another worker is never recorded, so a file and the password sealed for
    it always come from the same claim."""
    moved: list[Package] = []
    with session_scope(engine) as session:
        for package in packages:
            if _set_state(
                session,
                package.claim.item_id,
                [ItemState.PENDING],
                worker_id,
                state=ItemState.PACKAGED,
                package_dir=package.package_dir,
                package_sha256=package.package_sha256,
                sealed_password=package.sealed_password,
                ssr_count=package.ssr_count,
                claimed_by=None,
                claimed_at=None,
                error=None,
            ):
                moved.append(package)
        audit.record_many(
            session,
            SYSTEM_ACTOR,
            [
                (
                    "delivery.packaged",
                    _item_target(package.claim.item_id),
                    {
                        "batch": package.claim.batch_id,
                        "guardian": package.claim.guardian_id,
                        "ssrs": package.ssr_count,
                    },
                )
                for package in moved
            ],
        )
    return {package.claim.item_id for package in moved}


def mark_failed(
    engine: Engine,
    item_id: int,
    expected: Sequence[ItemState],
    reason: str,
    holder: str | None = None,
) -> None:
    """A step that cannot succeed without a person (no reports, 5xx): failed, with the reason
    (given ``holder``, only while that worker still holds the item's claim)."""
    with session_scope(engine) as session:
        batch_id = session.exec(
            select(DeliveryItem.batch_id).where(DeliveryItem.id == item_id)
        ).one()
        if _set_state(
            session,
            item_id,
            expected,
            holder,
            state=ItemState.FAILED,
            claimed_by=None,
            claimed_at=None,
            error=reason[:500],
        ):
            audit.record(
                session,
                SYSTEM_ACTOR,
                "delivery.failed",
                _item_target(item_id),
                {"batch": batch_id, "reason": reason[:200]},
            )
            _finish_batches(session)


# --- sending -------------------------------------------------------------------------------------


@functools.cache
def _candidates(locking: bool) -> tuple[tuple[ItemState, ItemState, Step, Any], ...]:
    """The two claim queries (a due password, then a due document), built once per kind of
    database. The batch's kind and the guardian's name come as scalar subqueries, so ``FOR UPDATE``
    locks the item's row alone (never the batch's, which every other item shares)."""
    items = _ITEMS.c
    batches = DeliveryBatch.__table__.c  # type: ignore[attr-defined]
    guardians = Guardian.__table__.c  # type: ignore[attr-defined]
    now = bindparam("now", type_=items.next_attempt_at.type)
    kind = sa_select(batches.kind).where(batches.id == items.batch_id).scalar_subquery()
    first, last = (
        sa_select(name).where(guardians.id == items.guardian_id).scalar_subquery()
        for name in (guardians.first_name, guardians.last_name)
    )
    columns = (
        items.id,
        items.batch_id,
        items.guardian_id,
        items.address,
        items.phone,
        items.language,
        items.package_dir,
        items.package_sha256,
        items.sealed_password,
        items.attempts,
        items.ssr_count,
        kind,
        first,
        last,
    )
    found = []
    for source, target, step, due, statuses in (
        (
            ItemState.DOCUMENT_SENT,
            ItemState.SENDING_PASSWORD,
            Step.PASSWORD,
            items.password_due_at <= now,
            FINISHING,
        ),
        (ItemState.PACKAGED, ItemState.SENDING_DOCUMENT, Step.DOCUMENT, None, RUNNABLE),
    ):
        runnable = sa_select(batches.id).where(batches.status.in_(statuses))
        statement = (
            sa_select(*columns)
            .where(
                items.state == source,
                items.next_attempt_at <= now,
                *([] if due is None else [due]),
                items.batch_id.in_(runnable),
            )
            .order_by(items.id)
            .limit(1)
        )
        if locking:
            statement = statement.with_for_update(skip_locked=True, of=_ITEMS)
        found.append((source, target, step, statement))
    return tuple(found)


def claim_send(
    engine: Engine,
    worker_id: str,
    now: datetime,
    reserve: Any = None,
    message_id: str = "",
) -> Claim | None:
    """Claim the next message to send and commit its sending state, or None when nothing is due.

    Passwords that are due go first (they finish a family); then documents. ``reserve(session, now)``
    (the mailer's quota) runs in the same transaction and may veto the claim by returning False.
    ``message_id`` is recorded with the time, before the message is handed to the relay, so a
    message in doubt can be looked up in the relay's log.
    """
    with session_scope(engine) as session:
        for source, target, step, statement in _candidates(not is_sqlite(engine)):
            row = session.execute(statement, {"now": now}).first()
            if row is None:
                continue
            if reserve is not None and not reserve(session, now):
                session.rollback()
                return None
            item_id, batch_id, guardian_id, address, phone, language, package_dir = row[:7]
            package_sha256, sealed_password, attempts, ssr_count, kind = row[7:12]
            first_name, last_name = row[12:]
            if step is Step.DOCUMENT and kind == BatchKind.NOTICE:
                step = Step.NOTICE
            attempts += 1
            if not _set_state(
                session,
                item_id,
                [source],
                state=target,
                claimed_by=worker_id,
                claimed_at=now,
                attempts=attempts,
                message_id=message_id or None,
                handed_at=now,
            ):
                session.rollback()
                return None
            return Claim(
                item_id=item_id,
                batch_id=batch_id,
                step=step,
                guardian_id=guardian_id,
                address=address,
                phone=phone,
                language=language,
                package_dir=package_dir,
                package_sha256=package_sha256,
                sealed_password=sealed_password,
                attempts=attempts,
                ssr_count=ssr_count,
                message_id=message_id,
                guardian_name=f"{first_name or ''} {last_name or ''}".strip(),
            )
    return None


def record_accepted(
    engine: Engine, claim: Claim, message_id: str, *, now: datetime, password_delay: timedelta
) -> None:
    """The server accepted the message: move on (document -> document_sent; password -> sent;
    a notice -> done)."""
    with session_scope(engine) as session:
        if claim.step is Step.NOTICE:
            moved = _settle(
                session,
                claim,
                state=ItemState.DONE,
                document_message_id=message_id,
                document_sent_at=now,
                error=None,
            )
            action = "notice.sent"
        elif claim.step is Step.DOCUMENT:
            moved = _settle(
                session,
                claim,
                state=ItemState.DOCUMENT_SENT,
                document_message_id=message_id,
                document_sent_at=now,
                password_due_at=now + password_delay,
                attempts=0,
                next_attempt_at=now,
                error=None,
            )
            action = "delivery.document_sent"
        else:
            # The password is erased in the same transaction that records it was accepted.
            moved = _settle(
                session,
                claim,
                state=ItemState.PASSWORD_SENT,
                sealed_password=None,
                password_sent_at=now,
                error=None,
            )
            action = "delivery.password_sent"
        if moved:
            audit.record(
                session,
                SYSTEM_ACTOR,
                action,
                _item_target(claim.item_id),
                {"batch": claim.batch_id, "guardian": claim.guardian_id, "message_id": message_id},
            )


@functools.cache
def _clear_statements() -> tuple[Any, ...]:
    """The updates of ``clear_packages``, built once (the worker sweeps every second)."""
    return tuple(
        update(_ITEMS)
        .where(
            _ITEMS.c.id.in_(bindparam("ids", expanding=True)),
            _ITEMS.c.state == state,
        )
        .values(package_dir=None, updated_at=bindparam("now"), **values)
        for state, values in (
            (ItemState.PASSWORD_SENT, {"state": ItemState.DONE}),
            (ItemState.CANCELLED, {"sealed_password": None}),
            (ItemState.BOUNCED, {"sealed_password": None}),
        )
    )


def clear_packages(engine: Engine, item_ids: list[int]) -> None:
    """The package files of these items are deleted: sent families are done, cancelled and
    bounced ones forget their password too."""
    with session_scope(engine) as session:
        for statement in _clear_statements():
            session.execute(statement, {"ids": item_ids, "now": utcnow()})
        _finish_batches(session)


def record_retry(
    engine: Engine, claim: Claim, retry_at: datetime, reason: str, *, count_attempt: bool = True
) -> None:
    """A temporary refusal (4xx, connection refused): back to the state before the send, later.

    ``count_attempt=False`` when the relay itself was unreachable: not this family's attempt.
    """
    back = ItemState.DOCUMENT_SENT if claim.step is Step.PASSWORD else ItemState.PACKAGED
    with session_scope(engine) as session:
        moved = _settle(
            session,
            claim,
            state=back,
            next_attempt_at=retry_at,
            attempts=claim.attempts if count_attempt else claim.attempts - 1,
            error=reason[:500],
        )
        if moved and count_attempt:  # an unreachable relay is not an event in a family's history
            audit.record(
                session,
                SYSTEM_ACTOR,
                "delivery.retry",
                _item_target(claim.item_id),
                {
                    "batch": claim.batch_id,
                    "step": claim.step.value,
                    "attempt": claim.attempts,
                    "reason": reason[:200],
                    "retry_at": retry_at.isoformat(timespec="seconds"),
                },
            )


def record_failed(engine: Engine, claim: Claim, reason: str) -> None:
    mark_failed(engine, claim.item_id, [claim.sending], f"{claim.step.value}: {reason}")


def record_uncertain(engine: Engine, claim: Claim, reason: str) -> None:
    """The connection broke after the message data went out: it may or may not have arrived."""
    with session_scope(engine) as session:
        if _settle(
            session,
            claim,
            state=ItemState.UNCERTAIN,
            uncertain_step=claim.step.value,
            error=reason[:500],
        ):
            audit.record(
                session,
                SYSTEM_ACTOR,
                "delivery.uncertain",
                _item_target(claim.item_id),
                {"batch": claim.batch_id, "step": claim.step.value},
            )
            _finish_batches(session)


def record_package_unusable(engine: Engine, claim: Claim, reason: str) -> None:
    """The package cannot be sent as it is: its files are gone, or its sealed password cannot be
    opened (the vault key was replaced). No message goes out.

    Before the document nothing has been sent, so the item goes back to ``pending`` and is packaged
    again under a new password. After the document, the family holds a PDF whose password is lost:
    the item fails with the reason and the useless token is dropped, so "retry failed" sends a new
    package under a new password followed by both messages (``retry_failed``).
    """
    if claim.step is Step.DOCUMENT:
        values: dict[str, Any] = {
            "state": ItemState.PENDING,
            "package_dir": None,
            "attempts": 0,
            "next_attempt_at": utcnow(),
            "error": None,
        }
        action, detail = "delivery.repackaged", f"{reason}; a new package will be made"
    else:
        error = f"password: {reason}; retry sends a new package and password"
        values = {"state": ItemState.FAILED, "error": error[:500]}
        action, detail = "delivery.failed", f"password: {reason}"
    with session_scope(engine) as session:
        moved = _settle(session, claim, sealed_password=None, **values)
        if moved:
            audit.record(
                session,
                SYSTEM_ACTOR,
                action,
                _item_target(claim.item_id),
                {"batch": claim.batch_id, "step": claim.step.value, "reason": detail[:200]},
            )
            _finish_batches(session)


def _kind(session: Session, batch_id: int) -> BatchKind:
    return BatchKind(
        session.exec(select(DeliveryBatch.kind).where(DeliveryBatch.id == batch_id)).one()
    )


@functools.cache
def _finish_statement() -> Any:
    batches = DeliveryBatch.__table__  # type: ignore[attr-defined]
    open_items = (
        sa_select(_ITEMS.c.id)
        .where(_ITEMS.c.batch_id == batches.c.id, _ITEMS.c.state.in_(OPEN_STATES))
        .exists()
    )
    return (
        update(batches)
        .where(batches.c.status == BatchStatus.RUNNING, ~open_items)
        .values(status=BatchStatus.FINISHED, finished_at=bindparam("now"))
    )


def _finish_batches(session: Session) -> None:
    """A running batch with no open item left is finished."""
    session.execute(_finish_statement(), {"now": utcnow()})


# --- operator actions ----------------------------------------------------------------------------


class Resolution(enum.StrEnum):
    """What an operator decides for an uncertain item."""

    RESEND = "resend"  # the message probably did not arrive: send it again
    SENT = "sent"  # the message arrived (the family confirmed, or the relay log shows it)
    FAIL = "fail"  # give up on this family for this batch


def _batch(session: Session, batch_id: int) -> DeliveryBatch:
    batch = session.get(DeliveryBatch, batch_id)
    if batch is None:
        raise NotFound(f"There is no delivery batch {batch_id}")
    return batch


def set_batch_status(engine: Engine, actor: Actor, batch_id: int, status: BatchStatus) -> None:
    """Pause, resume or cancel a batch; the worker reads the status before every claim."""
    allowed = {
        BatchStatus.PAUSED: {BatchStatus.RUNNING},
        BatchStatus.RUNNING: {BatchStatus.PAUSED},
        BatchStatus.CANCELLED: {BatchStatus.RUNNING, BatchStatus.PAUSED},
    }
    with session_scope(engine) as session:
        batch = _batch(session, batch_id)
        if batch.status not in allowed.get(status, set()):
            raise InvalidInput(f"A {batch.status.value} batch cannot be set to {status.value}")
        batch.status = status
        if status is BatchStatus.CANCELLED:
            # Items not yet sent are cancelled; in-flight ones finish their current message.
            session.execute(
                update(DeliveryItem)
                .where(
                    col(DeliveryItem.batch_id) == batch_id,
                    col(DeliveryItem.state).in_([ItemState.PENDING, ItemState.PACKAGED]),
                )
                .values(state=ItemState.CANCELLED, sealed_password=None, updated_at=utcnow())
            )
            batch.finished_at = utcnow()
        session.add(batch)
        audit.record(
            session,
            actor,
            f"batch.{status.value}",
            f"delivery_batch:{batch_id}",
            lea_id=batch.lea_id,
        )


def retry_failed(engine: Engine, actor: Actor, batch_id: int) -> int:
    """Put failed items back where they failed: a document not sent is resent, else the password."""
    now = utcnow()
    with session_scope(engine) as session:
        batch = _batch(session, batch_id)
        if batch.status in (BatchStatus.CANCELLED,):
            raise InvalidInput("A cancelled batch cannot be retried")
        base = update(DeliveryItem).where(
            col(DeliveryItem.batch_id) == batch_id, col(DeliveryItem.state) == ItemState.FAILED
        )
        common = {"attempts": 0, "next_attempt_at": now, "error": None, "updated_at": now}
        sealed = col(DeliveryItem.sealed_password).is_not(None)
        sent = col(DeliveryItem.document_sent_at).is_not(None)
        # Without a sealed password (never packaged, or lost with a replaced vault key) the family
        # gets a new package, a new password and both messages.
        repackage = {
            "package_dir": None,
            "document_message_id": None,
            "document_sent_at": None,
            "password_due_at": None,
        }
        count = 0
        steps: list[tuple[Any, ItemState, dict[str, Any]]] = (
            # a notice has nothing to package: it is sent again as it is
            [(col(DeliveryItem.id).is_not(None), ItemState.PACKAGED, {})]
            if batch.kind is BatchKind.NOTICE
            else [
                (sealed & sent, ItemState.DOCUMENT_SENT, {"password_due_at": now}),
                (sealed & ~sent, ItemState.PACKAGED, {}),
                (~sealed, ItemState.PENDING, repackage),
            ]
        )
        for condition, state, extra in steps:
            count += session.execute(
                base.where(condition).values(state=state, **common, **extra)
            ).rowcount  # type: ignore[attr-defined]
        if count and batch.status is BatchStatus.FINISHED:
            batch.status = BatchStatus.RUNNING
            batch.finished_at = None
            session.add(batch)
        audit.record(
            session,
            actor,
            "batch.retry_failed",
            f"delivery_batch:{batch_id}",
            {"items": count},
            lea_id=batch.lea_id,
        )
    return count


def resolve_uncertain(
    engine: Engine, actor: Actor, item_id: int, resolution: Resolution, reason: str = ""
) -> ItemState:
    """The operator's decision for one uncertain item; returns the state it moves to."""
    now = utcnow()
    with session_scope(engine) as session:
        item = session.get(DeliveryItem, item_id)
        if item is None or item.state != ItemState.UNCERTAIN:
            raise InvalidInput(f"Delivery item {item_id} is not waiting for a decision")
        step = Step(item.uncertain_step or Step.DOCUMENT.value)
        batch = _batch(session, item.batch_id)
        # A message decided on starts its sending afresh: the attempts of the one in doubt must
        # not make the password's first refusal (a 451) its last, leaving a document without it.
        values: dict[str, Any] = {
            "uncertain_step": None,
            "error": None,
            "next_attempt_at": now,
            "attempts": 0,
        }
        if resolution is Resolution.FAIL:
            values.update(state=ItemState.FAILED, error=f"given up by {actor.name}: {reason}"[:500])
        elif batch.kind is BatchKind.NOTICE:  # one message: sent again, or done
            sent = resolution is Resolution.SENT
            values.update(state=ItemState.DONE if sent else ItemState.PACKAGED)
        elif step is Step.DOCUMENT and resolution is Resolution.RESEND:
            values.update(state=ItemState.PACKAGED)
        elif step is Step.DOCUMENT:
            # The document arrived: its password is still owed and follows as usual.
            values.update(
                state=ItemState.DOCUMENT_SENT,
                document_message_id=item.message_id,
                document_sent_at=item.handed_at or now,
                password_due_at=now + timedelta(seconds=batch.password_delay_seconds),
            )
        elif resolution is Resolution.RESEND:
            values.update(state=ItemState.DOCUMENT_SENT, password_due_at=now)
        else:
            values.update(state=ItemState.PASSWORD_SENT, sealed_password=None, password_sent_at=now)
        if not _set_state(session, item_id, [ItemState.UNCERTAIN], **values):
            raise InvalidInput(f"Delivery item {item_id} changed a moment ago; look at it again")
        if batch.status is BatchStatus.FINISHED and values["state"] in OPEN_STATES:
            batch.status = BatchStatus.RUNNING
            batch.finished_at = None
            session.add(batch)
        audit.record(
            session,
            actor,
            "delivery.resolved",
            _item_target(item_id),
            {
                "batch": item.batch_id,
                "step": step.value,
                "resolution": resolution.value,
                "reason": reason,
            },
            lea_id=batch.lea_id,
        )
        return values["state"]


# --- help desk: resend and readdress (called by services.helpdesk.families, in its transaction) ----------

RESENDABLE = (
    ItemState.DOCUMENT_SENT,
    ItemState.PASSWORD_SENT,
    ItemState.DONE,
    ItemState.FAILED,
    ItemState.UNCERTAIN,
    ItemState.BOUNCED,
)
"""States a family can be sent its reports again from: something went out, or gave up."""


def request_resend(
    session: Session, actor: Actor, item_id: int, step: Step, reason: str, address: str
) -> ItemState:
    """Send a family its package again because they lost the ``step`` message.

    A sent password is erased from the vault, and the old one must not open anything new, so a
    resend is always a new package under a new password followed by both messages: the item
    goes back to ``pending`` and the worker repackages it. ``address`` is where to send now (a
    corrected email). Runs in the caller's transaction and writes the audit event there.
    """
    item = session.get(DeliveryItem, item_id)
    if item is None:
        raise NotFound(f"There is no delivery item {item_id}")
    batch = _batch(session, item.batch_id)
    if batch.status is BatchStatus.CANCELLED:
        raise InvalidInput(f"Batch {batch.id} was cancelled; start a new batch for this family")
    if batch.kind is BatchKind.NOTICE:
        raise InvalidInput(
            f"Batch {batch.id} is a notice, not a delivery: it carries no report or password"
        )
    if item.state in IN_FLIGHT:
        raise InvalidInput("A message to this family is being sent right now; try again shortly")
    if item.state not in RESENDABLE:
        raise InvalidInput(
            f"Nothing has been sent to this family yet ({item.state.label}); "
            "it goes out with its batch"
        )
    previous = item.state
    now = utcnow()
    moved = _set_state(
        session,
        item_id,
        [previous],
        state=ItemState.PENDING,
        address=address,
        sealed_password=None,
        document_message_id=None,
        document_sent_at=None,
        password_due_at=None,
        password_sent_at=None,
        uncertain_step=None,
        attempts=0,
        next_attempt_at=now,
        claimed_by=None,
        claimed_at=None,
        error=None,
    )
    if not moved:  # a worker or another person changed it since it was read
        raise InvalidInput("This delivery changed a moment ago; look at it again and retry")
    if batch.status is BatchStatus.FINISHED:
        batch.status, batch.finished_at = BatchStatus.RUNNING, None
        session.add(batch)
    audit.record(
        session,
        actor,
        f"delivery.resend_{step.value}",
        _item_target(item_id),
        {"batch": batch.id, "from": previous.value, "reason": reason, "new_password": True},
        lea_id=batch.lea_id,
    )
    return ItemState.PENDING


def readdress(session: Session, guardian_id: int, address: str) -> list[int]:
    """Point a family's items that have not sent their document yet at a corrected address;
    returns the item ids changed (the caller audits the correction)."""
    waiting = [ItemState.PENDING, ItemState.PACKAGED, ItemState.FAILED, ItemState.UNCERTAIN]
    ids = list(
        session.exec(
            select(DeliveryItem.id).where(
                DeliveryItem.guardian_id == guardian_id,
                DeliveryItem.state.in_(waiting),  # type: ignore[attr-defined]
                DeliveryItem.document_sent_at.is_(None),  # type: ignore[union-attr]
            )
        ).all()
    )
    for item_id in ids:
        _set_state(session, item_id, waiting, address=address)  # type: ignore[arg-type]
    return ids  # type: ignore[return-value]


def mark_bounced(session: Session, item_id: int, reason: str, detail: dict[str, Any]) -> bool:
    """A hard bounce of one of the item's messages: the family did not get it. The password still
    owed (if any) is not sent, and the sealed one is dropped. Runs in the caller's transaction
    with the audit event; False when the item is not in a ``BOUNCEABLE`` state."""
    item = session.get(DeliveryItem, item_id)
    if item is None or not _set_state(
        session,
        item_id,
        BOUNCEABLE,
        state=ItemState.BOUNCED,
        sealed_password=None,
        uncertain_step=None,
        error=f"bounced: {reason}"[:500],
    ):
        return False
    batch = _batch(session, item.batch_id)
    audit.record(
        session,
        SYSTEM_ACTOR,
        "delivery.bounced",
        _item_target(item_id),
        {"batch": item.batch_id, **detail},
        lea_id=batch.lea_id,
    )
    _finish_batches(session)
    return True


@dataclass(frozen=True)
class BounceRate:
    """A batch's hard bounces against the families whose first message was accepted."""

    batch_id: int
    lea_id: int
    bounced: int
    handed: int

    @property
    def rate(self) -> float:
        return self.bounced / self.handed if self.handed else 0.0


def bounce_rates(session: Session, minimum: int) -> list[BounceRate]:
    """Batches (not cancelled) with at least ``minimum`` bounced families."""
    bounced = func.sum(case((col(DeliveryItem.state) == ItemState.BOUNCED, 1), else_=0))
    handed = func.sum(case((col(DeliveryItem.document_sent_at).is_not(None), 1), else_=0))
    rows = session.execute(
        select(DeliveryItem.batch_id, DeliveryBatch.lea_id, bounced, handed)
        .join(DeliveryBatch, col(DeliveryBatch.id) == col(DeliveryItem.batch_id))
        .where(col(DeliveryBatch.status) != BatchStatus.CANCELLED)
        .group_by(col(DeliveryItem.batch_id), col(DeliveryBatch.lea_id))
        .having(bounced >= max(minimum, 1))
    ).all()
    return [BounceRate(int(b), int(lea), int(n or 0), int(h or 0)) for b, lea, n, h in rows]


def email_failing(session: Session, guardian_id: int, email: str | None) -> str:
    """Why the family's email address is failing ("" when it is not): the newest delivery to
    that very address that reached an end bounced. A corrected address, or a later delivery to
    the same one that went through, clears it."""
    if not email:
        return ""
    newest = session.exec(
        select(DeliveryItem.state, DeliveryItem.error)
        .where(
            DeliveryItem.guardian_id == guardian_id,
            func.lower(DeliveryItem.address) == email.strip().lower(),
            col(DeliveryItem.state).in_(
                [ItemState.BOUNCED, ItemState.PASSWORD_SENT, ItemState.DONE]
            ),
        )
        .order_by(col(DeliveryItem.id).desc())
        .limit(1)
    ).first()
    if newest is None or newest[0] != ItemState.BOUNCED:
        return ""
    return (newest[1] or "bounced").removeprefix("bounced: ")


def uncertain_items(engine: Engine, batch_id: int, limit: int = 200) -> list[DeliveryItem]:
    with Session(engine) as session:
        return list(
            session.exec(
                select(DeliveryItem)
                .where(DeliveryItem.batch_id == batch_id, DeliveryItem.state == ItemState.UNCERTAIN)
                .order_by(DeliveryItem.id)  # type: ignore[arg-type]
                .limit(limit)
            ).all()
        )


def state_counts(engine: Engine, batch_id: int) -> dict[ItemState, int]:
    with Session(engine) as session:
        rows = session.exec(
            select(DeliveryItem.state, func.count())
            .where(DeliveryItem.batch_id == batch_id)
            .group_by(DeliveryItem.state)
        ).all()
    return {ItemState(state): count for state, count in rows}
