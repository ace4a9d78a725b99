"""The tables of SSR Console.

Every table is declared here so Alembic sees one metadata; validation of identifiers (SSID, CDS
codes, languages) lives in ``services.validation`` and runs in the service functions that create
rows, so a bad value is refused with a clear message before it reaches the database.
"""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime

from sqlalchemy import Column, Index, UniqueConstraint
from sqlalchemy import Enum as SAEnum
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    """Timestamps are timezone-aware UTC; SQLModel's UTCDateTime stores them alike on both databases."""
    return datetime.now(UTC)


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


class Program(enum.StrEnum):
    CAASPP = "CAASPP"
    ELPAC = "ELPAC"


def _enum(e: type[enum.Enum], name: str) -> SAEnum:
    # Stored as the value strings (not the Python names), as a VARCHAR with a CHECK on SQLite.
    return SAEnum(e, name=name, values_callable=lambda x: [m.value for m in x], native_enum=False)


class LEA(SQLModel, table=True):
    """A local educational agency: district, county office or charter, keyed by its 7-digit CDS code."""

    __tablename__ = "lea"
    id: int | None = Field(default=None, primary_key=True)
    cds_code: str = Field(max_length=7, unique=True, index=True)
    name: str = Field(max_length=200)
    county: str = Field(default="", max_length=100)


class School(SQLModel, table=True):
    """A school of an LEA, keyed by its 14-digit CDS code (county + district + school)."""

    __tablename__ = "school"
    id: int | None = Field(default=None, primary_key=True)
    lea_id: int = Field(foreign_key="lea.id", index=True)
    cds_code: str = Field(max_length=14, unique=True, index=True)
    name: str = Field(max_length=200)


class Student(SQLModel, table=True):
    """A tested student, identified statewide by a 10-digit SSID."""

    __tablename__ = "student"
    __table_args__ = (
        Index("ix_student_lea_name", "lea_id", "name_key"),
        Index("ix_student_school_grade", "school_id", "grade"),
    )
    id: int | None = Field(default=None, primary_key=True)
    ssid: str = Field(max_length=10, unique=True, index=True)
    lea_id: int = Field(foreign_key="lea.id", index=True)
    school_id: int = Field(foreign_key="school.id")
    first_name: str = Field(max_length=100)
    last_name: str = Field(max_length=100)
    # lower-cased "last first", indexed, so a name filter is a range scan rather than a table scan
    name_key: str = Field(max_length=201)
    grade: int
    birth_date: date | None = None
    primary_language: str = Field(default="en", max_length=16)
    english_learner: bool = False


class Guardian(SQLModel, table=True):
    """A parent or guardian: where and how their children's SSRs can reach them."""

    __tablename__ = "guardian"
    id: int | None = Field(default=None, primary_key=True)
    lea_id: int = Field(foreign_key="lea.id", index=True)
    first_name: str = Field(max_length=100)
    last_name: str = Field(max_length=100)
    name_key: str = Field(max_length=201, index=True)
    preferred_language: str = Field(default="en", max_length=16)
    email: str | None = Field(default=None, max_length=254, index=True)
    phone: str | None = Field(default=None, max_length=32, index=True)
    address_line1: str | None = Field(default=None, max_length=200)
    address_line2: str | None = Field(default=None, max_length=200)
    city: str | None = Field(default=None, max_length=100)
    state: str | None = Field(default=None, max_length=2)
    zip_code: str | None = Field(default=None, max_length=10)
    uses_portal: bool = False


class StudentGuardian(SQLModel, table=True):
    """Which guardians receive which student's reports; siblings share a guardian."""

    __tablename__ = "student_guardian"
    student_id: int = Field(foreign_key="student.id", primary_key=True)
    guardian_id: int = Field(foreign_key="guardian.id", primary_key=True, index=True)
    relationship: str = Field(default="parent", max_length=40)
    is_primary: bool = True


class ScoreReport(SQLModel, table=True):
    """One SSR PDF: a student's report for one test of one administration, in one language."""

    __tablename__ = "score_report"
    __table_args__ = (
        UniqueConstraint(
            "student_id",
            "program",
            "admin_year",
            "test",
            "language",
            "version",
            name="uq_score_report_identity",
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    student_id: int = Field(foreign_key="student.id", index=True)
    program: Program = Field(sa_column=Column(_enum(Program, "program"), nullable=False))
    admin_year: int  # the spring of the administration: 2026 means 2025-26
    test: str = Field(max_length=40)
    language: str = Field(default="en", max_length=16)
    version: int = 1
    file_path: str = Field(max_length=500)
    sha256: str = Field(max_length=64, index=True)
    size_bytes: int = 0
    received_at: datetime = Field(default_factory=utcnow)


class Operator(SQLModel, table=True):
    """A person who may log in, with the role and scope that decide what they see and do."""

    __tablename__ = "operator"
    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, unique=True, index=True)
    display_name: str = Field(max_length=200)
    role: Role = Field(sa_column=Column(_enum(Role, "role"), nullable=False))
    lea_id: int = Field(foreign_key="lea.id", index=True)
    school_id: int | None = Field(default=None, foreign_key="school.id")
    email: str | None = Field(default=None, max_length=254)
    language: str = Field(default="en", max_length=16)
    active: bool = True


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
