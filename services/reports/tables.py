"""The table behind the aggregate reports: each student's SSRs of one program and how far they got.

Working out a student's delivery state touches the reports, the family, every batch of every
channel; on 300,000 students that is seconds of work, too slow to repeat for each breakdown a
coordinator flips through. ``services.reports.aggregates.refresh`` writes the result here, school by school
(short transactions), and every report is then a GROUP BY over this one narrow table.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from services.core.columns import utcnow


class ReportUnit(SQLModel, table=True):
    """A student's SSRs of one program, with the best state any channel reached for them.

    ``code`` is ``status * 10 + channel rank`` (see ``services.reports.aggregates``), so the best of several
    attempts is their maximum; ``received`` is the first receipt, which starts the deadline.
    """

    __tablename__ = "report_unit"
    # Covering indexes: a breakdown and the deadline count read an index, never the table.
    __table_args__ = (
        Index(
            "ix_report_unit_breakdown",
            "lea_id",
            "school_id",
            "grade",
            "language",
            "program",
            "code",
        ),
        Index("ix_report_unit_risk", "lea_id", "code", "program", "received"),
    )
    student_id: int = Field(foreign_key="student.id", primary_key=True)
    program: str = Field(max_length=10, primary_key=True)
    lea_id: int = Field(foreign_key="lea.id")
    school_id: int = Field(foreign_key="school.id")
    grade: int
    language: str = Field(max_length=16)
    received: datetime
    code: int = 0
    refreshed_at: datetime = Field(default_factory=utcnow)
