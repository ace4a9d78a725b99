"""An import that runs out of disk tells the truth: how many reports it stored, and a failed run.

A real ``ssr-console import`` process imports 800 real SSR PDFs onto a small tmpfs, mounted in a
private mount namespace (``unshare -rm``: no root, nothing mounted outside the test), so the disk
really fills: either the data volume that holds the database and the store (the import must stop
while the database can still record it), or a store volume of its own (the store's write fails
with ENOSPC). Intake commits every 500 reports, so 500 are stored when the disk runs out.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from services.core import db
from services.intake import importer as intake
from tests.databases import copy_sqlite_file
from tests.intake_fixtures import LEA_CDS, SSIDS, name, seed_roster, ssr

ROOT = Path(__file__).resolve().parents[2]
FILES = 800
SCRIPT = r"""
mount -t tmpfs -o size="$SIZE" tmpfs "$DISK" || exit 97
if [ -n "$DB_IN" ]; then cp "$DB_IN" "$DISK/ssr.db"; fi
"$@"
status=$?
if [ -n "$DB_IN" ]; then cp "$DISK"/ssr.db* "$(dirname "$DB_IN")/after/"; fi
exit $status
"""


# One xdist worker runs this module (make test: --dist loadgroup): its fixture is built once.
pytestmark = pytest.mark.xdist_group("disk_full")


@pytest.fixture(scope="module")
def inbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-rm", "true"]).returncode:
        pytest.skip("needs unshare -rm (user and mount namespaces) to mount a small tmpfs")
    folder = tmp_path_factory.mktemp("inbox")
    for n in range(FILES):
        ssid = SSIDS[n % len(SSIDS)]
        (folder / name(ssid, test=f"T{n}")).write_bytes(ssr(ssid, score=2000 + n, test=f"T{n}"))
    return folder


def seeded_database(template: Path, path: Path) -> Path:
    """A copy of the session's migrated ``template`` at ``path``, with the roster."""
    copy_sqlite_file(template, path)
    engine = db.make_engine(f"sqlite:///{path}")
    seed_roster(engine)
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


def run_on_small_disk(
    disk: Path, size: str, database: Path, args: list[str], env: dict[str, str], db_in: str = ""
) -> subprocess.CompletedProcess[str]:
    disk.mkdir(exist_ok=True)
    command = [sys.executable, "-m", "console.cli", "--database-url", f"sqlite:///{database}"]
    result = subprocess.run(
        ["unshare", "-rm", "sh", "-c", SCRIPT, "sh", *command, *args],
        env={**env, "DISK": str(disk), "SIZE": size, "DB_IN": db_in},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode == 97:
        pytest.skip("tmpfs cannot be mounted here")
    return result


@pytest.mark.slow
@pytest.mark.parametrize("full", ["data volume", "data volume, no headroom", "store volume"])
def test_an_import_that_fills_the_disk_says_what_it_stored(
    inbox: Path, tmp_path: Path, sqlite_template: Path, full: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSR_")}
    disk = tmp_path / "disk"
    (tmp_path / "after").mkdir()
    config = tmp_path / "config.toml"
    if full.startswith("data volume"):  # the database and the store share the full disk
        seeded = seeded_database(sqlite_template, tmp_path / "seed.db")
        keep = 0 if "no headroom" in full else 8
        config.write_text(f'[intake]\nkeep_free_mb = {keep}\nfolders = ["{inbox}"]\n')
        database, kept = disk / "ssr.db", tmp_path / "after" / "ssr.db"
        result = run_on_small_disk(
            disk,
            "34m",
            database,
            ["--config", str(config), "--data-dir", str(disk), "import", str(inbox)],
            env,
            db_in=str(seeded),
        )
    else:  # the store has a volume of its own, filled to the last byte
        database = kept = seeded_database(sqlite_template, tmp_path / "ssr.db")
        config.write_text(f'[intake]\nkeep_free_mb = 0\nfolders = ["{inbox}"]\n')
        env["SSR_CONSOLE_STORE_DIR"] = str(disk)
        args = ["--config", str(config), "--data-dir", str(tmp_path / "data"), "import"]
        result = run_on_small_disk(
            disk, "25m", database, [*args, str(inbox), "--lea", LEA_CDS], env
        )

    assert result.returncode == 2, result.stderr[-2000:]
    with sqlite3.connect(kept) as connection:
        runs = connection.execute("SELECT status, stored FROM import_run").fetchall()
        reports = connection.execute("SELECT count(*) FROM score_report").fetchone()[0]
        receipts = connection.execute("SELECT count(*) FROM report_receipt").fetchone()[0]
    assert reports == receipts == 500  # the first commit; the disk ran out before the second
    message = result.stderr.strip().splitlines()[-1]
    assert "nothing was changed" not in message and "Traceback" not in result.stderr
    assert "500 reports were stored and are kept" in message
    assert "import the same files again to finish" in message
    if "no headroom" in full:
        # the database may be the one that found the disk full: then the run cannot be marked,
        # and the message says so rather than pretending
        assert "full" in message or "no space left" in message
        marked = runs == [("failed", 500)] and "The run is marked failed." in message
        unmarked = runs == [("running", 500)] and "could not be marked failed" in message
        assert marked or unmarked, (runs, message)
        engine = db.make_engine(f"sqlite:///{kept}")
        run = intake.latest_run(engine, None)  # the process has ended: never left "running"
        assert run is not None and run.status in ("failed", "interrupted")
        engine.dispose()
        return
    assert runs == [("failed", 500)]
    assert "The run is marked failed." in message
    reason = "nearly full" if full == "data volume" else "no space left on device"
    assert reason in message
