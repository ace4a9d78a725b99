"""Importing SSRs from folders, zips and merged PDFs: matched, stored once, every refusal explained."""

from __future__ import annotations

import io
import json
import os
import stat
import zipfile
from dataclasses import replace
from pathlib import Path

import pikepdf
import pytest
from reportlab.pdfgen.canvas import Canvas
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from services.access.tables import Operator, Role
from services.audit import log as audit
from services.audit.tables import AuditEvent
from services.core import db
from services.core.errors import InvalidInput, PermissionDenied
from services.core.programs import Program
from services.core.settings import Settings
from services.intake.importer import (
    Importer,
    IntakeOptions,
    ReportMeta,
    exceptions,
    import_paths,
    scope_for,
)
from services.intake.records import ImportException, ImportRun, Reason, ReportReceipt
from services.intake.score_reports import ScoreReport
from services.intake.zip_safety import MiB, ZipLimits
from tests.intake.test_zip_safety import mark_encrypted, symlink_info, zip_bytes
from tests.intake_fixtures import (
    LEA_CDS,
    SSIDS,
    STRANGER,
    encrypted,
    files_under,
    merged,
    name,
    seed_roster,
    ssr,
)


@pytest.fixture
def roster(engine: Engine) -> dict[str, int]:
    return seed_roster(engine)


def run(engine: Engine, settings: Settings, *paths: Path, **options: object):  # type: ignore[no-untyped-def]
    opts = IntakeOptions.from_settings(settings, **options) if options else None
    return import_paths(engine, settings, paths, None, opts, lea_cds=LEA_CDS)


def reports(engine: Engine) -> list[ScoreReport]:
    with Session(engine) as session:
        return list(session.exec(select(ScoreReport).order_by(ScoreReport.id)).all())


def no_ssid_pdf() -> bytes:
    buffer = io.BytesIO()
    canvas = Canvas(buffer)
    canvas.drawString(72, 720, "Student Score Report without an identifier")
    canvas.save()
    return buffer.getvalue()


def test_folder_import_stores_each_report_once_with_private_modes(
    engine: Engine, settings: Settings, roster: dict[str, int], tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    (inbox / "grade5").mkdir(parents=True)
    for ssid in SSIDS[:3]:
        (inbox / "grade5" / name(ssid)).write_bytes(ssr(ssid))
    summary = run(engine, settings, inbox)
    assert (summary.progress.stored, summary.progress.exceptions) == (3, 0)
    assert [(g.school, g.grade, g.reports) for g in summary.by_school_grade] == [
        ("Alder Elementary", 5, 3)
    ]
    rows = reports(engine)
    assert sorted((r.student_id, r.program, r.test, r.admin_year, r.version) for r in rows) == [
        (roster[s], Program.CAASPP, "SB", 2026, 1) for s in SSIDS[:3]
    ]
    ssid_of = {student: ssid for ssid, student in roster.items()}
    store = settings.report_store
    for row in rows:
        path = store / row.file_path
        assert path.name == f"{row.sha256}.pdf"
        assert path.read_bytes() == (inbox / "grade5" / name(ssid_of[row.student_id])).read_bytes()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        for folder in (path.parent, path.parent.parent, path.parent.parent.parent, store):
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700

    again = run(engine, settings, inbox)  # re-importing the same files does nothing
    assert (again.progress.stored, again.progress.duplicates) == (0, 3)
    assert len(reports(engine)) == 3


def test_changed_report_is_kept_as_a_new_version_with_the_reason(
    engine: Engine, settings: Settings, roster: dict[str, int], tmp_path: Path
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    (first / name(SSIDS[0])).write_bytes(ssr(SSIDS[0], score=2400))
    (second / name(SSIDS[0])).write_bytes(ssr(SSIDS[0], score=2480))
    run(engine, settings, first)
    summary = run(engine, settings, second, version_reason="TOMS rescored the ELA test")
    assert (summary.progress.stored, summary.progress.new_versions) == (1, 1)
    old, new = reports(engine)
    assert (old.version, new.version) == (1, 2)
    assert old.sha256 != new.sha256
    assert (settings.report_store / old.file_path).exists()  # the old one is kept beside it
    with Session(engine) as session:
        receipt = session.get(ReportReceipt, new.id)
    assert receipt is not None and receipt.reason == "TOMS rescored the ELA test"
    assert receipt.source.endswith(f"second/{name(SSIDS[0])}")
    assert run(engine, settings, first).progress.duplicates == 1  # old content: still nothing


def test_merged_grade_pdf_is_split_by_the_ssid_on_each_first_page(
    engine: Engine, settings: Settings, roster: dict[str, int], tmp_path: Path
) -> None:
    two_pages = merged(ssr(SSIDS[4]), no_ssid_pdf())  # a report whose page 2 has no SSID
    grade_file = tmp_path / "grade08_CAASPP_SB_2026_en.pdf"
    grade_file.write_bytes(merged(no_ssid_pdf(), ssr(SSIDS[3]), two_pages, ssr(STRANGER)))
    summary = run(engine, settings, grade_file)
    assert summary.progress.stored == 2
    assert [(g.school, g.grade, g.reports) for g in summary.by_school_grade] == [
        ("Birch Middle", 8, 2)
    ]
    stored = {r.student_id: settings.report_store / r.file_path for r in reports(engine)}
    with pikepdf.open(stored[roster[SSIDS[4]]]) as pdf:
        assert len(pdf.pages) == 2
    with pikepdf.open(stored[roster[SSIDS[3]]]) as pdf:
        assert len(pdf.pages) == 1
    refused = [(r.source.rsplit("/", 1)[-1], r.reason) for r in exceptions(engine, None, 1)]
    assert refused == [
        ("grade08_CAASPP_SB_2026_en.pdf pages 1-1", Reason.NO_SSID),
        ("grade08_CAASPP_SB_2026_en.pdf pages 5-5", Reason.UNKNOWN_SSID),
    ]
    assert run(engine, settings, grade_file).progress.duplicates == 2  # splitting is reproducible


@pytest.mark.parametrize("workers", [1, 2], ids=["in-process", "worker-pool"])
def test_hostile_zip_each_case_refused_exactly_and_nothing_escapes(
    engine: Engine, settings: Settings, roster: dict[str, int], tmp_path: Path, workers: int
) -> None:
    good = ssr(SSIDS[0])
    nested = zip_bytes({name(SSIDS[1]): ssr(SSIDS[1]), "../../escape.pdf": good})
    truncated = ssr(SSIDS[2])
    data = zip_bytes(
        {
            f"school/{name(SSIDS[0])}": good,
            "/tmp/abs.pdf": good,
            "../../up.pdf": good,
            "locked.pdf": good,
            "bomb.pdf": b"\0" * (4 * MiB),
            "inner.zip": nested,
            "broken.zip": b"PK\x03\x04 nope",
            name(SSIDS[2]): truncated[: len(truncated) // 2],
            name(SSIDS[3]): b"%PDF-1.7 not really",
            name(SSIDS[4]): encrypted(ssr(SSIDS[4])),
            name(SSIDS[5]): no_ssid_pdf(),
            name(STRANGER): ssr(STRANGER),
            f"mixup/{name(SSIDS[3], test='ELPAC')}".replace("CAASPP", "ELPAC"): ssr(SSIDS[4]),
            f"a/{name(SSIDS[0], test='CAST')}": ssr(SSIDS[0], test="CAST"),
            f"b/{name(SSIDS[0], test='CAST')}": ssr(SSIDS[0], score=2222, test="CAST"),
            "readme.txt": b"hello",
            "scores.pdf": good,
        },
        [(symlink_info("link.pdf"), b"/etc/passwd")],
    )
    upload = tmp_path / "upload"
    upload.mkdir()
    (upload / "toms.zip").write_bytes(mark_encrypted(data, "locked.pdf"))
    before = files_under(tmp_path)

    summary = run(engine, settings, upload, workers=workers)

    z = f"{upload / 'toms.zip'}!"
    got = {r.source: r.reason.value for r in exceptions(engine, None, summary.progress.run_id)}
    assert got == {
        z + "/tmp/abs.pdf": "absolute_path",
        z + "../../up.pdf": "parent_path",
        z + "inner.zip!../../escape.pdf": "parent_path",
        z + "link.pdf": "symlink",
        z + "locked.pdf": "encrypted_zip",
        z + "bomb.pdf": "zip_bomb",
        z + "broken.zip": "corrupt_zip",
        z + name(SSIDS[2]): "corrupt_pdf",
        z + name(SSIDS[3]): "corrupt_pdf",
        z + name(SSIDS[4]): "encrypted_pdf",
        z + name(SSIDS[5]): "no_ssid",
        z + name(STRANGER): "unknown_ssid",
        z + f"mixup/{SSIDS[3]}_ELPAC_ELPAC_2026_en.pdf": "ssid_mismatch",
        z + f"b/{name(SSIDS[0], test='CAST')}": "conflict",
        z + "readme.txt": "not_a_report",
        z + "scores.pdf": "bad_name",
    }
    assert summary.progress.stored == 3  # SB for students 0 and 1 (nested), CAST for student 0
    assert summary.reasons["conflict"] == 1
    after = files_under(tmp_path)
    store = settings.report_store.resolve()
    new_files = {p.resolve() for p in after - before}
    escaped = {p for p in new_files if not p.is_relative_to(store) and p.suffix == ".pdf"}
    assert escaped == set()
    assert {p for p in new_files if p.is_relative_to(store)} == {
        store / r.file_path for r in reports(engine)
    }
    with Session(engine) as session:
        run_row = session.get(ImportRun, summary.progress.run_id)
        assert run_row is not None and run_row.status == "finished"
        assert run_row.exceptions == 16 and run_row.stored == 3
        assert len(session.exec(select(ImportException)).all()) == 16


def test_folder_symlinks_are_refused_not_followed(
    engine: Engine, settings: Settings, roster: dict[str, int], tmp_path: Path
) -> None:
    outside = tmp_path / "outside.pdf"
    outside.write_bytes(ssr(SSIDS[0]))
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    os.symlink(outside, inbox / name(SSIDS[0]))
    summary = run(engine, settings, inbox)
    assert summary.reasons == {"symlink": 1} and summary.progress.stored == 0


def test_size_limit_and_name_pattern_are_configurable(
    engine: Engine, settings: Settings, roster: dict[str, int], tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / f"CAASPP-SB-2026-en-{SSIDS[0]}.pdf").write_bytes(ssr(SSIDS[0]))
    (inbox / name(SSIDS[1])).write_bytes(ssr(SSIDS[1]))
    pattern = r"^(?P<program>\w+)-(?P<test>\w+)-(?P<year>\d{4})-(?P<language>\w+)-(?P<ssid>\d{10})"
    intake = {"name_pattern": pattern, "folders": [str(tmp_path)]}
    custom = Settings(settings.database_url, settings.data_dir, extra={"intake": intake})
    summary = import_paths(engine, custom, [inbox], None)
    assert summary.progress.stored == 1 and summary.reasons == {"bad_name": 1}
    with pytest.raises(InvalidInput, match="named groups"):
        IntakeOptions(name_pattern=r"(?P<ssid>\d{10})\.pdf").compiled_pattern()
    with pytest.raises(InvalidInput, match="not a valid regular expression"):
        IntakeOptions(name_pattern=r"(?P<ssid").compiled_pattern()
    small = run(engine, settings, inbox, max_pdf_bytes=1000)
    assert small.reasons == {"bad_name": 1, "pdf_too_large": 1}


def test_operator_scope_and_audit_event(
    engine: Engine, settings: Settings, roster: dict[str, int], tmp_path: Path
) -> None:
    helpdesk = Operator(username="hd", display_name="HD", role=Role.HELPDESK, lea_id=1)
    site = Operator(username="site", display_name="S", role=Role.SITE, lea_id=1, school_id=1)
    with pytest.raises(PermissionDenied):
        scope_for(engine, helpdesk)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for ssid in (SSIDS[0], SSIDS[3]):  # school 1 and school 2
        (inbox / name(ssid)).write_bytes(ssr(ssid))
    summary = import_paths(engine, settings, [inbox], site)
    assert summary.progress.stored == 1 and summary.reasons == {"unknown_ssid": 1}
    with Session(engine) as session:
        event = session.exec(select(AuditEvent).where(AuditEvent.action == "import.run")).one()
    detail = json.loads(event.detail)
    assert (event.operator, detail["stored"], detail["refused"]) == ("site", 1, {"unknown_ssid": 1})
    assert "Nguy" not in event.detail and "Ana" not in event.detail
    assert audit.verify(engine).ok
    with pytest.raises(InvalidInput, match="No such file"):
        import_paths(engine, settings, [tmp_path / "missing"], site)


def test_accept_skips_known_reports_for_resumption(
    engine: Engine, settings: Settings, roster: dict[str, int]
) -> None:
    from datetime import UTC, datetime

    available = datetime(2026, 7, 20, 12, tzinfo=UTC)
    meta = ReportMeta(Program.CAASPP, "SB", 2026, "en", SSIDS[0], available)
    with Importer(engine, settings, None, "api") as importer:
        assert not importer.has_report(meta)
        importer.accept(ssr(SSIDS[0]), "api", meta)
        assert importer.has_report(meta)
        # re-issued later (a corrected SSR), or listed without a date: not skipped
        assert not importer.has_report(replace(meta, received_at=datetime(2026, 8, 3, tzinfo=UTC)))
        assert not importer.has_report(replace(meta, received_at=None))


def test_zip_entry_is_not_treated_as_a_path(
    engine: Engine, settings: Settings, roster: dict[str, int], tmp_path: Path
) -> None:
    """A zip's own name inside a folder walk, and entries in sub-folders, are read in place."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr(f"deep/er/{name(SSIDS[0])}", ssr(SSIDS[0]))
    (tmp_path / "one.zip").write_bytes(buffer.getvalue())
    assert run(engine, settings, tmp_path / "one.zip").progress.stored == 1
    assert not (tmp_path / "deep").exists()


def test_same_rules_on_sqlite_and_postgresql(migrated_url: str, tmp_path: Path) -> None:
    engine = db.make_engine(migrated_url)
    try:
        intake = {"folders": [str(tmp_path)]}
        settings = Settings(migrated_url, tmp_path / "data", extra={"intake": intake})
        seed_roster(engine)
        changed = ssr(SSIDS[1], score=2001)
        first_zip, second_zip = tmp_path / "first.zip", tmp_path / "second.zip"
        first_zip.write_bytes(  # zip order is fixed: the second file for SSIDS[1] conflicts
            zip_bytes(
                {
                    f"a/{name(SSIDS[0])}": ssr(SSIDS[0]),
                    f"a/{name(SSIDS[1])}": ssr(SSIDS[1]),
                    f"b/{name(SSIDS[1])}": changed,
                }
            )
        )
        second_zip.write_bytes(zip_bytes({name(SSIDS[1]): changed}))
        first = run(engine, settings, first_zip)
        assert (first.progress.stored, first.reasons) == (2, {"conflict": 1})
        second = run(engine, settings, second_zip)
        assert (second.progress.stored, second.progress.new_versions) == (1, 1)
        assert run(engine, settings, first_zip).progress.duplicates == 3
        assert [(g.school, g.grade, g.reports) for g in second.by_school_grade] == [
            ("Alder Elementary", 5, 1)
        ]
    finally:
        engine.dispose()


def test_merged_pdf_inside_a_nested_zip_is_split_from_its_scratch_copy(
    engine: Engine, settings: Settings, roster: dict[str, int], tmp_path: Path
) -> None:
    grade = merged(ssr(SSIDS[0]), ssr(SSIDS[1]), ssr(SSIDS[2]))
    inner = zip_bytes({"grade05_CAASPP_SB_2026_en.pdf": grade})
    (tmp_path / "lea.zip").write_bytes(zip_bytes({"school1.zip": inner}))
    summary = run(engine, settings, tmp_path / "lea.zip", zip_limits=ZipLimits(memory_bytes=1024))
    assert (summary.progress.stored, summary.progress.exceptions) == (3, 0)
    assert not list((settings.report_store / ".spool").iterdir())


def test_a_large_zip_shows_progress_member_by_member(
    engine: Engine, settings: Settings, roster: dict[str, int], tmp_path: Path
) -> None:
    """The import of a zip reports its counts while it reads the members, not only at the end
    (the 100,000-member case of the zip reader: tests/intake/test_zip_safety.py)."""
    from tests.intake.test_zip_safety import many_members

    inbox = tmp_path / "inbox"
    inbox.mkdir(exist_ok=True)
    many_members(inbox / "district.zip", 2_000)
    seen: list[int] = []
    summary = import_paths(
        engine, settings, [inbox / "district.zip"], None, progress=lambda p: seen.append(p.files)
    )
    assert summary.progress.files == 2_000
    during = [files for files in seen if files < 2_000]
    assert len(during) > 10 and during == sorted(during)  # counts grew while it read
