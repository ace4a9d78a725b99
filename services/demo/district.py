"""The synthetic demo LEA: a deterministic district with schools, families and their SSRs.

``seed`` builds Sierra Vista Unified School District (Riverside County, CDS 3367990) from a seed
number: the same seed gives the same rows and the same PDF bytes. Schools scale with the number of
students (elementary schools test grades 3-5, middle schools 6-8, high schools grade 11). Families
are generated one at a time and written, as an SIS exports them, to OneRoster 1.1 CSV and a
contacts CSV in ``<data_dir>/demo-roster`` (``services.demo.roster_files``); the district's own
roster import (``services.roster.sis_import``) reads them in, so every demo goes through the door
a real LEA uses. Both stream, so 300,000 students take flat memory.

Families: preferred language about 55% English, 30% Spanish and 5% each Mandarin, Vietnamese and
Filipino, with names of that community; about 20% of families have two or three tested children
sharing their guardians, about 35% have two guardians; about 15% of guardians have no email, about
40% do not use the parent portal and about 2% have no usable mailing address.

Tests, administration 2026 (school year 2025-26): every student has one CAASPP SSR (test ``SB``)
showing Smarter Balanced ELA and mathematics, plus CAST science in grades 5, 8 and 11 on the same
report, as on the real SSR. English learners (about 20% of students, all with a primary language
other than English) also have a Summative ELPAC SSR (test ``SUMMATIVE``). Reports are rendered in
English (``language = en``); translated SSRs are not synthesised. Without PDFs (``pdfs=False``) no
``ScoreReport`` rows are written, since a row must point at a file.

PDFs are rendered by a process pool (one worker per core) that writes the files and returns their
sha256 and size; this process inserts the ``ScoreReport`` rows. One audit event (``demo.seed``,
system actor, counts only) records the seed.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import random
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import cast

from sqlalchemy import insert, select
from sqlalchemy.engine import Engine
from sqlmodel import col

from services.access.tables import Operator, Role
from services.audit import log as audit
from services.core import private_files, validation
from services.core.db import session_scope
from services.core.errors import InvalidInput
from services.core.programs import SMARTER_BALANCED, SUMMATIVE_ELPAC, Program
from services.core.settings import Settings
from services.demo import names as demo_names
from services.demo import roster_files, ssr_pdf
from services.demo import scores as demo_scores
from services.intake.score_reports import ScoreReport
from services.roster import records as roster
from services.roster import sis_import
from services.roster.records import GuardianIn, StudentIn
from services.roster.tables import LEA, School, Student

LEA_CDS = "3367990"
LEA_NAME = "Sierra Vista Unified School District"
COUNTY = "Riverside"
DOMAIN = "svusd.example.org"
ADMIN_YEAR = 2026
CHUNK_STUDENTS = 2000
PDF_BATCH = 40
RECEIVED = {
    Program.CAASPP: datetime(2026, 7, 20, 15, 0, tzinfo=UTC),
    Program.ELPAC: datetime(2026, 6, 15, 15, 0, tzinfo=UTC),
}
"""When the demo's reports arrived from TOMS (fixed, so rows are reproducible)."""

LANGUAGE_SHARES = {"en": 55, "es": 30, "zh_Hans": 5, "vi": 5, "fil": 5}
ENGLISH_FAMILY_NAMES = {"en": 70, "es": 15, "zh_Hans": 5, "vi": 5, "fil": 5}
"""English-preferring families come from every community, mostly Anglo and Hispanic names."""

OPERATORS = (
    ("caaspp", "Dana Whitfield", Role.LEA_CAASPP, "en"),
    ("elpac", "Marisol Ortega", Role.LEA_ELPAC, "es"),
    ("site", "Tomás Reyes", Role.SITE, "en"),
    ("tech", "Kevin Tran", Role.TECH, "en"),
    ("helpdesk", "Linh Phạm", Role.HELPDESK, "vi"),
)
"""The demo's operators, one per role; ``site`` coordinates the first school."""

DEMO_GRADES = SMARTER_BALANCED.grades
"""The demo's students are in the grades every CAASPP student tests in (Smarter Balanced: 3-8, 11);
its high schools give CAST in grade 11, one of the three grades the rule allows."""
LEVELS = {
    "elementary": tuple(g for g in DEMO_GRADES if g <= 5),
    "middle": tuple(g for g in DEMO_GRADES if 6 <= g <= 8),
    "high": tuple(g for g in DEMO_GRADES if g >= 9),
}
TESTED_PER_SCHOOL = {"elementary": 150, "middle": 500, "high": 400}
SCHOOL_CODE_BASE = {"elementary": 6_100_000, "middle": 6_200_000, "high": 3_300_000}
SSID_SPAN = 9_000_000_000


@dataclass
class SeedSummary:
    """What a seed wrote, and how long it took."""

    lea_cds: str
    lea_name: str
    seed: int
    schools: int = 0
    students: int = 0
    guardians: int = 0
    links: int = 0
    english_learners: int = 0
    reports: int = 0
    pdf_bytes: int = 0
    operators: tuple[str, ...] = ()
    store: Path | None = None
    seconds: float = 0.0

    def counts(self) -> dict[str, int]:
        return {
            "schools": self.schools,
            "students": self.students,
            "guardians": self.guardians,
            "links": self.links,
            "english_learners": self.english_learners,
            "reports": self.reports,
            "operators": len(self.operators),
        }

    def __str__(self) -> str:
        rate = self.students / self.seconds if self.seconds else 0.0
        lines = [
            f"Seeded {self.lea_name} (CDS {self.lea_cds}) from seed {self.seed}:",
            f"  {self.schools} schools, {self.students} students "
            f"({self.english_learners} English learners), {self.guardians} guardians, "
            f"{self.links} student-guardian links",
        ]
        if self.reports:
            lines.append(
                f"  {self.reports} SSR PDFs, {self.pdf_bytes / 1e6:.1f} MB in {self.store} "
                f"({self.reports / self.seconds:.0f} PDFs/s)"
            )
        else:
            lines.append("  no SSR PDFs (rows only)")
        lines.append(f"  operators: {', '.join(self.operators)}")
        lines.append(f"  took {self.seconds:.1f} s ({rate:.0f} students/s)")
        return "\n".join(lines)


def exists(engine: Engine) -> bool:
    """Whether this database already holds the demo LEA."""
    with engine.connect() as connection:
        return (
            connection.scalar(select(col(LEA.id)).where(col(LEA.cds_code) == LEA_CDS)) is not None
        )


@dataclass(frozen=True, slots=True)
class _School:
    sourced_id: str
    cds: str
    name: str
    level: str


@dataclass(slots=True)
class _Child:
    data: StudentIn  # school_id unused: the child's school is ``school``
    school: _School


@dataclass(slots=True)
class _Family:
    guardians: list[tuple[GuardianIn, str]]  # (guardian, relationship); the first is primary
    children: list[_Child] = field(default_factory=list)
    first: int = 0  # the family's number, which names its people's sourcedIds

    def as_sis(self) -> roster_files.Family:
        """The family as its SIS export lists it."""
        return roster_files.Family(
            [(f"g{self.first}-{i}", g, role) for i, (g, role) in enumerate(self.guardians)],
            [(f"s{c.data.ssid}", c.data, c.school.sourced_id) for c in self.children],
        )


def seed(
    engine: Engine,
    settings: Settings,
    *,
    students: int,
    seed: int = 2026,
    pdfs: bool = True,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
) -> SeedSummary:
    """Create the demo LEA with ``students`` students (and their SSR PDFs unless ``pdfs=False``).

    Rows are committed chunk by chunk (flat memory, short transactions); a seed that fails part
    way leaves a partial demo LEA, so seed again into a fresh database. ``workers`` defaults to
    one PDF process per core.
    """
    if students < 1:
        raise InvalidInput(f"The demo needs at least one student, got {students}")
    if exists(engine):
        raise InvalidInput(
            f"This database already holds the demo LEA (CDS {LEA_CDS}); seed a fresh database"
        )
    started = time.perf_counter()
    summary = SeedSummary(LEA_CDS, LEA_NAME, seed, store=settings.report_store)
    report = (lambda done: progress(done, students)) if progress else (lambda done: None)
    lea_id, schools = _create_district(engine, students, summary)
    folder = settings.data_dir / "demo-roster"
    writer = roster_files.Writer(
        folder, (LEA_CDS, LEA_NAME), [(s.sourced_id, s.cds, s.name) for s in schools]
    )
    try:
        for family in _Generator(seed, schools).families(students):
            writer.family(family.as_sis())
            summary.english_learners += sum(c.data.english_learner for c in family.children)
    finally:
        writer.close()
    result = sis_import.import_roster(
        engine,
        writer.paths,
        lea_id=lea_id,
        actor=audit.SYSTEM_ACTOR,
        scratch=private_files.make_dirs(settings.data_dir / "scratch"),
    )
    if result.refused_count:
        raise InvalidInput(f"The demo's own roster files were refused: {result.refused[0]}")
    summary.schools = result.schools.new
    summary.students = result.students.new
    summary.guardians = result.guardians.new
    summary.links = result.links.new
    _create_operators(engine, lea_id)
    summary.operators = tuple(o[0] for o in OPERATORS)
    if pdfs:
        _render(engine, settings, seed, schools, students, summary, report, workers)
    else:
        report(summary.students)
    with session_scope(engine) as session:
        summary.seconds = time.perf_counter() - started
        audit.record(
            session,
            audit.SYSTEM_ACTOR,
            "demo.seed",
            f"lea:{LEA_CDS}",
            {"seed": seed, "pdfs": pdfs, **summary.counts()},
            lea_id=lea_id,
        )
    return summary


def _render(
    engine: Engine,
    settings: Settings,
    seed: int,
    schools: list[_School],
    students: int,
    summary: SeedSummary,
    report: Callable[[int], None],
    workers: int | None = None,
) -> None:
    """Every student's SSRs: the families generated again from the same seed (the same
    students), matched to the imported rows by SSID, rendered by a process pool."""
    pool = _pool(workers)
    try:
        renderer = _Renderer(pool, engine, settings.report_store, seed, summary, report)
        for chunk in _chunks(_Generator(seed, schools).families(students)):
            ssids = [c.data.ssid for f in chunk for c in f.children]
            with engine.connect() as connection:
                ids = dict(
                    connection.execute(
                        select(col(Student.ssid), col(Student.id)).where(
                            col(Student.ssid).in_(ssids)
                        )
                    ).all()
                )
            renderer.submit(chunk, [cast(int, ids[ssid]) for ssid in ssids])
            renderer.drain(keep=1)
        renderer.drain(keep=0)
    finally:
        pool.shutdown(cancel_futures=True)


def _pool(workers: int | None) -> ProcessPoolExecutor:
    # forkserver: workers start from a clean process that has reportlab loaded and holds none
    # of this process's database connections or threads.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["services.demo.ssr_pdf"])
    return ProcessPoolExecutor(max_workers=workers or os.cpu_count() or 2, mp_context=context)


def school_counts(students: int) -> dict[str, int]:
    """How many schools of each level a district of ``students`` tested students has."""
    share = {level: len(grades) / len(DEMO_GRADES) for level, grades in LEVELS.items()}
    return {
        level: max(1, math.ceil(students * share[level] / TESTED_PER_SCHOOL[level]))
        for level in LEVELS
    }


def _school_name(level: str, index: int) -> str:
    names, prefixes = demo_names.SCHOOL_NAMESAKES, demo_names.SCHOOL_PREFIXES
    cycle, position = divmod(index, len(names))
    prefix = prefixes[cycle % len(prefixes)]
    number = f" {cycle // len(prefixes) + 1}" if cycle >= len(prefixes) else ""
    kind = {"elementary": "Elementary", "middle": "Middle", "high": "High"}[level]
    # each level walks the namesakes from its own offset so levels do not share names
    offset = {"elementary": 0, "middle": 20, "high": 40}[level]
    namesake = names[(position + offset) % len(names)]
    return f"{prefix}{namesake}{number} {kind} School"


def _create_district(
    engine: Engine, students: int, summary: SeedSummary
) -> tuple[int, list[_School]]:
    """The LEA, and the schools its SIS export will list (the import creates their rows)."""
    with session_scope(engine) as session:
        lea = roster.create_lea(session, LEA_CDS, LEA_NAME, COUNTY)
        lea_id = lea.id
    schools = []
    for level, count in school_counts(students).items():
        for index in range(count):
            code = f"{LEA_CDS}{SCHOOL_CODE_BASE[level] + index * 13:07d}"
            schools.append(_School(f"org-{code}", code, _school_name(level, index), level))
    return lea_id, schools  # type: ignore[return-value]


def _create_operators(engine: Engine, lea_id: int) -> None:
    """The demo operators, one per role; ``site`` coordinates the first school."""
    with session_scope(engine) as session:
        first_school = session.scalar(
            select(col(School.id)).where(col(School.lea_id) == lea_id).order_by(col(School.id))
        )
        for username, name, role, language in OPERATORS:
            first, last = name.split(" ", 1)
            session.add(
                Operator(
                    username=username,
                    display_name=name,
                    role=role,
                    lea_id=lea_id,
                    school_id=first_school if role is Role.SITE else None,
                    email=f"{roster.fold(first[0] + last).lower()}@{DOMAIN}",
                    language=validation.language(language),
                )
            )


def ssid_sequence(seed: int) -> Callable[[int], str]:
    """The i-th SSID of a seed: an affine permutation of 10-digit numbers, unique without a set."""
    rng = random.Random(f"ssid:{seed}")
    multiplier = rng.randrange(10**8, 10**9)
    while math.gcd(multiplier, SSID_SPAN) != 1:
        multiplier += 1
    offset = rng.randrange(SSID_SPAN)
    return lambda index: str(1_000_000_000 + (index * multiplier + offset) % SSID_SPAN)


class _Generator:
    """Families, one at a time, from one random stream: deterministic for a seed."""

    def __init__(self, seed: int, schools: list[_School]) -> None:
        self.rng = random.Random(seed)
        self.ssid = ssid_sequence(seed)
        self.by_grade = {
            grade: [s for s in schools if grade in LEVELS[s.level]] for grade in DEMO_GRADES
        }
        self.count = 0

    def families(self, students: int) -> Iterator[_Family]:
        while self.count < students:
            yield self._family(students - self.count)

    def _pick(self, weights: dict[str, int]) -> str:
        return self.rng.choices(list(weights), weights=list(weights.values()))[0]

    def _family(self, remaining: int) -> _Family:
        rng = self.rng
        language = self._pick(LANGUAGE_SHARES)
        group = demo_names.BY_LANGUAGE[
            self._pick(ENGLISH_FAMILY_NAMES) if language == "en" else language
        ]
        surname = rng.choice(group.last)
        address = self._address() if rng.random() >= 0.02 else None
        # relationships stay gender-neutral: the name lists do not record gender
        first_role = self._pick({"parent": 90, "grandparent": 5, "guardian": 5})
        primary = self._guardian(group, surname, language, address)
        guardians = [(primary, first_role)]
        if rng.random() < 0.35:
            other_surname = rng.choice(group.last) if rng.random() < 0.3 else surname
            other = self._guardian(group, other_surname, language, address, primary.first_name)
            guardians.append((other, "parent"))
        size = min(remaining, 1 if rng.random() < 0.8 else rng.choice((2, 2, 3)))
        family = _Family(guardians, first=self.count)
        for _ in range(size):
            family.children.append(self._child(group, surname, language))
        return family

    def _address(self) -> tuple[str, str | None, str, str]:
        rng = self.rng
        city, zips = rng.choice(demo_names.CITIES)
        line1 = f"{rng.randint(100, 39999)} {rng.choice(demo_names.STREETS)}"
        line2 = f"Apt {rng.randint(1, 240)}" if rng.random() < 0.25 else None
        return line1, line2, city, rng.choice(zips)

    def _guardian(
        self,
        group: demo_names.NameGroup,
        surname: str,
        language: str,
        address: tuple[str, str | None, str, str] | None,
        unlike: str = "",
    ) -> GuardianIn:
        rng = self.rng
        first = rng.choice([name for name in group.adult if name != unlike])
        email = None
        if rng.random() >= 0.15:
            local = roster.fold(f"{first}.{surname}").lower().replace(" ", "")
            email = f"{local}{rng.randint(1, 999)}@{rng.choice(demo_names.EMAIL_DOMAINS)}"
        portal = rng.random() < (0.67 if email else 0.2)
        phone = f"(951) 555-01{rng.randint(0, 99):02d}" if rng.random() < 0.95 else None
        line1, line2, city, zip_code = address or (None, None, None, None)
        return GuardianIn(
            first_name=first,
            last_name=surname,
            preferred_language=language,
            email=email,
            phone=phone,
            address_line1=line1,
            address_line2=line2,
            city=city,
            state="CA" if address else None,
            zip_code=zip_code,
            uses_portal=portal,
        )

    def _child(self, group: demo_names.NameGroup, surname: str, language: str) -> _Child:
        rng = self.rng
        grade = rng.choice(DEMO_GRADES)
        school = rng.choice(self.by_grade[grade])
        primary = language if language != "en" and rng.random() < 0.9 else "en"
        learner = primary != "en" and rng.random() < 0.5
        born = date(2019 - grade, 9, 1) + timedelta(days=rng.randrange(365))
        data = StudentIn(
            ssid=self.ssid(self.count),
            school_id=0,
            first_name=rng.choice(group.child),
            last_name=surname,
            grade=grade,
            primary_language=primary,
            english_learner=learner,
            birth_date=born,
        )
        self.count += 1
        return _Child(data, school)


def _chunks(families: Iterator[_Family]) -> Iterator[list[_Family]]:
    """Families grouped so each chunk holds about CHUNK_STUDENTS students."""
    chunk: list[_Family] = []
    size = 0
    for family in families:
        chunk.append(family)
        size += len(family.children)
        if size >= CHUNK_STUDENTS:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def address_block(guardians: list[GuardianIn]) -> tuple[str, ...]:
    """The first guardian with a usable mailing address, as printed lines (empty if none)."""
    for g in guardians:
        if g.address_line1 and g.city and g.state and g.zip_code:
            lines = [f"{g.first_name} {g.last_name}", g.address_line1]
            if g.address_line2:
                lines.append(g.address_line2)
            lines.append(f"{g.city}, {g.state} {g.zip_code}")
            return tuple(lines)
    return ()


@dataclass(frozen=True, slots=True)
class _Pending:
    student_ids: list[int]
    programs: list[Program]
    batches: list[Future[list[ssr_pdf.Written]]]
    students: int


class _Renderer:
    """Sends each chunk's SSRs to the pool and records the finished files as ScoreReport rows.

    At most ``keep + 1`` chunks are in flight, so memory stays bounded however many students.
    """

    def __init__(
        self,
        pool: ProcessPoolExecutor | None,
        engine: Engine,
        store: Path,
        seed: int,
        summary: SeedSummary,
        report: Callable[[int], None],
    ) -> None:
        self.pool, self.engine, self.store, self.seed = pool, engine, store, seed
        self.summary, self.report = summary, report
        self.pending: deque[_Pending] = deque()
        self.students_done = 0

    def submit(self, chunk: list[_Family], student_ids: list[int]) -> None:
        assert self.pool is not None
        inputs: list[ssr_pdf.SsrInput] = []
        owners: list[int] = []
        programs: list[Program] = []
        position = 0
        for family in chunk:
            block = address_block([g for g, _ in family.guardians])
            for child in family.children:
                for program, report in ssr_inputs(child.data, child.school.name, block, self.seed):
                    inputs.append(report)
                    owners.append(student_ids[position])
                    programs.append(program)
                position += 1
        batches = [
            self.pool.submit(ssr_pdf.write_many, inputs[i : i + PDF_BATCH], self.store)
            for i in range(0, len(inputs), PDF_BATCH)
        ]
        self.pending.append(_Pending(owners, programs, batches, len(student_ids)))

    def drain(self, keep: int) -> None:
        while len(self.pending) > keep:
            done = self.pending.popleft()
            written = [w for batch in done.batches for w in batch.result()]
            rows = [
                {
                    "student_id": student_id,
                    "program": program,
                    "admin_year": ADMIN_YEAR,
                    "test": _TESTS[program],
                    "language": "en",
                    "version": 1,
                    "file_path": w.path,
                    "sha256": w.sha256,
                    "size_bytes": w.size,
                    "received_at": RECEIVED[program],
                }
                for student_id, program, w in zip(
                    done.student_ids, done.programs, written, strict=True
                )
            ]
            with self.engine.begin() as connection:
                connection.execute(insert(ScoreReport), rows)
            self.summary.reports += len(rows)
            self.summary.pdf_bytes += sum(w.size for w in written)
            self.students_done += done.students
            self.report(self.students_done)


_TESTS = {Program.CAASPP: SMARTER_BALANCED.code, Program.ELPAC: SUMMATIVE_ELPAC.code}
_TITLES = {
    Program.CAASPP: "CAASPP Student Score Report",
    Program.ELPAC: "Summative ELPAC Student Score Report",
}


def ssr_inputs(
    student: StudentIn, school: str, address: tuple[str, ...], seed: int
) -> list[tuple[Program, ssr_pdf.SsrInput]]:
    """The SSRs of one student; scores come from a stream of their own, keyed by seed and SSID."""
    rng = random.Random(f"scores:{seed}:{student.ssid}")
    grade = int(student.grade)
    ability = rng.gauss(-0.6 if student.english_learner else 0.1, 1.0)
    results = {Program.CAASPP: demo_scores.caaspp(rng, grade, ability)}
    if student.english_learner:
        results[Program.ELPAC] = demo_scores.elpac(rng, grade, ability + 0.4)
    return [
        (
            program,
            ssr_pdf.SsrInput(
                program=program.value,
                test=_TESTS[program],
                admin_year=ADMIN_YEAR,
                language="en",
                report_title=_TITLES[program],
                student_name=f"{student.first_name} {student.last_name}",
                ssid=student.ssid,
                grade=grade,
                school=school,
                lea=LEA_NAME,
                lea_cds=LEA_CDS,
                scores=scores,
                address=address,
            ),
        )
        for program, scores in results.items()
    ]
