"""The audit log's tables: hash-chained events and the chain's head."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from services.core.columns import utcnow


class AuditEvent(SQLModel, table=True):
    """One state change, hash-chained to the one before it so edits and deletions show."""

    __tablename__ = "audit_event"
    id: int | None = Field(default=None, primary_key=True)
    seq: int = Field(unique=True, index=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    operator: str = Field(max_length=64, index=True)
    role: str = Field(max_length=32)
    lea_id: int | None = Field(default=None, index=True)
    action: str = Field(max_length=64, index=True)
    target: str = Field(default="", max_length=200, index=True)
    detail: str = Field(default="{}")  # canonical JSON; never a secret, students by SSID only
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class AuditHead(SQLModel, table=True):
    """The single row that holds the chain's tip; updating it first serialises audit writers."""

    __tablename__ = "audit_head"
    id: int = Field(default=1, primary_key=True)
    seq: int = 0
    hash: str = Field(default="0" * 64, max_length=64)
