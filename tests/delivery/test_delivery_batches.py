"""Batches from the operator's side: dry run, creation and scope, bad input, pause/resume/cancel,
progress figures, the test send, the password vault, and several workers on PostgreSQL."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from services.access import operators
from services.audit.log import Actor
from services.audit.tables import AuditEvent
from services.core import db
from services.core import vault as password_vault
from services.core.errors import ConsoleError, InvalidInput, NotFound, PermissionDenied
from services.core.settings import Settings
from services.core.validation import LANGUAGES
from services.delivery import batches, ledger
from services.delivery.ledger import BatchStatus, ItemState
from services.delivery.worker import Worker, WorkerConfig
from services.roster.tables import Guardian, School
from tests.databases import SeedDemo
from tests.delivery_harness import (
    MailSink,
    check_family,
    copy_database,
    seeded_template,
    smtp_settings,
)

FAST = WorkerConfig(processes=1, poll_seconds=0.05, heartbeat_seconds=1.0, once_horizon_seconds=5)


@pytest.fixture
def engine(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Iterator[Engine]:
    template = seeded_template(tmp_path_factory.getbasetemp(), students=40, seed=7)
    copy_database(template, tmp_path / "ssr.db")
    engine = db.make_engine(f"sqlite:///{tmp_path / 'ssr.db'}")
    yield engine
    engine.dispose()


def settings(tmp_path: Path, sink: MailSink, **extra: object) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'ssr.db'}",
        data_dir=tmp_path / "data",
        extra={"smtp": smtp_settings(sink), **extra},
    )


def test_dry_run_counts_families_and_renders_every_language(engine: Engine) -> None:
    caaspp = operators.resolve(engine, "caaspp")
    preview = batches.dry_run(engine, caaspp, batches.Selection())
    assert preview.families > 0 and preview.ssrs >= preview.families
    assert preview.without_email > 0  # the demo leaves some guardians without email
    assert sum(preview.by_language.values()) == preview.families
    assert [s.language for s in preview.samples] == list(LANGUAGES)
    subjects = {s.document.subject for s in preview.samples}
    assert len(subjects) == len(LANGUAGES), "each language has its own wording"
    with Session(engine) as session:
        no_email = session.exec(select(Guardian).where(Guardian.email.is_(None))).all()  # type: ignore[union-attr]
    assert no_email
    batch_id = batches.create(engine, caaspp, batches.Selection(), name="Spring")
    assert batches.get_batch(engine, caaspp, batch_id).total_items == preview.families
    with Session(engine) as session:
        assert session.exec(select(AuditEvent).where(AuditEvent.action == "batch.create")).first()


def test_site_coordinator_batches_are_held_to_their_school(engine: Engine) -> None:
    site = operators.resolve(engine, "site")
    with Session(engine) as session:
        other = session.exec(select(School.id).where(School.id != site.school_id)).first()
    with pytest.raises(InvalidInput, match="own school"):
        batches.dry_run(engine, site, batches.Selection(batches.Source.SCHOOL, school_id=other))
    batch_id = batches.create(engine, site, batches.Selection(), name="My school")
    progress = batches.progress(engine, site, batch_id)
    assert len(progress.schools) == 1
    caaspp = operators.resolve(engine, "caaspp")
    lea_batch = batches.create(engine, caaspp, batches.Selection(), name="All")
    with pytest.raises(NotFound):
        batches.get_batch(engine, site, lea_batch)
    assert [b.id for b in batches.list_batches(engine, site)] == [batch_id]


@pytest.mark.parametrize(
    ("selection", "name", "message"),
    [
        (batches.Selection(), "  ", "name"),
        (batches.Selection(batches.Source.GRADE), "g", "grade"),
        (batches.Selection(batches.Source.SCHOOL), "s", "school"),
        (batches.Selection(batches.Source.LIST), "l", "at least one guardian"),
        (batches.Selection(batches.Source.LIST, guardian_ids=(999999,)), "l", "No family"),
    ],
)
def test_bad_batch_input_is_refused_with_a_sentence(
    engine: Engine, selection: batches.Selection, name: str, message: str
) -> None:
    caaspp = operators.resolve(engine, "caaspp")
    with pytest.raises(InvalidInput, match=message):
        batches.create(engine, caaspp, selection, name=name)
    assert batches.list_batches(engine, caaspp) == [], "a refused batch left rows behind"


def test_plan_batch_without_a_plan_is_refused_and_helpdesk_may_not_run_batches(
    engine: Engine,
) -> None:
    caaspp = operators.resolve(engine, "caaspp")
    with pytest.raises(InvalidInput, match="no distribution plan"):
        batches.dry_run(engine, caaspp, batches.Selection(batches.Source.PLAN))
    with pytest.raises(PermissionDenied):
        batches.dry_run(engine, operators.resolve(engine, "helpdesk"), batches.Selection())


async def test_pause_resume_and_cancel_are_obeyed_by_the_worker(
    engine: Engine, tmp_path: Path, sink: MailSink
) -> None:
    caaspp = operators.resolve(engine, "caaspp")
    actor = Actor.of(caaspp)
    selection = batches.Selection(batches.Source.GRADE, grade=3)
    cancelled = batches.create(
        engine, caaspp, selection, name="cancel", password_delay=timedelta(0)
    )
    ledger.set_batch_status(engine, actor, cancelled, BatchStatus.CANCELLED)
    # the cancelled batch gave its families back: a new batch may take them
    paused = batches.create(engine, caaspp, selection, name="paused", password_delay=timedelta(0))
    ledger.set_batch_status(engine, actor, paused, BatchStatus.PAUSED)
    with pytest.raises(InvalidInput, match="cancelled batch cannot"):
        ledger.set_batch_status(engine, actor, cancelled, BatchStatus.RUNNING)
    config = settings(tmp_path, sink)
    await Worker(engine, config, config=FAST).run(once=True)
    assert sink.received == []
    assert set(ledger.state_counts(engine, cancelled)) == {ItemState.CANCELLED}
    ledger.set_batch_status(engine, actor, paused, BatchStatus.RUNNING)
    await Worker(engine, config, config=FAST).run(once=True)
    assert set(ledger.state_counts(engine, paused)) == {ItemState.DONE}
    assert batches.get_batch(engine, caaspp, paused).status is BatchStatus.FINISHED
    progress = batches.progress(engine, caaspp, paused)
    assert progress.done == progress.total and progress.messages_last_5_min == 2 * progress.total
    assert progress.eta == timedelta(0)


def test_eta_respects_the_minute_and_day_caps() -> None:
    now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    assert batches.estimate(100, 50.0, 0, 0, 0, now) == timedelta(minutes=2)
    assert batches.estimate(100, 50.0, 10, 0, 0, now) == timedelta(minutes=10)
    assert batches.estimate(100, 0.0, 0, 0, 0, now) is None
    # 40 more fit today; the other 60 need two more days at 50 a day
    eta = batches.estimate(100, 10.0, 0, 50, 10, now)
    assert eta == timedelta(hours=12) + timedelta(days=1) + timedelta(minutes=1)


async def test_test_send_reaches_the_operator_with_a_sample_only(
    engine: Engine, tmp_path: Path, sink: MailSink
) -> None:
    caaspp = operators.resolve(engine, "caaspp")
    address = await batches.test_send(engine, settings(tmp_path, sink), caaspp, language="vi")
    assert address == caaspp.email
    document, password = sink.received
    assert document.recipient == password.recipient == caaspp.email
    assert "[TEST]" in str(document.message["Subject"]) and "Báo Cáo Điểm" in document.body
    assert document.message["Content-Language"] == "vi"
    check_file = document.attachments()[0][0]
    assert check_file == "Score_Reports_SAMPLE.pdf"
    check_family(tmp_path, document, password)


def test_vault_key_file_is_private_and_refused_when_readable(tmp_path: Path) -> None:
    config = Settings(database_url="sqlite://", data_dir=tmp_path)
    vault = password_vault.load(config)
    path = password_vault.key_path(config)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token = vault.seal("toss-fit-coyote")
    assert "toss" not in token and password_vault.load(config).open(token) == "toss-fit-coyote"
    os.chmod(path, 0o644)
    with pytest.raises(InvalidInput, match="chmod 600"):
        password_vault.load(config)
    other = password_vault.Vault(password_vault.Fernet.generate_key())
    with pytest.raises(ConsoleError, match="cannot be opened"):
        other.open(token)


@pytest.mark.postgres
def test_two_workers_share_a_batch_on_postgresql(
    pg_url: str, tmp_path: Path, seed_demo: SeedDemo
) -> None:
    """Two worker processes claim with FOR UPDATE SKIP LOCKED: every message exactly once."""
    sink = MailSink().start()
    try:
        engine = db.make_engine(pg_url)
        config = Settings(database_url=pg_url, data_dir=tmp_path / "data")
        seed_demo(engine, config, students=40, seed=3, pdfs=True)
        caaspp = operators.resolve(engine, "caaspp")
        batch_id = batches.create(
            engine, caaspp, batches.Selection(), name="pg", password_delay=timedelta(0)
        )
        toml = tmp_path / "config.toml"
        toml.write_text(
            f'database_url = "{pg_url}"\ndata_dir = "{tmp_path / "data"}"\n'
            f'[smtp]\nhost = "127.0.0.1"\nport = {sink.port}\nconnections = 2\n'
            "[delivery]\nprocesses = 1\npoll_seconds = 0.05\nonce_horizon_seconds = 3\n"
        )
        command = [sys.executable, "-m", "console.cli", "--config", str(toml), "worker", "--once"]
        workers = [
            subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            for _ in range(2)
        ]
        outputs = [w.communicate(timeout=300)[0].decode() for w in workers]
        assert all(w.returncode == 0 for w in workers), outputs
        assert all("documents=" in out for out in outputs)
        counts = ledger.state_counts(engine, batch_id)
        assert set(counts) == {ItemState.DONE}
        received = sink.by_item()
        assert len(received) == counts[ItemState.DONE]
        for parts in received.values():
            assert len(parts["document"]) == 1 and len(parts["password"]) == 1
        shares = [int(out.rsplit("documents=", 1)[1].split()[0]) for out in outputs]
        assert sum(shares) == counts[ItemState.DONE]
        engine.dispose()
    finally:
        sink.stop()


async def test_cancel_stops_documents_but_still_sends_passwords_already_owed(
    engine: Engine, tmp_path: Path, sink: MailSink
) -> None:
    caaspp = operators.resolve(engine, "caaspp")
    batch_id = batches.create(
        engine,
        caaspp,
        batches.Selection(batches.Source.GRADE, grade=3),
        name="cancel midway",
        password_delay=timedelta(0),
    )
    config = settings(tmp_path, sink, smtp=smtp_settings(sink, per_day=3, connections=1))
    clock_day = datetime.now(UTC) + timedelta(days=1)
    # three messages a day: one family done, the next has its document only, then the cap
    await Worker(engine, config, clock=lambda: clock_day, config=FAST).run(once=True)
    counts = ledger.state_counts(engine, batch_id)
    assert counts[ItemState.DONE] == 1 and counts[ItemState.DOCUMENT_SENT] == 1
    ledger.set_batch_status(engine, Actor.of(caaspp), batch_id, BatchStatus.CANCELLED)
    next_day = clock_day + timedelta(days=1)
    await Worker(engine, config, clock=lambda: next_day, config=FAST).run(once=True)
    counts = ledger.state_counts(engine, batch_id)
    assert ItemState.DOCUMENT_SENT not in counts, "a family was left with a locked PDF"
    assert counts[ItemState.CANCELLED] >= 1 and counts[ItemState.DONE] >= 1
    for parts in sink.by_item().values():
        assert len(parts["document"]) == len(parts["password"]) == 1


def test_password_policy_comes_from_the_delivery_settings() -> None:
    def policy(**delivery: object) -> batches.PasswordPolicy:
        config = Settings(
            database_url="sqlite://", data_dir=Path("."), extra={"delivery": delivery}
        )
        return batches.PasswordPolicy.from_settings(config)

    assert policy() == batches.PasswordPolicy("email", timedelta(minutes=5))
    assert policy(password_channel="sms", password_delay_minutes=0).delay == timedelta(0)
    with pytest.raises(InvalidInput, match="'email' or 'sms'"):
        policy(password_channel="fax")
    with pytest.raises(InvalidInput, match="number"):
        policy(password_delay_minutes="soon")


def test_a_second_worker_on_sqlite_is_refused_while_the_first_lives(engine: Engine) -> None:
    import socket

    ledger.register_worker(engine, "first", socket.gethostname(), os.getpid())
    with pytest.raises(ConsoleError, match="SQLite runs one worker"):
        ledger.register_worker(engine, "second", socket.gethostname(), os.getpid() + 1)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    ledger.unregister_worker(engine, "first")
    ledger.register_worker(engine, "killed", socket.gethostname(), dead.pid)
    ledger.register_worker(engine, "second", socket.gethostname(), os.getpid())  # killed is dead


def test_plan_batch_takes_the_plans_secure_electronic_families(engine: Engine) -> None:
    from services.core.channels import Option
    from services.intake.score_reports import ScoreReport
    from services.plan import decisions as plan
    from services.plan.advisor import Answers
    from services.roster.facts import roster_facts
    from services.roster.tables import StudentGuardian

    caaspp = operators.resolve(engine, "caaspp")
    channels = (Option.PORTAL, Option.SECURE, Option.PRINT)
    plan.save(
        engine,
        caaspp,
        Answers(True, True, False, 0.6),
        roster_facts(engine, caaspp.lea_id),
        channels=channels,
        reason="portal first, then secure email, then print",
    )
    with Session(engine) as session:
        with_reports = set(session.exec(select(ScoreReport.student_id)).all())
        links = session.exec(select(StudentGuardian)).all()
    family: dict[int, int] = {}  # student -> family (primary) guardian, as roster_facts decides
    for link in sorted(links, key=lambda k: (not k.is_primary, k.guardian_id)):
        family.setdefault(link.student_id, link.guardian_id)
    # One channel per student (plan.student_channel): the batch takes the families, never a
    # student's second guardian.
    expected = {
        family[sid]
        for sid in with_reports
        if sid in family and plan.student_channel(engine, sid) is Option.SECURE
    }
    assert expected
    preview = batches.dry_run(engine, caaspp, batches.Selection(batches.Source.PLAN))
    assert preview.families == len(expected) > 0 and preview.without_email == 0
    batch_id = batches.create(engine, caaspp, batches.Selection(batches.Source.PLAN), name="Plan B")
    with Session(engine) as session:
        chosen = set(
            session.exec(
                select(ledger.DeliveryItem.guardian_id).where(
                    ledger.DeliveryItem.batch_id == batch_id
                )
            ).all()
        )
    assert chosen == expected


@pytest.mark.postgres
def test_a_worker_registering_during_anothers_recovery_is_not_removed(migrated_pg_url: str) -> None:
    """Several workers started at once on PostgreSQL: one registers while another's recovery runs.
    Recovery removes the workers it found dead, never one it did not see: removed, the newcomer's
    claims would look like a dead worker's until its next heartbeat, be released and claimed again
    (its half-written package deleted by the next claimant) or, in flight, marked uncertain."""
    import socket

    from sqlalchemy import event

    engine = db.make_engine(migrated_pg_url)
    host = socket.gethostname()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    ledger.register_worker(engine, "killed", host, dead.pid)
    ledger.register_worker(engine, "recovering", host, os.getpid())

    registered: list[str] = []

    def newcomer_registers(conn, cursor, statement, *_):  # type: ignore[no-untyped-def]
        if not registered and statement.lstrip().upper().startswith("DELETE FROM DELIVERY_WORKER"):
            registered.append("newcomer")  # once: its own registration passes through here too
            ledger.register_worker(engine, "newcomer", host, os.getpid())  # its own connection

    event.listen(engine, "before_cursor_execute", newcomer_registers)
    ledger.recover(engine, "recovering", host)
    event.remove(engine, "before_cursor_execute", newcomer_registers)
    assert registered, "recovery removed no worker: the test did not run its race"
    with Session(engine) as session:
        workers = set(session.exec(select(ledger.DeliveryWorker.id)).all())
    assert workers == {"recovering", "newcomer"}, workers
    engine.dispose()
