"""The notice ledger: every reminder the scheduler plans or sends, one row per notice and recipient.

A row's unique key is (kind, subject, offset, recipient), so a notice can be written once only. The
row is written (``planned``) before the notice is due, claimed (``sending``, with its Message-ID) in
its own committed transaction *before* the SMTP conversation, marked as handed to the relay
(``claimed_at``, committed) just before its own conversation starts, and marked ``sent`` after it;
a failed send becomes ``failed`` with a next-attempt time (backoff), retried until it goes or
becomes moot. ``cancelled`` rows say why: superseded by a more recent notice after downtime, or moot
after a reset or a delivery. The same rows are the console's notice inbox.

A row found ``sending`` by a scan was left by a process that died between claim and mark (only the
lock holder sends, one scan at a time), and it is sent again with the Message-ID recorded at the
claim. One never handed to the relay cannot have gone out: it is delivered exactly once. One handed
to the relay is *in doubt*: the relay may have accepted it in the instant before the process died
and the mark committed. SMTP offers no way to ask a server whether it has seen a Message-ID, and the
accept and the mark cannot be one transaction, so the choice is between a repeat and a possible
loss; a lost reminder is the worse failure here, so the ledger resends it as the same message (same
Message-ID, which mail systems can use to show it once) and records ``notice.in_doubt`` in the audit
log. At most the one notice in the relay's hands when a scheduler dies can repeat, once per death.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Column, Index, UniqueConstraint, func, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Field, Session, SQLModel, col, select

from services.access.permissions import Permission, require
from services.access.tables import Operator, Role
from services.audit import log as audit
from services.audit.log import Actor
from services.core.columns import enum_column, utcnow
from services.core.db import session_scope


class NoticeKind(enum.StrEnum):
    CREDENTIAL_EXPIRY = "credential_expiry"
    SSR_DEADLINE = "ssr_deadline"
    # at most 17 characters: the column (0007) is as wide as the longest kind it was created with
    CREDENTIAL_UNVERIFIED = "cred_unverified"  # TOMS has not confirmed it for a week
    RESET_NOTE = "cred_reset_note"  # the other program's coordinator is asked to agree
    RESET_EMERGENCY = "cred_emergency"  # both coordinators: a reset without agreement
    AUDIT_ANCHOR = "audit_anchor"  # the audit chain's head, kept outside the database daily
    BOUNCE_RATE = "bounce_rate"  # a batch's emails bounce more than [bounces] alert_rate


RESET_KINDS = (NoticeKind.RESET_NOTE, NoticeKind.RESET_EMERGENCY)


class NoticeState(enum.StrEnum):
    PLANNED = "planned"
    SENDING = "sending"
    SENT = "sent"
    CANCELLED = "cancelled"
    FAILED = "failed"


OPEN_STATES = (NoticeState.PLANNED, NoticeState.SENDING, NoticeState.FAILED)


class Notice(SQLModel, table=True):
    """One reminder to one coordinator: what it is about, when it is due and where it stands."""

    __tablename__ = "notice"
    __table_args__ = (
        UniqueConstraint("kind", "subject", "offset", "recipient", name="uq_notice_key"),
        Index("ix_notice_state_due", "state", "due_on"),
        Index("ix_notice_recipient_due", "recipient", "due_on"),
        Index("ix_notice_lea_due", "lea_id", "due_on"),
    )
    id: int | None = Field(default=None, primary_key=True)
    kind: NoticeKind = Field(
        sa_column=Column(enum_column(NoticeKind, "notice_kind"), nullable=False)
    )
    # credential:<id>, reset:<request id> or ssr:<lea id>:<program>:<receipt date>
    subject: str = Field(max_length=80)
    # days before the event (expiry, deadline); negative after it; working days for SSR deadlines
    offset: int
    recipient: str = Field(max_length=64)  # operator username
    lea_id: int = Field(foreign_key="lea.id")
    due_on: date
    event_on: date  # the expiry day or the delivery deadline
    program: str | None = Field(default=None, max_length=16)  # a reset note: the requester's
    pending: int = 0  # SSRs not yet delivered, for deadline notices
    anchor: str | None = Field(default=None, max_length=100)  # audit anchors: SEQ:HASH
    email: str | None = Field(default=None, max_length=254)  # None: inbox only
    language: str = Field(default="en", max_length=16)
    state: NoticeState = Field(
        default=NoticeState.PLANNED,
        sa_column=Column(enum_column(NoticeState, "notice_state"), nullable=False),
    )
    late: bool = False
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = Field(default=None, max_length=300)
    message_id: str | None = Field(default=None, max_length=200)
    cancel_reason: str | None = Field(default=None, max_length=100)
    planned_at: datetime = Field(default_factory=utcnow)
    claimed_at: datetime | None = None  # handed to the relay (None: claimed, not yet handed)
    sent_at: datetime | None = None
    read_at: datetime | None = None


@dataclass(frozen=True)
class NoticeCounts:
    """Ledger totals per state, for the scheduler status panel and the benchmark."""

    planned: int = 0
    sending: int = 0
    sent: int = 0
    cancelled: int = 0
    failed: int = 0


def counts(engine: Engine, lea_id: int | None = None) -> NoticeCounts:
    query = select(Notice.state, func.count()).group_by(Notice.state)
    if lea_id is not None:
        query = query.where(Notice.lea_id == lea_id)
    with Session(engine) as session:
        found = {NoticeState(state).value: int(n) for state, n in session.exec(query).all()}
    return NoticeCounts(**found)


def inbox(engine: Engine, recipient: str, limit: int = 200) -> list[Notice]:
    """The notices that reached ``recipient`` (sent, or failing by email but shown here), newest first."""
    query = (
        select(Notice)
        .where(Notice.recipient == recipient)
        .where(col(Notice.state).in_([NoticeState.SENT, NoticeState.SENDING, NoticeState.FAILED]))
        .order_by(col(Notice.due_on).desc(), col(Notice.id).desc())
        .limit(limit)
    )
    with Session(engine, expire_on_commit=False) as session:
        return list(session.exec(query).all())


def upcoming(engine: Engine, lea_id: int | None = None, limit: int = 200) -> list[Notice]:
    """Planned notices, soonest first (``lea_id`` None: every LEA); a past due day means the
    scheduler has not run since."""
    query = select(Notice).where(col(Notice.state) == NoticeState.PLANNED)
    if lea_id is not None:
        query = query.where(Notice.lea_id == lea_id)
    query = query.order_by(col(Notice.due_on), col(Notice.id)).limit(limit)
    with Session(engine, expire_on_commit=False) as session:
        return list(session.exec(query).all())


def failures(engine: Engine, lea_id: int | None = None, limit: int = 200) -> list[Notice]:
    """Notices whose email has failed at least once and is still being retried."""
    query = select(Notice).where(col(Notice.state) == NoticeState.FAILED)
    if lea_id is not None:
        query = query.where(Notice.lea_id == lea_id)
    query = query.order_by(col(Notice.next_attempt_at), col(Notice.id)).limit(limit)
    with Session(engine, expire_on_commit=False) as session:
        return list(session.exec(query).all())


def about(notice: Notice) -> str:
    """One line naming what a notice is about, in the console's language (English)."""
    if notice.kind is NoticeKind.CREDENTIAL_EXPIRY:
        if notice.offset > 0:
            return f"Credential expires in {notice.offset} d ({notice.event_on:%b %d})"
        if notice.offset == 0:
            return f"Credential expires today ({notice.event_on:%b %d})"
        return f"Credential EXPIRED {-notice.offset} d ago"
    if notice.kind is NoticeKind.CREDENTIAL_UNVERIFIED:
        return f"Credential recorded {notice.event_on:%b %d} still not verified by TOMS"
    if notice.kind is NoticeKind.RESET_NOTE:
        return f"LEA {notice.program} coordinator asks to reset the credential (key c)"
    if notice.kind is NoticeKind.AUDIT_ANCHOR:
        return f"Audit log anchor {notice.anchor} (keep it: audit verify --anchor)"
    if notice.kind is NoticeKind.RESET_EMERGENCY:
        return f"EMERGENCY credential reset by the LEA {notice.program} coordinator (key c)"
    return f"{notice.pending} {notice.program} SSRs due {notice.event_on:%b %d}"


@dataclass(frozen=True)
class NoticeView:
    """What the Notices screen and ``ssr-console notices`` show one operator."""

    counts: NoticeCounts
    inbox: list[Notice]
    upcoming: list[Notice]
    failures: list[Notice]


def view_for(engine: Engine, operator: Operator, limit: int = 200) -> NoticeView:
    """The operator's own inbox, and the planned and failing notices of their LEA; the technology
    coordinator, who watches the scheduler for the deployment, sees every LEA's."""
    require(operator, Permission.VIEW_CREDENTIAL_STATUS)
    scope = None if operator.role is Role.TECH else operator.lea_id
    return NoticeView(
        counts(engine, scope),
        inbox(engine, operator.username, limit),
        upcoming(engine, scope, limit),
        failures(engine, scope, limit),
    )


def mark_read(engine: Engine, notice_id: int, recipient: str) -> None:
    """The recipient has seen it in the inbox (only their own notices)."""
    with Session(engine) as session:
        notice = session.get(Notice, notice_id)
        if notice is not None and notice.recipient == recipient and notice.read_at is None:
            notice.read_at = utcnow()
            session.add(notice)
            session.commit()


# --- the state machine the scheduler drives ---------------------------------------------------

SCHEDULER = Actor("scheduler", "system")
_OPEN = list(OPEN_STATES)

# The per-notice moves as Core statements built once: a scan sends thousands of notices, each in
# its own transactions, and building ORM updates cost more than the database spent on them.
_NOTICE = Notice.__table__  # type: ignore[attr-defined]
_THIS = _NOTICE.c.id == sa.bindparam("notice_id")
_SENDING = _NOTICE.c.state == NoticeState.SENDING
_CANCEL = (
    update(_NOTICE)
    .where(_THIS, _NOTICE.c.state.in_(_OPEN))
    .values(state=NoticeState.CANCELLED, cancel_reason=sa.bindparam("reason"))
)
_HAND_OFF = update(_NOTICE).where(_THIS, _SENDING).values(claimed_at=sa.bindparam("now"))
_MARK_SENT = (
    update(_NOTICE)
    .where(_THIS, _SENDING)
    .values(
        state=NoticeState.SENT, sent_at=sa.bindparam("now"), last_error=None, next_attempt_at=None
    )
)
_MARK_FAILED = (
    update(_NOTICE)
    .where(_THIS, _SENDING)
    .values(
        state=NoticeState.FAILED,
        last_error=sa.bindparam("error"),
        next_attempt_at=sa.bindparam("retry_at"),
    )
)


_CLAIMABLE = (
    select(Notice)
    .where(col(Notice.id).in_(sa.bindparam("ids", expanding=True)), col(Notice.state).in_(_OPEN))
    .order_by(col(Notice.id))
)
_CLAIMED = {"state": NoticeState.SENDING, "claimed_at": None}
_CLAIM = (
    update(_NOTICE)
    .where(_THIS)
    .values(
        **_CLAIMED,
        attempts=sa.bindparam("attempts"),
        late=sa.bindparam("late"),
        message_id=sa.bindparam("message_id"),
        pending=sa.bindparam("pending"),
    )
)


def plan(session: Session, rows: Sequence[dict[str, Any]]) -> int:
    """Write notices not yet in the ledger; a key already there (in any state) is left alone."""
    if not rows:
        return 0
    insert = sqlite_insert if session.get_bind().dialect.name == "sqlite" else pg_insert
    # RETURNING counts the rows written on both databases (psycopg reports no row count for
    # many rows at once) and lets SQLAlchemy send them as multi-row INSERTs
    statement = (
        insert(_NOTICE)
        .on_conflict_do_nothing(index_elements=["kind", "subject", "offset", "recipient"])
        .returning(_NOTICE.c.id)
    )
    written = 0
    for start in range(0, len(rows), 1000):
        result = session.execute(statement, [_row(r) for r in rows[start : start + 1000]])
        written += len(result.all())
    return written


def _row(values: dict[str, Any]) -> dict[str, Any]:
    return {
        "state": NoticeState.PLANNED,
        "planned_at": utcnow(),
        "late": False,
        "attempts": 0,
        "pending": 0,
    } | values


@dataclass(frozen=True)
class OpenKey:
    """An open notice's identity, as the planner compares it with what it wants."""

    id: int
    kind: NoticeKind
    subject: str
    offset: int
    recipient: str


def open_keys(session: Session) -> list[OpenKey]:
    """Every notice not yet sent or cancelled."""
    columns = [
        col(c) for c in (Notice.id, Notice.kind, Notice.subject, Notice.offset, Notice.recipient)
    ]
    rows = session.execute(sa.select(*columns).where(col(Notice.state).in_(_OPEN))).all()
    return [OpenKey(*row) for row in rows]  # the kind column reads back as a NoticeKind


def closed_keys(session: Session, since: date) -> set[tuple[NoticeKind, str, int, str]]:
    """Keys (kind, subject, offset, recipient) of notices sent or cancelled and due on or after
    ``since``: a scan that plans them again would write nothing, so it leaves them out."""
    rows = session.execute(
        sa.select(_NOTICE.c.kind, _NOTICE.c.subject, _NOTICE.c.offset, _NOTICE.c.recipient).where(
            _NOTICE.c.state.in_([NoticeState.SENT, NoticeState.CANCELLED]),
            _NOTICE.c.due_on >= since,
        )
    ).all()
    return {(kind, subject, offset, recipient) for kind, subject, offset, recipient in rows}


def due(session: Session, today: date, now: datetime) -> list[Notice]:
    """Notices to act on now: planned and due, failed and past their backoff, or left ``sending``."""
    query = select(Notice).where(
        ((col(Notice.state) == NoticeState.PLANNED) & (col(Notice.due_on) <= today))
        | ((col(Notice.state) == NoticeState.FAILED) & (col(Notice.next_attempt_at) <= now))
        | (col(Notice.state) == NoticeState.SENDING)
    )
    return list(session.exec(query.order_by(col(Notice.id))).all())


def cancel(session: Session, ids: Sequence[int], reason: str) -> int:
    """Cancel open notices (superseded, or moot after a reset or a delivery), with an audit event."""
    cancelled = 0
    for notice_id in ids:
        changed = session.execute(
            _CANCEL, {"notice_id": notice_id, "reason": reason[:100]}
        ).rowcount  # type: ignore[attr-defined]
        if changed:
            cancelled += 1
            audit.record(
                session, SCHEDULER, "notice.cancelled", f"notice:{notice_id}", {"reason": reason}
            )
    return cancelled


def in_doubt(notice: Notice) -> bool:
    """Left ``sending`` after it was handed to the relay: it may have been accepted already."""
    return notice.state is NoticeState.SENDING and notice.claimed_at is not None


def claim(
    engine: Engine,
    ids: Sequence[int],
    now: datetime,
    today: date,
    message_id: Callable[[], str],
    pending: Mapping[str, int],
) -> list[Notice]:
    """Mark notices ``sending`` and commit, before any byte of them goes to the SMTP server.

    Claimed together in one transaction (each is handed to the relay and marked sent on its own).
    The Message-ID is fixed at the first claim and kept on every retry, so a message that did leave
    before a crash and is sent again is recognisably the same message; such an in-doubt resend is
    recorded in the audit log. Notices no longer open are skipped.
    """
    with session_scope(engine) as session:
        rows = list(session.scalars(_CLAIMABLE, {"ids": list(ids)}))
        moves = []
        for notice in rows:
            if in_doubt(notice):
                audit.record(
                    session,
                    SCHEDULER,
                    "notice.in_doubt",
                    f"notice:{notice.id}",
                    {
                        "message_id": notice.message_id,
                        "handed_at": notice.claimed_at.isoformat(),  # type: ignore[union-attr]
                        "why": "the scheduler stopped after handing it to the relay; resent",
                    },
                    lea_id=notice.lea_id,
                )
            moves.append(
                {
                    "notice_id": notice.id,
                    "attempts": notice.attempts + 1,
                    "late": notice.due_on < today,
                    "message_id": notice.message_id or message_id(),
                    "pending": pending.get(notice.subject, notice.pending),
                }
            )
        if moves:
            session.execute(_CLAIM, moves)
    # the objects were only read (nothing for the session to flush): they take the values just
    # committed as their loaded state, without the change tracking each assignment costs
    for notice, move in zip(rows, moves, strict=True):
        for key, value in _CLAIMED.items():
            set_committed_value(notice, key, value)
        for key in ("attempts", "late", "message_id", "pending"):
            set_committed_value(notice, key, move[key])
    return rows


def hand_off(
    connection: Connection, notice: Notice, now: datetime, sent: Sequence[Notice] = ()
) -> bool:
    """Commit that this notice goes to the relay now (from here a crash leaves it in doubt);
    False if it is no longer ``sending``. ``sent``: notices already accepted, marked ``sent`` in
    the same commit (one commit per notice instead of two; a crash before it leaves the one the
    relay accepted in doubt, as a crash before its own mark would).

    These per-notice moves run on a Core connection, not an ORM session: they are Core
    statements anyway, and the session's own begin, flush and commit doubled the CPU of each
    transaction (0.10 against 0.19-0.24 ms for five updates on SQLite), once per notice sent.
    The caller keeps one ``connection`` for a batch: each commit still is its own transaction,
    without a checkout from the pool (and PostgreSQL's pre-ping) and a reset on return."""
    with connection.begin():
        _record_sent(connection, sent, now)
        moved = connection.execute(_HAND_OFF, {"notice_id": notice.id, "now": now})
    set_committed_value(notice, "claimed_at", now)
    return bool(moved.rowcount)


def mark_sent(connection: Connection, notices: Sequence[Notice], now: datetime) -> None:
    if notices:
        with connection.begin():
            _record_sent(connection, notices, now)


def _record_sent(connection: Connection, notices: Sequence[Notice], now: datetime) -> None:
    for notice in notices:
        connection.execute(_MARK_SENT, {"notice_id": notice.id, "now": now})
        audit.record(
            connection,
            SCHEDULER,
            "notice.sent",
            f"notice:{notice.id}",
            {
                "kind": notice.kind.value,
                "subject": notice.subject,
                "offset": notice.offset,
                "recipient": notice.recipient,
                "late": notice.late,
                "email": bool(notice.email),
            },
            lea_id=notice.lea_id,
        )


def mark_failed(
    connection: Connection,
    notice: Notice,
    error: str,
    retry_at: datetime,
    now: datetime,
    sent: Sequence[Notice] = (),
) -> None:
    """Record a failed attempt and when the next one is due (the mailer's backoff), and mark
    ``sent`` (as ``hand_off`` does) in the same commit."""
    with connection.begin():
        _record_sent(connection, sent, now)
        connection.execute(
            _MARK_FAILED, {"notice_id": notice.id, "error": error[:300], "retry_at": retry_at}
        )
        audit.record(
            connection,
            SCHEDULER,
            "notice.failed",
            f"notice:{notice.id}",
            {"attempts": notice.attempts, "error": error[:200], "retry_at": retry_at.isoformat()},
            lea_id=notice.lea_id,
        )
