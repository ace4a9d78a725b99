"""A family's own channel, set by a person, overriding the channel the plan would give it.

The plan assigns channels by rule (portal users to A, families with email to B, the rest to paper);
a guardian who calls to say "post it to me, I never read that email" is moved here, with a reason.
The newest row per guardian is in force; ``channel_of`` combines it with the plan for one family.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, Session, SQLModel, col, select

from services import plan
from services.advisor import Option
from services.models import Guardian, utcnow


class FamilyChannel(SQLModel, table=True):
    """One decision to put a family on a channel; the newest per guardian is in force."""

    __tablename__ = "family_channel"
    id: int | None = Field(default=None, primary_key=True)
    guardian_id: int = Field(foreign_key="guardian.id", index=True)
    lea_id: int = Field(foreign_key="lea.id")
    channel: str = Field(max_length=1)  # services.advisor.Option letter
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


def channel_of(session: Session, guardian: Guardian, school_id: int | None) -> Option | None:
    """The family's channel: a person's choice, else the plan in force for the school."""
    assert guardian.id is not None
    override = chosen(session, guardian.id)
    if override is not None:
        return Option(override.channel)
    in_force = plan.current(session.get_bind(), guardian.lea_id, school_id)  # type: ignore[arg-type]
    return in_force.channel_for(guardian) if in_force else None
