"""CERS-style student groups: made from a CERS group file or by a filter; reports and batches can
be limited to one.

A CERS group file has the columns group_name, school id (the school's 14-digit CDS code), school
year, subject, SSID and login. Every line is accounted for: a line that cannot be read is listed
with its line number and why, an SSID that is not a student of the operator's LEA is listed as
unknown, and the good lines are stored (adding to a group of the same name is idempotent, so a
corrected file can simply be imported again). The file is read in chunks, so a district-wide file
never sits in memory. A site coordinator makes and sees groups of their own school only.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Select, delete, func, insert, literal
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from services.access.permissions import Permission, require, school_scope
from services.access.tables import Operator
from services.audit import log as audit
from services.audit.log import Actor
from services.core import validation
from services.core.db import session_scope
from services.core.errors import InvalidInput, NotFound, PermissionDenied
from services.roster.facts import recipient
from services.roster.group_tables import StudentGroup, StudentGroupLogin, StudentGroupMember
from services.roster.tables import School, Student, StudentGuardian

COLUMNS = ("group_name", "school_id", "school_year", "subject", "ssid", "login")
_HEADER_ALIASES = {
    "school id": "school_id",
    "school year": "school_year",
    "group name": "group_name",
}
CHUNK = 1000
MAX_PROBLEMS = 1000  # problems kept for the screen; the count keeps going
_YEAR = re.compile(r"(\d{4})-(\d{2}|\d{4})")
_LOGIN = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


@dataclass(frozen=True)
class Problem:
    """A line of the file that was not (fully) used, and why."""

    line: int
    message: str


@dataclass
class GroupImport:
    """What a group file did: lines read, groups touched, members added, every line refused."""

    lines: int = 0
    groups: int = 0
    added: int = 0
    problems: list[Problem] = field(default_factory=list)
    unknown_ssids: list[Problem] = field(default_factory=list)
    problem_count: int = 0
    unknown_count: int = 0

    def _refuse(self, line: int, message: str) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(line, message))

    def _unknown(self, line: int, ssid: str) -> None:
        self.unknown_count += 1
        if len(self.unknown_ssids) < MAX_PROBLEMS:
            self.unknown_ssids.append(Problem(line, ssid))


@dataclass(frozen=True)
class GroupSummary:
    id: int
    name: str
    school: str
    school_year: str
    subject: str
    source: str
    students: int
    description: str
    school_id: int | None = None  # None: a filter group over every school of the LEA


def school_year(value: str) -> str:
    """A school year as CERS writes it, "2025-26" (also accepts "2025-2026")."""
    text = value.strip()
    match = _YEAR.fullmatch(text)
    if match is None or int(match.group(2)[-2:]) != (int(match.group(1)) + 1) % 100:
        raise InvalidInput(f"School year must look like 2025-26, got {text!r}")
    return f"{match.group(1)}-{match.group(2)[-2:]}"


def _group_name(value: str) -> str:
    name = validation.plain_text(value, "the group name")
    if not name or len(name) > 100:
        raise InvalidInput("Group name must be 1 to 100 characters")
    return name


def _subject(value: str) -> str:
    subject = validation.plain_text(value, "the subject")
    if len(subject) > 40:
        raise InvalidInput("Subject must be at most 40 characters")
    return subject


# --- import from a CERS group file -------------------------------------------------------------


@dataclass(frozen=True)
class _Row:
    line: int
    key: tuple[str, str, str, str]  # school CDS, school year, subject, group name
    ssid: str
    login: str


def _rows(handle: IO[str], report: GroupImport) -> Iterator[_Row]:
    reader = csv.reader(handle)
    try:
        header = [h.strip().lower().lstrip("\ufeff") for h in next(reader)]
    except StopIteration:
        raise InvalidInput("The group file is empty; expected a header line") from None
    except csv.Error as error:
        raise InvalidInput(f"The group file is not CSV: {error}") from None
    header = [_HEADER_ALIASES.get(h, h) for h in header]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise InvalidInput(
            f"The group file lacks column(s) {', '.join(missing)}; expected {', '.join(COLUMNS)}"
        )
    at = {c: header.index(c) for c in COLUMNS}
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            report.lines += 1
            report._refuse(reader.line_num, f"cannot be read as CSV ({error})")
            continue
        line = reader.line_num
        if not any(v.strip() for v in values):
            continue
        report.lines += 1
        if len(values) < len(header):
            report._refuse(line, f"has {len(values)} fields, expected {len(header)}")
            continue
        try:
            cds = validation.school_cds(values[at["school_id"]])
            key = (
                cds,
                school_year(values[at["school_year"]]),
                _subject(values[at["subject"]]),
                _group_name(values[at["group_name"]]),
            )
            ssid = validation.ssid(values[at["ssid"]])
            login = values[at["login"]].strip().lower()
            if login and not _LOGIN.fullmatch(login):
                raise InvalidInput(f"login {login!r} is not an email address")
        except InvalidInput as error:
            report._refuse(line, str(error))
            continue
        yield _Row(line, key, ssid, login)


def _chunks(rows: Iterator[_Row]) -> Iterator[list[_Row]]:
    chunk: list[_Row] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def import_csv(engine: Engine, operator: Operator, handle: IO[str]) -> GroupImport:
    """Create or extend groups from a CERS group file; one transaction and one audit event."""
    require(operator, Permission.VIEW_REPORTS)
    require(operator, Permission.VIEW_STUDENTS)
    report = GroupImport()
    own_school = school_scope(operator)
    with session_scope(engine) as session:
        schools = _schools(session, operator.lea_id)
        groups: dict[tuple[str, str, str, str], int] = {}
        for chunk in _chunks(_rows(handle, report)):
            found_rows = session.execute(
                select(Student.ssid, Student.id, Student.school_id).where(
                    col(Student.ssid).in_({r.ssid for r in chunk}),
                    col(Student.lea_id) == operator.lea_id,
                )
            ).all()
            students = {ssid: (sid, school) for ssid, sid, school in found_rows}
            for row in chunk:
                school_id = schools.get(row.key[0])
                if school_id is None:
                    report._refuse(row.line, f"school {row.key[0]} is not a school of your LEA")
                    continue
                if own_school is not None and school_id != own_school:
                    report._refuse(row.line, f"school {row.key[0]} is not your school")
                    continue
                found = students.get(row.ssid)
                if found is None:
                    report._unknown(row.line, row.ssid)
                    continue
                student_id, student_school = found
                if student_school != school_id:
                    report._refuse(row.line, f"SSID {row.ssid} is not enrolled at {row.key[0]}")
                    continue
                group_id = groups.get(row.key) or _group(session, operator, school_id, row.key)
                groups[row.key] = group_id
                report.added += _add_member(session, group_id, student_id)
                if row.login:
                    _add_login(session, group_id, row.login)
        for group_id in groups.values():
            _recount(session, group_id)
        report.groups = len(groups)
        audit.record(
            session,
            Actor.of(operator),
            "group.import",
            "student_group:csv",
            {
                "lines": report.lines,
                "groups": report.groups,
                "added": report.added,
                "refused": report.problem_count,
                "unknown_ssids": report.unknown_count,
            },
        )
    return report


def import_file(engine: Engine, operator: Operator, path: Path) -> GroupImport:
    """``import_csv`` from a file (UTF-8, with or without a byte-order mark, as CERS exports)."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            return import_csv(engine, operator, handle)
    except FileNotFoundError:
        raise InvalidInput(f"There is no file {path}") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{path.name} is not UTF-8 text; save it as CSV UTF-8") from None
    except OSError as error:
        raise InvalidInput(f"Could not read {path}: {error.strerror or error}") from None


def problem_rows(report: GroupImport) -> Iterator[tuple[object, ...]]:
    """Every line the import did not use, for a CSV the coordinator can fix the file from."""
    rows = [(p.line, "refused", p.message) for p in report.problems]
    rows += [(p.line, "unknown SSID", p.message) for p in report.unknown_ssids]
    yield from sorted(rows)


def _schools(session: Session, lea_id: int) -> dict[str, int]:
    return dict(
        session.execute(select(School.cds_code, School.id).where(School.lea_id == lea_id)).all()  # type: ignore[arg-type]
    )


def _group(
    session: Session, operator: Operator, school_id: int, key: tuple[str, str, str, str]
) -> int:
    _, year, subject, name = key
    existing = session.execute(
        select(StudentGroup.id).where(
            col(StudentGroup.lea_id) == operator.lea_id,
            col(StudentGroup.school_id) == school_id,
            col(StudentGroup.school_year) == year,
            col(StudentGroup.subject) == subject,
            col(StudentGroup.name) == name,
        )
    ).scalar()
    if existing is not None:
        return int(existing)
    group = StudentGroup(
        lea_id=operator.lea_id,
        school_id=school_id,
        name=name,
        school_year=year,
        subject=subject,
        source="csv",
        created_by=operator.username,
    )
    session.add(group)
    session.flush()
    assert group.id is not None
    return group.id


def _add_member(session: Session, group_id: int, student_id: int) -> int:
    if session.get(StudentGroupMember, (group_id, student_id)) is not None:
        return 0
    session.add(StudentGroupMember(group_id=group_id, student_id=student_id))
    session.flush()
    return 1


def _add_login(session: Session, group_id: int, login: str) -> None:
    if session.get(StudentGroupLogin, (group_id, login)) is None:
        session.add(StudentGroupLogin(group_id=group_id, login=login))
        session.flush()


def _recount(session: Session, group_id: int) -> None:
    count = session.execute(
        select(func.count()).where(col(StudentGroupMember.group_id) == group_id)
    ).scalar_one()
    group = session.get(StudentGroup, group_id)
    assert group is not None
    group.students = int(count)
    session.add(group)


# --- a group by filter -------------------------------------------------------------------------


@dataclass(frozen=True)
class Filter:
    """Students of a school (or the LEA), a grade and a primary language; None means any."""

    school_id: int | None = None
    grade: int | None = None
    language: str | None = None
    english_learner: bool | None = None

    def words(self, school: str) -> str:
        parts = [school or "all schools"]
        if self.grade is not None:
            parts.append(f"grade {self.grade}")
        if self.language is not None:
            parts.append(validation.LANGUAGES.get(self.language, self.language))
        if self.english_learner is not None:
            parts.append("English learners" if self.english_learner else "not English learners")
        return ", ".join(parts)


def school_id_for(engine: Engine, operator: Operator, cds: str) -> int | None:
    """The id of a school of the operator's LEA from its CDS code; None for an empty code."""
    if not cds.strip():
        return None
    code = validation.school_cds(cds)
    with Session(engine) as session:
        found = session.exec(
            select(School.id).where(col(School.cds_code) == code, School.lea_id == operator.lea_id)
        ).first()
    if found is None:
        raise NotFound(f"School {code} is not a school of your LEA")
    return found


def create_from_filter(
    engine: Engine,
    operator: Operator,
    name: str,
    year: str,
    chosen: Filter,
    subject: str = "",
) -> GroupSummary:
    """A group of every student the filter selects now (one INSERT ... SELECT)."""
    require(operator, Permission.VIEW_REPORTS)
    own_school = school_scope(operator)
    if own_school is not None and chosen.school_id not in (None, own_school):
        raise PermissionDenied("A site coordinator can only make groups of their own school")
    school_id = own_school if own_school is not None else chosen.school_id
    conditions: list[Any] = [col(Student.lea_id) == operator.lea_id]
    if school_id is not None:
        conditions.append(col(Student.school_id) == school_id)
    if chosen.grade is not None:
        conditions.append(col(Student.grade) == validation.grade(chosen.grade))
    if chosen.language is not None:
        conditions.append(col(Student.primary_language) == validation.language(chosen.language))
    if chosen.english_learner is not None:
        conditions.append(col(Student.english_learner) == chosen.english_learner)
    with session_scope(engine) as session:
        school_name = ""
        if school_id is not None:
            school = session.get(School, school_id)
            if school is None or school.lea_id != operator.lea_id:
                raise NotFound(f"There is no school {school_id} in your LEA")
            school_name = school.name
        group = StudentGroup(
            lea_id=operator.lea_id,
            school_id=school_id,
            name=_group_name(name),
            school_year=school_year(year),
            subject=_subject(subject),
            source="filter",
            description=chosen.words(school_name),
            created_by=operator.username,
        )
        if _exists(session, group):
            raise InvalidInput(f"A group named {group.name!r} already exists for that year")
        session.add(group)
        session.flush()
        inserted = session.execute(
            insert(StudentGroupMember).from_select(
                ["group_id", "student_id"],
                select(literal(group.id), Student.id).where(*conditions),
            )
        ).rowcount  # type: ignore[attr-defined]
        if not inserted:
            raise InvalidInput(f"No student matches {group.description}")
        group.students = int(inserted)
        session.add(group)
        audit.record(
            session,
            Actor.of(operator),
            "group.create",
            f"student_group:{group.id}",
            {"name": group.name, "filter": group.description, "students": group.students},
        )
        return _summary(group, school_name)


def _exists(session: Session, group: StudentGroup) -> bool:
    school = (
        col(StudentGroup.school_id).is_(None)
        if group.school_id is None
        else col(StudentGroup.school_id) == group.school_id
    )
    return (
        session.execute(
            select(StudentGroup.id).where(
                col(StudentGroup.lea_id) == group.lea_id,
                school,
                col(StudentGroup.school_year) == group.school_year,
                col(StudentGroup.subject) == group.subject,
                col(StudentGroup.name) == group.name,
            )
        ).first()
        is not None
    )


# --- reading and using groups -----------------------------------------------------------------


def _summary(group: StudentGroup, school: str) -> GroupSummary:
    assert group.id is not None
    return GroupSummary(
        group.id,
        group.name,
        school or "all schools",
        group.school_year,
        group.subject,
        group.source,
        group.students,
        group.description,
        group.school_id,
    )


def _visible(operator: Operator) -> list[Any]:
    conditions: list[Any] = [col(StudentGroup.lea_id) == operator.lea_id]
    if (school := school_scope(operator)) is not None:
        conditions.append(col(StudentGroup.school_id) == school)
    return conditions


def list_groups(engine: Engine, operator: Operator, limit: int = 200) -> list[GroupSummary]:
    """The groups the operator may use, newest first."""
    require(operator, Permission.VIEW_REPORTS)
    with Session(engine) as session:
        rows = session.execute(
            select(StudentGroup, School.name)
            .outerjoin(School, col(School.id) == col(StudentGroup.school_id))
            .where(*_visible(operator))
            .order_by(col(StudentGroup.id).desc())
            .limit(limit)
        ).all()
    return [_summary(group, school or "") for group, school in rows]


def get(engine: Engine, operator: Operator, group_id: int) -> GroupSummary:
    """One group the operator may use, or NotFound (a group of another school is not shown)."""
    require(operator, Permission.VIEW_REPORTS)
    with Session(engine) as session:
        row = session.execute(
            select(StudentGroup, School.name)
            .outerjoin(School, col(School.id) == col(StudentGroup.school_id))
            .where(col(StudentGroup.id) == group_id, *_visible(operator))
        ).first()
    if row is None:
        raise NotFound(f"There is no student group {group_id} you can see")
    return _summary(row[0], row[1] or "")


def member_ids(group_id: int) -> Select[Any]:
    """SQL: the student ids of a group, to limit a report or a batch query (``IN (...)``)."""
    return select(StudentGroupMember.student_id).where(col(StudentGroupMember.group_id) == group_id)


def families(group_id: int) -> Select[Any]:
    """SQL: the families (``services.roster.facts.recipient``: one guardian per household) of a
    group's students, to limit a batch to them (``services.delivery.batches.Source.GROUP``)."""
    return (
        select(col(StudentGuardian.guardian_id))
        .join(
            StudentGroupMember,
            col(StudentGroupMember.student_id) == col(StudentGuardian.student_id),
        )
        .where(col(StudentGroupMember.group_id) == group_id, recipient())
        .distinct()
    )


def guardian_ids(engine: Engine, operator: Operator, group_id: int) -> tuple[int, ...]:
    """The families of a group's students, as ids (for a list batch or an export)."""
    get(engine, operator, group_id)
    family = families(group_id).subquery()
    with Session(engine) as session:
        rows = session.execute(
            select(family.c[0]).where(family.c[0].is_not(None)).order_by(family.c[0])
        ).all()
    return tuple(int(r[0]) for r in rows)


def find(engine: Engine, operator: Operator, text: str) -> GroupSummary:
    """The group an operator names by its name (the newest of that name) or its number."""
    words = " ".join(text.split())
    require(operator, Permission.VIEW_REPORTS)
    with Session(engine) as session:
        found = session.execute(
            select(StudentGroup.id)
            .where(func.lower(StudentGroup.name) == words.lower(), *_visible(operator))
            .order_by(col(StudentGroup.id).desc())
            .limit(1)
        ).scalar()
    if found is None and words.isdigit():
        found = int(words)
    if found is None:
        raise NotFound(f"There is no student group named {words!r} you can see")
    return get(engine, operator, int(found))


def delete_group(engine: Engine, operator: Operator, group_id: int) -> None:
    """Remove a group (its students are untouched)."""
    found = get(engine, operator, group_id)
    with session_scope(engine) as session:
        for table in (StudentGroupMember, StudentGroupLogin):
            session.execute(delete(table).where(col(table.group_id) == group_id))
        session.execute(delete(StudentGroup).where(col(StudentGroup.id) == group_id))
        audit.record(
            session,
            Actor.of(operator),
            "group.delete",
            f"student_group:{group_id}",
            {"name": found.name, "students": found.students},
        )
