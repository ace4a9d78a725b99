"""Batches of the three channels that send no message: portal (A), print locally (C), paper
from ETS (D).

Option B's secure-email batches keep their own ledger (``services.delivery.ledger``); these three
share one: a ``ChannelBatch`` with one ``ChannelItem`` per student and household, naming the
family (the guardian representing the household, ``services.roster.facts.recipient``) that
receives the student's SSRs: a print run mails each household its own envelope, and the portal
publishes to each; an ETS paper order holds one item per student, since ETS prints one set per
student (``services.delivery.delivered``). A row per student, not per family, because coverage is
per student (every SSR on exactly one channel) and a family's children may sit in different
schools.
Items are inserted with one ``INSERT ... SELECT`` so a 300,000-student batch never passes through
Python; progress is an aggregate over item states. Batch states reuse option B's ``BatchStatus`` so
the batch list reads the same whatever the channel.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Column, Index, Select, UniqueConstraint, case, func, insert, literal, update
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel, col, select

from services.access.permissions import Permission, require, school_scope
from services.access.tables import Operator
from services.audit import log as audit
from services.audit.log import Actor
from services.core.channels import Option
from services.core.columns import enum_column, utcnow
from services.core.db import session_scope
from services.core.errors import InvalidInput, NotFound
from services.core.scope import Source
from services.core.settings import Settings
from services.core.validation import plain_text
from services.delivery.ledger import BatchStatus
from services.plan.advisor import Rates

CHANNELS = (Option.PORTAL, Option.PRINT, Option.PAPER)


class ChannelItemState(enum.StrEnum):
    """Where one student's SSRs stand on a paper or portal channel.

    Printing or receiving paper is not delivery: the family has the SSRs once the envelopes are
    mailed or handed out, on the date the operator confirms (``confirm_delivered``).
    """

    PENDING = "pending"  # in the batch: to print (C), ordered from ETS (D)
    PRINTED = "printed"  # C: printed, the envelopes not yet mailed or handed out
    RECEIVED = "received"  # D: the paper arrived at the LEA, not yet mailed or handed out
    DONE = "done"  # with the family: mailed or handed out (C, D), published in the portal (A)
    NO_ADDRESS = "no_address"  # listed for a mailing but the family has no usable address
    FAILED = "failed"  # a report file could not be read; listed in the manifest
    CANCELLED = "cancelled"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ")


IN_HAND = (ChannelItemState.PRINTED, ChannelItemState.RECEIVED)
"""Paper at the LEA, waiting to be mailed or handed out (``confirm_delivered``)."""
COVERING = (ChannelItemState.PENDING, *IN_HAND, ChannelItemState.DONE)
"""Item states that put a student on the batch's channel (coverage counts them)."""


class ChannelBatch(SQLModel, table=True):
    """A portal hand-over, a print run or an ETS paper order, for a scope of students."""

    __tablename__ = "channel_batch"
    __table_args__ = (Index("ix_channel_batch_lea", "lea_id", "id"),)
    id: int | None = Field(default=None, primary_key=True)
    lea_id: int = Field(foreign_key="lea.id")
    channel: str = Field(max_length=1)  # "A", "C" or "D" (services.plan.advisor.Option)
    name: str = Field(max_length=200)
    source: str = Field(max_length=20)  # lea, school, grade, plan, handoff
    school_id: int | None = Field(default=None, foreign_key="school.id")
    grade: int | None = None
    program: str | None = Field(default=None, max_length=10)
    admin_year: int | None = None
    status: BatchStatus = Field(
        sa_column=Column(enum_column(BatchStatus, "channel_batch_status"), nullable=False)
    )
    families: int = 0
    students: int = 0
    ssrs: int = 0
    pages: int = 0
    cost_cents: int = 0
    detail: str = Field(default="{}")  # JSON: output folder, files, order note; never a secret
    created_by: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None


class ChannelItem(SQLModel, table=True):
    """One student in a channel batch, with the family (guardian) their SSRs go to: one item per
    household of the student (ETS paper: one per student)."""

    __tablename__ = "channel_item"
    __table_args__ = (
        UniqueConstraint(
            "batch_id", "student_id", "guardian_id", name="uq_channel_item_student_guardian"
        ),
        Index("ix_channel_item_batch_guardian", "batch_id", "guardian_id"),
        Index("ix_channel_item_student_state", "student_id", "state"),
    )
    id: int | None = Field(default=None, primary_key=True)
    batch_id: int = Field(foreign_key="channel_batch.id")
    student_id: int = Field(foreign_key="student.id")
    guardian_id: int | None = Field(default=None, foreign_key="guardian.id")
    state: ChannelItemState = Field(
        sa_column=Column(enum_column(ChannelItemState, "channel_item_state"), nullable=False)
    )
    # The day the family was handed its SSRs: mailed or handed out (as the operator confirmed),
    # or published; the statutory deadline is met or missed on this day.
    delivered_on: date | None = None
    updated_at: datetime = Field(default_factory=utcnow)


@dataclass(frozen=True)
class Scope:
    """Which students a batch is for: the LEA, a school, a grade (of a school or the LEA)."""

    school_id: int | None = None
    grade: int | None = None
    program: str | None = None
    admin_year: int | None = None


def scoped(operator: Operator, scope: Scope) -> Scope:
    """A site coordinator's batch is held to their school whatever they chose."""
    school = school_scope(operator)
    if school is None:
        return scope
    if scope.school_id not in (None, school):
        raise InvalidInput("A site coordinator can only run batches for their own school")
    return Scope(school, scope.grade, scope.program, scope.admin_year)


def create(
    session: Session,
    operator: Operator,
    channel: Option,
    *,
    name: str,
    source: str,
    scope: Scope,
    students: Select[Any, Any],
    state: ChannelItemState = ChannelItemState.PENDING,
    detail: dict[str, Any] | None = None,
) -> ChannelBatch:
    """Open a batch and insert one item per row of ``students`` (columns ``sid``, ``gid``).

    Runs in the caller's transaction, with the audit event; refuses an empty batch.
    """
    if channel not in CHANNELS:
        raise InvalidInput(f"Channel {channel.value} batches are secure-email batches")
    name = plain_text(name, "the batch name")
    if not name or len(name) > 200:
        raise InvalidInput("A batch needs a name of 1 to 200 characters")
    batch = ChannelBatch(
        lea_id=operator.lea_id,
        channel=channel.value,
        name=name,
        source=source,
        school_id=scope.school_id,
        grade=scope.grade,
        program=scope.program,
        admin_year=scope.admin_year,
        status=BatchStatus.RUNNING,
        detail=json.dumps(detail or {}, sort_keys=True),
        created_by=operator.username,
    )
    session.add(batch)
    session.flush()
    rows = students.subquery()
    now = utcnow()
    updated = ChannelItem.__table__.c.updated_at  # type: ignore[attr-defined]
    session.execute(
        insert(ChannelItem).from_select(
            ["batch_id", "student_id", "guardian_id", "state", "delivered_on", "updated_at"],
            sa.select(
                literal(batch.id),
                rows.c.sid,
                rows.c.gid,
                literal(state.value),
                # published in the portal (A) is delivered the day it is handed over
                literal(now.date() if state is ChannelItemState.DONE else None, type_=sa.Date),
                literal(now, type_=updated.type),
            ),
        )
    )
    # Counted, not the statement's rowcount: psycopg reports -1 for an INSERT ... SELECT, which
    # let an empty second batch through on PostgreSQL.
    families, students_count = session.execute(
        select(
            func.count(func.distinct(ChannelItem.guardian_id)),
            func.count(func.distinct(ChannelItem.student_id)),
        ).where(ChannelItem.batch_id == batch.id)
    ).one()
    if not students_count:
        raise InvalidInput(
            f"No family in this selection is owed a corrected SSR on channel {channel.value} ({channel.caption})"
            if source == Source.CORRECTIONS.value
            else "No student with an SSR and not yet on a channel is in this selection"
        )
    batch.families, batch.students = int(families), int(students_count)
    if state is ChannelItemState.DONE:
        batch.status, batch.finished_at = BatchStatus.FINISHED, now
    session.add(batch)
    audit.record(
        session,
        Actor.of(operator),
        f"channel_batch.create.{channel.value}",
        target(batch),
        {
            "name": name,
            "source": source,
            "school_id": scope.school_id,
            "grade": scope.grade,
            "families": batch.families,
            "students": batch.students,
        },
        lea_id=operator.lea_id,
    )
    return batch


def target(batch: ChannelBatch) -> str:
    return f"channel_batch:{batch.id}"


def get(engine: Engine, operator: Operator, batch_id: int) -> ChannelBatch:
    """A batch the operator may see, or NotFound."""
    require(operator, Permission.RUN_BATCHES)
    with Session(engine) as session:
        batch = session.exec(
            select(ChannelBatch).where(ChannelBatch.id == batch_id, *_visible(operator))
        ).first()
    if batch is None:
        raise NotFound(f"There is no print, paper or portal batch {batch_id} you can see")
    return batch


def _visible(operator: Operator) -> list[Any]:
    conditions: list[Any] = [ChannelBatch.lea_id == operator.lea_id]
    if (school := school_scope(operator)) is not None:
        conditions.append(ChannelBatch.school_id == school)
    return conditions


def set_items(
    session: Session, batch_id: int, guardian_ids: list[int], state: ChannelItemState
) -> None:
    """Move the items of some families of a batch (one chunk of a print run, say)."""
    session.execute(
        update(ChannelItem)
        .where(
            col(ChannelItem.batch_id) == batch_id,
            col(ChannelItem.guardian_id).in_(guardian_ids),
            col(ChannelItem.state) == ChannelItemState.PENDING,
        )
        .values(state=state, updated_at=utcnow())
    )


def finish(session: Session, batch: ChannelBatch, actor: Actor, **figures: Any) -> None:
    """Close a batch whose work is done, with its final figures, and audit it."""
    batch.status, batch.finished_at = BatchStatus.FINISHED, utcnow()
    session.add(batch)
    audit.record(
        session,
        actor,
        f"channel_batch.finish.{batch.channel}",
        target(batch),
        figures,
        lea_id=batch.lea_id,
    )


def cancel(engine: Engine, operator: Operator, batch_id: int) -> None:
    """Cancel a batch: its students leave the channel (coverage no longer counts them)."""
    batch = get(engine, operator, batch_id)
    if batch.status in (BatchStatus.CANCELLED,):
        raise InvalidInput(f"Batch {batch_id} is already cancelled")
    with session_scope(engine) as session:
        session.execute(
            update(ChannelItem)
            .where(col(ChannelItem.batch_id) == batch_id)
            .values(state=ChannelItemState.CANCELLED, updated_at=utcnow())
        )
        session.execute(
            update(ChannelBatch)
            .where(col(ChannelBatch.id) == batch_id)
            .values(status=BatchStatus.CANCELLED, finished_at=utcnow())
        )
        audit.record(
            session,
            Actor.of(operator),
            f"channel_batch.cancel.{batch.channel}",
            f"channel_batch:{batch_id}",
            lea_id=batch.lea_id,
        )


def confirm_delivered(engine: Engine, operator: Operator, batch_id: int, day: date) -> int:
    """The operator mailed (or handed out at school) the envelopes of a print run or an ETS
    paper order on ``day``: its printed or received students are delivered on that day.

    Returns how many students moved. ``day`` cannot be in the future, nor before the batch.
    """
    batch = get(engine, operator, batch_id)
    if batch.channel not in (Option.PRINT.value, Option.PAPER.value):
        raise InvalidInput(f"Batch {batch_id} is not a print run or an ETS paper order")
    if batch.status is BatchStatus.CANCELLED:
        raise InvalidInput(f"Batch {batch_id} is cancelled")
    if day > utcnow().date() or day < batch.created_at.date():
        raise InvalidInput(
            f"The envelopes of batch {batch_id} were mailed between "
            f"{batch.created_at:%Y-%m-%d} and today; {day:%Y-%m-%d} is not"
        )
    with session_scope(engine) as session:
        moved = session.execute(
            update(ChannelItem)
            .where(col(ChannelItem.batch_id) == batch_id, col(ChannelItem.state).in_(IN_HAND))
            .values(state=ChannelItemState.DONE, delivered_on=day, updated_at=utcnow())
        ).rowcount  # type: ignore[attr-defined]
        if not moved:
            step = "printed" if batch.channel == Option.PRINT.value else "received from ETS"
            raise InvalidInput(f"Nothing in batch {batch_id} is {step} and waiting to be mailed")
        audit.record(
            session,
            Actor.of(operator),
            f"channel_batch.delivered.{batch.channel}",
            target(batch),
            {"day": day.isoformat(), "students": moved},
            lea_id=batch.lea_id,
        )
    return int(moved)


@dataclass(frozen=True)
class ChannelSummary:
    """One line of the batch list for a channel batch; ``total``/``done`` count families."""

    id: int
    channel: str
    name: str
    status: BatchStatus
    total: int
    done: int
    failed: int
    uncertain: int
    created_by: str
    created_at: datetime
    printed: int = 0  # families printed or received, delivered or not yet mailed


def summaries(engine: Engine, operator: Operator, limit: int = 100) -> list[ChannelSummary]:
    """The operator's channel batches, newest first, with families done (an SQL aggregate)."""
    require(operator, Permission.RUN_BATCHES)
    counts = (
        select(
            ChannelItem.batch_id,
            func.count(
                func.distinct(
                    case((col(ChannelItem.state) == ChannelItemState.DONE, ChannelItem.guardian_id))
                )
            ).label("done"),
            func.count(
                func.distinct(
                    case(
                        (
                            col(ChannelItem.state) == ChannelItemState.NO_ADDRESS,
                            ChannelItem.guardian_id,
                        )
                    )
                )
            ).label("failed"),
            func.count(
                func.distinct(
                    case(
                        (
                            col(ChannelItem.state).in_([*IN_HAND, ChannelItemState.DONE]),
                            ChannelItem.guardian_id,
                        )
                    )
                )
            ).label("printed"),
        )
        .group_by(col(ChannelItem.batch_id))
        .subquery()
    )
    with Session(engine) as session:
        rows = session.execute(
            select(ChannelBatch, counts.c.done, counts.c.failed, counts.c.printed)
            .outerjoin(counts, counts.c.batch_id == ChannelBatch.id)
            .where(*_visible(operator))
            .order_by(col(ChannelBatch.id).desc())
            .limit(limit)
        ).all()
    return [
        ChannelSummary(
            b.id,
            b.channel,
            b.name,
            b.status,
            b.families,
            int(done or 0),
            int(failed or 0),
            0,
            b.created_by,
            b.created_at,
            int(printed or 0),
        )
        for b, done, failed, printed in rows
    ]


def progress(engine: Engine, operator: Operator, batch_id: int) -> dict[ChannelItemState, int]:
    """Students per item state of one batch."""
    get(engine, operator, batch_id)
    with Session(engine) as session:
        rows = session.execute(
            select(ChannelItem.state, func.count())
            .where(ChannelItem.batch_id == batch_id)
            .group_by(col(ChannelItem.state))
        ).all()
    return {ChannelItemState(state): int(n) for state, n in rows}


def details(batch: ChannelBatch) -> dict[str, Any]:
    return dict(json.loads(batch.detail or "{}"))


def configured_rates(settings: Settings) -> Rates:
    """Print, postage and ETS rates from the ``[advisor]`` config table (defaults without one)."""
    table = settings.extra.get("advisor")
    if table is None:
        return Rates()
    if not isinstance(table, dict):
        raise InvalidInput("The [advisor] setting must be a table of rates")
    return Rates.from_mapping(table)
