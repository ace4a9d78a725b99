"""`ssr-console import`: progress, refusals with reasons, and a summary per school and grade."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from console.cli import main
from services.core.settings import Settings
from tests.intake_fixtures import LEA_CDS, SSIDS, STRANGER, name, seed_roster, ssr


def test_import_command_prints_summary_and_refusals(
    engine: Engine, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_roster(engine)
    inbox = settings.data_dir / "inbox"  # the default intake folder
    inbox.mkdir(parents=True)
    for ssid in (SSIDS[0], SSIDS[3], STRANGER):
        (inbox / name(ssid)).write_bytes(ssr(ssid))
    base = ["--database-url", settings.database_url, "--data-dir", str(settings.data_dir)]
    assert main([*base, "import", str(inbox), "--lea", LEA_CDS]) == 0
    out, err = capsys.readouterr()
    assert "2 stored (0 new versions), 0 already stored, 1 exceptions" in out
    assert "Alder Elementary, grade 5: 1" in out and "Birch Middle, grade 8: 1" in out
    assert "refused 1: unknown_ssid" in out
    assert f"{name(STRANGER)}: SSID is not a known student" in err
    assert main([*base, "import", str(inbox / "nowhere")]) == 2
    assert "No such file or folder" in capsys.readouterr().err
    assert main([*base, "import", str(inbox), "--lea", "0000000"]) == 2
    assert "No LEA with CDS code 0000000" in capsys.readouterr().err


def test_import_received_sets_the_day_the_deadlines_count_from(
    migrated_url: str, tmp_path: Path
) -> None:
    """`import --received DATE` records when TOMS made the files' SSRs available (the receipt of
    5 CCR 863 / 11518.15); without it, the day of the import."""
    import subprocess
    import sys
    from datetime import UTC, datetime

    from sqlmodel import Session, select

    from services.core import db
    from services.core.columns import as_utc
    from services.intake.score_reports import ScoreReport

    engine = db.make_engine(migrated_url)
    ids = seed_roster(engine)
    inbox = tmp_path / "data" / "inbox"
    inbox.mkdir(parents=True)
    base = [sys.executable, "-m", "console.cli", "--database-url", migrated_url, "--data-dir"]
    base += [str(tmp_path / "data"), "import", "--lea", LEA_CDS]
    root = Path(__file__).resolve().parents[2]
    for ssid, extra in ((SSIDS[0], ["--received", "2026-06-20"]), (SSIDS[1], [])):
        (inbox / name(ssid)).write_bytes(ssr(ssid))
        done = subprocess.run(
            [*base, *extra, str(inbox / name(ssid))], cwd=root, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
    bad = subprocess.run([*base, "--received", "June 20", str(inbox)], cwd=root, capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 2 and "not a date like 2026-07-20: 'June 20'" in bad.stderr
    with Session(engine) as session:
        found = {r.student_id: as_utc(r.received_at) for r in session.exec(select(ScoreReport))}
    assert found[ids[SSIDS[0]]] == datetime(2026, 6, 20, 12, tzinfo=UTC)
    assert found[ids[SSIDS[1]]].date() == datetime.now(UTC).date()
    engine.dispose()
