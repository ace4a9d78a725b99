"""Importing the roster from the SIS: OneRoster 1.1 CSV plus the SIS contacts CSV.

Schools come from ``orgs.csv`` rows of type ``school`` (their ``identifier`` is the 14-digit CDS
code), students from ``users.csv`` rows with role ``student`` (the SSID is their ``identifier``,
or one ``userIds`` entry of a configured type), guardians from rows with role ``parent``,
``guardian`` or ``relative``, linked to students through ``agentSourcedIds`` (either side may
list the other). Birth dates come from ``demographics.csv``; home language, English language
acquisition status, mailing address, correspondence language, custody, do-not-contact and
parent-portal use from the SIS contacts CSV (``services.roster.sis_columns``).

Students are matched by SSID and guardians by their sourcedId, so importing again updates them:
importing the same files changes nothing, and a changed file changes exactly what changed. A
student missing from a full import is withdrawn (kept with their history, out of new batches and
deadlines), never deleted; one who comes back is reinstated. Each bad line is refused with its
file, line and reason while the rest goes in. Students in grades CAASPP does not test are passed
over (they have no SSRs), and counted.

Memory stays flat whatever the district's size: every file is streamed (``csv_rows``), rows are
written in batches of ``BATCH``, and what the passes need to remember (students and guardians
seen, links, the SIS contacts rows, the students' links) lives in temporary tables on the import's own connection.
The whole import is one transaction: a dry run rolls it back, a real run commits it with one
audit event holding the counts.
"""

from __future__ import annotations

import gc
import re
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy import Connection, bindparam, func, insert, select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from services.access.permissions import Permission, require
from services.access.tables import Operator
from services.audit import log as audit
from services.core import private_files, validation
from services.core.columns import utcnow
from services.core.errors import InvalidInput, PermissionDenied
from services.core.programs import GRADE_WORDS, TRANSITIONAL_KINDERGARTEN
from services.core.settings import Settings
from services.intake.importer import intake_folders, intake_path
from services.roster import calpads, households, sis_files
from services.roster.csv_rows import Refused, Row, rows
from services.roster.records import GuardianIn, StudentIn, guardian_values, student_values
from services.roster.sis_columns import SisColumns
from services.roster.tables import LEA, Guardian, School, Student, StudentGuardian

BATCH = 2000
KEEP_REFUSED = 1000
"""Refused lines kept for the report; beyond this they are only counted."""
KEEP_EXAMPLES = 20
GC_THRESHOLD = 10_000
"""Allocations between young-generation collections during an import (Python's default: 700).
Measured at 30,000 students: 700 costs a fifth more CPU; 100,000 let RSS grow with the file
(126 -> 147 MB, 151 -> 314 MB at district size); 10,000 keeps both (124/127/131/131 MB)."""
GUARDIAN_ROLES = ("parent", "guardian", "relative")
_YES = {"y", "yes", "true", "t", "1", "x"}
_NO = {"n", "no", "false", "f", "0", ""}
_USER_ID = re.compile(r"\{\s*([^:{}]+?)\s*:\s*([^{}]*?)\s*\}")
_PRESCHOOL = TRANSITIONAL_KINDERGARTEN - 1
_GRADES = {**GRADE_WORDS, "PK": _PRESCHOOL, "IT": _PRESCHOOL, "PR": _PRESCHOOL}
"""OneRoster grade codes before grade 1 (``services.core.programs``): preschool takes no test."""
_STUDENT_FIELDS = (
    "school_id",
    "first_name",
    "last_name",
    "grade",
    "birth_date",
    "primary_language",
    "english_learner",
    "sis_id",
    "home_language_code",
    "elas",
    "withdrawn_at",
)
_GUARDIAN_FIELDS = (
    "first_name",
    "last_name",
    "preferred_language",
    "email",
    "phone",
    "address_line1",
    "address_line2",
    "city",
    "state",
    "zip_code",
    "uses_portal",
    "do_not_contact",
)

Progress = Callable[[str, int], None]
"""Called with the pass ("students", "guardians", "links") and the users.csv rows read so far."""


@dataclass(frozen=True)
class RosterOptions:
    """How to read an export and what a run may do."""

    columns: SisColumns = field(default_factory=SisColumns)
    ssid_user_id_type: str | None = None  # take the SSID from userIds, e.g. "SSID"
    full: bool = True  # students missing from the files are withdrawn
    dry_run: bool = False

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> RosterOptions:
        """From ``[roster]`` as ``console.config`` checked it (plain values in ``extra``)."""
        table = settings.extra.get("roster") or {}
        assert isinstance(table, dict)
        return cls(
            columns=SisColumns(**table.get("columns", {})),
            ssid_user_id_type=table.get("ssid_user_id_type"),
            **overrides,
        )


@dataclass
class Changes:
    """New and changed records of one kind, with the fields that changed."""

    new: int = 0
    changed: int = 0
    removed: int = 0
    fields: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def note(self, label: str, changed: list[str]) -> None:
        self.changed += 1
        self.fields.update(changed)
        if len(self.examples) < KEEP_EXAMPLES:
            self.examples.append(f"{label}: {', '.join(changed)}")

    def text(self, noun: str) -> str:
        line = f"{noun}: {self.new:,} new, {self.changed:,} changed"
        if self.removed:
            line += f", {self.removed:,} removed"
        if self.fields:
            line += " (" + ", ".join(f"{k} {v:,}" for k, v in sorted(self.fields.items())) + ")"
        return line


@dataclass
class RosterResult:
    """What an import did (or, dry, would do)."""

    lea_cds: str
    dry_run: bool
    full: bool
    schools: Changes = field(default_factory=Changes)
    students: Changes = field(default_factory=Changes)
    guardians: Changes = field(default_factory=Changes)
    links: Changes = field(default_factory=Changes)
    unchanged_students: int = 0
    unchanged_guardians: int = 0
    not_tested: int = 0
    withdrawn: int = 0
    missing_students: list[str] = field(default_factory=list)
    missing_guardians: int = 0
    other_languages: Counter[str] = field(default_factory=Counter)
    refused: list[Refused] = field(default_factory=list)
    refused_count: int = 0
    seconds: float = 0.0

    def refuse(self, refused: Refused) -> None:
        self.refused_count += 1
        if len(self.refused) < KEEP_REFUSED:
            self.refused.append(refused)

    def counts(self) -> dict[str, Any]:
        """The figures of the audit event: counts only, never names."""
        return {
            "schools_new": self.schools.new,
            "schools_changed": self.schools.changed,
            "students_new": self.students.new,
            "students_changed": self.students.changed,
            "students_unchanged": self.unchanged_students,
            "students_withdrawn": self.withdrawn,
            "students_not_tested": self.not_tested,
            "guardians_new": self.guardians.new,
            "guardians_changed": self.guardians.changed,
            "guardians_unchanged": self.unchanged_guardians,
            "guardians_missing": self.missing_guardians,
            "links_new": self.links.new,
            "links_changed": self.links.changed,
            "links_removed": self.links.removed,
            "refused_lines": self.refused_count,
            "full": self.full,
        }

    def __str__(self) -> str:
        head = "Dry run (nothing written)" if self.dry_run else "Imported"
        lines = [
            f"{head}: roster of LEA {self.lea_cds}",
            f"  {self.schools.text('schools')}",
            f"  {self.students.text('students')}; {self.unchanged_students:,} unchanged",
            f"  {self.guardians.text('guardians')}; {self.unchanged_guardians:,} unchanged",
            f"  {self.links.text('student-guardian links')}",
        ]
        if self.not_tested:
            lines.append(
                f"  {self.not_tested:,} students in grades no summative test is given in "
                "(preschool): passed over"
            )
        missing = len(self.missing_students) if self.withdrawn == 0 else self.withdrawn
        if self.full and missing:
            verb = "would be withdrawn" if self.dry_run else "withdrawn"
            shown = ", ".join(self.missing_students)
            lines.append(f"  missing students {verb}: {missing:,} (SSIDs {shown}...)")
        if self.missing_guardians:
            lines.append(
                f"  {self.missing_guardians:,} guardians no longer in the files: kept, unlinked"
            )
        if self.other_languages:
            codes = ", ".join(f"{c} {n:,}" for c, n in self.other_languages.most_common(10))
            lines.append(f"  home languages the console does not write in (kept; English): {codes}")
        for example in self.students.examples[:5] + self.guardians.examples[:5]:
            lines.append(f"  changed {example}")
        lines.append(f"  refused lines: {self.refused_count:,}")
        lines.append(f"  took {self.seconds:.1f} s")
        return "\n".join(lines)


_student = cast(sa.Table, Student.__table__)  # type: ignore[attr-defined]
_guardian = cast(sa.Table, Guardian.__table__)  # type: ignore[attr-defined]
_school = cast(sa.Table, School.__table__)  # type: ignore[attr-defined]
_lea = cast(sa.Table, LEA.__table__)  # type: ignore[attr-defined]
_link = cast(sa.Table, StudentGuardian.__table__)  # type: ignore[attr-defined]
"""The roster tables as Core tables: the import works in Core, in batches."""

_temp = sa.MetaData()
_seen_student = sa.Table(
    "roster_seen_student",
    _temp,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("line", sa.Integer, nullable=False),
    prefixes=["TEMPORARY"],
)
_passed_over = sa.Table(
    "roster_passed_over",
    _temp,
    sa.Column("sis_id", sa.String(255), index=True),
    prefixes=["TEMPORARY"],
)
_seen_guardian = sa.Table(
    "roster_seen_guardian",
    _temp,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("line", sa.Integer, nullable=False),
    sa.Column("relationship", sa.String(40), nullable=False),
    prefixes=["TEMPORARY"],
)
_seen_link = sa.Table(
    "roster_seen_link",
    _temp,
    sa.Column("student_id", sa.Integer, primary_key=True),
    sa.Column("guardian_id", sa.Integer, primary_key=True),
    sa.Column("relationship", sa.String(40), nullable=False),
    sa.Column("is_primary", sa.Boolean, nullable=False),
    sa.Column("receives_records", sa.Boolean, nullable=False),
    prefixes=["TEMPORARY"],
)
_agents = sa.Table(
    "roster_agents",
    _temp,
    sa.Column("line", sa.Integer, primary_key=True),
    sa.Column("sis_id", sa.String(255), nullable=False),
    sa.Column("agents", sa.Text, nullable=False),
    prefixes=["TEMPORARY"],
)
_births = sa.Table(
    "roster_births",
    _temp,
    sa.Column("sis_id", sa.String(255), primary_key=True),
    sa.Column("birth_date", sa.Date),
    prefixes=["TEMPORARY"],
)
_contacts = sa.Table(
    "roster_contacts",
    _temp,
    sa.Column("line", sa.Integer, primary_key=True),
    sa.Column("ssid", sa.String(10), index=True),
    sa.Column("guardian_id", sa.String(255), index=True),
    sa.Column("home_language", sa.String(8)),
    sa.Column("elas", sa.String(4)),
    sa.Column("address_line1", sa.String(200)),
    sa.Column("address_line2", sa.String(200)),
    sa.Column("city", sa.String(100)),
    sa.Column("state", sa.String(2)),
    sa.Column("zip_code", sa.String(10)),
    sa.Column("language", sa.String(16)),
    sa.Column("receives_records", sa.Boolean),
    sa.Column("do_not_contact", sa.Boolean),
    sa.Column("uses_portal", sa.Boolean),
    prefixes=["TEMPORARY"],
)


def import_roster(
    engine: Engine,
    paths: list[Path],
    *,
    lea_id: int,
    actor: audit.Actor,
    scratch: Path,
    options: RosterOptions | None = None,
    progress: Progress | None = None,
) -> RosterResult:
    """Import (or with ``dry_run`` only compare) the roster files in ``paths`` into one LEA.

    The caller checks the actor may import this LEA's roster. ``scratch`` is a private folder
    where zip members are unpacked for the length of the run.
    """
    options = options or RosterOptions()
    started = time.perf_counter()
    with _rare_collections(), tempfile.TemporaryDirectory(dir=scratch, prefix="roster-") as folder:
        files = sis_files.locate(paths, Path(folder))
        with engine.connect() as connection:
            transaction = connection.begin()
            try:
                lea = connection.execute(
                    select(_lea.c.cds_code).where(_lea.c.id == lea_id)
                ).scalar()
                if lea is None:
                    raise InvalidInput(f"No LEA with id {lea_id}")
                result = RosterResult(lea, options.dry_run, options.full)
                _temp.create_all(connection)
                _Import(connection, lea_id, lea, files, options, result, progress).run()
                _temp.drop_all(connection)
                result.seconds = time.perf_counter() - started
                if options.dry_run:
                    transaction.rollback()
                else:
                    with Session(bind=connection) as session:
                        audit.record(
                            session,
                            actor,
                            "roster.import",
                            f"lea:{lea}",
                            result.counts(),
                            lea_id=lea_id,
                        )
                        session.flush()
                    transaction.commit()
            except BaseException:
                transaction.rollback()
                raise
    return result


@contextmanager
def _rare_collections() -> Iterator[None]:
    """Run the cyclic garbage collector less often for the length of an import. Each batch
    allocates thousands of short-lived dicts and tuples (freed by reference counting, not by the
    collector), which trigger a young-generation collection every 700 allocations: a fifth of
    an import's CPU time. Collections still run often enough that memory stays flat."""
    thresholds = gc.get_threshold()
    gc.set_threshold(max(thresholds[0], GC_THRESHOLD), *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


def import_for(
    engine: Engine,
    settings: Settings,
    operator: Operator,
    paths: Sequence[str | Path],
    options: RosterOptions,
    progress: Progress | None = None,
) -> RosterResult:
    """An operator's import into their LEA, reading only from the intake folders (as SSR imports
    do: ``services.intake.importer.intake_folders``), unpacking zips under the data directory."""
    require(operator, Permission.IMPORT_ROSTER, lea_id=operator.lea_id)
    if operator.school_id is not None:
        raise PermissionDenied("A school's operator cannot import the LEA's roster")
    folders = intake_folders(settings)
    targets = [intake_path(path, folders) for path in paths]
    scratch = private_files.make_dirs(settings.data_dir / "scratch")
    return import_roster(
        engine,
        targets,
        lea_id=operator.lea_id,
        actor=audit.Actor.of(operator),
        scratch=scratch,
        options=options,
        progress=progress,
    )


def _insert_rows(connection: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """INSERT rows of plain values (numbers, text, booleans: no dates, which need SQLAlchemy's
    conversion on SQLite) through the driver's executemany. SQLAlchemy's per-row parameter
    processing costs more than SQLite's insert itself, and an import writes a million rows."""
    if not rows:
        return
    names = list(rows[0])
    compiled = insert(table).compile(
        dialect=connection.dialect, column_keys=names, for_executemany=True
    )
    if set(compiled.binds) != set(names):  # a column default to compute: SQLAlchemy's way
        connection.execute(insert(table), rows)
    elif compiled.positional:
        order = compiled.positiontup or []
        connection.exec_driver_sql(str(compiled), [tuple(row[n] for n in order) for row in rows])
    else:
        connection.exec_driver_sql(str(compiled), rows)  # type: ignore[arg-type]


def _flag(value: str, what: str) -> bool | None:
    text = value.strip().lower()
    if not text:
        return None
    if text in _YES:
        return True
    if text in _NO:
        return False
    raise InvalidInput(f"{what} must be Y or N, got {value.strip()!r}")


def _listed(value: str) -> list[str]:
    """A OneRoster multi-valued cell: comma-separated inside one quoted cell."""
    return [part.strip() for part in value.split(",") if part.strip()]


def family_language(value: str) -> str:
    """A correspondence language: a CALPADS code (mapped; English where the console has none)
    or one of the console's own codes and names."""
    text = value.strip()
    try:
        code = calpads.home_language(text)
    except InvalidInput:
        code = None
    if code is not None and (code.isdigit() or code in calpads.TO_FAMILY_LANGUAGE):
        return calpads.family_language(code) or "en"
    return validation.language(text)


class _Import:
    """One run's passes over the files, on one connection inside its transaction."""

    def __init__(
        self,
        connection: Connection,
        lea_id: int,
        lea_cds: str,
        files: sis_files.RosterFiles,
        options: RosterOptions,
        result: RosterResult,
        progress: Progress | None,
    ) -> None:
        self.c = connection
        self.lea_id, self.lea_cds = lea_id, lea_cds
        self.files, self.options, self.result = files, options, result
        self.progress = progress or (lambda phase, done: None)
        self.schools: dict[str, int] = {}  # org sourcedId -> school id
        self.now = utcnow()

    def run(self) -> None:
        if self.files.contacts is not None:
            self._contacts(self.files.contacts)
        self._orgs(self.files.orgs)  # type: ignore[arg-type]
        if self.files.demographics is not None:
            self._demographics(self.files.demographics)
        self._students()
        self._guardians()
        self._student_links()
        self._finish_links()
        households.assign(self.c, self.lea_id)
        self._missing()

    # -- reading -----------------------------------------------------------------------------

    def _read(
        self,
        path: Path,
        required: tuple[str, ...],
        refused: Callable[[Refused], None] | None = None,
    ) -> Iterator[Row]:
        """The file's good rows; bad ones go to ``refused`` (default: the report)."""
        name = self.files.name(path)
        with open(path, "rb") as stream:
            for item in rows(stream, name, required):
                if isinstance(item, Refused):
                    (refused or self.result.refuse)(item)
                else:
                    yield item

    def _refuse(self, path: Path, line: int, reason: str) -> None:
        self.result.refuse(Refused(self.files.name(path), line, reason))

    def _users(self, roles: tuple[str, ...], phase: str) -> Iterator[list[Row]]:
        """users.csv rows of ``roles`` in batches; rows marked ``tobedeleted`` are absent."""
        path = self.files.users
        assert path is not None
        required = ["sourcedId", "role", "givenName", "familyName", "orgSourcedIds", "grades"]
        required += ["agentSourcedIds"]
        required.append("userIds" if self.options.ssid_user_id_type else "identifier")
        chunk: list[Row] = []
        read = 0
        # users.csv is read twice: its unreadable lines are reported by the first pass
        refused = self._unreadable_user if phase == "students" else (lambda item: None)
        for row in self._read(path, tuple(required), refused):
            read += 1
            if row.get("role").lower() not in roles or row.get("status").lower() == "tobedeleted":
                continue
            chunk.append(row)
            if len(chunk) >= BATCH:
                yield chunk
                chunk = []
                self.progress(phase, read)
        if chunk:
            yield chunk
        self.progress(phase, read)

    def _unreadable_user(self, refused: Refused) -> None:
        self.result.refuse(refused)
        if refused.cells and refused.cells.get("role", "").strip().lower() == "student":
            self._pass_over([refused.cells.get("sourcedId", "").strip()])

    def _pass_over(self, sis_ids: list[str]) -> None:
        """Students not imported this run (grade not tested, line refused): links to them are
        dropped without refusing the guardian, who is not at fault."""
        if wanted := [{"sis_id": s} for s in sis_ids if s]:
            _insert_rows(self.c, _passed_over, wanted)

    # -- the SIS contacts CSV, staged ------------------------------------------------------

    def _contacts(self, path: Path) -> None:
        columns = self.options.columns
        staged: list[dict[str, Any]] = []
        for row in self._read(path, columns.required):
            try:
                staged.append(self._contact(row, columns))
            except InvalidInput as error:
                self._refuse(path, row.line, str(error))
                continue
            if len(staged) >= BATCH:
                _insert_rows(self.c, _contacts, staged)
                staged = []
        if staged:
            _insert_rows(self.c, _contacts, staged)

    def _contact(self, row: Row, columns: SisColumns) -> dict[str, Any]:
        def cell(name: str) -> str:
            return row.get(name) if name else ""

        state = cell(columns.state).upper() or None
        language = cell(columns.correspondence_language)
        return {
            "line": row.line,
            "ssid": validation.ssid(cell(columns.ssid)),
            "guardian_id": cell(columns.guardian_id) or None,
            "home_language": calpads.home_language(cell(columns.home_language)),
            "elas": calpads.elas(cell(columns.elas)),
            "address_line1": cell(columns.address_line1) or None,
            "address_line2": cell(columns.address_line2) or None,
            "city": cell(columns.city) or None,
            "state": state,
            "zip_code": cell(columns.zip_code) or None,
            "language": family_language(language) if language else None,
            "receives_records": _flag(cell(columns.receives_records), "receives_records"),
            "do_not_contact": _flag(cell(columns.do_not_contact), "do_not_contact"),
            "uses_portal": _flag(cell(columns.uses_portal), "portal use"),
        }

    def _firsts(self, key: Any, values: list[str]) -> dict[str, dict[str, Any]]:
        """Per key value, each contacts column's first non-empty value in file order."""
        found: dict[str, dict[str, Any]] = {}
        if not values:
            return found
        names = _contacts.c.keys()
        at = names.index(key.name)
        for record in self.c.execute(
            select(_contacts).where(key.in_(values)).order_by(_contacts.c.line)
        ).all():
            merged = found.get(record[at])
            if merged is None:  # the usual case: one contacts line per key
                found[record[at]] = {
                    n: v for n, v in zip(names, record, strict=True) if v is not None
                }
                continue
            for name, value in zip(names, record, strict=True):
                if value is not None and name not in merged:
                    merged[name] = value
        return found

    # -- schools ---------------------------------------------------------------------------

    def _orgs(self, path: Path) -> None:
        existing = {
            cds: (school_id, name)
            for school_id, cds, name in self.c.execute(
                select(_school.c.id, _school.c.cds_code, _school.c.name)
            ).all()
        }
        seen: dict[str, int] = {}
        for row in self._read(path, ("sourcedId", "type", "identifier", "name")):
            if row.get("type").lower() != "school" or row.get("status").lower() == "tobedeleted":
                continue
            try:
                cds = validation.school_cds(row.get("identifier"), self.lea_cds)
                name = validation.plain_text(row.get("name"), "the school name")
                if not name or len(name) > 200:
                    raise InvalidInput("the school name must be 1 to 200 characters")
            except InvalidInput as error:
                self._refuse(path, row.line, str(error))
                continue
            if cds in seen:
                self._refuse(path, row.line, f"CDS code {cds} is already on line {seen[cds]}")
                continue
            seen[cds] = row.line
            if cds in existing:
                school_id, old = existing[cds]
                if old != name:
                    self.c.execute(
                        update(_school).where(_school.c.id == school_id).values(name=name)
                    )
                    self.result.schools.note(f"school {cds}", ["name"])
            else:
                inserted = self.c.execute(
                    insert(_school).values(lea_id=self.lea_id, cds_code=cds, name=name)
                )
                school_id = cast(Any, inserted.inserted_primary_key)[0]
                self.result.schools.new += 1
            self.schools[row.get("sourcedId")] = school_id

    def _demographics(self, path: Path) -> None:
        staged: list[dict[str, Any]] = []
        seen: set[str] = set()  # a district's worth of sourcedIds; only while this file is read
        for row in self._read(path, ("sourcedId", "birthDate")):
            sis_id, text = row.get("sourcedId"), row.get("birthDate")
            if not text or sis_id in seen:
                continue
            try:
                born = date.fromisoformat(text)
            except ValueError:
                self._refuse(path, row.line, f"birthDate {text!r} is not a date like 2014-09-01")
                continue
            seen.add(sis_id)
            staged.append({"sis_id": sis_id, "birth_date": born})
            if len(staged) >= BATCH:
                self.c.execute(insert(_births), staged)
                staged = []
        if staged:
            self.c.execute(insert(_births), staged)

    # -- students --------------------------------------------------------------------------

    def _ssid(self, row: Row) -> str:
        wanted = self.options.ssid_user_id_type
        if not wanted:
            return validation.ssid(row.get("identifier"))
        for kind, value in _USER_ID.findall(row.get("userIds")):
            if kind.lower() == wanted.lower():
                return validation.ssid(value)
        raise InvalidInput(f"userIds has no {wanted} entry")

    def _students(self) -> None:
        path = self.files.users
        assert path is not None
        for chunk in self._users(("student",), "students"):
            staged = [
                {"line": r.line, "sis_id": r.get("sourcedId"), "agents": r.get("agentSourcedIds")}
                for r in chunk
                if r.get("agentSourcedIds")
            ]
            if staged:  # read back by the links pass, instead of reading users.csv a third time
                _insert_rows(self.c, _agents, staged)
            parsed: list[tuple[Row, StudentIn, str]] = []
            skipped: list[str] = []
            for row in chunk:
                try:
                    grade = self._grade(row.get("grades"))
                    if grade not in validation.GRADES:
                        self.result.not_tested += 1
                        skipped.append(row.get("sourcedId"))
                        continue
                    parsed.append((row, self._student_in(row, grade), row.get("sourcedId")))
                except InvalidInput as error:
                    self._refuse(path, row.line, str(error))
                    skipped.append(row.get("sourcedId"))
            self._pass_over(skipped)
            self._write_students(path, parsed)

    def _grade(self, cell: str) -> int:
        grades = _listed(cell)
        if not grades:
            raise InvalidInput("grades is empty")
        text = grades[0].upper()
        if text in _GRADES:
            return _GRADES[text]
        try:
            return int(text)
        except ValueError:
            raise InvalidInput(f"grade {grades[0]!r} is not PK, TK, KG or 01 to 12") from None

    def _student_in(self, row: Row, grade: int) -> StudentIn:
        school = next(
            (self.schools[o] for o in _listed(row.get("orgSourcedIds")) if o in self.schools), None
        )
        if school is None:
            raise InvalidInput(
                f"orgSourcedIds {row.get('orgSourcedIds')!r} names no school of orgs.csv"
            )
        if not row.get("sourcedId"):
            raise InvalidInput("sourcedId is empty")
        return StudentIn(
            ssid=self._ssid(row),
            school_id=school,
            first_name=row.get("givenName"),
            last_name=row.get("familyName"),
            grade=grade,
        )

    def _write_students(self, path: Path, parsed: list[tuple[Row, StudentIn, str]]) -> None:
        result = self.result
        ssids = [data.ssid for _, data, _ in parsed]
        sis = self._firsts(_contacts.c.ssid, ssids)
        births = dict(
            self.c.execute(
                select(_births.c.sis_id, _births.c.birth_date).where(
                    _births.c.sis_id.in_([s for _, _, s in parsed])
                )
            ).all()
        )
        existing = {
            r["ssid"]: r
            for r in self.c.execute(
                select(_student, _seen_student.c.line.label("seen_on"))
                .outerjoin(_seen_student, _seen_student.c.id == _student.c.id)
                .where(_student.c.ssid.in_(ssids))
            )
            .mappings()
            .all()
        }
        in_chunk: dict[str, int] = {}
        new: list[tuple[int, dict[str, Any]]] = []
        changed: list[dict[str, Any]] = []
        touched: list[dict[str, int]] = []
        refused: list[str] = []
        for row, data, sis_id in parsed:
            old = existing.get(data.ssid)
            earlier = in_chunk.get(data.ssid) or (old["seen_on"] if old else None)
            if earlier:
                self._refuse(path, row.line, f"SSID {data.ssid} is already on line {earlier}")
                refused.append(sis_id)
                continue
            if old is not None and old["lea_id"] != self.lea_id:
                self._refuse(
                    path, row.line, f"SSID {data.ssid} belongs to a student of another LEA"
                )
                refused.append(sis_id)
                continue
            extra = sis.get(data.ssid, {})
            code = extra.get("home_language")
            status = extra.get("elas")
            family = calpads.family_language(code)
            if code and family is None:
                result.other_languages[code] += 1
            try:
                values = student_values(
                    self.lea_id,
                    StudentIn(
                        ssid=data.ssid,
                        school_id=data.school_id,
                        first_name=data.first_name,
                        last_name=data.last_name,
                        grade=data.grade,
                        primary_language=family or "en",
                        english_learner=status == "EL",
                        birth_date=births.get(sis_id),
                    ),
                )
            except InvalidInput as error:
                self._refuse(path, row.line, str(error))
                refused.append(sis_id)
                continue
            in_chunk[data.ssid] = row.line
            values |= {
                "sis_id": sis_id,
                "home_language_code": code,
                "elas": status,
                "withdrawn_at": None,
            }
            if old is None:
                new.append((row.line, values))
                continue
            touched.append({"id": old["id"], "line": row.line})
            differ = [f for f in _STUDENT_FIELDS if old[f] != values[f]]
            if differ:
                label = ["reinstated" if f == "withdrawn_at" else f for f in differ]
                result.students.note(f"SSID {data.ssid}", label)
                changed.append({"b_id": old["id"], **values})
            else:
                result.unchanged_students += 1
        if changed:
            self.c.execute(
                update(Student.__table__)  # type: ignore[attr-defined]
                .where(Student.__table__.c.id == bindparam("b_id"))  # type: ignore[attr-defined]
                .values({k: bindparam(k) for k in changed[0] if k != "b_id"}),
                changed,
            )
        if new:
            self.c.execute(insert(_student), [values for _, values in new])
            ids = self._ids(_student.c.ssid, [values["ssid"] for _, values in new])
            touched += [{"id": ids[values["ssid"]], "line": line} for line, values in new]
            result.students.new += len(new)
        if touched:
            _insert_rows(self.c, _seen_student, touched)
        self._pass_over(refused)

    def _ids(self, key: sa.Column[Any], values: list[str]) -> dict[str, int]:
        """The ids of rows just inserted, by their unique key (SSID, or the guardian's sourcedId
        in this LEA). An INSERT ... RETURNING in parameter order runs row by row on SQLite;
        a plain executemany and one SELECT per batch is several times cheaper."""
        table = key.table
        query = select(key, table.c.id).where(key.in_(values))
        if "lea_id" in table.c:
            query = query.where(table.c.lea_id == self.lea_id)
        return {value: row_id for value, row_id in self.c.execute(query).all()}

    # -- guardians -------------------------------------------------------------------------

    def _guardians(self) -> None:
        path = self.files.users
        assert path is not None
        for chunk in self._users(GUARDIAN_ROLES, "guardians"):
            self._write_guardians(path, chunk)

    def _known_students(
        self, sis_ids: list[str]
    ) -> tuple[dict[str, tuple[int, str, str]], set[str]]:
        """Students of this run by sourcedId (id, SSID, language), and the passed-over ones."""
        found: dict[str, tuple[int, str, str]] = {}
        skipped: set[str] = set()
        if not sis_ids:
            return found, skipped
        for sid, sis_id, ssid, language in self.c.execute(
            select(_student.c.id, _student.c.sis_id, _student.c.ssid, _student.c.primary_language)
            .join(_seen_student, _seen_student.c.id == _student.c.id)
            .where(_student.c.lea_id == self.lea_id, _student.c.sis_id.in_(sis_ids))
        ).all():
            found[sis_id] = (sid, ssid, language)
        skipped.update(
            self.c.execute(
                select(_passed_over.c.sis_id).where(_passed_over.c.sis_id.in_(sis_ids))
            ).scalars()
        )
        return found, skipped

    def _write_guardians(self, path: Path, chunk: list[Row]) -> None:
        result = self.result
        sis_ids = [row.get("sourcedId") for row in chunk]
        contacts = self._firsts(_contacts.c.guardian_id, sis_ids)
        students, passed_over = self._known_students(
            sorted({s for row in chunk for s in _listed(row.get("agentSourcedIds"))})
        )
        custody = self._custody(sis_ids)
        existing = {
            r["sis_id"]: r
            for r in self.c.execute(
                select(_guardian, _seen_guardian.c.line.label("seen_on"))
                .outerjoin(_seen_guardian, _seen_guardian.c.id == _guardian.c.id)
                .where(_guardian.c.lea_id == self.lea_id, _guardian.c.sis_id.in_(sis_ids))
            )
            .mappings()
            .all()
        }
        in_chunk: dict[str, int] = {}
        new: list[tuple[Row, dict[str, Any], list[tuple[int, str]]]] = []
        changed: list[dict[str, Any]] = []
        touched: list[tuple[int, Row, list[tuple[int, str]]]] = []
        for row in chunk:
            sis_id = row.get("sourcedId")
            old = existing.get(sis_id)
            earlier = in_chunk.get(sis_id) or (old["seen_on"] if old else None)
            if not sis_id:
                self._refuse(path, row.line, "sourcedId is empty")
                continue
            if earlier:
                self._refuse(path, row.line, f"sourcedId {sis_id} is already on line {earlier}")
                continue
            agents = _listed(row.get("agentSourcedIds"))
            unknown = [a for a in agents if a not in students and a not in passed_over]
            if unknown:
                self._refuse(
                    path,
                    row.line,
                    f"links to student {unknown[0]}, who is not a student in users.csv",
                )
                continue
            children = [students[a][:2] for a in agents if a in students]
            extra = contacts.get(sis_id, {})
            language = extra.get("language") or next(
                (students[a][2] for a in agents if a in students), "en"
            )
            try:
                values = guardian_values(
                    self.lea_id,
                    GuardianIn(
                        first_name=row.get("givenName"),
                        last_name=row.get("familyName"),
                        preferred_language=language,
                        email=row.get("email"),
                        phone=row.get("sms") or row.get("phone"),
                        address_line1=extra.get("address_line1"),
                        address_line2=extra.get("address_line2"),
                        city=extra.get("city"),
                        state=extra.get("state"),
                        zip_code=extra.get("zip_code"),
                        uses_portal=bool(extra.get("uses_portal")),
                    ),
                )
            except InvalidInput as error:
                self._refuse(path, row.line, str(error))
                continue
            in_chunk[sis_id] = row.line
            values |= {"sis_id": sis_id, "do_not_contact": bool(extra.get("do_not_contact"))}
            if old is None:
                new.append((row, values, children))
                continue
            touched.append((old["id"], row, children))
            differ = [f for f in _GUARDIAN_FIELDS if old[f] != values[f]]
            if differ:
                result.guardians.note(f"guardian {sis_id}", differ)
                changed.append({"b_id": old["id"], **values})
            else:
                result.unchanged_guardians += 1
        if changed:
            self.c.execute(
                update(Guardian.__table__)  # type: ignore[attr-defined]
                .where(Guardian.__table__.c.id == bindparam("b_id"))  # type: ignore[attr-defined]
                .values({k: bindparam(k) for k in changed[0] if k != "b_id"}),
                changed,
            )
        if new:
            _insert_rows(self.c, _guardian, [values for _, values, _ in new])
            ids = self._ids(_guardian.c.sis_id, [values["sis_id"] for _, values, _ in new])
            touched += [(ids[values["sis_id"]], row, kids) for row, values, kids in new]
            result.guardians.new += len(new)
        if touched:
            _insert_rows(
                self.c,
                _seen_guardian,
                [
                    {"id": gid, "line": row.line, "relationship": row.get("role").lower()}
                    for gid, row, _ in touched
                ],
            )
            links = [
                {
                    "student_id": sid,
                    "guardian_id": gid,
                    "relationship": row.get("role").lower(),
                    "is_primary": False,
                    "receives_records": custody.get((ssid, row.get("sourcedId")), True),
                }
                for gid, row, kids in touched
                for sid, ssid in dict(kids).items()
            ]
            if links:
                _insert_rows(self.c, _seen_link, links)

    def _custody(self, guardian_sis_ids: list[str]) -> dict[tuple[str, str], bool]:
        """(SSID, guardian sourcedId) -> may receive records, where the contacts CSV says."""
        return {
            (ssid, gid): bool(flag)
            for ssid, gid, flag in self.c.execute(
                select(_contacts.c.ssid, _contacts.c.guardian_id, _contacts.c.receives_records)
                .where(
                    _contacts.c.guardian_id.in_(guardian_sis_ids),
                    _contacts.c.receives_records.is_not(None),
                )
                .order_by(_contacts.c.line.desc())  # the first line wins
            ).all()
        }

    # -- links listed on the student's side -----------------------------------------------

    def _student_links(self) -> None:
        path = self.files.users
        assert path is not None
        for chunk in self._staged_agents():
            wanted = {row.get("sourcedId"): row for row in chunk if row.get("agentSourcedIds")}
            if not wanted:
                continue
            students, _ = self._known_students(list(wanted))
            agents = sorted(
                {a for row in wanted.values() for a in _listed(row.get("agentSourcedIds"))}
            )
            guardians = {sis_id: (gid, role) for gid, sis_id, role in self._seen_guardians(agents)}
            custody = self._custody(agents)
            pairs: dict[tuple[int, int], dict[str, Any]] = {}
            for sis_id, row in wanted.items():
                if sis_id not in students:
                    continue  # refused or passed over in the students pass
                sid, ssid, _ = students[sis_id]
                for index, agent in enumerate(_listed(row.get("agentSourcedIds"))):
                    if agent not in guardians:
                        self._refuse(
                            path,
                            row.line,
                            f"links to guardian {agent}, who is not a guardian in users.csv",
                        )
                        continue
                    gid, role = guardians[agent]
                    pairs.setdefault(
                        (sid, gid),
                        {
                            "student_id": sid,
                            "guardian_id": gid,
                            "relationship": role,
                            "is_primary": index == 0,
                            "receives_records": custody.get((ssid, agent), True),
                        },
                    )
            self._merge_links(pairs)

    def _staged_agents(self) -> Iterator[list[Row]]:
        """The students' ``agentSourcedIds`` as the students pass kept them, in file order."""
        index = {"sourcedId": 0, "agentSourcedIds": 1}
        after = 0
        while page := self.c.execute(
            select(_agents.c.line, _agents.c.sis_id, _agents.c.agents)
            .where(_agents.c.line > after)
            .order_by(_agents.c.line)
            .limit(BATCH)
        ).all():
            yield [Row(line, [sis_id, agents], index) for line, sis_id, agents in page]
            after = page[-1][0]
            self.progress("links", after)

    def _seen_guardians(self, sis_ids: list[str]) -> list[tuple[int, str, str]]:
        """Guardians of this run by sourcedId: (id, sourcedId, role as the relationship)."""
        if not sis_ids:
            return []
        return [
            (gid, sis_id, role)
            for gid, sis_id, role in self.c.execute(
                select(_guardian.c.id, _guardian.c.sis_id, _seen_guardian.c.relationship)
                .join(_seen_guardian, _seen_guardian.c.id == _guardian.c.id)
                .where(_guardian.c.lea_id == self.lea_id, _guardian.c.sis_id.in_(sis_ids))
            ).all()
        ]

    def _merge_links(self, pairs: dict[tuple[int, int], dict[str, Any]]) -> None:
        if not pairs:
            return
        students = sorted({s for s, _ in pairs})
        present = {
            (s, g)
            for s, g in self.c.execute(
                select(_seen_link.c.student_id, _seen_link.c.guardian_id).where(
                    _seen_link.c.student_id.in_(students)
                )
            ).all()
        }
        primaries = [
            {"s": s, "g": g}
            for (s, g), link in pairs.items()
            if (s, g) in present and link["is_primary"]
        ]
        if primaries:
            self.c.execute(
                update(_seen_link)
                .where(
                    _seen_link.c.student_id == bindparam("s"),
                    _seen_link.c.guardian_id == bindparam("g"),
                )
                .values(is_primary=True),
                primaries,
            )
        fresh = [link for key, link in pairs.items() if key not in present]
        if fresh:
            _insert_rows(self.c, _seen_link, fresh)

    def _finish_links(self) -> None:
        """Compare the links the files list with those on file, for the students seen."""
        link = _seen_link
        other = link.alias("other")
        first = link.alias("first")
        no_primary = ~sa.exists().where(other.c.student_id == link.c.student_id, other.c.is_primary)
        lowest = (
            select(func.min(first.c.guardian_id))
            .where(first.c.student_id == link.c.student_id)
            .scalar_subquery()
        )
        self.c.execute(
            update(link).where(no_primary, link.c.guardian_id == lowest).values(is_primary=True)
        )
        sg = _link
        same = sa.and_(sg.c.student_id == link.c.student_id, sg.c.guardian_id == link.c.guardian_id)
        differs = sa.or_(
            sg.c.relationship != link.c.relationship,
            sg.c.is_primary != link.c.is_primary,
            sg.c.receives_records != link.c.receives_records,
        )
        changes = self.result.links
        for field_name in ("relationship", "is_primary", "receives_records"):
            count = self.c.execute(
                select(func.count())
                .select_from(link)
                .join(sg, same)
                .where(sg.c[field_name] != link.c[field_name])
            ).scalar_one()
            if count:
                changes.fields[field_name] += count
        changes.changed = self.c.execute(
            select(func.count()).select_from(link).join(sg, same).where(differs)
        ).scalar_one()
        if changes.changed:
            for name in ("relationship", "is_primary", "receives_records"):
                self.c.execute(
                    update(sg)
                    .where(sa.exists().where(same, link.c[name] != sg.c[name]))
                    .values({name: select(link.c[name]).where(same).scalar_subquery()})
                )
        stale = sa.and_(
            sg.c.student_id.in_(select(_seen_student.c.id)),
            ~sa.exists().where(same),
        )
        changes.removed = self.c.execute(
            select(func.count()).select_from(sg).where(stale)
        ).scalar_one()
        if changes.removed:
            self.c.execute(sg.delete().where(stale))
        missing = ~sa.exists().where(same)
        changes.new = self.c.execute(
            select(func.count()).select_from(link).where(missing)
        ).scalar_one()
        if changes.new:
            self.c.execute(
                insert(sg).from_select(
                    ["student_id", "guardian_id", "relationship", "is_primary", "receives_records"],
                    select(
                        link.c.student_id,
                        link.c.guardian_id,
                        link.c.relationship,
                        link.c.is_primary,
                        link.c.receives_records,
                    ).where(missing),
                )
            )

    # -- who is missing --------------------------------------------------------------------

    def _missing(self) -> None:
        result = self.result
        gone = sa.and_(
            _student.c.lea_id == self.lea_id,
            _student.c.withdrawn_at.is_(None),  # type: ignore[union-attr]
            _student.c.id.not_in(select(_seen_student.c.id)),  # type: ignore[union-attr]
        )
        result.missing_students = list(
            self.c.execute(
                select(_student.c.ssid).where(gone).order_by(_student.c.ssid).limit(KEEP_EXAMPLES)
            ).scalars()
        )
        if self.options.full and result.missing_students:
            result.withdrawn = self.c.execute(
                select(func.count()).select_from(_student).where(gone)
            ).scalar_one()
            self.c.execute(update(_student).where(gone).values(withdrawn_at=self.now))
        result.missing_guardians = self.c.execute(
            select(func.count())
            .select_from(_guardian)
            .where(
                _guardian.c.lea_id == self.lea_id,
                _guardian.c.sis_id.is_not(None),  # type: ignore[union-attr]
                _guardian.c.id.not_in(select(_seen_guardian.c.id)),  # type: ignore[union-attr]
            )
        ).scalar_one()
