"""Imports run outside the session: the Import screen queues the run, a real ``ssr-console
worker`` process runs it and the screen follows it from the database; a worker killed mid-run
(SIGKILL) leaves the run interrupted, ctrl+r resumes it, and every SSR is stored exactly once.

The run is held mid-way without sleeping: the second path queued is a named pipe, and the worker
waits on it (a slow network share) after committing the first path's reports."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from textual.widgets import Input

from screens.import_reports import ImportReportsScreen
from services.access import operators
from services.core import db
from services.core.errors import InvalidInput
from services.core.settings import Settings
from services.intake import importer as intake
from services.intake import queue as import_queue
from services.intake.records import ImportRun
from services.intake.score_reports import ScoreReport
from services.roster.tables import Student
from tests.databases import SeedDemo
from tests.intake_fixtures import name, ssr, stats
from tests.pilot import app_for, settle, until

SIZE = (80, 24)
FIRST = 12  # SSRs in the folder read before the worker is killed


@pytest.fixture
def district(
    migrated_url: str, tmp_path: Path, seed_demo: SeedDemo
) -> tuple[Engine, Settings, list[str]]:
    settings = Settings(migrated_url, tmp_path / "data")
    engine = db.make_engine(migrated_url)
    seed_demo(engine, settings, students=30, seed=21, pdfs=False)
    with Session(engine) as session:
        ssids = list(session.exec(select(Student.ssid).order_by(col(Student.id))))
    return engine, settings, ssids


def worker(settings: Settings, *extra: str) -> subprocess.Popen[bytes]:
    """``ssr-console worker`` as a process of its own, as a deployment runs it."""
    return subprocess.Popen(
        [
            str(Path(sys.executable).parent / "ssr-console"),
            "--database-url",
            settings.database_url,
            "--data-dir",
            str(settings.data_dir),
            "worker",
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def reports_per_student(engine: Engine) -> list[int]:
    with Session(engine) as session:
        return list(
            session.exec(
                select(func.count()).select_from(ScoreReport).group_by(ScoreReport.student_id)
            )
        )


async def test_worker_runs_the_queued_import_and_a_killed_run_resumes(district) -> None:  # type: ignore[no-untyped-def]
    engine, settings, ssids = district
    inbox = intake.intake_folders(settings)[0]
    folder = inbox / "grade5"
    folder.mkdir()
    for ssid in ssids[:FIRST]:
        (folder / name(ssid)).write_bytes(ssr(ssid))
    held = inbox / name(ssids[FIRST])
    os.mkfifo(held)  # the worker waits here, with the folder's reports committed
    app = app_for(engine, settings)
    process = worker(settings)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("i")
            await settle(pilot)
            screen = app.screen
            assert isinstance(screen, ImportReportsScreen)
            screen.query_one("#paths", Input).value = f"grade5;{held.name}"
            await pilot.press("slash", "enter")
            # The worker (not this session) runs it; its progress comes from the database.
            await until(lambda: f"matched {FIRST}" in stats(screen), pilot, timeout=60)
            assert "running in `ssr-console worker`" in stats(screen)
            process.send_signal(signal.SIGKILL)
            await until(lambda: process.poll() is not None, pilot)
            await until(lambda: "interrupted" in stats(screen), pilot, what=stats(screen))
            # Resume: the pipe is a file now; the same run goes on, in a new worker.
            held.unlink()
            held.write_bytes(ssr(ssids[FIRST]))
            await pilot.press("ctrl+r")
            await until(lambda: "queued" in stats(screen), pilot)
            process = worker(settings, "--once")
            await until(lambda: "finished" in stats(screen), pilot, timeout=60, what="resumed")
            shown = stats(screen)
            assert f"matched {FIRST + 1}" in shown and "already stored 0" in shown, shown
            assert await asyncio.to_thread(process.wait, 60) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
    assert reports_per_student(engine) == [1] * (FIRST + 1)  # every SSR once, none twice
    with Session(engine) as session:
        (run,) = session.exec(select(ImportRun)).all()
    assert (run.status, run.stored, run.duplicates, run.exceptions) == ("finished", FIRST + 1, 0, 0)


def test_bad_paths_are_refused_when_queued_and_only_stopped_runs_resume(district) -> None:  # type: ignore[no-untyped-def]
    engine, settings, ssids = district
    caaspp = operators.resolve(engine, "caaspp")
    with pytest.raises(InvalidInput, match="outside the intake folders"):
        import_queue.queue_paths(engine, settings, caaspp, ["/etc"])
    with pytest.raises(InvalidInput, match="No TOMS API is configured"):
        import_queue.queue_api(engine, settings, caaspp)
    inbox = intake.intake_folders(settings)[0]
    (inbox / name(ssids[0])).write_bytes(ssr(ssids[0]))
    run_id = import_queue.queue_paths(engine, settings, caaspp, [name(ssids[0])])
    with pytest.raises(InvalidInput, match="is queued: nothing to resume"):
        import_queue.resume(engine, caaspp, run_id)
    assert import_queue.waiting(engine)
    assert import_queue.run_queued(engine, settings) == 1
    assert not import_queue.waiting(engine)
    with pytest.raises(InvalidInput, match="is finished: nothing to resume"):
        import_queue.resume(engine, caaspp, run_id)
    assert reports_per_student(engine) == [1]
