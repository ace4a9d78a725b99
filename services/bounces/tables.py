"""Every message read from the bounce mailbox, once: what it was and which delivery it was about.

The row is keyed by the SHA-256 of the message's bytes and written in the same transaction as the
change it causes (an item ``bounced``), before the message is moved out of the mailbox: a worker
stopped between the two reads the message again next time, finds the row and only moves it.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Column, Index
from sqlmodel import Field, SQLModel

from services.core.columns import enum_column, utcnow


class Outcome(enum.StrEnum):
    """What reading a message did."""

    BOUNCED = "bounced"  # a hard bounce: the family's item is now bounced
    SOFT = "soft"  # the server is still trying: recorded, nothing changes yet
    STALE = "stale"  # about a message the family was sent again since (or a decided item)
    UNMATCHED = "unmatched"  # a bounce of no message the console sent
    AUTO_REPLY = "auto_reply"  # an out-of-office or other automatic reply
    OTHER = "other"  # not a bounce at all


class MailboxMessage(SQLModel, table=True):
    """One message of the bounce mailbox, as read."""

    __tablename__ = "bounce_message"
    __table_args__ = (
        Index("ix_bounce_message_batch_outcome", "batch_id", "outcome"),
        Index("ix_bounce_message_guardian", "guardian_id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    digest: str = Field(max_length=64, unique=True)  # SHA-256 of the raw message
    outcome: Outcome = Field(
        sa_column=Column(enum_column(Outcome, "bounce_outcome"), nullable=False)
    )
    item_id: int | None = Field(default=None, foreign_key="delivery_item.id")
    batch_id: int | None = Field(default=None, foreign_key="delivery_batch.id")
    guardian_id: int | None = Field(default=None, foreign_key="guardian.id")
    step: str | None = Field(default=None, max_length=10)  # document, password or notice
    matched_by: str | None = Field(default=None, max_length=12)  # verp or message-id
    address: str | None = Field(default=None, max_length=254)  # the address that failed
    reporter: str | None = Field(default=None, max_length=254)  # who sent the report
    status: str | None = Field(default=None, max_length=12)  # "5.1.1" or "550"
    reason: str | None = Field(default=None, max_length=300)
    read_at: datetime = Field(default_factory=utcnow)


class MailboxState(SQLModel, table=True):
    """The last read of a bounce mailbox, for the progress screen and the worker's log."""

    __tablename__ = "bounce_mailbox"
    mailbox: str = Field(primary_key=True, max_length=300)  # user@host:port/folder
    last_read_at: datetime | None = None
    down_since: datetime | None = None  # unreachable since then (None: read fine last time)
    error: str | None = Field(default=None, max_length=500)
