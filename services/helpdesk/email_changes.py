"""Correcting a family's email address: the help desk asks, a coordinator decides.

A help desk operator could otherwise type an address of their choosing and resend the reports and
a new password there at once, redirecting a family's SSRs with no second pair of eyes. So a
correction by someone who may not approve one is only a request: the address on file, and every
send, stays as it was until a coordinator (LEA, or the site coordinator of the family's school)
approves it; a rejection leaves it as it was for good. A coordinator's own correction takes effect
at once (they are the ones who would approve it). Each step writes its audit event in the same
transaction, and the family's timeline shows who asked, who decided, and when.

While a request waits, the help desk cannot resend to this family (``held_reason``): the request
itself says the address on file is doubtful, and the new one is not yet vouched for, so a new
password sent to either could reach the wrong person. Deliveries a coordinator's batch already
addressed keep going to the address on file, as before the request. There is no waiting period
after which a request applies by itself: it waits for a coordinator.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Column
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel, col, select

from services.access.permissions import Permission, allowed, require, school_scope
from services.access.tables import Operator
from services.audit import log as audit
from services.audit.log import Actor
from services.core.columns import enum_column, utcnow
from services.core.db import session_scope
from services.core.display import masked
from services.core.errors import InvalidInput, NotFound, PermissionDenied
from services.core.validation import plain_text
from services.delivery import ledger
from services.helpdesk.guards import guardian_in_scope, reason_text
from services.roster.records import EMAIL_SHAPE
from services.roster.tables import Guardian, Student, StudentGuardian


class ChangeState(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class EmailChange(SQLModel, table=True):
    """A help desk request to change a guardian's email address, and the coordinator's decision."""

    __tablename__ = "email_change"
    id: int | None = Field(default=None, primary_key=True)
    lea_id: int = Field(foreign_key="lea.id", index=True)
    guardian_id: int = Field(foreign_key="guardian.id", index=True)
    old_email: str | None = Field(default=None, max_length=254)
    new_email: str = Field(max_length=254)
    reason: str = Field(max_length=500)
    requested_by: str = Field(max_length=64)
    requested_at: datetime = Field(default_factory=utcnow)
    state: ChangeState = Field(
        default=ChangeState.PENDING,
        sa_column=Column(enum_column(ChangeState, "email_change_state"), nullable=False),
    )
    decided_by: str | None = Field(default=None, max_length=64)
    decided_at: datetime | None = None
    decision_note: str | None = Field(default=None, max_length=500)


@dataclass(frozen=True)
class Correction:
    """What ``correct_email`` did: applied now (and readdressed deliveries), or asked."""

    applied: bool
    readdressed: int = 0
    change_id: int | None = None


@dataclass(frozen=True)
class PendingChange:
    """A request waiting for a coordinator, as the approvals list shows it."""

    change_id: int
    guardian_id: int
    guardian: str
    ssid: str
    old_email: str
    new_email: str
    reason: str
    requested_by: str
    requested_at: datetime


def may_approve(operator: Operator) -> bool:
    return allowed(operator, Permission.APPROVE_CONTACT_CHANGE)


def _address(email: str) -> str:
    address = plain_text(email, "the email address").lower()
    if not EMAIL_SHAPE.fullmatch(address) or len(address) > 254:
        raise InvalidInput(f"{address!r} is not an email address")
    return address


def waiting_for(session: Session, guardian_id: int) -> EmailChange | None:
    """The family's request still waiting for a coordinator, if any."""
    return session.exec(
        select(EmailChange).where(
            col(EmailChange.guardian_id) == guardian_id,
            col(EmailChange.state) == ChangeState.PENDING,
        )
    ).first()


def correct_email(
    engine: Engine, operator: Operator, guardian_id: int, email: str, reason: str
) -> Correction:
    """A coordinator's correction applies now; anyone else's becomes a request to approve."""
    require(operator, Permission.RESEND)
    why = reason_text(reason)
    address = _address(email)
    with session_scope(engine) as session:
        guardian = guardian_in_scope(session, operator, guardian_id)
        if guardian.email == address:
            raise InvalidInput("That is already the family's email address")
        waiting = waiting_for(session, guardian_id)
        if may_approve(operator):
            if waiting is not None:  # the coordinator's own correction settles the request
                _decide(session, operator, waiting, ChangeState.REJECTED, "superseded: " + why)
            readdressed = _apply(session, Actor.of(operator), guardian, address, why, {})
            return Correction(True, readdressed)
        if waiting is not None:
            raise InvalidInput(
                f"A change of this family's address, asked by {waiting.requested_by}, already "
                "waits for a coordinator; ask one to approve or reject it first"
            )
        change = EmailChange(
            lea_id=guardian.lea_id,
            guardian_id=guardian_id,
            old_email=guardian.email,
            new_email=address,
            reason=why,
            requested_by=operator.username,
        )
        session.add(change)
        session.flush()
        audit.record(
            session,
            Actor.of(operator),
            "guardian.email_change_requested",
            f"guardian:{guardian_id}",
            {"was": masked(guardian.email), "now": masked(address), "reason": why},
        )
        return Correction(False, change_id=change.id)


def _apply(
    session: Session,
    actor: Actor,
    guardian: Guardian,
    address: str,
    reason: str,
    asked: dict[str, str],
) -> int:
    """Put the address on file and readdress what has not gone yet; audited."""
    before = guardian.email
    guardian.email = address
    session.add(guardian)
    assert guardian.id is not None
    readdressed = ledger.readdress(session, guardian.id, address)
    audit.record(
        session,
        actor,
        "guardian.email_corrected",
        f"guardian:{guardian.id}",
        {
            "was": masked(before),
            "now": masked(address),
            "reason": reason,
            "deliveries": readdressed,
            **asked,
        },
    )
    return len(readdressed)


def _change_in_scope(session: Session, operator: Operator, change_id: int) -> EmailChange:
    change = session.get(EmailChange, change_id)
    if change is None or change.lea_id != operator.lea_id:
        raise NotFound(f"There is no email change request {change_id} in your scope")
    guardian_in_scope(session, operator, change.guardian_id)
    if change.state is not ChangeState.PENDING:
        raise InvalidInput(f"That request was already {change.state.value} by {change.decided_by}")
    if change.requested_by == operator.username:
        raise PermissionDenied("Someone other than the person who asked must decide a request")
    return change


def _decide(
    session: Session, operator: Operator, change: EmailChange, state: ChangeState, note: str
) -> None:
    change.state = state
    change.decided_by = operator.username
    change.decided_at = utcnow()
    change.decision_note = note
    session.add(change)
    action = "approved" if state is ChangeState.APPROVED else "rejected"
    audit.record(
        session,
        Actor.of(operator),
        f"guardian.email_change_{action}",
        f"guardian:{change.guardian_id}",
        {
            "asked_by": change.requested_by,
            "asked_at": change.requested_at.isoformat(),
            "now": masked(change.new_email),
            "reason": note,
        },
    )


def approve(engine: Engine, operator: Operator, change_id: int) -> int:
    """Approve a request: the new address is put on file and waiting deliveries go there.

    Returns how many deliveries were readdressed.
    """
    require(operator, Permission.APPROVE_CONTACT_CHANGE)
    with session_scope(engine) as session:
        change = _change_in_scope(session, operator, change_id)
        _decide(session, operator, change, ChangeState.APPROVED, change.reason)
        guardian = session.get(Guardian, change.guardian_id)
        assert guardian is not None
        if guardian.email == change.new_email:
            return 0
        asked = {"asked_by": change.requested_by, "approved_by": operator.username}
        return _apply(session, Actor.of(operator), guardian, change.new_email, change.reason, asked)


def reject(engine: Engine, operator: Operator, change_id: int, reason: str) -> None:
    """Reject a request: the address on file stays, and the help desk may resend again."""
    require(operator, Permission.APPROVE_CONTACT_CHANGE)
    why = reason_text(reason)
    with session_scope(engine) as session:
        change = _change_in_scope(session, operator, change_id)
        _decide(session, operator, change, ChangeState.REJECTED, why)


def pending(engine: Engine, operator: Operator) -> list[PendingChange]:
    """Requests waiting for a coordinator in the operator's scope, oldest first."""
    require(operator, Permission.APPROVE_CONTACT_CHANGE)
    query = (
        select(EmailChange, Guardian, Student.ssid)
        .join(Guardian, col(Guardian.id) == col(EmailChange.guardian_id))
        .join(StudentGuardian, col(StudentGuardian.guardian_id) == col(Guardian.id))
        .join(Student, col(Student.id) == col(StudentGuardian.student_id))
        .where(
            col(EmailChange.lea_id) == operator.lea_id,
            col(EmailChange.state) == ChangeState.PENDING,
        )
        .order_by(col(EmailChange.requested_at), col(EmailChange.id), col(Student.id))
    )
    if (school := school_scope(operator)) is not None:
        query = query.where(col(Student.school_id) == school)
    found: dict[int, PendingChange] = {}
    with Session(engine) as session:
        for change, guardian, ssid in session.exec(query).all():
            assert change.id is not None
            found.setdefault(
                change.id,
                PendingChange(
                    change.id,
                    change.guardian_id,
                    f"{guardian.last_name}, {guardian.first_name}",
                    ssid,
                    change.old_email or "",
                    change.new_email,
                    change.reason,
                    change.requested_by,
                    change.requested_at,
                ),
            )
    return list(found.values())


def held_reason(session: Session, guardian_id: int) -> str | None:
    """Why nothing may be resent to this family now, or None."""
    change = waiting_for(session, guardian_id)
    if change is None:
        return None
    return (
        f"A change of this family's email address (asked by {change.requested_by}) waits for a "
        "coordinator: resends are held until it is approved or rejected"
    )
