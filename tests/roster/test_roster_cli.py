"""`ssr-console roster import` as a real process: dry run, import, refused lines on stderr, and a
[roster] table the config loader refuses with a sentence."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlmodel import Session, select

from services.access.tables import Operator, Role
from services.core import db
from services.roster import records as roster
from services.roster.tables import Student
from tests.databases import copy_sqlite_file
from tests.roster.test_sis_import import GUARDIANS, LEA_CDS, STUDENTS, write


def cli(data: Path, *args: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    extra = ["--config", str(config)] if config else ["--config", str(data / "none.toml")]
    return subprocess.run(
        [sys.executable, "-m", "console.cli", *extra, "--data-dir", str(data), "--operator",
         "caaspp", "roster", "import", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_roster_import_from_the_command_line(tmp_path: Path, sqlite_template: Path) -> None:
    data = tmp_path / "data"
    copy_sqlite_file(sqlite_template, data / "ssr-console.db")
    engine = db.make_engine(f"sqlite:///{data / 'ssr-console.db'}")
    with Session(engine) as session:
        lea = roster.create_lea(session, LEA_CDS, "Test Unified")
        session.add(
            Operator(username="caaspp", display_name="Dana", role=Role.LEA_CAASPP, lea_id=lea.id)
        )
        session.commit()
    bad = [*STUDENTS, "u6,active,,true,s1,student,,,Fay,Dup,,1000000001,,,,,04,"]
    export = write(data / "inbox" / "export", bad, GUARDIANS)
    files = [str(p) for p in export]
    dry = cli(data, *files, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "Dry run (nothing written)" in dry.stdout and "students: 3 new" in dry.stdout
    assert "users.csv line 6: SSID 1000000001 is already on line 2" in dry.stderr
    with Session(engine) as session:
        assert session.exec(select(Student)).all() == []
    done = cli(data, *files)
    assert done.returncode == 0 and "Imported: roster of LEA 1964733" in done.stdout
    again = cli(data, *files)
    assert "students: 0 new, 0 changed; 3 unchanged" in again.stdout
    outside = cli(data, str(tmp_path))
    assert outside.returncode == 2 and "outside the intake folders" in outside.stderr
    config = tmp_path / "config.toml"
    config.write_text('[roster.columns]\nhome_lang = "HL"\n')
    refused = cli(data, *files, config=config)
    assert refused.returncode == 2 and "Unknown [roster.columns] key(s) home_lang" in refused.stderr
