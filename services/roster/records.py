"""Creating LEAs, schools, students, guardians and the links between them, validated.

Two paths share one set of checks: ``create_*`` functions add single rows through a session (for
people and imports that handle a few rows), and ``BulkRoster`` writes chunks with SQLAlchemy Core
``executemany`` for seeding and large imports. Every value goes through ``services.core.validation`` or
the checks below on both paths, so a bad SSID, CDS code, language or grade is refused with an
``InvalidInput`` sentence before it reaches the database. Callers write the audit event for the
change they make (one per import or seed, not one per row).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, cast

from sqlalchemy import Connection, insert, select
from sqlmodel import Session, col

from services.core import validation
from services.core.errors import InvalidInput
from services.roster.tables import LEA, Guardian, School, Student, StudentGuardian

EMAIL_SHAPE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_ZIP = re.compile(r"\d{5}(-\d{4})?")
_STATE = re.compile(r"[A-Z]{2}")
_FOLD = str.maketrans({"đ": "d", "Đ": "D", "ł": "l", "Ł": "L", "ø": "o", "Ø": "O"})


def fold(text: str) -> str:
    """Text without diacritics (Nguyễn -> Nguyen), for search keys and ASCII-only fonts."""
    if text.isascii():  # most names: nothing to fold, and a district import folds 750,000
        return text
    decomposed = unicodedata.normalize("NFKD", text.translate(_FOLD))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def name_key(first: str, last: str) -> str:
    """The indexed search key of a person: lower-cased, diacritics folded, "last first"."""
    return fold(f"{last} {first}").lower()


@dataclass(frozen=True, slots=True)
class StudentIn:
    """A student as supplied by a person, a file or the demo, before validation."""

    ssid: str
    school_id: int
    first_name: str
    last_name: str
    grade: int | str
    primary_language: str = "en"
    english_learner: bool = False
    birth_date: date | None = None


@dataclass(frozen=True, slots=True)
class GuardianIn:
    """A parent or guardian before validation; a missing address part means "no usable address"."""

    first_name: str
    last_name: str
    preferred_language: str = "en"
    email: str | None = None
    phone: str | None = None
    address_line1: str | None = None
    address_line2: str | None = None
    city: str | None = None
    state: str | None = None
    zip_code: str | None = None
    uses_portal: bool = False


def _name(value: str, what: str) -> str:
    text = str(value).strip()
    if not text:
        raise InvalidInput(f"{what} must not be empty")
    if len(text) > 100:
        raise InvalidInput(f"{what} is longer than 100 characters: {text[:20]!r}...")
    return text


def _optional(value: str | None) -> str | None:
    text = (value or "").strip()
    return text or None


def student_values(lea_id: int, data: StudentIn) -> dict[str, Any]:
    """The validated column values of a student row (school membership is checked by the caller)."""
    first = _name(data.first_name, "Student first name")
    last = _name(data.last_name, "Student last name")
    return {
        "ssid": validation.ssid(data.ssid),
        "lea_id": lea_id,
        "school_id": data.school_id,
        "first_name": first,
        "last_name": last,
        "name_key": name_key(first, last),
        "grade": validation.grade(data.grade),
        "birth_date": data.birth_date,
        "primary_language": validation.language(data.primary_language),
        "english_learner": bool(data.english_learner),
    }


def guardian_values(lea_id: int, data: GuardianIn) -> dict[str, Any]:
    """The validated column values of a guardian row."""
    first = _name(data.first_name, "Guardian first name")
    last = _name(data.last_name, "Guardian last name")
    email = _optional(data.email)
    if email is not None and not EMAIL_SHAPE.fullmatch(email):
        raise InvalidInput(f"Guardian email {email!r} is not an email address")
    state = _optional(data.state)
    if state is not None and not _STATE.fullmatch(state):
        raise InvalidInput(f"State must be a two-letter code such as CA, got {state!r}")
    zip_code = _optional(data.zip_code)
    if zip_code is not None and not _ZIP.fullmatch(zip_code):
        raise InvalidInput(f"ZIP code must be 5 digits (or ZIP+4), got {zip_code!r}")
    return {
        "lea_id": lea_id,
        "first_name": first,
        "last_name": last,
        "name_key": name_key(first, last),
        "preferred_language": validation.language(data.preferred_language),
        "email": email,
        "phone": _optional(data.phone),
        "address_line1": _optional(data.address_line1),
        "address_line2": _optional(data.address_line2),
        "city": _optional(data.city),
        "state": state,
        "zip_code": zip_code,
        "uses_portal": bool(data.uses_portal),
    }


def create_lea(session: Session, cds_code: str, name: str, county: str = "") -> LEA:
    code = validation.lea_cds(cds_code)
    if session.scalar(select(col(LEA.id)).where(col(LEA.cds_code) == code)) is not None:
        raise InvalidInput(f"An LEA with CDS code {code} already exists")
    lea = LEA(cds_code=code, name=_name(name, "LEA name"), county=str(county).strip())
    session.add(lea)
    session.flush()
    return lea


def create_school(session: Session, lea: LEA, cds_code: str, name: str) -> School:
    """A school whose 14-digit CDS code starts with its LEA's 7-digit code."""
    code = validation.school_cds(cds_code, lea.cds_code)
    if session.scalar(select(col(School.id)).where(col(School.cds_code) == code)) is not None:
        raise InvalidInput(f"A school with CDS code {code} already exists")
    school = School(lea_id=_id(lea), cds_code=code, name=_name(name, "School name"))
    session.add(school)
    session.flush()
    return school


def create_student(session: Session, lea: LEA, data: StudentIn) -> Student:
    values = student_values(_id(lea), data)
    school = session.get(School, data.school_id)
    if school is None or school.lea_id != lea.id:
        raise InvalidInput(f"School {data.school_id} is not a school of LEA {lea.cds_code}")
    _refuse_duplicates(session.connection(), [values["ssid"]])
    student = Student(**values)
    session.add(student)
    session.flush()
    return student


def create_guardian(session: Session, lea: LEA, data: GuardianIn) -> Guardian:
    guardian = Guardian(**guardian_values(_id(lea), data))
    session.add(guardian)
    session.flush()
    return guardian


def link(
    session: Session,
    student: Student,
    guardian: Guardian,
    relationship: str = "parent",
    is_primary: bool = True,
) -> StudentGuardian:
    """Make ``guardian`` a receiver of ``student``'s reports (both must belong to one LEA)."""
    if student.lea_id != guardian.lea_id:
        raise InvalidInput(f"Student {student.ssid} and the guardian belong to different LEAs")
    row = StudentGuardian(
        student_id=_id(student),
        guardian_id=_id(guardian),
        relationship=_name(relationship, "Relationship"),
        is_primary=is_primary,
    )
    session.add(row)
    session.flush()
    return row


def _id(row: LEA | Student | Guardian) -> int:
    if row.id is None:
        raise InvalidInput(f"{type(row).__name__} has not been saved yet")
    return row.id


def _refuse_duplicates(connection: Connection, ssids: Sequence[str]) -> None:
    """Refuse SSIDs repeated in ``ssids`` or already on file, naming the first one found."""
    seen: set[str] = set()
    for ssid in ssids:
        if ssid in seen:
            raise InvalidInput(f"SSID {ssid} appears twice in the same load")
        seen.add(ssid)
    taken = connection.execute(
        select(col(Student.ssid)).where(col(Student.ssid).in_(ssids)).limit(1)
    ).scalar()
    if taken is not None:
        raise InvalidInput(f"SSID {taken} is already on file for another student")


class BulkRoster:
    """Validated chunked inserts into one LEA over a Core connection (caller owns the transaction).

    Rows come in as sequences the caller keeps small (a few thousand); each call validates every
    value, then inserts with one ``executemany``. Ids come back in input order so the caller can
    link guardians and students without reading them back.
    """

    def __init__(self, connection: Connection, lea_id: int) -> None:
        self.connection = connection
        self.lea_id = lea_id
        self.school_ids = frozenset(
            connection.execute(select(col(School.id)).where(col(School.lea_id) == lea_id)).scalars()
        )

    def guardians(self, rows: Sequence[GuardianIn]) -> list[int]:
        values = [guardian_values(self.lea_id, row) for row in rows]
        return self._insert_returning(Guardian, values)

    def students(self, rows: Sequence[StudentIn]) -> list[int]:
        values = []
        for row in rows:
            if row.school_id not in self.school_ids:
                raise InvalidInput(f"School {row.school_id} is not a school of this LEA")
            values.append(student_values(self.lea_id, row))
        _refuse_duplicates(self.connection, [v["ssid"] for v in values])
        return self._insert_returning(Student, values)

    def links(self, rows: Sequence[tuple[int, int, str, bool]]) -> None:
        """(student_id, guardian_id, relationship, is_primary) tuples, ids from this loader."""
        if rows:
            self.connection.execute(
                insert(StudentGuardian),
                [
                    {"student_id": s, "guardian_id": g, "relationship": r, "is_primary": p}
                    for s, g, r, p in rows
                ],
            )

    def _insert_returning(self, table: type[Guardian] | type[Student], values: list) -> list[int]:
        if not values:
            return []
        result = self.connection.execute(
            insert(table).returning(col(table.id), sort_by_parameter_order=True),
            values,
        )
        return cast(list[int], list(result.scalars()))  # primary keys, never NULL
