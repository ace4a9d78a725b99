"""What one message of the bounce mailbox changes: it is matched to a delivery and recorded once.

A bounce is matched by the address it was sent to (the message's own VERP return path,
``services.delivery.return_path``) and else by the Message-ID of the original message it quotes,
against the two messages of each delivery item (``document_message_id`` and ``message_id``, the
last message handed to the relay). A hard bounce moves the item to ``bounced`` (the family did
not get it: coverage, reports and the deadline clock count it as not delivered); a soft one is
recorded and changes nothing until a final failure arrives. Each message is recorded under the
SHA-256 of its bytes in the same transaction, so reading it again changes nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import or_
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from services.audit import log as audit
from services.audit.log import SYSTEM_ACTOR
from services.bounces.dsn import Kind, Report, parse
from services.bounces.tables import MailboxMessage, Outcome
from services.core.db import session_scope
from services.core.display import masked
from services.delivery import ledger
from services.delivery.ledger import (
    IN_FLIGHT,
    BatchKind,
    DeliveryBatch,
    DeliveryItem,
    ItemState,
    Step,
)
from services.delivery.return_path import ReturnPath, digest


class ItemBusy(Exception):
    """The matched item is being sent right now: read the message again at the next round."""


@dataclass(frozen=True)
class Match:
    item: DeliveryItem
    step: Step
    by: str  # "verp" or "message-id"
    current: bool  # about the item's current message (not one sent before a resend)


def fingerprint(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def already_read(engine: Engine, raw: bytes) -> bool:
    with Session(engine) as session:
        return (
            session.exec(
                select(MailboxMessage.id).where(MailboxMessage.digest == fingerprint(raw))
            ).first()
            is not None
        )


def read_message(engine: Engine, raw: bytes, return_path: ReturnPath) -> Outcome | None:
    """Record one mailbox message and what it changes; None when it was read before.

    Raises ``ItemBusy`` (nothing written) when its item is in the middle of a send.
    """
    key = fingerprint(raw)
    report = parse(raw)
    try:
        with session_scope(engine) as session:
            if session.exec(select(MailboxMessage.id).where(MailboxMessage.digest == key)).first():
                return None
            row = _apply(session, report, return_path)
            row.digest = key
            session.add(row)
    except IntegrityError:  # another worker recorded the same message a moment ago
        return None
    return row.outcome


def _apply(session: Session, report: Report, return_path: ReturnPath) -> MailboxMessage:
    row = MailboxMessage(
        digest="",
        outcome=Outcome.OTHER,
        address=report.recipient[:254] or None,
        reporter=report.reporter[:254] or None,
        status=report.status[:12] or None,
        reason=report.reason or None,
    )
    if report.kind is Kind.AUTO_REPLY:
        row.outcome = Outcome.AUTO_REPLY
    if not report.is_bounce:
        return row
    match = _match(session, report, return_path)
    if match is None:
        row.outcome = Outcome.UNMATCHED
        return row
    item = match.item
    row.item_id, row.batch_id, row.guardian_id = item.id, item.batch_id, item.guardian_id
    row.step, row.matched_by = match.step.value, match.by
    row.address = row.address or item.address
    if not match.current:
        row.outcome = Outcome.STALE
        return row
    if item.state in IN_FLIGHT:
        raise ItemBusy(f"delivery item {item.id} is being sent")
    detail = {
        "step": match.step.value,
        "status": report.status,
        "reason": report.reason[:200],
        "address": masked(row.address),
        "reporter": report.reporter,
    }
    if report.kind is Kind.SOFT:
        row.outcome = Outcome.SOFT
        audit.record(
            session,
            SYSTEM_ACTOR,
            "delivery.soft_bounce",
            f"delivery_item:{item.id}",
            {"batch": item.batch_id, **detail},
            lea_id=_lea(session, item.batch_id),
        )
        return row
    words = " ".join(w for w in (report.status, report.reason) if w) or "no reason given"
    if ledger.mark_bounced(session, item.id, f"{words} (to {row.address})", detail):  # type: ignore[arg-type]
        row.outcome = Outcome.BOUNCED
    else:  # already bounced, or sent again / cancelled since: nothing to change
        row.outcome = Outcome.BOUNCED if item.state is ItemState.BOUNCED else Outcome.STALE
    return row


def _lea(session: Session, batch_id: int) -> int:
    return session.exec(select(DeliveryBatch.lea_id).where(DeliveryBatch.id == batch_id)).one()


def _match(session: Session, report: Report, return_path: ReturnPath) -> Match | None:
    for address in report.sent_to:
        token = return_path.token_of(address)
        if token is None:
            continue
        item = session.get(DeliveryItem, token[0])
        if item is None:
            continue
        for message_id, step in _messages(session, item):
            if digest(message_id) == token[1]:
                return Match(item, step, "verp", True)
        return Match(item, Step.DOCUMENT, "verp", False)
    for message_id in report.message_ids:
        item = session.exec(
            select(DeliveryItem).where(
                or_(
                    col(DeliveryItem.document_message_id) == message_id,
                    col(DeliveryItem.message_id) == message_id,
                )
            )
        ).first()
        if item is not None:
            step = next(s for m, s in _messages(session, item) if m == message_id)
            return Match(item, step, "message-id", True)
    return None


def _messages(session: Session, item: DeliveryItem) -> list[tuple[str, Step]]:
    """The item's current messages (Message-ID, step): the document's (or the notice's) and the
    last one handed to the relay (the password, once it went)."""
    notice = session.get(DeliveryBatch, item.batch_id).kind is BatchKind.NOTICE  # type: ignore[union-attr]
    first = Step.NOTICE if notice else Step.DOCUMENT
    found = [(item.document_message_id, first)] if item.document_message_id else []
    if item.message_id and item.message_id != item.document_message_id:
        found.append((item.message_id, first if notice else Step.PASSWORD))
    return found
