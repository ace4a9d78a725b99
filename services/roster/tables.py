"""The roster's tables: LEAs, schools, students, guardians and who is whose."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel


class LEA(SQLModel, table=True):
    """A local educational agency: district, county office or charter, keyed by its 7-digit CDS code."""

    __tablename__ = "lea"
    id: int | None = Field(default=None, primary_key=True)
    cds_code: str = Field(max_length=7, unique=True, index=True)
    name: str = Field(max_length=200)
    county: str = Field(default="", max_length=100)
    school_year: int | None = (
        None  # started with `ssr-console year start`; None: the latest imported
    )


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
        Index("ix_student_lea_sis", "lea_id", "sis_id"),
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
    # From the SIS (services.roster.sis_import): its OneRoster sourcedId, the CALPADS home
    # language code as given (kept even when the console does not write in that language), the
    # English language acquisition status, and when a full import no longer listed the student.
    sis_id: str | None = Field(default=None, max_length=255)
    home_language_code: str | None = Field(default=None, max_length=8)
    elas: str | None = Field(default=None, max_length=4)
    withdrawn_at: datetime | None = None


class Guardian(SQLModel, table=True):
    """A parent or guardian: where and how their children's SSRs can reach them."""

    __tablename__ = "guardian"
    __table_args__ = (Index("ix_guardian_lea_sis", "lea_id", "sis_id", unique=True),)
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
    # From the SIS: its OneRoster sourcedId; "do not contact" (never sent anything, on any
    # channel); the household (same students, same normalised mailing address), one envelope each.
    sis_id: str | None = Field(default=None, max_length=255)
    do_not_contact: bool = False
    household: str | None = Field(default=None, max_length=255, index=True)


class StudentGuardian(SQLModel, table=True):
    """Which guardians receive which student's reports; siblings share a guardian."""

    __tablename__ = "student_guardian"
    student_id: int = Field(foreign_key="student.id", primary_key=True)
    guardian_id: int = Field(foreign_key="guardian.id", primary_key=True, index=True)
    relationship: str = Field(default="parent", max_length=40)
    is_primary: bool = True
    # Custody: whether this guardian may receive this student's records (from the SIS).
    receives_records: bool = True
