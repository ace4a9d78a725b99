"""The table of distribution plans: every decision an LEA (or one of its schools) made, kept.

The current plan of a scope is its newest row; older rows are its history. A row records the answers
the advisor saw, the channels recommended and the channels chosen, and the reason when the two differ
(an overrule), so a later reader knows who decided what, when and why.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from services.core.columns import utcnow


class DistributionPlan(SQLModel, table=True):
    """One saved decision: channels (letters "A,B,C" in assignment order) for an LEA or a school."""

    __tablename__ = "distribution_plan"
    __table_args__ = (Index("ix_distribution_plan_scope", "lea_id", "school_id", "id"),)
    id: int | None = Field(default=None, primary_key=True)
    lea_id: int = Field(foreign_key="lea.id")
    school_id: int | None = Field(default=None, foreign_key="school.id")
    school_year: int | None = None  # the LEA's started school year then (services.plan.school_year)
    channels: str = Field(max_length=16)
    recommended: str = Field(max_length=16)
    overruled: bool = False
    reason: str = Field(default="", max_length=500)
    has_sis: bool
    sis_portal: bool
    third_party_portal: bool
    portal_share: float
    families: int = 0
    ssrs: int = 0
    cost_cents: int = 0  # the estimate when decided, for the history; rates may change later
    breakdown: str = Field(default="[]")  # JSON: per channel families, SSRs, cost
    decided_by: str = Field(max_length=64)
    decided_role: str = Field(max_length=32)
    decided_at: datetime = Field(default_factory=utcnow)
