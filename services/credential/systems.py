"""The vendor systems that hold the LEA's credential, and the checklist of those still to be given
the current one, each with a test connection against its own token endpoint.

Only the last credential generated in TOMS is valid, so after a reset it must be re-entered in every
system that holds it (the SIS parent portal, the SIS-to-CERS roster sync, ...; DESIGN.md). A test
connection asks the system's own endpoint for a token with the recorded credential, opened from the
vault for that one request; the outcome (never the secret) is kept on the checklist and audited.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from services.access.permissions import Permission, require
from services.access.tables import Operator
from services.audit import log as audit
from services.core.columns import utcnow
from services.core.errors import ConsoleError, InvalidInput, NotFound
from services.core.vault import Vault
from services.credential import check
from services.credential.lifecycle import (
    lea_row,
    live_credential,
    plain_field,
    refuse_live_secret,
    writing,
)
from services.credential.tables import CredentialChecklist, CredentialSystem


@dataclass(frozen=True)
class ChecklistItem:
    """A vendor system and whether it has been given the current credential."""

    system: CredentialSystem
    entry: CredentialChecklist | None

    @property
    def updated(self) -> bool:
        return self.entry is not None and self.entry.updated_at is not None


def add_system(
    engine: Engine,
    operator: Operator,
    lea_id: int,
    name: str,
    token_url: str | None = None,
    *,
    vault: Vault | None = None,
) -> CredentialSystem:
    """Record a system that holds the credential; it must be given the live one (checklist)."""
    require(operator, Permission.MANAGE_CREDENTIAL, lea_id=lea_id)
    name = plain_field(name, "the system's name", 2, 120)
    url = check.validate_token_url(token_url) if token_url and token_url.strip() else None
    with writing(engine) as session:
        lea_row(session, lea_id)
        refuse_live_secret(session, lea_id, vault, name, url)
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
        live = live_credential(session, lea_id)
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
    with writing(engine) as session:
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
        live = live_credential(session, lea_id)
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
    with writing(engine) as session:
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


def test_system(
    engine: Engine, operator: Operator, system_id: int, vault: Vault
) -> check.ConnectionResult:
    """Ask the system's own token endpoint for a token with the recorded credential; keep the
    outcome on the checklist."""
    with Session(engine) as session:
        system = _system(session, system_id)
        require(operator, Permission.MANAGE_CREDENTIAL, lea_id=system.lea_id)
        if not system.token_url:
            raise InvalidInput(f"{system.name} has no token URL to test")
        live = live_credential(session, system.lea_id)
        if live is None or live.secret_sealed is None:
            raise ConsoleError("There is no TOMS credential recorded to test with")
        url, username, sealed = system.token_url, live.username, live.secret_sealed
    result = check.request_token(url, username, vault.open(sealed))
    with writing(engine) as session:
        system = _system(session, system_id)
        entry = _checklist_entry(session, system)
        entry.tested_at = utcnow()
        entry.test_ok = result.ok
        entry.test_message = result.message[:300]
        session.add(entry)
        audit.record(
            session,
            audit.Actor.of(operator),
            "credential.system.test",
            f"system {system.name}",
            {"ok": result.ok, "message": result.message[:300]},
            lea_id=system.lea_id,
        )
    return result


def _system(session: Session, system_id: int) -> CredentialSystem:
    system = session.get(CredentialSystem, system_id)
    if system is None or system.retired_at is not None:
        raise NotFound(f"No system #{system_id} in the inventory")
    return system


def _checklist_entry(session: Session, system: CredentialSystem) -> CredentialChecklist:
    live = live_credential(session, system.lea_id)
    if live is None:
        raise ConsoleError("There is no live credential to give this system yet")
    assert live.id is not None and system.id is not None
    entry = session.get(CredentialChecklist, (live.id, system.id))
    if entry is None:
        entry = CredentialChecklist(credential_id=live.id, system_id=system.id)
    return entry
