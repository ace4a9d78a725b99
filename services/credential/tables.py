"""Tables of the SIS-vendor credential: each credential TOMS issued and a coordinator recorded, each
coordinated reset, the vendor systems that hold the credential and the checklist of systems still to
be given the current one.

The secret key is stored sealed by the vault (``services.core.vault``), because the console uses it
itself (API intake, test connections); never in clear and never only as a hash. A partial unique
index keeps at most one live (not superseded) credential per LEA, so "only the last credentials
generated are valid" (TOMS, elpac.org "Student Score Report Options") holds in the database even
when two coordinators act at the same moment.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Index, text
from sqlmodel import Field, SQLModel

from services.core.columns import utcnow


class Origin(StrEnum):
    TOMS = "toms"  # recorded by a coordinator from what TOMS showed
    LEGACY = "legacy"  # invented by an earlier version of the console: TOMS never accepted it


class Credential(SQLModel, table=True):
    """One username + secret key TOMS issued to an LEA, live until superseded (``revoked_at``)."""

    __tablename__ = "credential"
    __table_args__ = (
        Index(
            "uq_credential_live_per_lea",
            "lea_id",
            unique=True,
            sqlite_where=text("revoked_at IS NULL"),
            postgresql_where=text("revoked_at IS NULL"),
        ),
        Index("ix_credential_lea_created", "lea_id", "created_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    lea_id: int = Field(foreign_key="lea.id")
    origin: str = Field(default=Origin.TOMS, max_length=16)
    username: str = Field(max_length=64)
    secret_sealed: str | None = Field(default=None, max_length=500)  # Fernet token (the vault)
    fingerprint: str | None = Field(default=None, max_length=16)  # legacy rows only
    generated_on: date | None = None  # the day TOMS generated it (the expiry counts from it)
    created_at: datetime = Field(default_factory=utcnow)  # recorded here
    created_by: str = Field(max_length=64)
    expires_at: datetime = Field(index=True)
    verified_at: datetime | None = None  # TOMS issued a token for it
    verified_by: str | None = Field(default=None, max_length=64)
    checked_at: datetime | None = None  # the last attempt to verify it, whatever its outcome
    check_message: str | None = Field(default=None, max_length=300)
    revoked_at: datetime | None = None  # superseded by the next one recorded
    revoked_by: str | None = Field(default=None, max_length=64)
    emergency: bool = False  # recorded after an emergency reset, without coordination


class CredentialReset(SQLModel, table=True):
    """A reset asked for by one program's coordinator, and how the other program was consulted.

    ``acknowledged_*`` is the other coordinator's acknowledgement in the console; ``confirmed_*`` is
    the requester's record of a confirmation obtained elsewhere (phone, meeting); ``self_coordinated``
    says the requester holds both coordinator roles. Any one of them allows the new credential to be
    recorded. An emergency reset is a row with ``emergency_reason`` set, which needs none of them.
    """

    __tablename__ = "credential_reset"
    id: int | None = Field(default=None, primary_key=True)
    lea_id: int = Field(foreign_key="lea.id", index=True)
    replaces_id: int | None = Field(default=None, foreign_key="credential.id")
    requested_by: str = Field(max_length=64)
    requested_role: str = Field(max_length=32)
    requested_at: datetime = Field(default_factory=utcnow)
    reason: str = Field(max_length=1000)
    planned_for: str = Field(default="", max_length=200)
    vendor_contact: str = Field(default="", max_length=200)
    acknowledged_by: str | None = Field(default=None, max_length=64)
    acknowledged_at: datetime | None = None
    confirmed_with: str | None = Field(default=None, max_length=200)
    confirmed_on: str | None = Field(default=None, max_length=100)
    confirmed_by: str | None = Field(default=None, max_length=64)
    confirmed_at: datetime | None = None
    emergency_reason: str | None = Field(default=None, max_length=1000)
    self_coordinated: bool = False
    cancelled_at: datetime | None = None
    cancelled_by: str | None = Field(default=None, max_length=64)
    credential_id: int | None = Field(
        default=None, foreign_key="credential.id"
    )  # the credential recorded through it


class CredentialSystem(SQLModel, table=True):
    """A vendor system that holds the LEA's credential (parent portal, CERS roster sync, ...)."""

    __tablename__ = "credential_system"
    __table_args__ = (
        Index(
            "uq_credential_system_active_name",
            "lea_id",
            "name",
            unique=True,
            sqlite_where=text("retired_at IS NULL"),
            postgresql_where=text("retired_at IS NULL"),
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    lea_id: int = Field(foreign_key="lea.id", index=True)
    name: str = Field(max_length=120)
    token_url: str | None = Field(default=None, max_length=500)
    added_at: datetime = Field(default_factory=utcnow)
    added_by: str = Field(max_length=64)
    retired_at: datetime | None = None


class CredentialChecklist(SQLModel, table=True):
    """Whether one system has been given one credential; open rows are systems still on the old one."""

    __tablename__ = "credential_checklist"
    credential_id: int = Field(foreign_key="credential.id", primary_key=True)
    system_id: int = Field(foreign_key="credential_system.id", primary_key=True, index=True)
    updated_at: datetime | None = None
    updated_by: str | None = Field(default=None, max_length=64)
    tested_at: datetime | None = None
    test_ok: bool | None = None
    test_message: str | None = Field(default=None, max_length=300)
