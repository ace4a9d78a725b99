"""SIGKILL the worker process at random points of a batch, restart it, and check the mail received.

After every kill a restarted worker settles what the dead one left: items caught mid-send become
uncertain, the rest resume. At the end no family is missing a message, no family got a password
before its document, and only items that were shown as uncertain may have received a duplicate.

The suite runs a batch of about 80 families with 4 kills; ``pytest -m slow`` runs the issue's
2,000-family figure with 6 kills (SSR_CRASH_FAMILIES overrides the size).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sqlite3
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from services.access import operators
from services.audit import log as audit
from services.audit.log import Actor
from services.audit.tables import AuditEvent
from services.core import db
from services.core.settings import Settings
from services.delivery import batches, ledger
from services.delivery.ledger import ItemState, Resolution
from tests.delivery_harness import (
    MailSink,
    check_every_document,
    check_family,
    copy_database,
    seeded_template,
    worker,
    write_config,
)
from tests.pilot import wait_for


def seeded_database(
    database: str,
    tmp_path_factory: pytest.TempPathFactory,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> tuple[str, Engine]:
    """A demo LEA of 40 students with real SSR PDFs on SQLite (a copy) or PostgreSQL."""
    if database == "sqlite":
        template = seeded_template(tmp_path_factory.getbasetemp(), students=40, seed=7)
        copy_database(template, tmp_path / "ssr.db")
        url = f"sqlite:///{tmp_path / 'ssr.db'}"
        return url, db.make_engine(url)
    url = request.getfixturevalue("pg_url")
    engine = db.make_engine(url)
    seeded = Settings(database_url=url, data_dir=tmp_path / "data")
    request.getfixturevalue("seed_demo")(engine, seeded, students=40, seed=7, pdfs=True)
    return url, engine


def kill_at_random_points(config: Path, log: Path, kills: int, rng: random.Random) -> None:
    for _ in range(kills):
        with log.open("ab") as out:
            process = subprocess.Popen(
                worker(config), stdout=out, stderr=out, start_new_session=True
            )
        time.sleep(rng.uniform(1.0, 3.0))
        os.killpg(process.pid, signal.SIGKILL)  # the worker and its encryption processes
        process.wait()


def finish(config: Path, log: Path) -> None:
    with log.open("ab") as out:
        subprocess.run(worker(config, "--once"), stdout=out, stderr=out, check=True, timeout=900)


def uncertain_ever(engine: Engine) -> set[int]:
    with Session(engine) as session:
        targets = session.exec(
            select(AuditEvent.target).where(AuditEvent.action == "delivery.uncertain")
        ).all()
    return {int(target.split(":")[1]) for target in targets}


def run_crash_scenario(
    tmp_path: Path, template: Path, sink: MailSink, kills: int, seed: int
) -> dict[str, int]:
    copy_database(template, tmp_path / "ssr.db")
    engine = db.make_engine(f"sqlite:///{tmp_path / 'ssr.db'}")
    operator = operators.resolve(engine, "caaspp")
    batch_id = batches.create(
        engine, operator, batches.Selection(), name="crash", password_delay=timedelta(0)
    )
    families = batches.get_batch(engine, operator, batch_id).total_items
    config, log = write_config(tmp_path, sink), tmp_path / "worker.log"

    kill_at_random_points(config, log, kills, random.Random(seed))
    finish(config, log)
    shown_uncertain = uncertain_ever(engine)
    assert len(shown_uncertain) <= kills * 3, "more uncertain items than sends in flight"
    for item in ledger.uncertain_items(engine, batch_id, limit=1000):
        ledger.resolve_uncertain(engine, Actor.of(operator), item.id, Resolution.RESEND)  # type: ignore[arg-type]
    finish(config, log)

    assert ledger.state_counts(engine, batch_id) == {ItemState.DONE: families}
    received = sink.by_item()
    assert len(received) == families, "a family is missing its messages"
    duplicated = set()
    for item_id, parts in received.items():
        assert parts["document"] and parts["password"], f"item {item_id} is missing a message"
        assert parts["document"][0].index < parts["password"][0].index, "password before document"
        if len(parts["document"]) > 1 or len(parts["password"]) > 1:
            duplicated.add(item_id)
    assert duplicated <= shown_uncertain, "a duplicate was sent for an item never shown uncertain"
    sample = random.Random(seed).sample(sorted(received), min(20, len(received)))
    for item_id in sample:
        parts = received[item_id]
        check_family(tmp_path, parts["document"][-1], parts["password"][-1])
    assert audit.verify(engine).ok
    engine.dispose()
    return {"families": families, "uncertain": len(shown_uncertain), "duplicated": len(duplicated)}


def test_sigkill_at_random_points_loses_and_doubles_nothing(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, sink: MailSink
) -> None:
    template = seeded_template(tmp_path_factory.getbasetemp(), students=100, seed=11)
    figures = run_crash_scenario(tmp_path, template, sink, kills=4, seed=1)
    assert figures["families"] >= 60


@pytest.mark.slow(minutes=4)  # 160-290 s: started with the seasons, not among the one-minute tests
def test_sigkill_a_2000_family_batch(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, sink: MailSink
) -> None:
    families = int(os.environ.get("SSR_CRASH_FAMILIES", "2000"))
    # A family is a household (issue 19: each entitled household gets its own delivery; two
    # guardians at one address are one family); the demo has about 0.67 emailed households per
    # student (1,521 for 2,272 students).
    template = seeded_template(
        tmp_path_factory.getbasetemp(), students=int(families / 0.66), seed=5
    )
    figures = run_crash_scenario(tmp_path, template, sink, kills=6, seed=2)
    print(f"crash run: {figures}")
    assert figures["families"] >= families * 0.9


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_a_kill_during_a_send_leaves_the_item_uncertain_not_resent(
    tmp_path_factory: pytest.TempPathFactory,
    tmp_path: Path,
    sink: MailSink,
    database: str,
    request: pytest.FixtureRequest,
) -> None:
    """The server is slow, so the kill certainly lands while a message is in flight. On
    PostgreSQL the restarted worker sees at once that the dead worker's process is gone."""
    url, engine = seeded_database(database, tmp_path_factory, tmp_path, request)
    operator = operators.resolve(engine, "caaspp")
    batch_id = batches.create(
        engine,
        operator,
        batches.Selection(batches.Source.GRADE, grade=3),
        name="in flight",
        password_delay=timedelta(0),
    )
    config, log = write_config(tmp_path, sink, url), tmp_path / "worker.log"
    sink.delay = 30.0
    with log.open("ab") as out:
        process = subprocess.Popen(worker(config), stdout=out, stderr=out, start_new_session=True)
    wait_for(lambda: sink.data_count > 0, 60, "the worker reached DATA")
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    sink.delay = 0
    finish(config, log)

    uncertain = ledger.uncertain_items(engine, batch_id)
    assert uncertain and len(uncertain) <= 3  # at most one per connection
    received = sink.by_item()
    for item in uncertain:
        assert item.id not in received, "an uncertain item was resent without a decision"
        assert item.uncertain_step == "document" and "worker stopped" in (item.error or "")
    for item in uncertain:
        ledger.resolve_uncertain(engine, Actor.of(operator), item.id, Resolution.RESEND)  # type: ignore[arg-type]
    finish(config, log)
    assert set(ledger.state_counts(engine, batch_id)) == {ItemState.DONE}
    engine.dispose()


def session_members(session_id: int) -> list[int]:
    """The processes of a session (a worker started with ``start_new_session`` and all it
    started: fork server, encryption processes, resource tracker)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[3]) == session_id and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


@pytest.mark.slow
@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_killed_workers_leave_nothing_running_and_every_pdf_opens(
    tmp_path_factory: pytest.TempPathFactory,
    tmp_path: Path,
    sink: MailSink,
    database: str,
    request: pytest.FixtureRequest,
) -> None:
    """Two workers started together (on SQLite the second is refused), then SIGKILLed (each
    worker process alone, as ``kill -9 <pid>`` or the OOM killer does) as soon as a package is
    made, while the encryption processes have more in hand; three times. Nothing a worker started
    outlives it and no package is written after its death; at the end every PDF every family
    received opens with the password from that family's own password message (qpdf, pdftotext)."""
    url, engine = seeded_database(database, tmp_path_factory, tmp_path, request)
    operator = operators.resolve(engine, "caaspp")
    batch_id = batches.create(
        engine, operator, batches.Selection(), name="kills", password_delay=timedelta(0)
    )
    families = sum(ledger.state_counts(engine, batch_id).values())
    config, log = write_config(tmp_path, sink, url), tmp_path / "worker.log"
    outbox = tmp_path / "data" / "outbox"
    for _ in range(3):
        packaged = log.read_text().count(" packaged: ") if log.exists() else 0
        with log.open("ab") as out:
            pair = [
                subprocess.Popen(worker(config), stdout=out, stderr=out, start_new_session=True)
                for _ in range(2)
            ]
        deadline = time.monotonic() + 60
        while log.read_text().count(" packaged: ") == packaged and time.monotonic() < deadline:
            time.sleep(0.02)
        for process in pair:
            os.kill(process.pid, signal.SIGKILL)
        for process in pair:
            process.wait()
        at_death = {path: path.stat().st_mtime_ns for path in outbox.rglob("*.pdf")}
        deadline = time.monotonic() + 5
        while (left := [p for w in pair for p in session_members(w.pid)]) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.1)
        for pid in left:  # the assertion below fails; leave nothing running after the test
            os.kill(pid, signal.SIGKILL)
        assert not left, f"{len(left)} processes outlived their killed worker"
        after = {path: path.stat().st_mtime_ns for path in outbox.rglob("*.pdf")}
        written = [path.name for path, mtime in after.items() if at_death.get(path) != mtime]
        assert not written, f"packages written after the worker died: {written}"
    finish(config, log)
    for item in ledger.uncertain_items(engine, batch_id, limit=1000):
        ledger.resolve_uncertain(engine, Actor.of(operator), item.id, Resolution.RESEND)  # type: ignore[arg-type]
    finish(config, log)
    assert ledger.state_counts(engine, batch_id) == {ItemState.DONE: families}
    assert check_every_document(tmp_path, sink) == families
    engine.dispose()


def test_two_workers_started_at_the_same_instant_on_sqlite_one_is_refused(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, sink: MailSink
) -> None:
    """SQLite runs one worker: of two started at the same instant exactly one runs, and every
    family's PDF opens with its own password.

    The same instant is made certain: the test holds SQLite's write lock while both workers
    start, so both reach their registration before either can write, and then lets go."""
    template = seeded_template(tmp_path_factory.getbasetemp(), students=40, seed=7)
    database = tmp_path / "ssr.db"
    copy_database(template, database)
    engine = db.make_engine(f"sqlite:///{database}")
    operator = operators.resolve(engine, "caaspp")
    batch_id = batches.create(
        engine,
        operator,
        batches.Selection(batches.Source.GRADE, grade=3),
        name="together",
        password_delay=timedelta(0),
    )
    config = write_config(tmp_path, sink)
    gate = sqlite3.connect(database, isolation_level=None)
    gate.execute("BEGIN IMMEDIATE")
    pair = [
        subprocess.Popen(
            worker(config, "--once"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    wait_for(lambda: all(opened(p.pid, database) for p in pair), 60, "both opened the database")
    time.sleep(1.0)  # both are past their start-up reads, waiting to register
    gate.execute("COMMIT")
    gate.close()
    outcomes = [(*process.communicate(timeout=120), process.returncode) for process in pair]
    ran = [o for o in outcomes if o[2] == 0]
    refused = [o for o in outcomes if o[2] == 2 and "Another worker" in o[1]]
    assert len(ran) == 1 and len(refused) == 1, outcomes
    assert set(ledger.state_counts(engine, batch_id)) == {ItemState.DONE}
    assert check_every_document(tmp_path, sink) > 0
    engine.dispose()


def opened(pid: int, path: Path) -> bool:
    """Whether process ``pid`` has the file open."""
    with contextlib.suppress(OSError):
        return any(os.readlink(fd) == str(path) for fd in Path(f"/proc/{pid}/fd").iterdir())
    return False
