"""The LEA's SIS-vendor credential as TOMS issued it: record, verify, reveal, status and history.

The credential is generated in TOMS by the LEA CAASPP or ELPAC coordinator, never by this console;
it expires a year after it was generated, and only the last one generated is valid (elpac.org,
"Student Score Report Options"; /work/wt/FACTS.md). The console is the LEA's memory of it:

- a coordinator records the username and secret key TOMS showed, and the day it was generated;
  the console asks TOMS's token endpoint for a token with it first: refused means not recorded,
  unreachable means recorded *unverified*, verified later (``verify``, and the scheduler retries);
- the secret is sealed by the vault (``services.core.vault``) because the console uses it itself
  (API intake, test connections); it leaves this module only in ``Revealed`` (a coordinator asked,
  audited) and ``api_credential`` (intake), never in a log, an audit row or a history entry;
- replacing a live credential needs a coordinated reset (``services.credential.reset``);
- every change writes an audit event (never the secret) in the same transaction.

Credentials made by earlier versions of the console (origin ``legacy``) were never TOMS's: they stay
in the history, superseded, and the dashboard asks for the TOMS one.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from services.access.permissions import Permission, require
from services.access.tables import Operator, Role
from services.audit import log as audit
from services.audit.tables import AuditEvent
from services.core.columns import utcnow
from services.core.db import session_scope
from services.core.errors import ConsoleError, InvalidInput, NotFound, PermissionDenied
from services.core.settings import Settings
from services.core.validation import plain_text
from services.core.vault import Vault
from services.credential import check
from services.credential.tables import (
    Credential,
    CredentialChecklist,
    CredentialReset,
    CredentialSystem,
    Origin,
)
from services.roster.tables import LEA

log = logging.getLogger(__name__)

WARNING_DAYS = 14
"""Expiring from two weeks before expiry, when TOMS sends its first reminder (seed 001)."""
UNVERIFIED_DAYS = 7
"""A credential TOMS has not confirmed for a week is a reminder of its own."""
MAX_SECRET_LENGTH = 200
COORDINATORS = (Role.LEA_CAASPP, Role.LEA_ELPAC)
SCHEDULER = audit.Actor("scheduler", "system")
LEGACY_LABEL = "made by an earlier version: not a TOMS credential"


class CoordinationRequired(PermissionDenied):
    """A live credential would be replaced before the other program's coordinator was consulted."""


class TomsRefused(InvalidInput):
    """TOMS answered that the username and secret key are not valid; nothing was recorded."""


class CredentialStatus(StrEnum):
    NONE = "not recorded"
    ACTIVE = "active"
    EXPIRING = "expiring"
    EXPIRED = "expired"
    SUPERSEDED = "superseded"
    LEGACY = "earlier version"


@dataclass(frozen=True)
class CredentialPolicy:
    """How long a credential lives; the ``[credential]`` table of the config can change it."""

    lifetime_days: int | None = None  # None: one calendar year after generation, as TOMS does

    def __post_init__(self) -> None:
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

    def expiry(self, generated: datetime) -> datetime:
        if self.lifetime_days is not None:
            return generated + timedelta(days=self.lifetime_days)
        try:
            return generated.replace(year=generated.year + 1)
        except ValueError:  # 29 February
            return generated.replace(year=generated.year + 1, day=28)


@dataclass(frozen=True)
class Recorded:
    """What recording a credential did; ``message`` says it plainly (verified or not, and why)."""

    credential_id: int
    username: str
    expires_at: datetime
    verified: bool
    message: str


@dataclass(frozen=True)
class Revealed:
    """The live secret, for the coordinator who asked (audited); show it, then let it go."""

    credential_id: int
    username: str
    secret: str = field(repr=False)


@dataclass(frozen=True)
class StatusView:
    """What the dashboard, banners and reminders need to know; nothing secret."""

    lea_id: int
    status: CredentialStatus
    days_left: int | None = None
    expires_at: datetime | None = None
    credential_id: int | None = None
    username: str | None = None
    generated_on: date | None = None
    created_at: datetime | None = None
    created_by: str | None = None
    verified_at: datetime | None = None
    check_message: str | None = None
    emergency: bool = False
    emergency_acknowledged: bool = False
    systems_pending: int = 0
    legacy: bool = False  # an earlier version's invented credential is all there is

    @property
    def verified(self) -> bool:
        return self.verified_at is not None

    @property
    def needs_attention(self) -> bool:
        return (
            self.status in (CredentialStatus.EXPIRING, CredentialStatus.EXPIRED)
            or self.legacy
            or (self.emergency and not self.emergency_acknowledged)
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
            if self.legacy:
                return (
                    "The credential on record was made by an earlier version of this console and "
                    "TOMS never accepted it: record the one TOMS issued"
                )
            return "No TOMS credential recorded yet"
        date_text = f"{self.expires_at:%Y-%m-%d}" if self.expires_at else "?"
        if self.status is CredentialStatus.EXPIRED:
            text = (
                f"TOMS credential EXPIRED on {date_text} ({self.countdown}): regenerate it in "
                "TOMS, then record it here"
            )
        else:
            text = f"TOMS credential {self.status.value}: {self.countdown} (expires {date_text})"
        if not self.verified:
            text += " — not verified with TOMS yet"
        if self.emergency:
            text += " — EMERGENCY reset" + (
                "" if self.emergency_acknowledged else ", unacknowledged"
            )
        return text


@dataclass(frozen=True)
class HistoryEntry:
    """One credential of an LEA's history: dates and names; the username for coordinators only."""

    credential_id: int
    status: CredentialStatus
    username: str | None
    generated_on: date | None
    expires_at: datetime
    recorded_at: datetime
    recorded_by: str
    verified_at: datetime | None
    verified_by: str | None
    superseded_at: datetime | None
    superseded_by: str | None
    how: str


@dataclass(frozen=True)
class HistoryEvent:
    """Who did what to the credential, and when (never what the secret was)."""

    at: datetime
    operator: str
    action: str
    target: str


@dataclass(frozen=True)
class CurrentCredential:
    """A live TOMS credential as the reminder scheduler sees it."""

    lea_id: int
    credential_id: int
    expires_at: datetime
    created_at: datetime
    verified: bool


def _days(days: int | None) -> str:
    return "?" if days is None else f"{days} day" + ("" if days == 1 else "s")


def classify(
    credential: Credential, now: datetime, warning_days: int = WARNING_DAYS
) -> tuple[CredentialStatus, int | None]:
    """Status and whole days left (rounded up, so an hour left is "1 day"; 0 or less when expired)."""
    if credential.origin == Origin.LEGACY:
        return CredentialStatus.LEGACY, None
    if credential.revoked_at is not None:
        return CredentialStatus.SUPERSEDED, None
    days_left = math.ceil((credential.expires_at - now) / timedelta(days=1))
    if now >= credential.expires_at:
        return CredentialStatus.EXPIRED, days_left
    if days_left <= warning_days:
        return CredentialStatus.EXPIRING, days_left
    return CredentialStatus.ACTIVE, days_left


# --- record and verify ----------------------------------------------------------------------


def record(
    engine: Engine,
    operator: Operator,
    lea_id: int,
    vault: Vault,
    token_url: str | None,
    *,
    username: str,
    secret: str,
    generated_on: date | None = None,
    reset_id: int | None = None,
    policy: CredentialPolicy | None = None,
    now: datetime | None = None,
) -> Recorded:
    """Record the credential TOMS showed, after asking TOMS's token endpoint whether it is valid.

    Refused by TOMS: nothing is recorded (``TomsRefused``, with TOMS's answer). TOMS unreachable or
    not configured: recorded unverified, and the result says so. A live credential is replaced only
    through a coordinated reset (``reset_id``), and is then marked superseded.
    """
    require(operator, Permission.MANAGE_CREDENTIAL, lea_id=lea_id)
    coordinator_program(operator)
    username = plain_field(username, "the username TOMS showed", 1, 64)
    secret = _secret(secret)
    policy = policy or CredentialPolicy()
    now = now or utcnow()
    generated_on = generated_on or now.date()
    if generated_on > now.date():
        raise InvalidInput(
            f"The credential cannot have been generated in the future ({generated_on})"
        )
    with Session(engine) as session:  # refused before TOMS is asked; checked again below
        _permitted_reset(session, live_credential(session, lea_id), lea_id, reset_id, now)
    result = _ask_toms(token_url, username, secret)
    if result is not None and result.refused:
        raise TomsRefused(f"TOMS refused this username and secret key: {result.message}")
    verified = result is not None and result.ok
    sealed = vault.seal(secret)
    generated = datetime.combine(generated_on, time(12), tzinfo=now.tzinfo)
    with writing(engine) as session:
        lea = lea_row(session, lea_id)
        live = live_credential(session, lea_id, lock=True)
        request = _permitted_reset(session, live, lea_id, reset_id, now)
        if live is not None:
            live.revoked_at = now
            live.revoked_by = operator.username
            session.add(live)
            session.flush()  # the supersession must land before the new live row (unique index)
        credential = Credential(
            lea_id=lea_id,
            origin=Origin.TOMS,
            username=username,
            secret_sealed=sealed,
            generated_on=generated_on,
            created_at=now,
            created_by=operator.username,
            expires_at=policy.expiry(generated),
            verified_at=now if verified else None,
            verified_by=operator.username if verified else None,
            checked_at=now if result is not None else None,
            check_message=_check_text(result),
            emergency=bool(request and request.emergency_reason),
        )
        session.add(credential)
        session.flush()
        assert credential.id is not None
        open_checklist(session, credential)
        if request is not None:
            request.credential_id = credential.id
            session.add(request)
        audit.record(
            session,
            audit.Actor.of(operator),
            "credential.record",
            f"credential #{credential.id}",
            {
                "username": username,
                "generated_on": generated_on.isoformat(),
                "expires_at": credential.expires_at,
                "verified": verified,
                "check": credential.check_message,
                "supersedes": live.id if live else None,
                "reset": request.id if request else None,
            },
            lea_id=lea_id,
        )
    log.info(
        "credential.record: LEA %s credential #%s (%s, supersedes %s)",
        lea.cds_code,
        credential.id,
        "verified" if verified else "unverified",
        live.id if live else "none",
    )
    if verified:
        message = "Recorded and verified: TOMS issued a token for this credential"
    elif result is None:
        message = (
            "Recorded UNVERIFIED: no TOMS address is configured ([toms] url), so it could not be "
            "checked; set it, then verify"
        )
    else:
        message = (
            f"Recorded UNVERIFIED: TOMS could not confirm it now ({result.message}). It is "
            "verified later: `ssr-console credential verify`, the Credential screen (V), or the "
            "scheduler"
        )
    return Recorded(credential.id, username, credential.expires_at, verified, message)


def verify(
    engine: Engine,
    operator: Operator | None,
    lea_id: int,
    vault: Vault,
    token_url: str | None,
    *,
    now: datetime | None = None,
) -> check.ConnectionResult:
    """Ask TOMS again about the live credential; keep the outcome (``operator`` None: scheduler)."""
    if operator is not None:
        require(operator, Permission.MANAGE_CREDENTIAL, lea_id=lea_id)
    with Session(engine) as session:
        live = live_credential(session, lea_id)
        if live is None or live.secret_sealed is None:
            raise ConsoleError("There is no TOMS credential recorded to verify")
        credential_id, username, sealed = live.id, live.username, live.secret_sealed
    result = _ask_toms(token_url, username, vault.open(sealed))
    if result is None:
        raise InvalidInput("No TOMS address is configured ([toms] url): nothing to verify against")
    now = now or utcnow()
    actor = audit.Actor.of(operator) if operator is not None else SCHEDULER
    with writing(engine) as session:
        credential = session.get(Credential, credential_id)
        if credential is None or credential.revoked_at is not None:
            raise ConsoleError("The credential was replaced meanwhile; look at it again")
        credential.checked_at = now
        credential.check_message = _check_text(result)
        if result.ok and credential.verified_at is None:
            credential.verified_at = now
            credential.verified_by = actor.name
        session.add(credential)
        audit.record(
            session,
            actor,
            "credential.verify",
            f"credential #{credential_id}",
            {"ok": result.ok, "reached": result.reached, "message": credential.check_message},
            lea_id=lea_id,
        )
    return result


def verify_unverified(
    engine: Engine, vault: Vault, token_url: str | None, *, now: datetime | None = None
) -> int:
    """The scheduler's retry: verify every live credential TOMS has not confirmed; how many now are."""
    if token_url is None:
        return 0
    verified = 0
    for current in current_credentials(engine):
        if current.verified:
            continue
        try:
            verified += verify(engine, None, current.lea_id, vault, token_url, now=now).ok
        except ConsoleError as error:  # replaced meanwhile, or a vault that cannot open it
            log.warning("credential #%s not verified: %s", current.credential_id, error)
    return verified


def _ask_toms(token_url: str | None, username: str, secret: str) -> check.ConnectionResult | None:
    return check.request_token(token_url, username, secret) if token_url else None


def _check_text(result: check.ConnectionResult | None) -> str | None:
    return None if result is None else ("TOMS: " + result.message)[:300]


def _secret(secret: str) -> str:
    """The secret exactly as TOMS showed it: no spaces or control characters, at most 200."""
    text = secret.strip()
    if not text:
        raise InvalidInput("Enter the secret key TOMS showed")
    if len(text) > MAX_SECRET_LENGTH or any(c.isspace() or not c.isprintable() for c in text):
        raise InvalidInput(
            "A TOMS secret key is one word of printable characters; check what was pasted"
        )
    return text


def _permitted_reset(
    session: Session, live: Credential | None, lea_id: int, reset_id: int | None, now: datetime
) -> CredentialReset | None:
    """The reset request that allows replacing ``live``; none is needed when nothing valid is live."""
    if reset_id is None:
        if live is not None and now < live.expires_at:
            raise CoordinationRequired(
                f"A valid credential ({live.username}, expires {live.expires_at:%Y-%m-%d}) is "
                "recorded; replacing it is a coordinated reset (key R on the Credential screen), "
                "or an emergency reset"
            )
        return None
    request = session.get(CredentialReset, reset_id)
    if request is None or request.lea_id != lea_id:
        raise NotFound(f"No reset request #{reset_id} for this LEA")
    if request.cancelled_at is not None or request.credential_id is not None:
        raise ConsoleError(f"Reset request #{reset_id} is closed; write a new coordination note")
    if not coordinated(request):
        raise CoordinationRequired(
            f"The other program's coordinator has not acknowledged reset #{reset_id} and no "
            "agreement reached elsewhere is recorded (one reset cuts off both programs)"
        )
    if live is not None and request.replaces_id != live.id:
        raise ConsoleError(
            f"Reset request #{reset_id} was written for a credential that has since been "
            "replaced; write a new coordination note"
        )
    return request


def coordinated(request: CredentialReset) -> bool:
    """Whether a reset may go ahead: acknowledged, agreed elsewhere, self-coordinated or emergency."""
    return bool(
        request.acknowledged_at
        or request.confirmed_at
        or request.self_coordinated
        or request.emergency_reason
    )


# --- what leaves sealed storage ---------------------------------------------------------------


def reveal(engine: Engine, operator: Operator, lea_id: int, vault: Vault) -> Revealed:
    """The live secret for a coordinator who asked to see or copy it; audited, never logged."""
    require(operator, Permission.MANAGE_CREDENTIAL, lea_id=lea_id)
    coordinator_program(operator)
    with writing(engine) as session:
        live = live_credential(session, lea_id)
        if live is None or live.secret_sealed is None:
            raise ConsoleError("There is no TOMS credential recorded to reveal")
        assert live.id is not None
        audit.record(
            session,
            audit.Actor.of(operator),
            "credential.reveal",
            f"credential #{live.id}",
            lea_id=lea_id,
        )
        return Revealed(live.id, live.username, vault.open(live.secret_sealed))


def api_credential(engine: Engine, lea_id: int, vault: Vault) -> tuple[str, str]:
    """The recorded username and secret, for the console's own API intake."""
    with Session(engine) as session:
        live = live_credential(session, lea_id)
        if live is None or live.secret_sealed is None:
            raise ConsoleError(
                "No TOMS credential is recorded for this LEA: `ssr-console credential record` "
                "(or give --username and the secret)"
            )
        return live.username, vault.open(live.secret_sealed)


def lea_with_credential(engine: Engine, cds_code: str | None) -> int:
    """The LEA whose recorded credential API intake uses: the one named, or the only one live."""
    with Session(engine) as session:
        query = select(Credential.lea_id).where(
            col(Credential.revoked_at).is_(None), Credential.origin == Origin.TOMS
        )
        if cds_code:
            query = query.join(LEA, col(LEA.id) == Credential.lea_id).where(
                LEA.cds_code == cds_code
            )
        found = session.exec(query).all()
    if len(found) != 1:
        raise ConsoleError(
            "No TOMS credential is recorded for that LEA"
            if not found
            else "Several LEAs have a credential recorded: name one with --lea"
        )
    return found[0]


# --- status, history, and what the scheduler needs ------------------------------------------


def status(engine: Engine, lea_id: int, *, now: datetime | None = None) -> StatusView:
    """The LEA's credential status for the dashboard and banners (no secret, no permission)."""
    now = now or utcnow()
    with Session(engine) as session:
        latest = session.exec(
            select(Credential)
            .where(Credential.lea_id == lea_id, Credential.origin == Origin.TOMS)
            .order_by(col(Credential.created_at).desc(), col(Credential.id).desc())
            .limit(1)
        ).first()
        if latest is None:
            legacy = session.exec(
                select(Credential.id).where(
                    Credential.lea_id == lea_id, Credential.origin == Origin.LEGACY
                )
            ).first()
            return StatusView(lea_id, CredentialStatus.NONE, legacy=legacy is not None)
        state, days_left = classify(latest, now)
        emergency_ack = False
        if latest.emergency:
            emergency_ack = (
                session.exec(
                    select(CredentialReset.acknowledged_at).where(
                        CredentialReset.credential_id == latest.id,
                        col(CredentialReset.acknowledged_at).is_not(None),
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
            generated_on=latest.generated_on,
            created_at=latest.created_at,
            created_by=latest.created_by,
            verified_at=latest.verified_at,
            check_message=latest.check_message,
            emergency=latest.emergency,
            emergency_acknowledged=emergency_ack,
            systems_pending=int(pending),
        )


def banner(engine: Engine, lea_id: int, *, now: datetime | None = None) -> tuple[str, str] | None:
    """The (level, text) standing over every screen: from 14 days before expiry, once expired,
    while only an earlier version's credential exists, and after an emergency reset until the
    other coordinator acknowledges it."""
    state = status(engine, lea_id, now=now)
    if not state.needs_attention:
        return None
    loud = state.status is CredentialStatus.EXPIRED or (
        state.emergency and not state.emergency_acknowledged
    )
    return ("error" if loud else "warning", state.summary + " (key c)")


def dashboard_text(engine: Engine, operator: Operator, *, now: datetime | None = None) -> str:
    """The dashboard's credential panel: status, countdown, expiry, verification, checklist."""
    require(operator, Permission.VIEW_CREDENTIAL_STATUS)
    state = status(engine, operator.lea_id, now=now)
    if state.status is CredentialStatus.NONE:
        if state.legacy:
            return (
                "The key on record was made by an\nearlier version, not by TOMS.\n"
                "Record the TOMS credential (key c)."
            )
        return "No TOMS credential recorded.\nLEA coordinators record it (key c)."
    lines = [
        f"{state.status.value.upper()} · {state.countdown}",
        f"Expires {state.expires_at:%Y-%m-%d}" if state.expires_at else "",
        "Verified with TOMS" if state.verified else "NOT verified with TOMS yet",
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
    """Every credential of the LEA, newest first: who recorded, verified and replaced it, when.

    No secret and no hash to anyone; the username to the LEA coordinators only, dates and names
    to everyone else who may see the credential's status."""
    require(operator, Permission.VIEW_CREDENTIAL_STATUS, lea_id=lea_id)
    coordinator = operator.role in COORDINATORS
    now = now or utcnow()
    with Session(engine) as session:
        rows = session.exec(
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
        entries = []
        for c in rows:
            assert c.id is not None
            entries.append(
                HistoryEntry(
                    credential_id=c.id,
                    status=classify(c, now)[0],
                    username=c.username if coordinator else None,
                    generated_on=c.generated_on,
                    expires_at=c.expires_at,
                    recorded_at=c.created_at,
                    recorded_by=c.created_by,
                    verified_at=c.verified_at,
                    verified_by=c.verified_by,
                    superseded_at=c.revoked_at,
                    superseded_by=c.revoked_by,
                    how=_how(c, resets.get(c.id)),
                )
            )
    return entries


def history_events(
    engine: Engine, operator: Operator, lea_id: int, *, limit: int = 200
) -> list[HistoryEvent]:
    """The credential's audit trail for the LEA, newest first: when, who, what (no details)."""
    require(operator, Permission.VIEW_CREDENTIAL_STATUS, lea_id=lea_id)
    with Session(engine) as session:
        rows = session.exec(
            select(AuditEvent.at, AuditEvent.operator, AuditEvent.action, AuditEvent.target)
            .where(AuditEvent.lea_id == lea_id, col(AuditEvent.action).startswith("credential."))
            .order_by(col(AuditEvent.seq).desc())
            .limit(limit)
        ).all()
    return [
        HistoryEvent(at, who, action.removeprefix("credential."), t) for at, who, action, t in rows
    ]


def _how(credential: Credential, reset: CredentialReset | None) -> str:
    if credential.origin == Origin.LEGACY:
        return LEGACY_LABEL
    if reset is None:
        return "recorded"
    if reset.emergency_reason:
        ack = f", ack {reset.acknowledged_by}" if reset.acknowledged_by else ", not acknowledged"
        return f"EMERGENCY reset #{reset.id}{ack}"
    if reset.self_coordinated:
        return f"reset #{reset.id}, self-coordinated (one person holds both roles)"
    if reset.acknowledged_by:
        return f"reset #{reset.id}, acknowledged by {reset.acknowledged_by}"
    return f"reset #{reset.id}, agreed with {reset.confirmed_with}"


def current_credentials(engine: Engine, *, batch: int = 1000) -> Iterator[CurrentCredential]:
    """Every LEA's live TOMS credential with its expiry, in LEA order, a page at a time."""
    after = 0
    while True:
        with Session(engine) as session:
            rows = session.execute(
                sa.select(
                    col(Credential.lea_id),
                    col(Credential.id),
                    col(Credential.expires_at),
                    col(Credential.created_at),
                    col(Credential.verified_at),
                )
                .where(
                    col(Credential.revoked_at).is_(None),
                    col(Credential.origin) == Origin.TOMS,
                    col(Credential.lea_id) > after,
                )
                .order_by(col(Credential.lea_id))
                .limit(batch)
            ).all()
        if not rows:
            return
        for lea_id, credential_id, expires_at, created_at, verified_at in rows:
            assert credential_id is not None
            yield CurrentCredential(
                lea_id, credential_id, expires_at, created_at, verified_at is not None
            )
        after = rows[-1][0]


def is_current(engine: Engine, credential_id: int) -> bool:
    """False once the credential was superseded: its expiry notices are then moot."""
    with Session(engine) as session:
        credential = session.get(Credential, credential_id)
        return credential is not None and credential.revoked_at is None


def current_among(engine: Engine, credential_ids: Iterable[int]) -> set[int]:
    """Those of ``credential_ids`` not yet superseded, in one query (the scheduler checks a batch
    of expiry notices just before it sends them)."""
    wanted = list(credential_ids)
    if not wanted:
        return set()
    with Session(engine) as session:
        rows = session.execute(
            sa.select(col(Credential.id)).where(
                col(Credential.id).in_(wanted), col(Credential.revoked_at).is_(None)
            )
        ).all()
    return {int(credential_id) for (credential_id,) in rows}


# --- helpers shared by the credential modules -------------------------------------------------


@contextmanager
def writing(engine: Engine) -> Iterator[Session]:
    """A write transaction; losing a race on the one-live-credential index becomes a sentence."""
    try:
        with session_scope(engine) as session:
            yield session
    except IntegrityError as race:
        raise ConsoleError(
            "Another coordinator changed this LEA's credential at the same moment; "
            "look at the credential screen again before retrying"
        ) from race


def coordinator_program(operator: Operator) -> Role:
    if operator.role not in COORDINATORS:
        raise PermissionDenied(
            f"Only the LEA CAASPP and LEA ELPAC coordinators manage the credential, not a "
            f"{operator.role.label.lower()}"
        )
    return operator.role


def plain_field(value: str, what: str, shortest: int, longest: int) -> str:
    text = plain_text(value, what)
    if len(text) < shortest:
        raise InvalidInput(
            f"Write {what}" + (f" (at least {shortest} characters)" if shortest > 1 else "")
        )
    if len(text) > longest:
        raise InvalidInput(f"Keep {what} under {longest} characters")
    return text


def refuse_live_secret(
    session: Session, lea_id: int, vault: Vault | None, *texts: str | None
) -> None:
    """Notes end up in the audit log forever: refuse one that contains the live secret key."""
    live = live_credential(session, lea_id) if vault is not None else None
    if live is None or live.secret_sealed is None or vault is None:
        return
    secret = vault.open(live.secret_sealed)
    if any(text and secret in text for text in texts):
        raise InvalidInput(
            "That text contains the live secret key; never write the key in a note "
            "(if it was exposed, use the emergency reset)"
        )


def lea_row(session: Session, lea_id: int) -> LEA:
    lea = session.get(LEA, lea_id)
    if lea is None:
        raise NotFound(f"No LEA with id {lea_id}")
    return lea


def live_credential(session: Session, lea_id: int, *, lock: bool = False) -> Credential | None:
    query = select(Credential).where(
        Credential.lea_id == lea_id, col(Credential.revoked_at).is_(None)
    )
    if lock:
        query = query.with_for_update()
    return session.exec(query).first()


def open_checklist(session: Session, credential: Credential) -> None:
    """Every active system of the LEA must now be given this credential."""
    for system in session.exec(
        select(CredentialSystem).where(
            CredentialSystem.lea_id == credential.lea_id, col(CredentialSystem.retired_at).is_(None)
        )
    ):
        assert system.id is not None and credential.id is not None
        session.add(CredentialChecklist(credential_id=credential.id, system_id=system.id))
