"""The audit log: every state change, in the same transaction, hash-chained.

Each event's hash covers its own fields and the previous event's hash, so editing or deleting a row
breaks the chain from that point. Someone who can write to the database can still cut the end off
(and the head row with it) or rewrite every row and recompute every hash, and the chain alone would
look intact; so the chain is anchored outside the database: ``anchor`` gives the head as
``SEQ:HASH`` (the scheduler mails it to the coordinators daily), and ``verify(anchor=...)`` fails
unless the chain still holds that event with that hash. Writers first update the single ``audit_head`` row, which takes a
write lock on SQLite and a row lock on PostgreSQL: concurrent writers queue instead of forking the
chain. Details name students by SSID only and never contain a secret.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import bindparam, insert, update
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, col, select

from services.access.tables import Operator
from services.audit.tables import AuditEvent, AuditHead
from services.core.columns import utcnow
from services.core.errors import InvalidInput

GENESIS = "0" * 64
SYSTEM = "system"
_ANCHOR = re.compile(r"([1-9][0-9]{0,17}):([0-9a-f]{64})")


@dataclass(frozen=True)
class Actor:
    """Who did something: an operator, or the console itself (CLI, scheduler, worker)."""

    name: str
    role: str
    lea_id: int | None = None

    @classmethod
    def of(cls, operator: Operator) -> Actor:
        return cls(operator.username, operator.role.value, operator.lea_id)


SYSTEM_ACTOR = Actor(SYSTEM, SYSTEM)


def _canonical(detail: dict[str, Any] | None) -> str:
    return json.dumps(
        detail or {}, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )


def event_hash(
    seq: int,
    at: datetime,
    operator: str,
    role: str,
    lea_id: int | None,
    action: str,
    target: str,
    detail: str,
    prev_hash: str,
) -> str:
    """The hash of one event; any field changed changes it."""
    payload = "\x1f".join(
        [str(seq), at.isoformat(), operator, role, str(lea_id), action, target, detail, prev_hash]
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def stored_event_hash(event: AuditEvent) -> str:
    """The hash ``event`` should carry, from the fields it holds (and its ``prev_hash``)."""
    return event_hash(
        event.seq,
        event.at,
        event.operator,
        event.role,
        event.lea_id,
        event.action,
        event.target,
        event.detail,
        event.prev_hash,
    )


# Core statements on the tables, built once: the scheduler and the delivery worker write an event
# per notice or message, and building and ORM-processing these per call cost more than running them.
_HEAD = AuditHead.__table__  # type: ignore[attr-defined]
_NEXT_SEQ = (
    update(_HEAD)
    .where(_HEAD.c.id == 1)
    .values(seq=_HEAD.c.seq + bindparam("count"))
    .returning(_HEAD.c.seq, _HEAD.c.hash)
)
_SET_HEAD_HASH = update(_HEAD).where(_HEAD.c.id == 1).values(hash=bindparam("digest"))
_INSERT_EVENT = insert(AuditEvent.__table__)  # type: ignore[attr-defined]
# A writer that appends event after event (the scheduler marking notices sent, one commit each)
# keeps the head it last wrote to each database (by engine: the pool hands out its connections in
# turn) and moves the head with one statement while it is still that one, instead of reading it
# and writing its hash in two.
_LAST_HEAD: WeakKeyDictionary[Engine, tuple[int, str]] = WeakKeyDictionary()
_ADVANCE_HEAD = (
    update(_HEAD)
    .where(_HEAD.c.id == 1, _HEAD.c.seq == bindparam("seq"), _HEAD.c.hash == bindparam("prev"))
    .values(seq=bindparam("new_seq"), hash=bindparam("digest"))
)

Entry = tuple[str, str, dict[str, Any] | None]
"""One event of ``record_many``: its action, target and detail."""


def record(
    session: Session | Connection,
    actor: Actor,
    action: str,
    target: str = "",
    detail: dict[str, Any] | None = None,
    *,
    lea_id: int | None = None,
) -> None:
    """Append an event to the chain within the caller's transaction (committed with its change)."""
    record_many(session, actor, [(action, target, detail)], lea_id=lea_id)


def record_many(
    session: Session | Connection,
    actor: Actor,
    entries: Sequence[Entry],
    *,
    lea_id: int | None = None,
) -> None:
    """Append several events by one actor, in order, within the caller's transaction (an ORM
    session's or a Core connection's): the head moves once for all of them (one lock, one
    insert), each still chained to the one before."""
    if not entries:
        return
    engine = (session.connection() if isinstance(session, Session) else session).engine
    lea = lea_id if lea_id is not None else actor.lea_id
    known = _LAST_HEAD.get(engine)
    if known is not None:
        rows = _chain(known, utcnow(), actor, lea, entries)
        # the head moves only if it is still the one this process last wrote: then the rows
        # hold exactly what the general path below would compute from it; if not (another
        # writer since, or that transaction rolled back), nothing moved, and it reads the head
        moved = session.execute(
            _ADVANCE_HEAD,
            {
                "seq": known[0],
                "prev": known[1],
                "new_seq": rows[-1]["seq"],
                "digest": rows[-1]["hash"],
            },
        )
        if moved.rowcount:  # type: ignore[attr-defined]
            _append(session, engine, rows)
            return
    # the head row is created by the first migration
    last, prev = session.execute(_NEXT_SEQ, {"count": len(entries)}).one()
    rows = _chain((int(last) - len(entries), prev), utcnow(), actor, lea, entries)
    session.execute(_SET_HEAD_HASH, {"digest": rows[-1]["hash"]})
    _append(session, engine, rows)


def _chain(
    head: tuple[int, str], at: datetime, actor: Actor, lea: int | None, entries: Sequence[Entry]
) -> list[dict[str, Any]]:
    """The event rows of ``entries`` chained on from the head ``(seq, hash)``."""
    seq, prev = head
    rows = []
    for action, target, detail in entries:
        seq += 1
        text = _canonical(detail)
        digest = event_hash(seq, at, actor.name, actor.role, lea, action, target, text, prev)
        rows.append(
            {
                "seq": seq,
                "at": at,
                "operator": actor.name,
                "role": actor.role,
                "lea_id": lea,
                "action": action,
                "target": target,
                "detail": text,
                "prev_hash": prev,
                "hash": digest,
            }
        )
        prev = digest
    return rows


def _append(session: Session | Connection, engine: Engine, rows: list[dict[str, Any]]) -> None:
    session.execute(_INSERT_EVENT, rows)
    _LAST_HEAD[engine] = (rows[-1]["seq"], rows[-1]["hash"])


@dataclass(frozen=True)
class Verification:
    """The outcome of walking the chain: how many events checked and the first break found."""

    events: int
    ok: bool
    problem: str = ""
    seq: int | None = None


@dataclass(frozen=True)
class Anchor:
    """A chain entry kept outside the database: event ``seq`` had hash ``hash``."""

    seq: int
    hash: str

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash}"

    @classmethod
    def parse(cls, text: str) -> Anchor:
        """``SEQ:HASH`` as ``audit anchor`` prints it (and the daily anchor mail carries it)."""
        found = _ANCHOR.fullmatch(text.strip().lower())
        if found is None:
            raise InvalidInput(
                f"{text.strip()[:80]!r} is not an anchor: give it as SEQ:HASH, the event number, "
                "a colon and its 64-character hash, as `ssr-console audit anchor` prints it"
            )
        return cls(int(found[1]), found[2])


def current_anchor(engine: Engine) -> Anchor | None:
    """The chain's head as an anchor to keep elsewhere; None while the log is empty."""
    with Session(engine) as session:
        head = session.get(AuditHead, 1)
    if head is None or head.seq == 0:
        return None
    return Anchor(head.seq, head.hash)


def verify(engine: Engine, batch: int = 5000, anchor: Anchor | None = None) -> Verification:
    """Walk the chain in order, streaming, and report the first event that does not fit; with an
    ``anchor``, also that the chain still holds that event with that hash (a truncated or
    rewritten-and-recomputed chain does not)."""
    prev, expected_seq, count = GENESIS, 1, 0
    with Session(engine) as session:
        head = session.get(AuditHead, 1)
        for event in _stream(session, batch):
            count += 1
            if anchor is not None and event.seq == anchor.seq and event.hash != anchor.hash:
                return Verification(
                    count,
                    False,
                    f"event {event.seq} is not the one anchored (its hash differs): the log was "
                    "rewritten since the anchor was taken",
                    event.seq,
                )
            if event.seq != expected_seq:
                return Verification(count, False, f"event {expected_seq} is missing", expected_seq)
            if event.prev_hash != prev:
                return Verification(
                    count, False, f"event {event.seq} does not follow its predecessor", event.seq
                )
            if stored_event_hash(event) != event.hash:
                return Verification(count, False, f"event {event.seq} was altered", event.seq)
            prev, expected_seq = event.hash, expected_seq + 1
        head_seq, head_hash = (head.seq, head.hash) if head else (0, GENESIS)
        if head_seq != expected_seq - 1 or head_hash != prev:
            return Verification(
                count, False, f"events after {expected_seq - 1} were removed", expected_seq
            )
    if anchor is not None and anchor.seq >= expected_seq:
        return Verification(
            count,
            False,
            f"the log ends at event {expected_seq - 1} but the anchor is event {anchor.seq}: "
            "events were cut off since the anchor was taken",
            anchor.seq,
        )
    return Verification(count, True)


def _stream(session: Session, batch: int) -> Iterator[AuditEvent]:
    last = 0
    while True:
        rows = session.exec(
            select(AuditEvent)
            .where(col(AuditEvent.seq) > last)
            .order_by(col(AuditEvent.seq))
            .limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].seq
        session.expunge_all()


@dataclass(frozen=True)
class Head:
    """The newest event: its number and when it was written (None before the first)."""

    seq: int
    at: datetime | None


def head(engine: Engine) -> Head:
    """The data version: every change that matters writes an event (an import, a batch created or
    moving, a plan saved), so a screen polling this one-row read learns that its figures are
    out of date without reading them again."""
    with Session(engine) as session:
        row = session.exec(
            select(AuditHead.seq, AuditEvent.at)
            .outerjoin(AuditEvent, col(AuditEvent.seq) == col(AuditHead.seq))
            .where(col(AuditHead.id) == 1)
        ).first()
    if row is None:
        return Head(0, None)
    seq, at = row
    if at is not None and at.tzinfo is None:  # SQLite hands back naive UTC
        at = at.replace(tzinfo=UTC)
    return Head(int(seq), at)
