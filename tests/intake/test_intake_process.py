"""A real `ssr-console import` process: a file name that is not UTF-8 is refused on its own, and a
run whose process is killed reads interrupted, not running forever."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from services.audit.tables import AuditEvent
from services.core.settings import Settings
from services.intake.importer import latest_run
from services.intake.records import ImportException, ImportRun, RunStatus
from tests.intake_fixtures import LEA_CDS, SSIDS, name, seed_roster, ssr
from tests.pilot import wait_for


def _command(settings: Settings, *args: str) -> list[str]:
    return [
        *(sys.executable, "-m", "console.cli", "--database-url", settings.database_url),
        *("--data-dir", str(settings.data_dir), "import", "--lea", LEA_CDS, *args),
    ]


def _inbox(settings: Settings) -> Path:
    inbox = settings.data_dir / "inbox"  # the default intake folder
    inbox.mkdir(parents=True, exist_ok=True)
    return inbox


def test_a_name_that_is_not_utf8_is_refused_and_the_rest_imported(
    engine: Engine, settings: Settings
) -> None:
    seed_roster(engine)
    inbox = _inbox(settings)
    for ssid in SSIDS[:2]:
        (inbox / name(ssid)).write_bytes(ssr(ssid))
    bad = os.path.join(os.fsencode(inbox), b"bad\xff_CAASPP_SB_2026_en.pdf")
    with open(bad, "wb") as handle:
        handle.write(ssr(SSIDS[2]))

    done = subprocess.run(_command(settings, str(inbox)), capture_output=True, timeout=120)

    out, err = done.stdout.decode(), done.stderr.decode()
    assert done.returncode == 0, err
    assert "Traceback" not in err
    assert "2 stored" in out and "refused 1: bad_name" in out
    assert "bad\\xff_CAASPP_SB_2026_en.pdf" in err  # the odd byte shown, not written raw
    with Session(engine) as session:
        (run,) = session.exec(select(ImportRun)).all()
        (refused,) = session.exec(select(ImportException)).all()
    assert run.status == RunStatus.FINISHED and run.stored == 2
    assert (refused.reason, refused.source) == (
        "bad_name",
        f"{inbox}/bad\\xff_CAASPP_SB_2026_en.pdf",
    )


def test_a_killed_import_reads_interrupted(engine: Engine, settings: Settings) -> None:
    seed_roster(engine)
    inbox = _inbox(settings)
    reports = {ssid: ssr(ssid) for ssid in SSIDS}
    for n in range(1500):
        ssid = SSIDS[n % len(SSIDS)]
        (inbox / name(ssid, test=f"T{n}")).write_bytes(reports[ssid])
    child = subprocess.Popen(
        _command(settings, str(inbox)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for(lambda: latest_run(engine, None) is not None, 60, interval=0.02)
        run = latest_run(engine, None)
        assert run is not None and run.status == RunStatus.RUNNING  # alive: left alone
        assert (run.pid, run.host) == (child.pid, os.uname().nodename)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()

    run = latest_run(engine, None)  # what the Import screen reads
    assert run is not None and run.status == RunStatus.INTERRUPTED
    assert run.finished_at is not None
    with Session(engine) as session:
        events = session.exec(select(AuditEvent).where(AuditEvent.action == "import.run")).all()
    assert [e.target for e in events] == [f"import_run:{run.id}"]
    assert json.loads(events[0].detail)["status"] == "interrupted"
