"""The tables behind portal (option A) readiness: what the operator entered, and the share trend.

The console cannot see whether the SIS vendor's portal is switched on, whether the vendor is on
the state's Vendor Integration list, or when CALPADS addresses were last refreshed: an operator
enters these (seed 001's preparation steps), and the row keeps who said so and when. The share of
families with portal access is sampled at most once a day, so its trend can be shown.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from services.core.columns import utcnow


class PortalSetup(SQLModel, table=True):
    """One LEA's answers to the portal checklist's operator-entered items."""

    __tablename__ = "portal_setup"
    lea_id: int = Field(foreign_key="lea.id", primary_key=True)
    portal_active: bool = False
    vendor_name: str = Field(default="", max_length=200)
    vendor_listed: bool = False  # on the Vendor Integration web page (seed 001)
    calpads_updated_on: date | None = None
    updated_by: str = Field(default="", max_length=64)
    updated_at: datetime = Field(default_factory=utcnow)


class PortalShareSample(SQLModel, table=True):
    """The share of an LEA's families with portal access on one day."""

    __tablename__ = "portal_share_sample"
    __table_args__ = (UniqueConstraint("lea_id", "taken_on", name="uq_portal_share_day"),)
    id: int | None = Field(default=None, primary_key=True)
    lea_id: int = Field(foreign_key="lea.id")
    taken_on: date
    families: int
    portal_families: int
