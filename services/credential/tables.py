"""Tables of the SIS-vendor credential: each credential issued, each coordinated reset, the vendor
systems that hold the credential and the checklist of systems still to be given the current one.

The secret key itself is never stored: only its argon2id hash and a short fingerprint derived from
that hash. A partial unique index keeps at most one live (unrevoked) credential per LEA, so "only the
last one is valid" holds in the database even when two coordinators act at the same moment.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, text
from sqlmodel import Field, SQLModel

from services.core.columns import utcnow


class Credential(SQLModel, table=True):
    """One username + secret key issued to an LEA's SIS vendors, live until revoked or expired."""

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
    username: str = Field(max_length=64)
    secret_hash: str = Field(max_length=200)  # argon2id encoded hash, never the secret
    fingerprint: str = Field(max_length=16)
    created_at: datetime = Field(default_factory=utcnow)
    created_by: str = Field(max_length=64)
    expires_at: datetime = Field(index=True)
    revoked_at: datetime | None = None
    revoked_by: str | None = Field(default=None, max_length=64)
    emergency: bool = False  # issued by an emergency override, without coordination


class CredentialReset(SQLModel, table=True):
    """A reset asked for by one program's coordinator, and how the other program was consulted.

    ``acknowledged_*`` is the other coordinator's acknowledgement in the console; ``confirmed_*`` is
    the requester's record of a confirmation obtained elsewhere (phone, meeting). Either one allows
    the reset. An emergency override is a row with ``emergency_reason`` set, created at reset time.
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
    cancelled_at: datetime | None = None
    cancelled_by: str | None = Field(default=None, max_length=64)
    credential_id: int | None = Field(default=None, foreign_key="credential.id")  # issued by it


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
