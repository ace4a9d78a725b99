"""A family's own channel, set by a person, overriding the channel the plan would give it.

The plan assigns channels by rule (portal users to A, families with email to B, the rest to paper);
a guardian who calls to say "post it to me, I never read that email" is moved here, with a reason.
The newest row per guardian is in force. This module only records the decisions; the rule that
combines them with the plan (a move overrides the plan for that family) is ``services.plan.decisions``'s
``channel_of`` (one family, in Python) and ``channel_filter`` (in SQL), which every batch,
coverage and the help desk use.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Field, Session, SQLModel, col, select

from services.core.channels import Option
from services.core.columns import utcnow
from services.roster.tables import Guardian


class FamilyChannel(SQLModel, table=True):
    """One decision to put a family on a channel; the newest per guardian is in force."""

    __tablename__ = "family_channel"
    id: int | None = Field(default=None, primary_key=True)
    guardian_id: int = Field(foreign_key="guardian.id", index=True)
    lea_id: int = Field(foreign_key="lea.id")
    channel: str = Field(max_length=1)  # services.plan.advisor.Option letter
    previous: str = Field(default="", max_length=1)  # the channel before ("" when none)
    reason: str = Field(max_length=500)
    set_by: str = Field(max_length=64)
    set_at: datetime = Field(default_factory=utcnow)


def chosen(session: Session, guardian_id: int) -> FamilyChannel | None:
    """The decision in force for a family, if a person made one."""
    return session.exec(
        select(FamilyChannel)
        .where(col(FamilyChannel.guardian_id) == guardian_id)
        .order_by(col(FamilyChannel.id).desc())
        .limit(1)
    ).first()


def chosen_channel() -> Any:
    """SQL, correlated on ``Guardian``: the letter of the decision in force, NULL without one."""
    return (
        select(FamilyChannel.channel)
        .where(col(FamilyChannel.guardian_id) == col(Guardian.id))
        .order_by(col(FamilyChannel.id).desc())
        .limit(1)
        .correlate(Guardian)
        .scalar_subquery()
    )


def anyone_moved_to(session: Session, lea_id: int, channel: Option) -> bool:
    """Whether a person put some family of the LEA on ``channel`` (the decision still in force)."""
    newest = select(Guardian.id).where(
        col(Guardian.lea_id) == lea_id, chosen_channel() == channel.value
    )
    return session.exec(newest.limit(1)).first() is not None
