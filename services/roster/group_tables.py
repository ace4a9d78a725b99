"""The tables of CERS-style student groups: a named set of students, and who was given it.

Kept apart from ``services.models`` because only ``services.roster.groups`` writes them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from services.core.columns import utcnow


class StudentGroup(SQLModel, table=True):
    """A group as CERS names it: group name, school, school year and subject, in one LEA."""

    __tablename__ = "student_group"
    __table_args__ = (
        UniqueConstraint(
            "lea_id", "school_id", "school_year", "subject", "name", name="uq_student_group_name"
        ),
        Index("ix_student_group_lea_school", "lea_id", "school_id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    lea_id: int = Field(foreign_key="lea.id")
    school_id: int | None = Field(default=None, foreign_key="school.id")  # None: LEA-wide filter
    name: str = Field(max_length=100)
    school_year: str = Field(max_length=7)  # "2025-26"
    subject: str = Field(default="", max_length=40)
    source: str = Field(max_length=10)  # csv or filter
    description: str = Field(default="", max_length=300)  # the filter, in words
    students: int = 0
    created_by: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow)


class StudentGroupMember(SQLModel, table=True):
    """One student in a group; the index on student_id answers "which groups is this child in"."""

    __tablename__ = "student_group_member"
    group_id: int = Field(foreign_key="student_group.id", primary_key=True)
    student_id: int = Field(foreign_key="student.id", primary_key=True, index=True)


class StudentGroupLogin(SQLModel, table=True):
    """An educator login (as in the CERS file) the group was shared with."""

    __tablename__ = "student_group_login"
    group_id: int = Field(foreign_key="student_group.id", primary_key=True)
    login: str = Field(max_length=254, primary_key=True)
