"""The coordinated reset of the TOMS credential, as it happens between two coordinators.

Regenerating the credential in TOMS invalidates the previous one at once, for every vendor system,
for CAASPP and ELPAC alike; "LEA CAASPP and LEA ELPAC coordinators should communicate with each
other before resetting credentials" (seed 001; FACTS.md). So:

- the requester writes a coordination note (why, when, who at the vendor was told); the other
  program's coordinator is emailed at once and sees it in Notices (``services.reminders``), and
  acknowledges it here, or the requester records the agreement reached elsewhere;
- one person holding both coordinator roles (the same email address on both accounts) records
  the reset as self-coordinated, with the note: nobody else is there to ask;
- an emergency reset (the key leaked) needs no agreement: both coordinators are emailed at once,
  and it stays loud until the other acknowledges it;
- once coordinated, the new credential is recorded with ``lifecycle.record(reset_id=...)``, which
  marks the previous one superseded.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from services.access.permissions import Permission, require
from services.access.tables import Operator, Role
from services.audit import log as audit
from services.core.columns import utcnow
from services.core.errors import ConsoleError, NotFound, PermissionDenied
from services.core.vault import Vault
from services.credential.lifecycle import (
    COORDINATORS,
    coordinated,
    coordinator_program,
    lea_row,
    live_credential,
    plain_field,
    refuse_live_secret,
    writing,
)
from services.credential.tables import CredentialReset

log = logging.getLogger(__name__)

MIN_REASON_LENGTH = 10


def request_reset(
    engine: Engine,
    operator: Operator,
    lea_id: int,
    *,
    reason: str,
    planned_for: str,
    vendor_contact: str,
    vault: Vault | None = None,
) -> CredentialReset:
    """Write the coordination note: why, when, and who at the vendor was told."""
    require(operator, Permission.MANAGE_CREDENTIAL, lea_id=lea_id)
    program = coordinator_program(operator)
    reason = plain_field(reason, "why the credential must be reset", MIN_REASON_LENGTH, 1000)
    planned_for = plain_field(planned_for, "when the reset will happen", 1, 200)
    vendor_contact = plain_field(vendor_contact, "who at the vendor was told", 1, 200)
    with writing(engine) as session:
        lea_row(session, lea_id)
        live = live_credential(session, lea_id, lock=True)
        if live is None:
            raise ConsoleError("There is no credential to reset yet; record the TOMS one instead")
        refuse_live_secret(session, lea_id, vault, reason, planned_for, vendor_contact)
        pending = _open_request(session, lea_id)
        if pending is not None:
            raise ConsoleError(
                f"Reset request #{pending.id} by {pending.requested_by} is already open; "
                "carry it out or withdraw it first"
            )
        alone = holds_both_roles(session, operator)
        request = CredentialReset(
            lea_id=lea_id,
            replaces_id=live.id,
            requested_by=operator.username,
            requested_role=program.value,
            reason=reason,
            planned_for=planned_for,
            vendor_contact=vendor_contact,
            self_coordinated=alone,
        )
        session.add(request)
        session.flush()
        audit.record(
            session,
            audit.Actor.of(operator),
            "credential.reset.request",
            f"credential reset #{request.id}",
            {
                "replaces": live.id,
                "reason": reason,
                "planned_for": planned_for,
                "vendor_contact": vendor_contact,
                "self_coordinated": alone,
            },
            lea_id=lea_id,
        )
        session.expunge(request)
    return request


def holds_both_roles(session: Session, operator: Operator) -> bool:
    """Whether the requester is the only person behind both coordinator roles of the LEA.

    Either the operator holds both roles (``second_role``), or every account of the other
    program's coordinator carries the operator's own email address (one person, two accounts). An
    LEA with no active coordinator for the other program is not "one person": the agreement is then
    recorded as reached elsewhere, or the reset is an emergency."""
    if set(COORDINATORS) <= set(operator.roles):
        return True
    if not operator.email:
        return False
    emails = session.exec(
        select(func.lower(col(Operator.email))).where(
            _holding([other_role(coordinator_program(operator))]),
            Operator.lea_id == operator.lea_id,
            col(Operator.active),
        )
    ).all()
    return bool(emails) and all(email == operator.email.lower() for email in emails)


def _holding(roles: list[Role]) -> Any:
    """Operators holding one of ``roles``, as their first or their second role."""
    return col(Operator.role).in_(roles) | col(Operator.second_role).in_(roles)


def acknowledge_reset(engine: Engine, operator: Operator, reset_id: int) -> CredentialReset:
    """The other program's coordinator agrees, in the console (also after an emergency reset)."""
    with writing(engine) as session:
        request = _request(session, reset_id)
        require(operator, Permission.MANAGE_CREDENTIAL, lea_id=request.lea_id)
        program = coordinator_program(operator)
        if program.value == request.requested_role:
            other = other_role(Role(request.requested_role))
            raise PermissionDenied(
                f"Reset request #{reset_id} came from the {Role(request.requested_role).label}; "
                f"only the {other.label} can acknowledge it"
            )
        if request.acknowledged_at is not None:
            raise ConsoleError(
                f"Reset request #{reset_id} was already acknowledged by {request.acknowledged_by}"
            )
        if request.cancelled_at is not None:
            raise ConsoleError(f"Reset request #{reset_id} was cancelled")
        request.acknowledged_by = operator.username
        request.acknowledged_at = utcnow()
        session.add(request)
        audit.record(
            session,
            audit.Actor.of(operator),
            "credential.reset.acknowledge",
            f"credential reset #{reset_id}",
            {
                "requested_by": request.requested_by,
                "emergency": request.emergency_reason is not None,
            },
            lea_id=request.lea_id,
        )
        session.flush()
        session.expunge(request)
    return request


def confirm_out_of_band(
    engine: Engine,
    operator: Operator,
    reset_id: int,
    *,
    confirmed_with: str,
    confirmed_on: str,
    vault: Vault | None = None,
) -> CredentialReset:
    """The requester records that the other coordinator agreed elsewhere: with whom, and when."""
    confirmed_with = plain_field(confirmed_with, "with whom the reset was agreed", 3, 200)
    confirmed_on = plain_field(confirmed_on, "when it was agreed", 1, 100)
    with writing(engine) as session:
        request = _request(session, reset_id)
        require(operator, Permission.MANAGE_CREDENTIAL, lea_id=request.lea_id)
        if coordinator_program(operator).value != request.requested_role:
            raise PermissionDenied(
                f"Only the {Role(request.requested_role).label} who asked for reset #{reset_id} "
                "records an agreement reached elsewhere; you can acknowledge it instead"
            )
        _still_open(request)
        refuse_live_secret(session, request.lea_id, vault, confirmed_with, confirmed_on)
        request.confirmed_with = confirmed_with
        request.confirmed_on = confirmed_on
        request.confirmed_by = operator.username
        request.confirmed_at = utcnow()
        session.add(request)
        audit.record(
            session,
            audit.Actor.of(operator),
            "credential.reset.confirm_out_of_band",
            f"credential reset #{reset_id}",
            {"confirmed_with": confirmed_with, "confirmed_on": confirmed_on},
            lea_id=request.lea_id,
        )
        session.flush()
        session.expunge(request)
    return request


def cancel_reset(engine: Engine, operator: Operator, reset_id: int) -> CredentialReset:
    """Withdraw an open request (plans changed); the note stays in the history."""
    with writing(engine) as session:
        request = _request(session, reset_id)
        require(operator, Permission.MANAGE_CREDENTIAL, lea_id=request.lea_id)
        _still_open(request)
        request.cancelled_at = utcnow()
        request.cancelled_by = operator.username
        session.add(request)
        audit.record(
            session,
            audit.Actor.of(operator),
            "credential.reset.cancel",
            f"credential reset #{reset_id}",
            lea_id=request.lea_id,
        )
        session.flush()
        session.expunge(request)
    return request


def emergency_reset(
    engine: Engine, operator: Operator, lea_id: int, *, reason: str, vault: Vault | None = None
) -> CredentialReset:
    """Start a reset without coordination (e.g. the key leaked); loud until acknowledged.

    An open coordination note is withdrawn by it. The coordinator then regenerates the credential
    in TOMS and records it with this request."""
    require(operator, Permission.MANAGE_CREDENTIAL, lea_id=lea_id)
    program = coordinator_program(operator)
    reason = plain_field(reason, "the reason for the emergency reset", MIN_REASON_LENGTH, 1000)
    now = utcnow()
    with writing(engine) as session:
        lea = lea_row(session, lea_id)
        refuse_live_secret(session, lea_id, vault, reason)
        live = live_credential(session, lea_id, lock=True)
        pending = _open_request(session, lea_id)
        if pending is not None:
            pending.cancelled_at = now
            pending.cancelled_by = operator.username
            session.add(pending)
        request = CredentialReset(
            lea_id=lea_id,
            replaces_id=live.id if live else None,
            requested_by=operator.username,
            requested_role=program.value,
            requested_at=now,
            reason=reason,
            emergency_reason=reason,
        )
        session.add(request)
        session.flush()
        audit.record(
            session,
            audit.Actor.of(operator),
            "credential.reset.EMERGENCY",
            f"credential reset #{request.id}",
            {"replaces": live.id if live else None, "emergency_reason": reason},
            lea_id=lea_id,
        )
        session.expunge(request)
    log.warning("EMERGENCY credential reset for LEA %s by %s", lea.cds_code, operator.username)
    return request


def open_request(engine: Engine, lea_id: int) -> CredentialReset | None:
    """The reset under way (waiting for agreement, or for the new credential), if any."""
    with Session(engine, expire_on_commit=False) as session:
        request = _open_request(session, lea_id)
        if request is not None:
            session.expunge(request)
        return request


def reset_requests(engine: Engine, operator: Operator, lea_id: int) -> list[CredentialReset]:
    """Every coordination note of the LEA, newest first (a handful a year)."""
    require(operator, Permission.VIEW_CREDENTIAL_STATUS, lea_id=lea_id)
    with Session(engine, expire_on_commit=False) as session:
        rows = session.exec(
            select(CredentialReset)
            .where(CredentialReset.lea_id == lea_id)
            .order_by(col(CredentialReset.id).desc())
        ).all()
        session.expunge_all()
    return list(rows)


def to_tell(session: Session, request: CredentialReset) -> list[Operator]:
    """Who is emailed about a request: the other program's coordinators, or after an emergency
    both programs' coordinators; nobody for a self-coordinated or closed one."""
    if request.self_coordinated or request.cancelled_at is not None:
        return []
    if request.emergency_reason is None and coordinated(request):
        return []
    if request.emergency_reason is not None and request.acknowledged_at is not None:
        return []
    emergency = request.emergency_reason is not None
    roles = list(COORDINATORS) if emergency else [other_role(Role(request.requested_role))]
    query = select(Operator).where(
        Operator.lea_id == request.lea_id, _holding(roles), col(Operator.active)
    )
    if not emergency:  # the requester knows already; after an emergency both programs are told
        query = query.where(Operator.username != request.requested_by)
    return list(session.exec(query.order_by(col(Operator.username))).all())


def requests_to_announce(session: Session) -> list[CredentialReset]:
    """Requests whose coordinators are still to be told (few: resets are yearly events)."""
    return [
        r
        for r in session.exec(
            select(CredentialReset).where(
                col(CredentialReset.cancelled_at).is_(None),
                col(CredentialReset.self_coordinated).is_(False),
                col(CredentialReset.acknowledged_at).is_(None),
                col(CredentialReset.confirmed_at).is_(None),
            )
        ).all()
        if r.credential_id is None or r.emergency_reason is not None
    ]


def other_role(role: Role) -> Role:
    return Role.LEA_ELPAC if role is Role.LEA_CAASPP else Role.LEA_CAASPP


def _open_request(session: Session, lea_id: int) -> CredentialReset | None:
    return session.exec(
        select(CredentialReset).where(
            CredentialReset.lea_id == lea_id,
            col(CredentialReset.credential_id).is_(None),
            col(CredentialReset.cancelled_at).is_(None),
        )
    ).first()


def _request(session: Session, reset_id: int) -> CredentialReset:
    request = session.get(CredentialReset, reset_id)
    if request is None:
        raise NotFound(f"No reset request #{reset_id}")
    return request


def _still_open(request: CredentialReset) -> None:
    if request.cancelled_at is not None:
        raise ConsoleError(f"Reset request #{request.id} was cancelled")
    if request.credential_id is not None:
        raise ConsoleError(f"Reset request #{request.id} was already carried out")
