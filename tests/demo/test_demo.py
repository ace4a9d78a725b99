"""The demo LEA: deterministic, realistic in its mix of families, with readable SSR PDFs."""

from __future__ import annotations

import hashlib
import stat
import subprocess
from collections import Counter
from pathlib import Path

import pikepdf
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from console import cli
from services.access.tables import Operator, Role
from services.audit import log as audit
from services.audit.tables import AuditEvent
from services.core import db
from services.core.errors import InvalidInput
from services.core.programs import Program
from services.core.settings import Settings
from services.demo import district as demo
from services.demo import ssr_pdf
from services.intake.report_store import ReportStore
from services.intake.score_reports import ScoreReport
from services.roster.tables import LEA, Guardian, School, Student, StudentGuardian
from tests.databases import copy_sqlite_file


def _seeded(
    migrated: Path, root: Path, students: int, pdfs: bool, seed: int = 2026
) -> tuple[Engine, Settings]:
    """``demo.seed`` on a copy of the session's ``migrated`` database in ``root``."""
    copy_sqlite_file(migrated, root / "ssr.db")
    url = f"sqlite:///{root / 'ssr.db'}"
    engine = db.make_engine(url)
    settings = Settings(database_url=url, data_dir=root)
    demo.seed(engine, settings, students=students, seed=seed, pdfs=pdfs, workers=2)
    return engine, settings


# One xdist worker runs this module (make test: --dist loadgroup): its fixture is built once.
pytestmark = pytest.mark.xdist_group("demo")


@pytest.fixture(scope="module")
def with_pdfs(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path
) -> tuple[Engine, Settings]:
    """60 students with their PDFs, shared by the PDF tests."""
    return _seeded(sqlite_template, tmp_path_factory.mktemp("pdfs"), 60, pdfs=True)


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Engine:
    """3,000 students, rows only: enough for the shares to be meaningful, and fast."""
    return _seeded(sqlite_template, tmp_path_factory.mktemp("rows"), 3000, pdfs=False)[0]


def _snapshot(engine: Engine, store: Path) -> list[tuple]:
    with engine.connect() as c:
        tables = [
            c.execute(
                select(Student.ssid, Student.first_name, Student.last_name, Student.grade)
                .add_columns(Student.birth_date, Student.primary_language, Student.english_learner)
                .add_columns(School.cds_code)
                .join(School)
                .order_by(Student.id)
            ).all(),
            c.execute(select(Guardian).order_by(Guardian.id)).all(),
            c.execute(select(StudentGuardian).order_by("student_id", "guardian_id")).all(),
            c.execute(
                select(ScoreReport.program, ScoreReport.test, ScoreReport.sha256)
                .add_columns(ScoreReport.size_bytes, ScoreReport.file_path, ScoreReport.received_at)
                .order_by(ScoreReport.id)
            ).all(),
            c.execute(select(Operator).order_by(Operator.id)).all(),
        ]
    return [tuple(str(v).replace(str(store), "<store>") for v in row) for t in tables for row in t]


def test_same_seed_gives_same_rows_and_same_pdf_bytes(tmp_path, sqlite_template, with_pdfs):
    engine, settings = with_pdfs
    again, again_settings = _seeded(sqlite_template, tmp_path, 60, pdfs=True)
    first = _snapshot(engine, settings.report_store)
    assert first == _snapshot(again, again_settings.report_store)
    assert any("CAASPP" in row for row in first)
    other, _ = _seeded(sqlite_template, tmp_path / "other", 60, pdfs=False, seed=7)
    assert _snapshot(other, tmp_path)[:60] != first[:60]


def test_language_mix_and_english_learners(rows):
    with rows.connect() as c:
        languages = Counter(dict(c.execute(select(Guardian.preferred_language, func.count()).group_by(Guardian.preferred_language)).all()))  # fmt: skip
        learners = (
            c.execute(select(Student.primary_language).where(Student.english_learner))
            .scalars()
            .all()
        )
        students = c.scalar(select(func.count()).select_from(Student))
        vietnamese = c.execute(select(Guardian.last_name).where(Guardian.preferred_language == "vi")).scalars().all()  # fmt: skip
    total = sum(languages.values())
    assert 0.48 < languages["en"] / total < 0.62
    assert 0.24 < languages["es"] / total < 0.36
    for code in ("zh_Hans", "vi", "fil"):
        assert 0.025 < languages[code] / total < 0.08
    assert 0.15 < len(learners) / students < 0.25
    assert all(language != "en" for language in learners)
    assert any(name in {"Nguyễn", "Trần", "Đặng"} for name in vietnamese)


def test_families_share_guardians_and_some_lack_email_portal_or_address(rows):
    with rows.connect() as c:
        per_guardian = c.execute(select(func.count()).select_from(StudentGuardian).group_by(StudentGuardian.guardian_id)).scalars().all()  # fmt: skip
        per_student = Counter(c.execute(select(func.count()).select_from(StudentGuardian).group_by(StudentGuardian.student_id)).scalars().all())  # fmt: skip
        guardians = c.execute(select(Guardian.email, Guardian.uses_portal, Guardian.zip_code)).all()
        ssids = c.execute(select(Student.ssid)).scalars().all()
        schools = c.execute(select(School.cds_code)).scalars().all()
        grades = set(c.execute(select(Student.grade).distinct()).scalars())
    assert max(per_guardian) in (2, 3)
    assert 0.08 < sum(n > 1 for n in per_guardian) / len(per_guardian) < 0.3
    assert per_student[2] > 0.2 * per_student[1] and set(per_student) == {1, 2}
    n = len(guardians)
    assert 0.10 < sum(g.email is None for g in guardians) / n < 0.20
    assert 0.33 < sum(not g.uses_portal for g in guardians) / n < 0.47
    assert 0 < sum(g.zip_code is None for g in guardians) / n < 0.05
    assert len(set(ssids)) == len(ssids) == 3000
    assert all(len(s) == 10 and s.isdigit() for s in ssids)
    assert all(len(s) == 14 and s.startswith(demo.LEA_CDS) for s in schools)
    assert grades == {3, 4, 5, 6, 7, 8, 11}


def test_operators_audit_event_and_exists(with_pdfs):
    engine, _ = with_pdfs
    assert demo.exists(engine)
    with engine.connect() as c:
        operators = {o.username: o for o in c.execute(select(Operator)).all()}
        first_school = c.scalar(select(func.min(School.id)))
        events = c.execute(select(AuditEvent).where(AuditEvent.action == "demo.seed")).all()
    assert {name: o.role for name, o in operators.items()} == {
        "caaspp": Role.LEA_CAASPP,
        "elpac": Role.LEA_ELPAC,
        "site": Role.SITE,
        "tech": Role.TECH,
        "helpdesk": Role.HELPDESK,
    }
    assert operators["site"].school_id == first_school
    assert all(o.school_id is None for n, o in operators.items() if n != "site")
    assert all(o.email.endswith("@" + demo.DOMAIN) for o in operators.values())
    assert [e.operator for e in events] == [audit.SYSTEM]
    assert '"students":60' in events[0].detail and "ssid" not in events[0].detail.lower()
    assert audit.verify(engine).ok


def test_every_student_has_a_caaspp_ssr_and_learners_an_elpac_one(with_pdfs):
    engine, _ = with_pdfs
    with engine.connect() as c:
        reports = c.execute(
            select(Student.english_learner, ScoreReport.program, func.count())
            .join(ScoreReport)
            .group_by(Student.english_learner, ScoreReport.program)
        ).all()
        students = c.execute(select(Student.english_learner, func.count()).group_by(Student.english_learner)).all()  # fmt: skip
    counts = {(learner, program): n for learner, program, n in reports}
    by_status = dict(students)
    assert counts[(False, Program.CAASPP)] == by_status[False]
    assert counts[(True, Program.CAASPP)] == counts[(True, Program.ELPAC)] == by_status[True]
    assert (False, Program.ELPAC) not in counts


def _page_one(path: str) -> str:
    return subprocess.run(
        ["pdftotext", "-f", "1", "-l", "1", "-layout", path, "-"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def test_pdfs_are_readable_private_and_match_their_rows(with_pdfs):
    engine, settings = with_pdfs
    with engine.connect() as c:
        rows = c.execute(
            select(ScoreReport, Student.ssid, Student.first_name, Student.last_name, Student.grade)
            .join(Student)
            .order_by(ScoreReport.id)
        ).all()
        lea = c.execute(select(LEA)).one()
    store = ReportStore(settings.report_store)
    for row in rows:
        # stored as intake stores an imported SSR: content-addressed, relative to the store
        assert row.file_path == store.relative_path(row.sha256)
        path = store.path(row.file_path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        data = path.read_bytes()
        assert hashlib.sha256(data).hexdigest() == row.sha256 and len(data) == row.size_bytes
    for row in rows[:12]:
        text = _page_one(str(store.path(row.file_path)))
        assert f"SSID: {row.ssid}" in text
        assert f"{row.first_name} {row.last_name}" in text
        assert f"Grade: {row.grade}" in text and lea.name in text and "2026" in text
        assert ("Standard" in text) if row.program is Program.CAASPP else ("Level" in text)
        assert ("Science (CAST)" in text) == (row.program is Program.CAASPP and row.grade in (5, 8, 11))  # fmt: skip
        with pikepdf.open(store.path(row.file_path)) as pdf:
            assert not pdf.is_encrypted and len(pdf.pages) == 1


def _sample() -> ssr_pdf.SsrInput:
    return ssr_pdf.SsrInput(
        program="ELPAC",
        test="SUMMATIVE",
        admin_year=2026,
        language="en",
        report_title="Summative ELPAC Student Score Report",
        student_name="Thảo Nguyễn",
        ssid="1234567890",
        grade=4,
        school="Rosa Parks Elementary School",
        lea=demo.LEA_NAME,
        lea_cds=demo.LEA_CDS,
        scores=(ssr_pdf.ScoreLine("Overall", 1480, "Level 2 (Somewhat Developed)"),),
        address=("Hương Nguyễn", "1234 Magnolia Ave", "Riverside, CA 92501"),
    )


def test_vietnamese_diacritics_print_and_fold_without_dejavu(tmp_path, monkeypatch):
    written = ssr_pdf.write(_sample(), ReportStore(tmp_path))
    text = _page_one(str(tmp_path / written.path))
    assert "Thảo Nguyễn" in text and "Hương Nguyễn" in text and "Riverside, CA 92501" in text
    assert "Level 2" in text and "Oral" not in text

    monkeypatch.setattr(ssr_pdf, "FONT_DIR", tmp_path / "no-fonts")
    ssr_pdf.fonts.cache_clear()
    try:
        folded = ssr_pdf.write(_sample(), ReportStore(tmp_path / "folded"))
        assert "SSID: 1234567890" in _page_one(str(tmp_path / "folded" / folded.path))
        assert "Thao Nguyen" in _page_one(str(tmp_path / "folded" / folded.path))
    finally:
        ssr_pdf.fonts.cache_clear()


def test_a_second_seed_and_bad_sizes_are_refused(with_pdfs):
    engine, settings = with_pdfs
    with pytest.raises(InvalidInput, match="already holds the demo LEA"):
        demo.seed(engine, settings, students=10, pdfs=False)
    with pytest.raises(InvalidInput, match="at least one student"):
        demo.seed(engine, settings, students=0)


def test_cli_seed_runs_end_to_end(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    args = ["--database-url", url, "--data-dir", str(tmp_path)]
    assert cli.main([*args, "seed", "--students", "25", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "25 students" in out and "SSR PDFs" in out and "operators: caaspp" in out
    assert len(list((tmp_path / "reports" / "sha256").glob("*/*/*.pdf"))) >= 25
    assert cli.main([*args, "seed", "--students", "25", "--no-pdfs"]) == 2
    assert "already holds the demo LEA" in capsys.readouterr().err
    assert cli.main([*args, "audit", "verify"]) == 0


@pytest.mark.postgres
def test_bulk_rows_on_postgresql(migrated_pg_url):
    engine = db.make_engine(migrated_pg_url)
    settings = Settings(database_url=migrated_pg_url, data_dir=Path("/nonexistent"))
    summary = demo.seed(engine, settings, students=300, pdfs=False)
    with engine.connect() as c:
        assert c.scalar(select(func.count()).select_from(Student)) == summary.students == 300
        assert c.scalar(select(func.count()).select_from(StudentGuardian)) == summary.links
    engine.dispose()
