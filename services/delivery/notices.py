"""Telling families first: a notice batch, sent some days before the SSRs, says how they will come.

Seeds 001 and 002 ask LEAs to tell parents about the new process before SSRs go out electronically.
The notice says, in each family's language, which address the report will come from, that its
password comes separately (by email or SMS, as ``[delivery] password_channel`` says), and that
the district will never ask them for it, so a message that does is recognisably not the district's.

A notice batch is a ``DeliveryBatch`` of kind ``notice`` on the delivery ledger: one item per
family with an email address in scope (whether or not its SSRs are imported yet), one message, no
attachment, no password. Its items are created ready to send with ``next_attempt_at`` at the
batch's ``send_at``, so the worker sends nothing before then (and ``worker --once`` stops when the
next notice is further off than its horizon). A notice is never a delivery
(``services.delivery.delivered``): coverage, deadlines and reports count it apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import and_, case, func, insert, literal
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from services.access.permissions import Permission, require, school_scope
from services.access.tables import Operator
from services.audit import log as audit
from services.audit.log import Actor
from services.core.columns import utcnow
from services.core.db import session_scope
from services.core.errors import InvalidInput
from services.core.scope import Source
from services.core.settings import Settings
from services.core.validation import LANGUAGES, plain_text
from services.delivery import messages
from services.delivery.batches import (
    PasswordPolicy,
    Selection,
    family_conditions,
    scoped,
    season,
)
from services.delivery.ledger import BatchKind, BatchStatus, DeliveryBatch, DeliveryItem, ItemState
from services.delivery.mailer import MailConfig
from services.roster.facts import HAS_EMAIL
from services.roster.tables import LEA, Guardian, Student, StudentGuardian

MORNING = time(8, 0)
"""A send date without a time means this time of day where the LEA is."""


def lea_zone(settings: Settings) -> ZoneInfo:
    """The LEA's time zone, ``[scheduler] timezone`` (the reminders' too)."""
    section = settings.extra.get("scheduler") or {}
    name = str(section.get("timezone", "America/Los_Angeles")) if isinstance(section, dict) else ""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"[scheduler] timezone {name!r} is unknown; use a name like America/Los_Angeles"
        ) from None


def parse_send_at(text: str, settings: Settings, now: datetime | None = None) -> datetime:
    """When a notice batch may start, as an operator types it: ``2026-12-03`` (8:00 that day
    where the LEA is), ``2026-12-03 16:30``, or blank for now. Returned in UTC; never past."""
    now = now or utcnow()
    typed = text.strip()
    if not typed:
        return now
    zone = lea_zone(settings)
    try:
        moment = (
            datetime.combine(datetime.strptime(typed, "%Y-%m-%d").date(), MORNING)
            if len(typed) == 10
            else datetime.strptime(typed, "%Y-%m-%d %H:%M")
        )
    except ValueError:
        raise InvalidInput(
            f"{typed!r} is not a send date: type one like 2026-12-03 or 2026-12-03 16:30"
        ) from None
    at = moment.replace(tzinfo=zone).astimezone(UTC)
    if at < now.replace(second=0, microsecond=0):
        raise InvalidInput(f"{typed} has passed: choose a later send date, or leave it blank")
    return at


def _recipients(engine: Engine, operator: Operator, selection: Selection) -> Any:
    """One row per family in scope: guardian id, school, language, email, phone. Students are
    chosen by school and grade only: a notice goes out before the SSRs may have arrived."""
    if selection.source is Source.CORRECTIONS:  # its families are found by their SSRs
        raise InvalidInput(
            "A notice goes out before the SSRs: corrections is a scope for SSR batches"
        )
    lea_id = operator.lea_id  # the school: family_conditions holds it to the operator's
    conditions = [
        col(Student.lea_id) == lea_id,
        col(Student.withdrawn_at).is_(None),  # as services.core.scope: a withdrawn student's family
        *family_conditions(engine, operator, selection),  # ... and a barred guardian are not told
    ]
    if selection.grade is not None:
        conditions.append(col(Student.grade) == selection.grade)
    return (
        sa_select(
            col(Guardian.id).label("guardian_id"),
            func.min(Student.school_id).label("school_id"),
            col(Guardian.preferred_language).label("language"),
            col(Guardian.email).label("email"),
            col(Guardian.phone).label("phone"),
        )
        .select_from(Guardian)
        .join(StudentGuardian, col(StudentGuardian.guardian_id) == col(Guardian.id))
        .join(Student, col(Student.id) == col(StudentGuardian.student_id))
        .where(*conditions)
        .group_by(
            col(Guardian.id),
            col(Guardian.preferred_language),
            col(Guardian.email),
            col(Guardian.phone),
        )
    )


@dataclass(frozen=True)
class NoticePreview:
    """What a notice batch would send, and when, before it is created."""

    families: int
    without_email: int
    by_language: dict[str, int]
    sender: str
    password_channel: str
    send_at: datetime
    samples: list[messages.Rendered]


def preview(
    engine: Engine, settings: Settings, operator: Operator, selection: Selection, send_at: datetime
) -> NoticePreview:
    """Families reached and not reached, by language, and the notice rendered in every language."""
    require(operator, Permission.RUN_BATCHES, lea_id=operator.lea_id)
    selection = scoped(engine, operator, selection)
    families = _recipients(engine, operator, selection).subquery()
    has_email = and_(families.c.email.is_not(None), func.trim(families.c.email) != "")
    sender = MailConfig.from_settings(settings).from_address
    channel = PasswordPolicy.from_settings(settings).channel
    with Session(engine) as session:
        rows = session.execute(
            select(families.c.language, has_email, func.count()).group_by(
                families.c.language, has_email
            )
        ).all()
        lea = session.get(LEA, operator.lea_id)
        lea_name = lea.name if lea else ""
        program = selection.program.value if selection.program else None
        sample_season = season(session, operator.lea_id, program, selection.admin_year)
    by_language: dict[str, int] = {}
    without = 0
    for language, reachable, count in rows:
        if not reachable:
            without += count
            continue
        code = messages.message_language(language)
        by_language[code] = by_language.get(code, 0) + count
    samples = [
        messages.notice_message(
            code,
            guardian_name="Maria Garcia",
            lea_name=lea_name,
            sender=sender,
            password_channel=channel,
            season=sample_season,
        )
        for code in LANGUAGES
    ]
    return NoticePreview(
        sum(by_language.values()), without, by_language, sender, channel, send_at, samples
    )


def create(
    engine: Engine,
    settings: Settings,
    operator: Operator,
    selection: Selection,
    *,
    name: str,
    send_at: datetime,
) -> int:
    """A notice batch: one item per family with an email address in scope, sent at ``send_at``
    (the worker holds each item until then). Returns the batch id."""
    require(operator, Permission.RUN_BATCHES, lea_id=operator.lea_id)
    selection = scoped(engine, operator, selection)
    name = plain_text(name, "the batch name")
    if not name or len(name) > 200:
        raise InvalidInput("A batch needs a name of 1 to 200 characters")
    channel = PasswordPolicy.from_settings(settings).channel
    families = _recipients(engine, operator, selection).where(HAS_EMAIL).subquery()
    now = utcnow()
    with session_scope(engine) as session:
        batch = DeliveryBatch(
            lea_id=operator.lea_id,
            name=name,
            source=selection.source.value,
            school_id=selection.school_id,
            grade=selection.grade,
            status=BatchStatus.RUNNING,
            password_channel=channel,
            created_by=operator.username,
            kind=BatchKind.NOTICE,
            send_at=send_at,
        )
        session.add(batch)
        session.flush()
        columns = DeliveryItem.__table__.c  # type: ignore[attr-defined]
        source = sa_select(
            literal(batch.id),
            families.c.guardian_id,
            families.c.school_id,
            families.c.language,
            func.trim(families.c.email),
            families.c.phone,
            literal(ItemState.PACKAGED.value),  # nothing to package: ready to send at send_at
            literal(0),
            literal(send_at, type_=columns.next_attempt_at.type),
            literal(now, type_=columns.updated_at.type),
        ).order_by(families.c.school_id, families.c.guardian_id)
        session.execute(
            insert(DeliveryItem).from_select(
                [
                    "batch_id",
                    "guardian_id",
                    "school_id",
                    "language",
                    "address",
                    "phone",
                    "state",
                    "attempts",
                    "next_attempt_at",
                    "updated_at",
                ],
                source,
            )
        )
        inserted = session.execute(
            select(func.count()).where(col(DeliveryItem.batch_id) == batch.id)
        ).scalar_one()
        if not inserted:
            raise InvalidInput("No family in this selection has an email address to send to")
        batch.total_items = inserted
        session.add(batch)
        audit.record(
            session,
            Actor.of(operator),
            "notice.create",
            f"delivery_batch:{batch.id}",
            {
                "name": name,
                "source": selection.source.value,
                "school_id": selection.school_id,
                "grade": selection.grade,
                "group_id": selection.group_id,
                "families": inserted,
                "send_at": send_at.isoformat(timespec="minutes"),
            },
            lea_id=operator.lea_id,
        )
        return batch.id  # type: ignore[return-value]


@dataclass(frozen=True)
class NoticeFigures:
    """What the notice batches of a scope have done: families told, still to be told, failed."""

    batches: int
    families: int
    sent: int
    scheduled: int
    failed: int
    next_send_at: datetime | None


def figures(engine: Engine, operator: Operator) -> NoticeFigures:
    """Families in notice batches not cancelled, in the operator's scope (a site coordinator:
    their school's families), worked out from the operator, never from the caller."""
    require(operator, Permission.VIEW_REPORTS)
    school_id = school_scope(operator)
    state = col(DeliveryItem.state)
    conditions: list[Any] = [
        col(DeliveryBatch.lea_id) == operator.lea_id,
        col(DeliveryBatch.kind) == BatchKind.NOTICE,
        col(DeliveryBatch.status) != BatchStatus.CANCELLED,
        col(DeliveryItem.batch_id) == col(DeliveryBatch.id),
        state != ItemState.CANCELLED,
    ]
    if school_id is not None:
        conditions.append(col(DeliveryItem.school_id) == school_id)
    waiting = state.in_([ItemState.PACKAGED, ItemState.SENDING_DOCUMENT])
    with Session(engine) as session:
        row = session.execute(
            sa_select(
                func.count(func.distinct(DeliveryBatch.id)),
                func.count(),
                func.sum(case((state == ItemState.DONE, 1), else_=0)),
                func.sum(case((waiting, 1), else_=0)),
                func.sum(case((state.in_([ItemState.FAILED, ItemState.UNCERTAIN]), 1), else_=0)),
                func.min(case((waiting, DeliveryItem.next_attempt_at))),
            ).where(*conditions)
        ).one()
    batches, families, sent, scheduled, failed, next_at = row
    if next_at is not None and next_at.tzinfo is None:  # SQLite hands back naive UTC
        next_at = next_at.replace(tzinfo=UTC)
    return NoticeFigures(
        int(batches), int(families), int(sent or 0), int(scheduled or 0), int(failed or 0), next_at
    )


def figures_text(figures: NoticeFigures, zone: ZoneInfo) -> str:
    """One line for the reports: families told, waiting (and when the next goes), failed."""
    if not figures.batches:
        return "Notices to families: none sent or scheduled (Batches, f)"
    text = f"Notices to families: {figures.sent:,} of {figures.families:,} told"
    if figures.scheduled:
        text += f" · {figures.scheduled:,} waiting"
        if figures.next_send_at is not None:
            text += f" (next {figures.next_send_at.astimezone(zone):%Y-%m-%d %H:%M})"
    if figures.failed:
        text += f" · {figures.failed:,} failed or uncertain"
    return text
