"""The people who sign in: their roles and operator rows."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Column
from sqlmodel import Field, SQLModel

from services.core.columns import enum_column, utcnow


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
    # A second role for the person who holds two, as the one coordinator of a small district who is
    # both LEA CAASPP and LEA ELPAC coordinator: their permissions are the union of both roles.
    second_role: Role | None = Field(
        default=None, sa_column=Column(enum_column(Role, "second_role"), nullable=True)
    )

    @property
    def roles(self) -> tuple[Role, ...]:
        """Every role the person holds, the first one first."""
        return (self.role,) if self.second_role is None else (self.role, self.second_role)

    @property
    def roles_label(self) -> str:
        return " and ".join(role.label for role in self.roles)


class OperatorKey(SQLModel, table=True):
    """An SSH public key that signs in as its operator (one key, one operator).

    Only the public half is stored; it is shown and logged by its SHA256 fingerprint."""

    __tablename__ = "operator_key"
    id: int | None = Field(default=None, primary_key=True)
    operator_id: int = Field(foreign_key="operator.id", index=True)
    key_type: str = Field(max_length=64)
    public_key: str = Field(max_length=4096)  # the base64 blob as in a .pub file
    fingerprint: str = Field(max_length=64, unique=True, index=True)
    comment: str = Field(default="", max_length=200)
    added_at: datetime = Field(default_factory=utcnow)
