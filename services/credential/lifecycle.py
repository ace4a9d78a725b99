"""The LEA's SIS-vendor credential: generate, coordinate a reset, track the systems that hold it.

TOMS hands SSRs to the parent portal over one credential per LEA (a username and a secret key);
only the last one issued is valid, so a reset cuts every vendor system off, for CAASPP and ELPAC
alike, until each is given the new one. Hence the rules enforced here:

- the secret key leaves this module exactly once, in the ``IssuedCredential`` returned to the
  coordinator who generated it; the database keeps an argon2id hash and a fingerprint derived from
  that hash (so the fingerprint offers no faster way to test a guess than the hash itself);
- a reset needs a coordination note acknowledged by the other program's coordinator, or an
  out-of-band confirmation recorded by the requester, unless an emergency override with a reason is
  used, which is flagged in the audit log and on the dashboard;
- every change writes an audit event (never the secret) in the same transaction.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from ipaddress import ip_address
from urllib.parse import urlsplit

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from services.access.permissions import Permission, require
from services.access.tables import Operator, Role
from services.audit import log as audit
from services.core.columns import utcnow
from services.core.db import session_scope
from services.core.errors import ConsoleError, InvalidInput, NotFound, PermissionDenied
from services.core.settings import Settings
from services.core.validation import plain_text
from services.credential.tables import (
    Credential,
    CredentialChecklist,
    CredentialReset,
    CredentialSystem,
)
from services.roster.tables import LEA

log = logging.getLogger(__name__)

SECRET_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789"  # noqa: S105 (an alphabet)
"""Letters and digits without look-alikes (0 O o, 1 l I), so a key read aloud or retyped survives."""
_USERNAME_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
MIN_SECRET_LENGTH = 20
MIN_REASON_LENGTH = 10
WARNING_DAYS = 14
"""Expiring from two weeks before expiry, when TOMS sends its first reminder."""
_HASHER = (
    PasswordHasher()
)  # argon2id, 3 passes over 64 MiB: slow to guess, a fraction of a second to issue
COORDINATORS = (Role.LEA_CAASPP, Role.LEA_ELPAC)


class CoordinationRequired(PermissionDenied):
    """A reset was attempted before the other program's coordinator was consulted."""


class CredentialStatus(StrEnum):
    NONE = "not generated"
    ACTIVE = "active"
    EXPIRING = "expiring"
    EXPIRED = "expired"
    REVOKED = "revoked"


@dataclass(frozen=True)
class CredentialPolicy:
    """How long a credential lives; the ``[credential]`` table of the config can change it."""

    lifetime_days: int | None = None  # None: one calendar year, as TOMS does
    secret_length: int = 24

    def __post_init__(self) -> None:
        if self.secret_length < MIN_SECRET_LENGTH:
            raise InvalidInput(f"A secret key needs at least {MIN_SECRET_LENGTH} characters")
        if self.lifetime_days is not None and self.lifetime_days < 1:
            raise InvalidInput("A credential must live at least one day")

    @classmethod
    def from_settings(cls, settings: Settings) -> CredentialPolicy:
        """``[credential] lifetime_days = N`` (default: one calendar year)."""
        table = settings.extra.get("credential") or {}
        lifetime = table.get("lifetime_days") if isinstance(table, dict) else None
        if lifetime is None:
            return cls()
        try:
            return cls(lifetime_days=int(str(lifetime)))
        except ValueError:
            raise InvalidInput(
                f"[credential] lifetime_days must be a whole number of days, got {lifetime!r}"
            ) from None

    def expiry(self, issued: datetime) -> datetime:
        if self.lifetime_days is not None:
            return issued + timedelta(days=self.lifetime_days)
        try:
            return issued.replace(year=issued.year + 1)
        except ValueError:  # 29 February
            return issued.replace(year=issued.year + 1, day=28)


@dataclass(frozen=True)
class IssuedCredential:
    """The one place the secret key exists after generation; show it, then let it go."""

    credential_id: int
    username: str
    secret: str = field(repr=False)
    fingerprint: str
    expires_at: datetime


@dataclass(frozen=True)
class StatusView:
    """What the dashboard, banners and reminders need to know; nothing secret."""

    lea_id: int
    status: CredentialStatus
    days_left: int | None = None
    expires_at: datetime | None = None
    credential_id: int | None = None
    username: str | None = None
    fingerprint: str | None = None
    created_at: datetime | None = None
    created_by: str | None = None
    emergency: bool = False
    emergency_acknowledged: bool = False
    systems_pending: int = 0

    @property
    def needs_attention(self) -> bool:
        return self.status in (CredentialStatus.EXPIRING, CredentialStatus.EXPIRED) or (
            self.emergency and not self.emergency_acknowledged
        )

    @property
    def countdown(self) -> str:
        """ "12 days left", "expired today", "expired 3 days ago"."""
        if self.days_left is None:
            return ""
        if self.days_left > 0:
            return f"{_days(self.days_left)} left"
        return "expired today" if self.days_left == 0 else f"expired {_days(-self.days_left)} ago"

    @property
    def summary(self) -> str:
        """One line for a dashboard or banner."""
        if self.status is CredentialStatus.NONE:
            return "No SIS-vendor credential has been generated"
        date = f"{self.expires_at:%Y-%m-%d}" if self.expires_at else "?"
        if self.status is CredentialStatus.EXPIRED:
            text = (
                f"SIS-vendor credential EXPIRED on {date} ({self.countdown}): "
                "the parent portal is cut off"
            )
        else:
            text = f"SIS-vendor credential {self.status.value}: {self.countdown} (expires {date})"
        if self.emergency:
            text += " — EMERGENCY reset" + (
                "" if self.emergency_acknowledged else ", unacknowledged"
            )
        return text


@dataclass(frozen=True)
class HistoryEntry:
    """One credential of an LEA's history, with the reset that issued it (if any)."""

    credential: Credential
    status: CredentialStatus
    days_left: int | None
    reset: CredentialReset | None


@dataclass(frozen=True)
class ChecklistItem:
    """A vendor system and whether it has been given the current credential."""

    system: CredentialSystem
    entry: CredentialChecklist | None

    @property
    def updated(self) -> bool:
        return self.entry is not None and self.entry.updated_at is not None


@dataclass(frozen=True)
class CurrentCredential:
    """A live credential as the reminder scheduler sees it."""

    lea_id: int
    credential_id: int
    expires_at: datetime


def _days(days: int | None) -> str:
    return "?" if days is None else f"{days} day" + ("" if days == 1 else "s")


def classify(
    credential: Credential, now: datetime, warning_days: int = WARNING_DAYS
) -> tuple[CredentialStatus, int | None]:
    """Status and whole days left (rounded up, so an hour left is "1 day"; 0 or less when expired)."""
    if credential.revoked_at is not None:
        return CredentialStatus.REVOKED, None
    days_left = math.ceil((credential.expires_at - now) / timedelta(days=1))
    if now >= credential.expires_at:
        return CredentialStatus.EXPIRED, days_left
    if days_left <= warning_days:
        return CredentialStatus.EXPIRING, days_left
    return CredentialStatus.ACTIVE, days_left


# --- generation -----------------------------------------------------------------------------


def new_secret(length: int = 24) -> str:
    """A secret key from the OS CSPRNG; 24 characters of a 55-letter alphabet is ~138 bits."""
    if length < MIN_SECRET_LENGTH:
        raise InvalidInput(f"A secret key needs at least {MIN_SECRET_LENGTH} characters")
    return "".join(secrets.choice(SECRET_ALPHABET) for _ in range(length))


def fingerprint_of(secret_hash: str) -> str:
    """Eight hex digits naming a credential, taken from its argon2id hash, never from the secret."""
    return hashlib.sha256(secret_hash.encode()).hexdigest()[:8]


def verify_secret(engine: Engine, lea_id: int, secret: str) -> bool:
    """Whether ``secret`` is the LEA's live credential (e.g. to check what a vendor holds)."""
    with Session(engine) as session:
        live = _live(session, lea_id)
        if live is None:
            return False
        try:
            return _HASHER.verify(live.secret_hash, secret)
        except VerificationError:
            return False


def generate(
    engine: Engine,
    operator: Operator,
    lea_id: int,
    policy: CredentialPolicy | None = None,
    *,
    now: datetime | None = None,
) -> IssuedCredential:
    """Issue the first credential of an LEA, or a new one once the last has expired.

    A credential that is still valid can only be replaced through a coordinated ``reset``.
    """
    require(operator, Permission.MANAGE_CREDENTIAL, lea_id=lea_id)
    policy = policy or CredentialPolicy()
    now = now or utcnow()
    key = _new_key(policy)
    with _writing(engine) as session:
        lea = _lea(session, lea_id)
        live = _live(session, lea_id, lock=True)
        if live is not None and now < live.expires_at:
            raise ConsoleError(
                f"{lea.name} already has a valid credential ({live.username}, fingerprint "
                f"{live.fingerprint}, expires {live.expires_at:%Y-%m-%d}); replacing it needs a "
                "coordinated reset"
            )
        issued = _issue(
            session, operator, lea, live, policy, now, key, action="credential.generate"
        )
    return issued


def _new_key(policy: CredentialPolicy) -> tuple[str, str]:
    """A secret and its argon2id hash, made before the transaction so no lock waits on argon2."""
    secret = new_secret(policy.secret_length)
    return secret, _HASHER.hash(secret)


def _issue(
    session: Session,
    operator: Operator,
    lea: LEA,
    previous: Credential | None,
    policy: CredentialPolicy,
    now: datetime,
    key: tuple[str, str],
    *,
    action: str,
    emergency: bool = False,
    detail: dict[str, object] | None = None,
) -> IssuedCredential:
    """Revoke ``previous`` and store a new credential; returns the secret, which is not stored."""
    assert lea.id is not None
    if previous is not None:
        previous.revoked_at = now
        previous.revoked_by = operator.username
        session.add(previous)
        session.flush()  # the revocation must land before the new live row (unique index)
    secret, secret_hash = key
    credential = Credential(
        lea_id=lea.id,
        username=f"ssr-{lea.cds_code}-{''.join(secrets.choice(_USERNAME_ALPHABET) for _ in range(4))}",
        secret_hash=secret_hash,
        fingerprint=fingerprint_of(secret_hash),
        created_at=now,
        created_by=operator.username,
        expires_at=policy.expiry(now),
        emergency=emergency,
    )
    session.add(credential)
    session.flush()
    assert credential.id is not None
    _open_checklist(session, credential)
    audit.record(
        session,
        audit.Actor.of(operator),
        action,
        f"credential {credential.fingerprint}",
        {
            "username": credential.username,
            "fingerprint": credential.fingerprint,
            "expires_at": credential.expires_at,
            "revoked": previous.fingerprint if previous else None,
            **(detail or {}),
        },
        lea_id=lea.id,
    )
    log.info(
        "%s: LEA %s credential %s (revoked %s)",
        action,
        lea.cds_code,
        credential.fingerprint,
        previous.fingerprint if previous else "none",
    )
    return IssuedCredential(
        credential.id, credential.username, secret, credential.fingerprint, credential.expires_at
    )


def _open_checklist(session: Session, credential: Credential) -> None:
    """Every active system of the LEA must now be given this credential."""
    for system in session.exec(
        select(CredentialSystem).where(
            CredentialSystem.lea_id == credential.lea_id, col(CredentialSystem.retired_at).is_(None)
        )
    ):
        assert system.id is not None and credential.id is not None
        session.add(CredentialChecklist(credential_id=credential.id, system_id=system.id))


# --- coordinated reset ----------------------------------------------------------------------


def request_reset(
    engine: Engine,
    operator: Operator,
    lea_id: int,
    *,
    reason: str,
    planned_for: str,
    vendor_contact: str,
) -> CredentialReset:
    """Write the coordination note: why, when, and who at the vendor was told."""
    require(operator, Permission.MANAGE_CREDENTIAL, lea_id=lea_id)
    program = _coordinator_program(operator)
    reason = _text(reason, "why the credential must be reset", MIN_REASON_LENGTH, 1000)
    planned_for = _text(planned_for, "when the reset will happen", 1, 200)
    vendor_contact = _text(vendor_contact, "who at the vendor was told", 1, 200)
    with _writing(engine) as session:
        _lea(session, lea_id)
        live = _live(session, lea_id, lock=True)
        if live is None:
            raise ConsoleError("There is no credential to reset yet; generate one instead")
        _refuse_live_secret(session, lea_id, reason, planned_for, vendor_contact)
        pending = _open_request(session, lea_id)
        if pending is not None:
            raise ConsoleError(
                f"Reset request #{pending.id} by {pending.requested_by} is already open; "
                "carry it out or withdraw it first"
            )
        request = CredentialReset(
            lea_id=lea_id,
            replaces_id=live.id,
            requested_by=operator.username,
            requested_role=program.value,
            reason=reason,
            planned_for=planned_for,
            vendor_contact=vendor_contact,
        )
        session.add(request)
        session.flush()
        audit.record(
            session,
            audit.Actor.of(operator),
            "credential.reset.request",
            f"credential reset #{request.id}",
            {
                "replaces": live.fingerprint,
                "reason": reason,
                "planned_for": planned_for,
                "vendor_contact": vendor_contact,
            },
            lea_id=lea_id,
        )
    return request


def acknowledge_reset(engine: Engine, operator: Operator, reset_id: int) -> CredentialReset:
    """The other program's coordinator agrees, in the console (also after an emergency reset)."""
    with _writing(engine) as session:
        request = _request(session, reset_id)
        require(operator, Permission.MANAGE_CREDENTIAL, lea_id=request.lea_id)
        program = _coordinator_program(operator)
        if program.value == request.requested_role:
            other = _other(Role(request.requested_role))
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
    return request


def confirm_out_of_band(
    engine: Engine, operator: Operator, reset_id: int, *, confirmed_with: str, confirmed_on: str
) -> CredentialReset:
    """The requester records that the other coordinator agreed elsewhere: with whom, and when."""
    confirmed_with = _text(confirmed_with, "with whom the reset was confirmed", 3, 200)
    confirmed_on = _text(confirmed_on, "when it was confirmed", 1, 100)
    with _writing(engine) as session:
        request = _request(session, reset_id)
        require(operator, Permission.MANAGE_CREDENTIAL, lea_id=request.lea_id)
        if _coordinator_program(operator).value != request.requested_role:
            raise PermissionDenied(
                f"Only the {Role(request.requested_role).label} who asked for reset #{reset_id} "
                "records an out-of-band confirmation; you can acknowledge it instead"
            )
        _still_open(request)
        _refuse_live_secret(session, request.lea_id, confirmed_with, confirmed_on)
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
    return request


def cancel_reset(engine: Engine, operator: Operator, reset_id: int) -> CredentialReset:
    """Withdraw an open request (plans changed); the note stays in the history."""
    with _writing(engine) as session:
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
    return request


def reset(
    engine: Engine,
    operator: Operator,
    reset_id: int,
    policy: CredentialPolicy | None = None,
    *,
    now: datetime | None = None,
) -> IssuedCredential:
    """Replace the live credential once the request is acknowledged or confirmed out of band."""
    policy = policy or CredentialPolicy()
    now = now or utcnow()
    key = _new_key(policy)
    with _writing(engine) as session:
        request = _request(session, reset_id)
        require(operator, Permission.MANAGE_CREDENTIAL, lea_id=request.lea_id)
        _coordinator_program(operator)
        _still_open(request)
        if request.acknowledged_at is None and request.confirmed_at is None:
            other = _other(Role(request.requested_role))
            raise CoordinationRequired(
                f"Reset refused: the {other.label} has not acknowledged request #{reset_id} and "
                "no out-of-band confirmation is recorded (one cut-off hits both programs)"
            )
        lea = _lea(session, request.lea_id)
        live = _live(session, request.lea_id, lock=True)
        if live is None or live.id != request.replaces_id:
            raise ConsoleError(
                f"Reset request #{reset_id} was written for a credential that has since been "
                "replaced; write a new coordination note"
            )
        issued = _issue(
            session,
            operator,
            lea,
            live,
            policy,
            now,
            key,
            action="credential.reset",
            detail={
                "reset": reset_id,
                "acknowledged_by": request.acknowledged_by,
                "confirmed_with": request.confirmed_with,
            },
        )
        request.credential_id = issued.credential_id
        session.add(request)
    return issued


def emergency_reset(
    engine: Engine,
    operator: Operator,
    lea_id: int,
    *,
    reason: str,
    policy: CredentialPolicy | None = None,
    now: datetime | None = None,
) -> IssuedCredential:
    """Reset without coordination (e.g. the key leaked); loud in the audit log and dashboard."""
    require(operator, Permission.MANAGE_CREDENTIAL, lea_id=lea_id)
    program = _coordinator_program(operator)
    reason = _text(reason, "the reason for the emergency reset", MIN_REASON_LENGTH, 1000)
    policy = policy or CredentialPolicy()
    now = now or utcnow()
    key = _new_key(policy)
    with _writing(engine) as session:
        lea = _lea(session, lea_id)
        _refuse_live_secret(session, lea_id, reason)
        live = _live(session, lea_id, lock=True)
        pending = _open_request(session, lea_id)
        if pending is not None:  # superseded by the override
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
        issued = _issue(
            session,
            operator,
            lea,
            live,
            policy,
            now,
            key,
            action="credential.reset.EMERGENCY",
            emergency=True,
            detail={"reset": request.id, "emergency_reason": reason},
        )
        request.credential_id = issued.credential_id
        session.add(request)
    log.warning("EMERGENCY credential reset for LEA %s by %s", lea.cds_code, operator.username)
    return issued


def open_request(engine: Engine, lea_id: int) -> CredentialReset | None:
    """The reset request waiting for acknowledgement or execution, if any."""
    with Session(engine, expire_on_commit=False) as session:
        request = _open_request(session, lea_id)
        if request is not None:
            session.expunge(request)
        return request


# --- status, history, and what the scheduler needs ------------------------------------------


def status(engine: Engine, lea_id: int, *, now: datetime | None = None) -> StatusView:
    """The LEA's credential status for the dashboard and banners (no secret, no permission)."""
    now = now or utcnow()
    with Session(engine) as session:
        latest = session.exec(
            select(Credential)
            .where(Credential.lea_id == lea_id)
            .order_by(col(Credential.created_at).desc(), col(Credential.id).desc())
            .limit(1)
        ).first()
        if latest is None:
            return StatusView(lea_id, CredentialStatus.NONE)
        state, days_left = classify(latest, now)
        emergency_ack = False
        if latest.emergency:
            emergency_ack = (
                session.exec(
                    select(CredentialReset.acknowledged_at).where(
                        CredentialReset.credential_id == latest.id
                    )
                ).first()
                is not None
            )
        pending = session.exec(
            select(func.count()).where(
                CredentialChecklist.credential_id == latest.id,
                col(CredentialChecklist.updated_at).is_(None),
            )
        ).one()
        return StatusView(
            lea_id=lea_id,
            status=state,
            days_left=days_left,
            expires_at=latest.expires_at,
            credential_id=latest.id,
            username=latest.username,
            fingerprint=latest.fingerprint,
            created_at=latest.created_at,
            created_by=latest.created_by,
            emergency=latest.emergency,
            emergency_acknowledged=emergency_ack,
            systems_pending=int(pending),
        )


def banner(engine: Engine, lea_id: int, *, now: datetime | None = None) -> tuple[str, str] | None:
    """The (level, text) standing over every screen: from 14 days before expiry, once expired,
    and after an emergency reset until the other coordinator acknowledges it."""
    state = status(engine, lea_id, now=now)
    if not state.needs_attention:
        return None
    loud = state.status is CredentialStatus.EXPIRED or (
        state.emergency and not state.emergency_acknowledged
    )
    return ("error" if loud else "warning", state.summary + " (key c)")


def dashboard_text(engine: Engine, operator: Operator, *, now: datetime | None = None) -> str:
    """The dashboard's credential panel: status, countdown, expiry, emergency flag, checklist."""
    require(operator, Permission.VIEW_CREDENTIAL_STATUS)
    state = status(engine, operator.lea_id, now=now)
    if state.status is CredentialStatus.NONE:
        return "Not generated yet.\nLEA coordinators generate it (key c)."
    lines = [
        f"{state.status.value.upper()} · {state.countdown}",
        f"Expires {state.expires_at:%Y-%m-%d}" if state.expires_at else "",
        f"Key {state.username} ({state.fingerprint})",
    ]
    if state.emergency:
        lines.append(
            "EMERGENCY reset"
            + (", acknowledged" if state.emergency_acknowledged else ", NOT acknowledged")
        )
    if state.systems_pending:
        lines.append(f"{state.systems_pending} system(s) still on the old key")
    return "\n".join(line for line in lines if line)


def history(
    engine: Engine, operator: Operator, lea_id: int, *, now: datetime | None = None
) -> list[HistoryEntry]:
    """Every credential of the LEA, newest first, with who generated, reset and acknowledged it."""
    require(operator, Permission.VIEW_CREDENTIAL_STATUS, lea_id=lea_id)
    now = now or utcnow()
    with Session(engine, expire_on_commit=False) as session:
        credentials = session.exec(
            select(Credential)
            .where(Credential.lea_id == lea_id)
            .order_by(col(Credential.created_at).desc(), col(Credential.id).desc())
        ).all()
        resets = {
            r.credential_id: r
            for r in session.exec(
                select(CredentialReset).where(
                    CredentialReset.lea_id == lea_id,
                    col(CredentialReset.credential_id).is_not(None),
                )
            )
        }
        session.expunge_all()
    return [HistoryEntry(c, *classify(c, now), resets.get(c.id)) for c in credentials]


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


def current_credentials(engine: Engine, *, batch: int = 1000) -> Iterator[CurrentCredential]:
    """Every LEA's live credential with its expiry, in LEA order, fetched a page at a time."""
    after = 0
    while True:
        with Session(engine) as session:
            rows = session.exec(
                select(Credential.lea_id, Credential.id, Credential.expires_at)
                .where(col(Credential.revoked_at).is_(None), Credential.lea_id > after)
                .order_by(col(Credential.lea_id))
                .limit(batch)
            ).all()
        if not rows:
            return
        for lea_id, credential_id, expires_at in rows:
            assert credential_id is not None
            yield CurrentCredential(lea_id, credential_id, expires_at)
        after = rows[-1][0]


def is_current(engine: Engine, credential_id: int) -> bool:
    """False once the credential was reset or regenerated: its expiry notices are then moot."""
    with Session(engine) as session:
        credential = session.get(Credential, credential_id)
        return credential is not None and credential.revoked_at is None


# --- vendor systems and the checklist -------------------------------------------------------


def validate_token_url(url: str) -> str:
    """An HTTPS token endpoint; plain HTTP only on loopback, since the secret key travels in it."""
    text = url.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InvalidInput(f"Token URL must look like https://host/api/v1/token, got {text!r}")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise InvalidInput("Token URL must use https (plain http is allowed only on this machine)")
    return text


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def add_system(
    engine: Engine, operator: Operator, lea_id: int, name: str, token_url: str | None = None
) -> CredentialSystem:
    """Record a system that holds the credential; it must be given the live one (checklist)."""
    require(operator, Permission.MANAGE_CREDENTIAL, lea_id=lea_id)
    name = _text(name, "the system's name", 2, 120)
    url = validate_token_url(token_url) if token_url and token_url.strip() else None
    with _writing(engine) as session:
        _lea(session, lea_id)
        _refuse_live_secret(session, lea_id, name, url)
        if session.exec(
            select(CredentialSystem).where(
                CredentialSystem.lea_id == lea_id,
                CredentialSystem.name == name,
                col(CredentialSystem.retired_at).is_(None),
            )
        ).first():
            raise InvalidInput(f"A system named {name!r} is already listed")
        system = CredentialSystem(
            lea_id=lea_id, name=name, token_url=url, added_by=operator.username
        )
        session.add(system)
        session.flush()
        live = _live(session, lea_id)
        if live is not None:
            assert live.id is not None and system.id is not None
            session.add(CredentialChecklist(credential_id=live.id, system_id=system.id))
        audit.record(
            session,
            audit.Actor.of(operator),
            "credential.system.add",
            f"system {name}",
            {"token_url": url},
            lea_id=lea_id,
        )
    return system


def retire_system(engine: Engine, operator: Operator, system_id: int) -> None:
    """The system no longer uses the credential: off the inventory and the checklist."""
    with _writing(engine) as session:
        system = _system(session, system_id)
        require(operator, Permission.MANAGE_CREDENTIAL, lea_id=system.lea_id)
        system.retired_at = utcnow()
        session.add(system)
        audit.record(
            session,
            audit.Actor.of(operator),
            "credential.system.retire",
            f"system {system.name}",
            lea_id=system.lea_id,
        )


def checklist(engine: Engine, operator: Operator, lea_id: int) -> list[ChecklistItem]:
    """The LEA's active systems and whether each has been given the live credential."""
    require(operator, Permission.VIEW_CREDENTIAL_STATUS, lea_id=lea_id)
    with Session(engine, expire_on_commit=False) as session:
        live = _live(session, lea_id)
        rows = session.exec(
            select(CredentialSystem, CredentialChecklist)
            .join(
                CredentialChecklist,
                (col(CredentialChecklist.system_id) == CredentialSystem.id)
                & (CredentialChecklist.credential_id == (live.id if live else -1)),
                isouter=True,
            )
            .where(CredentialSystem.lea_id == lea_id, col(CredentialSystem.retired_at).is_(None))
            .order_by(col(CredentialSystem.name))
        ).all()
        session.expunge_all()
    return [ChecklistItem(system, entry) for system, entry in rows]


def mark_updated(engine: Engine, operator: Operator, system_id: int) -> None:
    """The live credential has been entered in this system."""
    with _writing(engine) as session:
        system = _system(session, system_id)
        require(operator, Permission.MANAGE_CREDENTIAL, lea_id=system.lea_id)
        entry = _checklist_entry(session, system)
        entry.updated_at = utcnow()
        entry.updated_by = operator.username
        session.add(entry)
        audit.record(
            session,
            audit.Actor.of(operator),
            "credential.system.updated",
            f"system {system.name}",
            {"credential": entry.credential_id},
            lea_id=system.lea_id,
        )


def system_for_test(engine: Engine, operator: Operator, system_id: int) -> CredentialSystem:
    """The system whose token endpoint a coordinator wants to try (they type the secret)."""
    with Session(engine, expire_on_commit=False) as session:
        system = _system(session, system_id)
        require(operator, Permission.MANAGE_CREDENTIAL, lea_id=system.lea_id)
        if not system.token_url:
            raise InvalidInput(f"{system.name} has no token URL to test")
        session.expunge(system)
        return system


def record_test(
    engine: Engine, operator: Operator, system_id: int, *, ok: bool, message: str
) -> None:
    """Keep the outcome of a test connection on the checklist (the typed secret is not kept)."""
    with _writing(engine) as session:
        system = _system(session, system_id)
        require(operator, Permission.MANAGE_CREDENTIAL, lea_id=system.lea_id)
        entry = _checklist_entry(session, system)
        entry.tested_at = utcnow()
        entry.test_ok = ok
        entry.test_message = message[:300]
        session.add(entry)
        audit.record(
            session,
            audit.Actor.of(operator),
            "credential.system.test",
            f"system {system.name}",
            {"ok": ok, "message": message[:300]},
            lea_id=system.lea_id,
        )


# --- helpers --------------------------------------------------------------------------------


@contextmanager
def _writing(engine: Engine) -> Iterator[Session]:
    """A write transaction; losing a race on the one-live-credential index becomes a sentence."""
    try:
        with session_scope(engine) as session:
            yield session
    except IntegrityError as race:
        raise ConsoleError(
            "Another coordinator changed this LEA's credential at the same moment; "
            "look at the credential screen again before retrying"
        ) from race


def _coordinator_program(operator: Operator) -> Role:
    if operator.role not in COORDINATORS:
        raise PermissionDenied(
            f"Only the LEA CAASPP and LEA ELPAC coordinators manage the credential, not a "
            f"{operator.role.label.lower()}"
        )
    return operator.role


def _other(role: Role) -> Role:
    return Role.LEA_ELPAC if role is Role.LEA_CAASPP else Role.LEA_CAASPP


def _text(value: str, what: str, shortest: int, longest: int) -> str:
    text = plain_text(value, what)
    if len(text) < shortest:
        raise InvalidInput(
            f"Write {what}" + (f" (at least {shortest} characters)" if shortest > 1 else "")
        )
    if len(text) > longest:
        raise InvalidInput(f"Keep {what} under {longest} characters")
    return text


_KEY_LIKE = re.compile(f"[{SECRET_ALPHABET}]{{{MIN_SECRET_LENGTH},64}}")


def _refuse_live_secret(session: Session, lea_id: int, *texts: str | None) -> None:
    """Notes end up in the audit log forever: refuse one that contains the live secret key.

    Only words that look like a key (20+ characters of the key alphabet) are checked, each with
    one argon2 verification, so ordinary notes cost nothing.
    """
    candidates = {w for text in texts if text for w in _KEY_LIKE.findall(text)}
    live = _live(session, lea_id) if candidates else None
    if live is None:
        return
    for word in candidates:
        try:
            _HASHER.verify(live.secret_hash, word)
        except VerificationError:
            continue
        raise InvalidInput(
            "That text contains the live secret key; never write the key in a note "
            "(if it was exposed, use the emergency reset)"
        )


def _lea(session: Session, lea_id: int) -> LEA:
    lea = session.get(LEA, lea_id)
    if lea is None:
        raise NotFound(f"No LEA with id {lea_id}")
    return lea


def _live(session: Session, lea_id: int, *, lock: bool = False) -> Credential | None:
    query = select(Credential).where(
        Credential.lea_id == lea_id, col(Credential.revoked_at).is_(None)
    )
    if lock:
        query = query.with_for_update()
    return session.exec(query).first()


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


def _system(session: Session, system_id: int) -> CredentialSystem:
    system = session.get(CredentialSystem, system_id)
    if system is None or system.retired_at is not None:
        raise NotFound(f"No system #{system_id} in the inventory")
    return system


def _checklist_entry(session: Session, system: CredentialSystem) -> CredentialChecklist:
    live = _live(session, system.lea_id)
    if live is None:
        raise ConsoleError("There is no live credential to give this system yet")
    assert live.id is not None and system.id is not None
    entry = session.get(CredentialChecklist, (live.id, system.id))
    if entry is None:
        entry = CredentialChecklist(credential_id=live.id, system_id=system.id)
    return entry
