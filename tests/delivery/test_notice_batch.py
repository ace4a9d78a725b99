"""Telling families first (seeds 001 and 002): a notice batch reaches every family in its language,
names the sender address and says the password comes separately and is never asked for; a real
``ssr-console worker`` sends nothing before the batch's date; the reports count the notices, and a
notice never counts as delivering an SSR.

The relay is aiosmtpd on loopback; the workers are real processes; storage runs on SQLite and
PostgreSQL.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from textual.widgets import Button, Input, Static

from screens.batches import BatchesScreen
from screens.notice_batch import NoticeBatchScreen
from services.access import operators
from services.audit.log import Actor
from services.core import db
from services.core.columns import utcnow
from services.core.db import session_scope
from services.core.errors import InvalidInput
from services.core.settings import Settings
from services.core.validation import LANGUAGES
from services.delivery import batches, ledger, messages, notices
from services.delivery.ledger import BatchKind, DeliveryBatch, DeliveryItem, ItemState
from services.intake.score_reports import ScoreReport
from services.reports import aggregates as reports
from services.roster.tables import LEA, Guardian, Student, StudentGuardian
from tests.databases import SeedDemo
from tests.delivery_harness import PASSWORD_LINE, MailSink, worker, write_config
from tests.pilot import app_for

SENDER = "ssr-reports@localhost"  # MailConfig's default from_address: the config names none


@pytest.fixture
def world(any_url: str, tmp_path: Path, seed_demo: SeedDemo) -> Iterator[Engine]:
    engine = db.make_engine(any_url)
    seed_demo(engine, Settings(any_url, tmp_path / "data"), students=30, seed=5, pdfs=False)
    with Session(engine) as session:  # SSRs on record (no files: a notice carries none)
        for student in session.exec(select(Student)).all():
            session.add(
                ScoreReport(
                    student_id=student.id,  # type: ignore[arg-type]
                    program="CAASPP",  # type: ignore[arg-type]
                    admin_year=2026,
                    test="SB",
                    file_path=f"/nowhere/{student.ssid}.pdf",
                    sha256=f"{student.id:064d}",
                    received_at=utcnow() - timedelta(days=1),
                )
            )
        session.commit()
    yield engine
    engine.dispose()


def settings_for(engine: Engine, tmp_path: Path) -> Settings:
    return Settings(database_url=str(engine.url), data_dir=tmp_path / "data")


def families_with_email(engine: Engine) -> dict[str, Guardian]:
    with Session(engine) as session:
        found = session.exec(select(Guardian).where(col(Guardian.email).is_not(None))).all()
    return {g.email.strip(): g for g in found if g.email and g.email.strip()}


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_families_get_the_notice_in_their_language_on_its_date_and_reports_count_it(
    world: Engine, tmp_path: Path, sink: MailSink
) -> None:
    engine = world
    caaspp = operators.resolve(engine, "caaspp")
    settings = settings_for(engine, tmp_path)
    send_at = utcnow() + timedelta(seconds=8)
    batch_id = notices.create(
        engine,
        settings,
        caaspp,
        batches.Selection(),
        name="Before the spring SSRs",
        send_at=send_at,
    )
    expected = families_with_email(engine)
    assert len({g.preferred_language for g in expected.values()}) >= 3  # several languages
    config = write_config(tmp_path, sink, str(engine.url))
    log = tmp_path / "worker.log"
    with log.open("ab") as out:
        process = subprocess.Popen(worker(config), stdout=out, stderr=out, start_new_session=True)
    try:
        while utcnow() < send_at - timedelta(seconds=0.5):  # the worker is up, but it is early
            assert not sink.received, "a notice went out before its date"
            assert process.poll() is None, log.read_text()
            time.sleep(0.1)
        deadline = time.monotonic() + 60
        while len(sink.received) < len(expected) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop(process)
    assert len(sink.received) == len(expected), log.read_text()
    with Session(engine) as session:
        lea = session.exec(select(LEA)).one()
        batch = session.get(ledger.DeliveryBatch, batch_id)
        assert lea.id is not None and batch is not None
        season = batches.season(session, lea.id, batch.program, batch.admin_year)
    for received in sink.received:
        guardian = expected[received.recipient]
        text = messages.notice_message(
            guardian.preferred_language,
            guardian_name=f"{guardian.first_name} {guardian.last_name}".strip(),
            lea_name=lea.name,
            sender=SENDER,
            password_channel="email",
            season=season,
        )
        assert received.message["Subject"] == text.subject
        assert received.body.replace("\r\n", "\n").rstrip("\n") == text.body
        assert f"    {SENDER}" in received.body
        assert not received.attachments() and not PASSWORD_LINE.search(received.body)
        assert received.step == "notice"
        assert parsedate_to_datetime(received.message["Date"]) >= send_at.replace(microsecond=0)
    assert {r.recipient for r in sink.received} == set(expected)  # one each, nobody twice

    figures = notices.figures(engine, caaspp)
    assert (figures.batches, figures.sent, figures.scheduled, figures.failed) == (
        1,
        len(expected),
        0,
        0,
    )
    with Session(engine) as session:
        states = set(
            session.exec(select(DeliveryItem.state).where(DeliveryItem.batch_id == batch_id)).all()
        )
    assert states == {ItemState.DONE}
    # Telling a family is not delivering its SSRs: nothing is delivered or on a channel.
    reports.refresh(engine, caaspp)
    whole = reports.total(reports.coverage(engine, caaspp, reports.Dimension.CHANNEL))
    assert whole.units and whole.delivered == whole.on_channel == 0
    # ... and a delivery batch still takes every family the notice reached.
    assert batches.dry_run(engine, caaspp, batches.Selection()).families > 0


def test_a_worker_sends_nothing_before_the_date(
    world: Engine, tmp_path: Path, sink: MailSink
) -> None:
    engine = world
    caaspp = operators.resolve(engine, "caaspp")
    settings = settings_for(engine, tmp_path)
    tomorrow = utcnow() + timedelta(days=1)
    batch_id = notices.create(
        engine, settings, caaspp, batches.Selection(), name="Notice", send_at=tomorrow
    )
    config = write_config(tmp_path, sink, str(engine.url))
    done = subprocess.run(worker(config, "--once"), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "notices=0" in done.stdout + done.stderr
    assert not sink.received
    with Session(engine) as session:
        states = set(
            session.exec(select(DeliveryItem.state).where(DeliveryItem.batch_id == batch_id)).all()
        )
    assert states == {ItemState.PACKAGED}
    figures = notices.figures(engine, caaspp)
    assert figures.sent == 0 and figures.scheduled == len(families_with_email(engine))
    assert figures.next_send_at is not None
    assert abs((figures.next_send_at - tomorrow).total_seconds()) < 1


def test_send_dates_are_read_where_the_lea_is_and_never_in_the_past(tmp_path: Path) -> None:
    settings = Settings(
        "sqlite://", tmp_path, extra={"scheduler": {"timezone": "America/Los_Angeles"}}
    )
    now = utcnow().replace(year=2026, month=11, day=29, hour=17, minute=0)
    at = notices.parse_send_at("2026-12-03", settings, now)
    assert at.isoformat() == "2026-12-03T16:00:00+00:00"  # 8:00 PST
    assert notices.parse_send_at("2026-12-03 16:30", settings, now).hour == 0  # next day, UTC
    assert notices.parse_send_at("", settings, now) == now
    for wrong in ("2026-11-28", "tomorrow", "2026-13-01"):
        with pytest.raises(InvalidInput):
            notices.parse_send_at(wrong, settings, now)


async def test_coordinator_schedules_a_notice_from_the_batches_screen(
    sqlite_url: str, tmp_path: Path, seed_demo: SeedDemo
) -> None:
    engine = db.make_engine(sqlite_url)
    settings = Settings(sqlite_url, tmp_path / "data")
    seed_demo(engine, settings, students=20, seed=5, pdfs=False)
    app = app_for(engine, settings)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("b")
        await pilot.pause()
        assert isinstance(app.screen, BatchesScreen)
        await pilot.press("f")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, NoticeBatchScreen)
        dialog.query_one("#name", Input).value = "Notice before spring"
        dialog.query_one("#scope", Input).value = "lea"
        dialog.query_one("#when", Input).value = "2099-12-03"
        dialog.query_one("#when", Input).focus()
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        shown = str(dialog.query_one("#preview", Static).render())
        assert "families will be told on 2099-12-03 08:00" in shown
        assert SENDER in shown
        create = dialog.query_one("#create", Button)
        assert not create.disabled
        create.press()
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, BatchesScreen)
    with Session(engine) as session:
        batch = session.exec(select(DeliveryBatch)).one()
    assert batch.kind is BatchKind.NOTICE and batch.send_at is not None
    assert batch.send_at.year == 2099 and batch.total_items == len(families_with_email(engine))
    engine.dispose()


def test_a_notice_is_retried_or_settled_as_one_message_and_never_resent_as_a_report(
    world: Engine, tmp_path: Path
) -> None:
    """Failed notices go back as they were (nothing to package); an uncertain one the operator
    says arrived is done, not waiting for a password; the help desk's resend refuses a notice."""
    engine = world
    caaspp = operators.resolve(engine, "caaspp")
    batch_id = notices.create(
        engine,
        settings_for(engine, tmp_path),
        caaspp,
        batches.Selection(),
        name="Notice",
        send_at=utcnow(),
    )
    with session_scope(engine) as session:
        first, second = session.exec(
            select(DeliveryItem).where(DeliveryItem.batch_id == batch_id).order_by(DeliveryItem.id)
        ).all()[:2]
        first.state, second.state, second.uncertain_step = (
            ItemState.FAILED,
            ItemState.UNCERTAIN,
            "notice",
        )
        session.add_all([first, second])
        ids = first.id, second.id
    assert batches.retry_failed(engine, caaspp, batch_id) == 1
    assert batches.resolve(engine, caaspp, ids[1], ledger.Resolution.SENT) is ItemState.DONE
    with Session(engine) as session:
        assert session.get(DeliveryItem, ids[0]).state is ItemState.PACKAGED  # type: ignore[union-attr]
        with pytest.raises(InvalidInput, match="notice"):
            ledger.request_resend(
                session, Actor.of(caaspp), ids[1], ledger.Step.DOCUMENT, "lost", "a@example.org"
            )


@pytest.mark.parametrize("language", list(LANGUAGES))
def test_the_notice_says_how_the_password_comes(language: str) -> None:
    """By email or by SMS, as the batch will send it, in the family's own language."""
    by = {
        channel: messages.notice_message(
            language,
            guardian_name="Ana Lee",
            lea_name="Sierra Vista USD",
            sender="ssr@district.example.org",
            password_channel=channel,
            season=messages.Season(2026),
        ).body
        for channel in ("email", "sms")
    }
    catalog = messages.translations(language)
    assert catalog.gettext(messages.NOTICE_PASSWORD_BY_EMAIL) in by["email"]
    assert catalog.gettext(messages.NOTICE_PASSWORD_BY_SMS) in by["sms"]
    assert all("    ssr@district.example.org\n" in body for body in by.values())
    assert all("%(" not in body for body in by.values())


def test_no_notice_for_a_withdrawn_students_family_or_a_barred_guardian(
    world: Engine, tmp_path: Path
) -> None:
    """The roster's rules hold for notices as for every channel: a student who left is nobody's
    reason for a notice, and a guardian without custody or marked "do not contact" gets none."""
    engine = world
    caaspp = operators.resolve(engine, "caaspp")
    with session_scope(engine) as session:
        links = session.exec(
            select(StudentGuardian).order_by(col(StudentGuardian.student_id))
        ).all()
        children: dict[int, set[int]] = {}
        for link in links:
            children.setdefault(link.guardian_id, set()).add(link.student_id)
        single = [g for g, kids in children.items() if len(kids) == 1]
        emailed = {g.id for g in families_with_email(engine).values()}
        withdrawn_family, barred, no_custody = [g for g in single if g in emailed][:3]
        student = session.get(Student, next(iter(children[withdrawn_family])))
        assert student is not None
        student.withdrawn_at = utcnow()
        guardian = session.get(Guardian, barred)
        assert guardian is not None
        guardian.do_not_contact = True
        for link in links:
            if link.guardian_id == no_custody:
                link.receives_records = False
        session.add_all([student, guardian, *links])
    batch_id = notices.create(
        engine,
        settings_for(engine, tmp_path),
        caaspp,
        batches.Selection(),
        name="Notice",
        send_at=utcnow(),
    )
    with Session(engine) as session:
        told = set(
            session.exec(
                select(DeliveryItem.guardian_id).where(DeliveryItem.batch_id == batch_id)
            ).all()
        )
    assert told and not told & {withdrawn_family, barred, no_custody}
    assert told == emailed - {withdrawn_family, barred, no_custody}
