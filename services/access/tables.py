"""The people who sign in: their roles and operator rows."""

from __future__ import annotations

import enum

from sqlalchemy import Column
from sqlmodel import Field, SQLModel

from services.core.columns import enum_column


class Role(enum.StrEnum):
    """The five kinds of people who use the console (see DESIGN.md)."""

    LEA_CAASPP = "lea_caaspp"
    LEA_ELPAC = "lea_elpac"
    SITE = "site"
    TECH = "tech"
    HELPDESK = "helpdesk"

    @property
    def label(self) -> str:
        return ROLE_LABELS[self]


ROLE_LABELS = {
    Role.LEA_CAASPP: "LEA CAASPP coordinator",
    Role.LEA_ELPAC: "LEA ELPAC coordinator",
    Role.SITE: "Site coordinator",
    Role.TECH: "Technology coordinator",
    Role.HELPDESK: "Help desk",
}


class Operator(SQLModel, table=True):
    """A person who may log in, with the role and scope that decide what they see and do."""

    __tablename__ = "operator"
    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, unique=True, index=True)
    display_name: str = Field(max_length=200)
    role: Role = Field(sa_column=Column(enum_column(Role, "role"), nullable=False))
    lea_id: int = Field(foreign_key="lea.id", index=True)
    school_id: int | None = Field(default=None, foreign_key="school.id")
    email: str | None = Field(default=None, max_length=254)
    language: str = Field(default="en", max_length=16)
    active: bool = True
