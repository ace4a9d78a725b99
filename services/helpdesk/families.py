"""The help desk: find a family fast, read what happened to its SSRs, and put it right.

"My daughter never got her scores": the caller gives an SSID, a name, an email address or a phone
number. ``search`` answers from indexes only (prefix ranges on SSID, name keys, email and phone),
so it stays instant on 300,000 students. ``family`` assembles the timeline from every service's
tables: SSRs received, the channel (plan or a person's choice), delivery batches and each message
the mail server accepted or refused, resends, print batch with file and pages, paper order, portal.
It shows contact details but never a score or a password.

The actions (resend the document or the password, move the family to another channel; correcting
an email address is ``services.helpdesk.email_changes``) each need a reason and write their audit event in the same transaction as the
change. A site coordinator reaches only families with a child at their school.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import or_
from sqlalchemy import select as select_columns  # more columns than sqlmodel.select types
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from services.access.permissions import Permission, require, school_scope
from services.access.tables import Operator
from services.audit import log as audit
from services.audit.log import Actor
from services.audit.tables import AuditEvent
from services.channels.batches import ChannelBatch, ChannelItem, details
from services.core.channels import Option
from services.core.db import session_scope
from services.core.errors import InvalidInput, NotFound
from services.core.paging import prefix
from services.core.scope import latest_report
from services.core.validation import ssid as valid_ssid
from services.delivery import ledger
from services.delivery.delivered import correction_owed
from services.delivery.ledger import BatchKind, DeliveryBatch, DeliveryItem, ItemState, Step
from services.helpdesk import email_changes
from services.helpdesk.guards import guardian_in_scope, reason_text
from services.intake.records import ReportReceipt
from services.intake.score_reports import ScoreReport
from services.plan import decisions as plan
from services.plan.family_channel import FamilyChannel
from services.roster.browse import name_key
from services.roster.tables import Guardian, School, Student, StudentGuardian

SEARCH_LIMIT = 50
_KIND_WORDS = {
    BatchKind.DELIVERY: "Secure email batch",
    BatchKind.NOTICE: "Notice batch (how the SSRs will come)",
}
_DIGITS = re.compile(r"\D")
_PHONE_LIKE = re.compile(r"[\d\s().+-]+")
_BOUNCE = re.compile(r"^(document|password): 5\d\d\b")  # a 5xx refusal (services.delivery.mailer)


# --- search --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hit:
    """One student and one of their guardians, as a line of the search results."""

    student_id: int
    ssid: str
    student: str
    grade: int
    school: str
    guardian_id: int | None
    guardian: str
    contact: str


def search_columns() -> tuple[str, ...]:
    return ("SSID", "Student", "Gr", "Guardian", "Email or phone")


def phone_prefix(digits: str) -> str:
    """Typed digits in the roster's phone format, "(951) 555-0114", as far as they go."""
    digits = digits[1:] if len(digits) == 11 and digits.startswith("1") else digits
    text = "(" + digits[:3]
    if len(digits) > 3:
        text += ") " + digits[3:6]
    if len(digits) > 6:
        text += "-" + digits[6:10]
    return text


def search(engine: Engine, operator: Operator, text: str, limit: int = SEARCH_LIMIT) -> list[Hit]:
    """Families matching the start of an SSID, a student or guardian name, an email or a phone.

    Digits alone are an SSID or a phone number; ``@`` makes it an email; anything else is a name
    ("last first", accents and case ignored) of a student or a guardian, or (one word) the start
    of an email address.
    """
    require(operator, Permission.VIEW_CONTACTS)
    text = text.strip()
    if not text:
        return []
    lea = operator.lea_id
    # "lea_id + 0": scoped to the LEA without letting SQLite pick the LEA index over the range.
    student_scope = [Student.lea_id + 0 == lea]
    if (school := school_scope(operator)) is not None:
        student_scope.append(Student.school_id + 0 == school)
    guardian_scope = [Guardian.lea_id + 0 == lea]
    # (column, typed prefix) pairs; each is one query in the column's index order, so LIMIT
    # stops the range scan early even when the prefix matches most of the LEA.
    students: list[tuple[Any, str]] = []
    guardians: list[tuple[Any, str]] = []
    if "@" in text:
        guardians.append((Guardian.email, text.lower()))
    elif _PHONE_LIKE.fullmatch(text):
        digits = _DIGITS.sub("", text)
        if text.isdigit():
            students.append((Student.ssid, digits))
        if len(digits) >= 3:
            guardians += [(Guardian.phone, p) for p in dict.fromkeys((phone_prefix(digits), text))]
    else:
        key = name_key(text)
        students.append((Student.name_key, key))
        guardians.append((Guardian.name_key, key))
        if not any(c.isspace() for c in text):  # "jeffrey.mitch" may be the start of an email
            guardians.append((Guardian.email, text.lower()))
    hits: dict[tuple[int, int | None], Hit] = {}
    with Session(engine) as session:
        for column, typed in students:
            ids = session.exec(
                select(Student.id)
                .where(prefix(column, typed), *student_scope)
                .order_by(column)
                .limit(limit)
            ).all()
            for hit in _with_primary(session, list(ids)):  # type: ignore[arg-type]
                hits.setdefault((hit.student_id, hit.guardian_id), hit)
        for column, typed in guardians:
            query = select(Guardian.id).where(prefix(column, typed), *guardian_scope)
            if school is not None:  # from the school's few students, not the LEA's guardians
                query = (
                    select(Guardian.id)
                    .distinct()
                    .join(StudentGuardian, col(StudentGuardian.guardian_id) == col(Guardian.id))
                    .join(Student, col(Student.id) == col(StudentGuardian.student_id))
                    .where(col(Student.school_id) == school, prefix(column, typed))
                )
            gids = session.exec(query.order_by(column).limit(limit)).all()
            for hit in _children(session, list(gids), student_scope):  # type: ignore[arg-type]
                hits.setdefault((hit.student_id, hit.guardian_id), hit)
    return sorted(hits.values(), key=lambda h: (h.student.lower(), h.ssid))[:limit]


def _hit_columns() -> tuple[Any, ...]:
    return (
        Student.id,
        Student.ssid,
        Student.last_name,
        Student.first_name,
        Student.grade,
        School.name,
        Guardian.id,
        Guardian.last_name,
        Guardian.first_name,
        Guardian.email,
        Guardian.phone,
    )


def _hit(row: Any) -> Hit:
    sid, ssid, last, first, grade, school, gid, glast, gfirst, email, phone = row
    guardian = f"{glast}, {gfirst}" if gid is not None else "(no guardian on file)"
    return Hit(sid, ssid, f"{last}, {first}", grade, school, gid, guardian, email or phone or "")


def _with_primary(session: Session, student_ids: list[int]) -> list[Hit]:
    """Each student with their primary guardian (or none)."""
    if not student_ids:
        return []
    rows = session.execute(
        select_columns(*_hit_columns())
        .join(School, col(School.id) == col(Student.school_id))
        .outerjoin(
            StudentGuardian,
            (col(StudentGuardian.student_id) == col(Student.id)) & col(StudentGuardian.is_primary),
        )
        .outerjoin(Guardian, col(Guardian.id) == col(StudentGuardian.guardian_id))
        .where(col(Student.id).in_(student_ids))
    ).all()
    return [_hit(row) for row in rows]


def _children(session: Session, guardian_ids: list[int], scope: list[Any]) -> list[Hit]:
    """Each guardian with each of their children (in the operator's scope)."""
    if not guardian_ids:
        return []
    rows = session.execute(
        select_columns(*_hit_columns())
        .select_from(StudentGuardian)
        .join(Student, col(Student.id) == col(StudentGuardian.student_id))
        .join(School, col(School.id) == col(Student.school_id))
        .join(Guardian, col(Guardian.id) == col(StudentGuardian.guardian_id))
        .where(col(StudentGuardian.guardian_id).in_(guardian_ids), *scope)
    ).all()
    return [_hit(row) for row in rows]


# --- the family's timeline -------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """One line of the timeline; ``at`` is None for facts without a time (the current state)."""

    at: datetime | None
    text: str


@dataclass(frozen=True)
class Contact:
    guardian_id: int
    name: str
    relationship: str
    primary: bool
    email: str
    phone: str
    language: str
    email_failing: str = ""  # why the address bounced, until it is corrected


@dataclass(frozen=True)
class Delivery:
    """A secure-email delivery of the family, which the help desk may resend."""

    item_id: int
    batch_id: int
    batch: str
    state: str
    address: str
    in_doubt: bool = False  # uncertain: the relay never answered (``services.delivery.in_doubt``)


@dataclass(frozen=True)
class Family:
    """What the help desk sees of one student: who, how to reach them, what happened."""

    student_id: int
    ssid: str
    student: str
    grade: int
    school: str
    contacts: tuple[Contact, ...]
    channel: str
    deliveries: tuple[Delivery, ...]
    events: tuple[Event, ...]
    waiting_change: str = ""  # a help desk email change waiting for a coordinator, in words


def _student(session: Session, operator: Operator, student_id: int) -> Student:
    student = session.get(Student, student_id)
    own = school_scope(operator)
    if (
        student is None
        or student.lea_id != operator.lea_id
        or (own is not None and student.school_id != own)
    ):
        raise NotFound("That student is not in your scope")
    return student


def family(engine: Engine, operator: Operator, student_id: int) -> Family:
    """The family of one student and everything that happened to the student's SSRs."""
    require(operator, Permission.VIEW_CONTACTS)
    with Session(engine) as session:
        student = _student(session, operator, student_id)
        school = session.get(School, student.school_id)
        links = session.execute(
            select(Guardian, StudentGuardian.relationship, StudentGuardian.is_primary)
            .join(StudentGuardian, col(StudentGuardian.guardian_id) == col(Guardian.id))
            .where(col(StudentGuardian.student_id) == student_id)
            .order_by(col(StudentGuardian.is_primary).desc(), col(Guardian.id))
        ).all()
        contacts = tuple(
            Contact(
                g.id,
                f"{g.first_name} {g.last_name}",
                relationship,
                primary,
                g.email or "",
                g.phone or "",
                g.preferred_language,
                ledger.email_failing(session, g.id, g.email),  # type: ignore[arg-type]
            )
            for g, relationship, primary in links
        )
        guardian_ids = [c.guardian_id for c in contacts]
        waiting = email_changes.waiting_for(session, guardian_ids[0]) if guardian_ids else None
        events = _report_events(session, student_id) + _corrections(session, student)
        channel, channel_events = _channel(session, links[0][0] if links else None, student)
        events += channel_events
        deliveries, delivery_events = _deliveries(session, operator, guardian_ids)
        events += delivery_events
        events += _channel_items(session, student_id)
        events += _audit(
            session, operator, [f"guardian:{gid}" for gid in guardian_ids], exclude=("family.",)
        )
    return Family(
        student_id,
        student.ssid,
        f"{student.last_name}, {student.first_name}",
        student.grade,
        school.name if school else "",
        contacts,
        channel,
        tuple(deliveries),
        tuple(sorted(events, key=_order)),
        (
            f"New email {waiting.new_email} asked by {waiting.requested_by} on "
            f"{waiting.requested_at:%Y-%m-%d}: waits for a coordinator (resends held)"
            if waiting
            else ""
        ),
    )


def family_by_ssid(engine: Engine, operator: Operator, ssid: str) -> Family:
    """``family`` of the student with this SSID (what the caller reads off the letter), looked
    up in the operator's own scope: their LEA, a site coordinator's school."""
    require(operator, Permission.VIEW_CONTACTS)
    typed = valid_ssid(ssid)
    with Session(engine) as session:
        found = session.exec(
            select(Student.id).where(Student.ssid == typed, Student.lea_id == operator.lea_id)
        ).first()
    if found is None:
        raise NotFound(f"No student with SSID {typed} is in your scope")
    return family(engine, operator, found)


def _order(event: Event) -> tuple[int, datetime | str]:
    return (0, event.at) if event.at is not None else (1, "")


def _report_events(session: Session, student_id: int) -> list[Event]:
    rows = session.execute(
        select_columns(
            col(ScoreReport.received_at),
            col(ScoreReport.program),
            col(ScoreReport.admin_year),
            col(ScoreReport.test),
            col(ScoreReport.language),
            col(ScoreReport.version),
            col(ReportReceipt.run_id),
        )
        .outerjoin(ReportReceipt, col(ReportReceipt.score_report_id) == col(ScoreReport.id))
        .where(col(ScoreReport.student_id) == student_id)
        .order_by(col(ScoreReport.received_at))
    ).all()
    events = []
    for at, program, year, test, language, version, run in rows:
        again = f", version {version}" if version > 1 else ""
        source = f" (import {run})" if run else ""
        events.append(
            Event(at, f"SSR received: {program} {year} {test} in {language}{again}{source}")
        )
    if not rows:
        events.append(Event(None, "No SSR received for this student yet"))
    return events


def _corrections(session: Session, student: Student) -> list[Event]:
    """The student's SSRs that ETS corrected after the family had them, not yet sent again."""
    rows = session.execute(
        select_columns(
            col(ScoreReport.program),
            col(ScoreReport.admin_year),
            col(ScoreReport.test),
            col(ScoreReport.language),
            col(ScoreReport.version),
        )
        .join(Student, col(Student.id) == col(ScoreReport.student_id))
        .where(
            col(ScoreReport.student_id) == student.id,
            latest_report(),
            correction_owed(student.lea_id),
        )
        .order_by(col(ScoreReport.program), col(ScoreReport.test))
    ).all()
    return [
        Event(
            None,
            f"Corrected, not yet sent: {program} {year} {test} in {language}, version {version} "
            "replaces the report the family has (a batch with scope corrections sends it)",
        )
        for program, year, test, language, version in rows
    ]


def _channel(
    session: Session, guardian: Guardian | None, student: Student
) -> tuple[str, list[Event]]:
    if guardian is None:
        return "none (no guardian on file)", []
    events = []
    in_force = plan.current(session.get_bind(), student.lea_id, student.school_id)  # type: ignore[arg-type]
    if in_force is not None:
        planned = in_force.channel_for(guardian)
        on = f"{planned.value} {planned.caption}" if planned else "no channel"
        events.append(
            Event(
                in_force.decided_at,
                f"Plan {in_force.label} saved by {in_force.decided_by}: this family on {on}",
            )
        )
    moves = session.exec(
        select(FamilyChannel)
        .where(col(FamilyChannel.guardian_id) == guardian.id)
        .order_by(col(FamilyChannel.id))
    ).all()
    for move in moves:
        option = Option(move.channel)
        events.append(
            Event(
                move.set_at,
                f"Moved to {option.value} {option.caption} by {move.set_by}: {move.reason}",
            )
        )
    current = plan.channel_of(session, guardian, student.school_id)
    label = f"{current.value} {current.caption}" if current else "none (no plan reaches it)"
    return label + (" (set by a person)" if moves else ""), events


_ACTION_TEXT = {
    "delivery.packaged": "Reports encrypted into one PDF and checked with its password",
    "delivery.repackaged": "Package to be made again under a new password",
    "delivery.retry": "Mail server asked to try again later",
    "delivery.document_sent": "Document email accepted by the mail server",
    "delivery.password_sent": "Password message accepted by the mail server",
    "notice.sent": "Notice of how the SSRs will come accepted by the mail server",
    "delivery.failed": "Delivery failed",
    "delivery.bounced": "Bounced: the family's mail server gave up on the message",
    "delivery.soft_bounce": "Delayed: the family's mail server is still trying",
    "delivery.uncertain": "Delivery uncertain (the connection broke while sending)",
    "delivery.resolved": "Uncertain delivery decided",
    "delivery.resend_document": "Resend of the document requested (new password)",
    "delivery.resend_password": "Resend of the password requested (new package, new password)",
    "guardian.email_change_requested": "Email address change asked (waits for a coordinator)",
    "guardian.email_change_approved": "Email address change approved",
    "guardian.email_change_rejected": "Email address change rejected",
}


def _deliveries(
    session: Session, operator: Operator, guardian_ids: list[int]
) -> tuple[list[Delivery], list[Event]]:
    if not guardian_ids:
        return [], []
    rows = session.execute(
        select(DeliveryItem, DeliveryBatch)
        .join(DeliveryBatch, col(DeliveryBatch.id) == col(DeliveryItem.batch_id))
        .where(col(DeliveryItem.guardian_id).in_(guardian_ids))
        .order_by(col(DeliveryItem.id))
    ).all()
    deliveries, events = [], []
    for item, batch in rows:
        assert item.id is not None and batch.id is not None
        deliveries.append(
            Delivery(
                item.id,
                batch.id,
                batch.name,
                item.state.label,
                item.address,
                item.state is ItemState.UNCERTAIN,
            )
        )
        events.append(
            Event(
                batch.created_at,
                f"{_KIND_WORDS[batch.kind]} {batch.id} “{batch.name}”: family added",
            )
        )
        state = f"Now: {item.state.label} (batch {batch.id}, to {item.address})"
        if item.error:
            state += f"; {item.error}"
        events.append(Event(None, state))
    events += _audit(
        session, operator, [f"delivery_item:{d.item_id}" for d in deliveries], exclude=()
    )
    return deliveries, events


def _audit(
    session: Session, operator: Operator, targets: list[str], exclude: tuple[str, ...]
) -> list[Event]:
    if not targets:
        return []
    rows = session.exec(
        select(AuditEvent)
        .where(
            col(AuditEvent.target).in_(targets),
            or_(col(AuditEvent.lea_id) == operator.lea_id, col(AuditEvent.lea_id).is_(None)),
        )
        .order_by(col(AuditEvent.seq))
    ).all()
    events = []
    for row in rows:
        if row.action.startswith(exclude):
            continue
        detail = json.loads(row.detail or "{}")
        text = _ACTION_TEXT.get(row.action, row.action.replace("_", " "))
        if row.action == "delivery.failed" and _BOUNCE.match(str(detail.get("reason", ""))):
            text = "Bounced: the mail server refused the message"
        extra = [
            str(detail[k])
            for k in (
                "message_id",
                "status",
                "reason",
                "step",
                "resolution",
                "was",
                "now",
                "asked_by",
            )
            if detail.get(k)
        ]
        if detail.get("address"):  # a bounce: the address it was about, the server that said so
            extra.append(f"to {detail['address']}, reported by {detail.get('reporter') or '?'}")
        who = "" if row.operator == audit.SYSTEM else f" by {row.operator}"
        events.append(Event(row.at, f"{text}{who}" + (f": {'; '.join(extra)}" if extra else "")))
    return events


def _channel_items(session: Session, student_id: int) -> list[Event]:
    rows = session.execute(
        select(ChannelItem, ChannelBatch)
        .join(ChannelBatch, col(ChannelBatch.id) == col(ChannelItem.batch_id))
        .where(col(ChannelItem.student_id) == student_id)
        .order_by(col(ChannelItem.id))
    ).all()
    events = []
    for item, batch in rows:
        channel = Option(batch.channel)
        name = f"{channel.caption} batch {batch.id} “{batch.name}”"
        events.append(Event(batch.created_at, f"{name}: student added"))
        if channel is Option.PRINT:
            where = _print_place(batch, item.guardian_id)
            events.append(Event(item.updated_at, f"{name}: {item.state.label}{where}"))
        elif channel is Option.PAPER:
            received = "paper received from ETS" if item.state.value == "done" else "ordered"
            events.append(Event(item.updated_at, f"{name}: {received} ({item.state.label})"))
        else:
            available = "available in the parent portal" if item.state.value == "done" else ""
            events.append(Event(item.updated_at, f"{name}: {available or item.state.label}"))
    return events


def _print_place(batch: ChannelBatch, guardian_id: int | None) -> str:
    """ ", file F pages a-b" from the print run's manifest, when it has been printed."""
    detail = details(batch)
    if not detail.get("folder") or guardian_id is None:
        return ""
    # services.channels.print_batch.run writes the manifest beside the files it lists
    path = Path(detail["folder"]) / detail.get("manifest", f"print-{batch.id}-manifest.csv")
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                if row.get("family") == str(guardian_id) and row.get("file"):
                    return f", file {row['file']} pages {row['first_page']}–{row['last_page']}"
    except OSError:
        return ", manifest not readable"
    return ""


# --- actions ------------------------------------------------------------------------------------


def resend(engine: Engine, operator: Operator, item_id: int, step: Step, reason: str) -> None:
    """Send a family its SSRs again under a new password, because the ``step`` message was lost.

    Goes to the family's current email address (so correct it first if it was wrong).
    """
    require(operator, Permission.RESEND)
    why = reason_text(reason)
    with session_scope(engine) as session:
        item = session.get(DeliveryItem, item_id)
        if item is None:
            raise NotFound(f"There is no delivery {item_id}")
        guardian = guardian_in_scope(session, operator, item.guardian_id)
        if held := email_changes.held_reason(session, item.guardian_id):
            raise InvalidInput(held)
        if guardian.do_not_contact:
            raise InvalidInput(
                'The SIS marks this guardian "do not contact": nothing is sent to them'
            )
        if not guardian.email:
            raise InvalidInput("This family has no email address on file; correct it first")
        ledger.request_resend(session, Actor.of(operator), item_id, step, why, guardian.email)


def move_channel(
    engine: Engine, operator: Operator, guardian_id: int, channel: Option, reason: str
) -> None:
    """Put a family on another channel than the plan gives it (the newest choice is in force)."""
    require(operator, Permission.RESEND)
    why = reason_text(reason)
    with session_scope(engine) as session:
        guardian = guardian_in_scope(session, operator, guardian_id)
        current = plan.channel_of(session, guardian, _first_school(session, guardian_id))
        if current is channel:
            raise InvalidInput(f"The family is already on {channel.value} {channel.caption}")
        if channel is Option.SECURE and not guardian.email:
            raise InvalidInput("Secure email needs an email address; correct it first")
        session.add(
            FamilyChannel(
                guardian_id=guardian_id,
                lea_id=guardian.lea_id,
                channel=channel.value,
                previous=current.value if current else "",
                reason=why,
                set_by=operator.username,
            )
        )
        audit.record(
            session,
            Actor.of(operator),
            "family.channel_moved",
            f"guardian:{guardian_id}",
            {"was": current.value if current else "", "now": channel.value, "reason": why},
        )


def _first_school(session: Session, guardian_id: int) -> int | None:
    return session.exec(
        select(Student.school_id)
        .join(StudentGuardian, col(StudentGuardian.student_id) == col(Student.id))
        .where(col(StudentGuardian.guardian_id) == guardian_id)
        .order_by(col(Student.id))
        .limit(1)
    ).first()
