"""Delivery integrity (issue 14): SSRs imported with ``ssr-console import`` are delivered and
printed by a real ``ssr-console worker`` started from an unrelated directory, and a second batch
never sends a family what it already has. Real CLI processes, a real SMTP server on loopback, on
SQLite and PostgreSQL."""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from services.access import operators
from services.audit.tables import AuditEvent
from services.channels import batches as channel_batches
from services.channels import print_batch
from services.channels.batches import ChannelItem, ChannelItemState
from services.channels.batches import Scope as ChannelScope
from services.core import db
from services.core.channels import Option
from services.core.errors import InvalidInput
from services.core.settings import Settings
from services.delivery import batches
from services.delivery.ledger import DeliveryItem, ItemState
from services.intake.score_reports import ScoreReport
from services.plan import coverage
from services.plan import decisions as plan
from services.plan.advisor import Answers
from services.roster.facts import roster_facts
from services.roster.tables import School, Student, StudentGuardian
from tests.channel_world import pdf_pages
from tests.databases import SeedDemo
from tests.delivery_harness import MailSink, check_family
from tests.intake_fixtures import name, ssr

STUDENTS = 30


@pytest.fixture
def district(any_url: str, tmp_path: Path, seed_demo: SeedDemo) -> Iterator[tuple[Engine, Path]]:
    """The demo roster without SSRs; its SSRs then come in through ``ssr-console import``."""
    engine = db.make_engine(any_url)
    seed_demo(engine, Settings(any_url, tmp_path / "data"), students=STUDENTS, seed=4, pdfs=False)
    yield engine, tmp_path
    engine.dispose()


def cli(tmp_path: Path, url: str, sink: MailSink, *args: str) -> subprocess.CompletedProcess[str]:
    """``ssr-console`` as a real process, started in a directory that is neither the repository
    nor the data directory, so any path read relative to the working directory fails."""
    config = tmp_path / "config.toml"
    config.write_text(
        f'database_url = "{url}"\ndata_dir = "{tmp_path / "data"}"\n'
        f'[smtp]\nhost = "127.0.0.1"\nport = {sink.port}\nbackoff_seconds = 0.05\n'
        "[delivery]\nprocesses = 1\npoll_seconds = 0.05\nonce_horizon_seconds = 5\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", "console.cli", "--config", str(config), *args],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return done


def intake_folder(tmp_path: Path) -> Path:
    """The default intake folder, the only place ``ssr-console import`` reads from."""
    inbox = tmp_path / "data" / "inbox"
    inbox.mkdir(mode=0o700, parents=True, exist_ok=True)
    return inbox


def import_zip(engine: Engine, tmp_path: Path, url: str, sink: MailSink) -> None:
    """Every student's SSR in one TOMS-style zip, imported by the CLI."""
    with Session(engine) as session:
        ssids = session.exec(select(Student.ssid)).all()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for ssid in ssids:
            archive.writestr(name(ssid), ssr(ssid))
    inbox = intake_folder(tmp_path)
    (inbox / "ssrs.zip").write_bytes(buffer.getvalue())
    out = cli(tmp_path, url, sink, "import", str(inbox / "ssrs.zip")).stdout
    assert f"{len(ssids)} stored" in out
    with Session(engine) as session:
        paths = session.exec(select(ScoreReport.file_path)).all()
    assert len(paths) == len(ssids) and not any(Path(p).is_absolute() for p in paths)


def schools(engine: Engine) -> list[int]:
    with Session(engine) as session:
        return list(session.exec(select(School.id).order_by(col(School.id))).all())


def items(engine: Engine) -> list[DeliveryItem]:
    with Session(engine) as session:
        return list(session.exec(select(DeliveryItem)).all())


def test_imported_ssrs_are_delivered_and_printed_by_a_worker_started_elsewhere(
    district: tuple[Engine, Path], any_url: str, sink: MailSink
) -> None:
    engine, tmp_path = district
    import_zip(engine, tmp_path, any_url, sink)
    caaspp = operators.resolve(engine, "caaspp")
    first, *others = schools(engine)
    printed = print_batch.create(
        engine,
        caaspp,
        name="Hand-out",
        scope=ChannelScope(school_id=first),
        who=coverage.Who.ALL,
        options=print_batch.PrintOptions(handling=print_batch.Handling.HAND_OUT),
    )
    for school in others:
        batches.create(
            engine,
            caaspp,
            batches.Selection(batches.Source.SCHOOL, school_id=school),
            name="Spring 2026",
            password_delay=timedelta(0),
        )
    engine.dispose()
    cli(tmp_path, any_url, sink, "worker", "--once")

    sent = items(engine)
    assert sent and {i.state for i in sent} == {ItemState.DONE}, {i.error for i in sent}
    received = sink.by_item()
    assert set(received) == {i.id for i in sent}
    for messages in received.values():
        assert len(messages["document"]) == len(messages["password"]) == 1
        check_family(tmp_path, messages["document"][0], messages["password"][0])

    with Session(engine) as session:
        states = session.exec(
            select(ChannelItem.state).where(ChannelItem.batch_id == printed.id)
        ).all()
    assert states and set(states) == {ChannelItemState.PRINTED}
    batch = channel_batches.get(engine, caaspp, printed.id)  # type: ignore[arg-type]
    folder = tmp_path / "data" / "print" / f"batch-{printed.id}"
    files = sorted(folder.glob(f"print-{printed.id}-[0-9]*.pdf"))
    assert files and sum(pdf_pages(f) for f in files) == batch.pages


def test_a_second_batch_takes_only_what_families_have_not_been_sent(
    district: tuple[Engine, Path], any_url: str, sink: MailSink
) -> None:
    """Email for families with an address, print for the rest (the plan); once both ran, neither
    a second plan batch nor an LEA-wide one takes anybody. A corrected SSR is new; a deliberate
    re-send takes everything, with its reason audited."""
    engine, tmp_path = district
    import_zip(engine, tmp_path, any_url, sink)
    caaspp = operators.resolve(engine, "caaspp")
    answers = Answers(has_sis=True, sis_portal=False, third_party_portal=False, portal_share=0.0)
    facts = roster_facts(engine, caaspp.lea_id)
    channels = [Option.SECURE, Option.PRINT]
    plan.save(engine, caaspp, answers, facts, channels=channels, reason="email, else paper")
    printed = print_batch.create(
        engine,
        caaspp,
        name="Paper for the rest",
        who=coverage.Who.PLAN,
        options=print_batch.PrintOptions(handling=print_batch.Handling.HAND_OUT),
    )
    plan_scope = batches.Selection(batches.Source.PLAN)
    first = batches.dry_run(engine, caaspp, plan_scope)
    assert first.families
    batches.create(engine, caaspp, plan_scope, name="Plan", password_delay=timedelta(0))
    with pytest.raises(InvalidInput, match="choose a re-send with a reason"):
        batches.create(engine, caaspp, plan_scope, name="Twice", password_delay=timedelta(0))
    under_way = batches.dry_run(engine, caaspp, plan_scope)  # taken, not yet sent
    assert (under_way.families, under_way.left_out_sent) == (0, 0)
    assert under_way.left_out_under_way == first.ssrs
    engine.dispose()
    cli(tmp_path, any_url, sink, "worker", "--once")
    assert {i.state for i in items(engine)} == {ItemState.DONE}
    assert channel_batches.get(engine, caaspp, printed.id).families  # type: ignore[arg-type]
    messages = len(sink.received)
    assert messages == 2 * first.families

    # The same plan batch again, and the whole LEA: every SSR is with its family already.
    for scope in (plan_scope, batches.Selection(batches.Source.LEA)):
        with pytest.raises(InvalidInput, match="choose a re-send with a reason"):
            batches.create(engine, caaspp, scope, name="Again", password_delay=timedelta(0))
        again = batches.dry_run(engine, caaspp, scope)
        assert (again.families, again.ssrs, again.left_out_under_way) == (0, 0, 0)
        assert again.left_out_sent >= first.ssrs and again.left_out_families >= first.families
    with pytest.raises(InvalidInput, match="not yet on a channel"):  # nor on paper
        print_batch.create(engine, caaspp, name="Paper again", who=coverage.Who.ALL)
    cli(tmp_path, any_url, sink, "worker", "--once")
    assert len(sink.received) == messages  # no second document, no second password

    # A corrected SSR is a new version: only its student's families get it.
    with Session(engine) as session:
        student = session.exec(
            select(Student)
            .join(StudentGuardian)
            .where(col(StudentGuardian.guardian_id).in_(select(DeliveryItem.guardian_id)))
        ).first()
        assert student is not None
    corrected = intake_folder(tmp_path) / "corrected"
    corrected.mkdir(mode=0o700)
    (corrected / name(student.ssid)).write_bytes(ssr(student.ssid, score=2600))
    assert "1 new versions" in cli(tmp_path, any_url, sink, "import", str(corrected)).stdout
    lea_scope = batches.Selection(batches.Source.LEA)
    fix = batches.dry_run(engine, caaspp, lea_scope)
    # every household's SSRs already sent are left out, but for the corrected one's new version
    assert fix.ssrs == fix.families >= 1 and fix.left_out_sent + fix.ssrs >= first.ssrs
    fixed = batches.create(engine, caaspp, lea_scope, name="Fix", password_delay=timedelta(0))
    engine.dispose()
    cli(tmp_path, any_url, sink, "worker", "--once")
    new_items = {i.id for i in items(engine) if i.batch_id == fixed}
    later = sink.received[messages:]
    assert {r.item_id for r in later} == new_items and len(later) == 2 * fix.families

    # On purpose, with a reason: everything again, and the audit says why.
    resend = batches.dry_run(engine, caaspp, plan_scope, resend=True)
    assert resend.families == first.families and not resend.left_out_sent
    with pytest.raises(InvalidInput, match="reason"):
        batches.create(engine, caaspp, plan_scope, name="Resend", resend_reason="  ")
    batch_id = batches.create(
        engine, caaspp, plan_scope, name="Resend", resend_reason="the mail server lost them"
    )
    assert batches.get_batch(engine, caaspp, batch_id).total_items == first.families
    with Session(engine) as session:
        event = session.exec(
            select(AuditEvent).where(AuditEvent.target == f"delivery_batch:{batch_id}")
        ).one()
    assert "the mail server lost them" in (event.detail or "")


def test_a_corrected_ssr_is_owed_shown_and_sent_as_a_correction(
    district: tuple[Engine, Path], any_url: str, sink: MailSink
) -> None:
    """ETS re-issues an SSR a family already has: coverage, reports and the help desk show it as
    "corrected, not yet sent"; the ``corrections`` scope takes exactly those families, by email as
    before, with a document message that says the report replaces the earlier one."""
    from services.helpdesk import families as helpdesk
    from services.reports import aggregates as reports

    engine, tmp_path = district
    import_zip(engine, tmp_path, any_url, sink)
    caaspp = operators.resolve(engine, "caaspp")
    desk = operators.resolve(engine, "helpdesk")
    lea_scope = batches.Selection(batches.Source.LEA)
    batches.create(engine, caaspp, lea_scope, name="Spring", password_delay=timedelta(0))
    engine.dispose()
    cli(tmp_path, any_url, sink, "worker", "--once")
    before = len(sink.received)
    with Session(engine) as session:
        emailed = select(DeliveryItem.guardian_id)
        student = session.exec(
            select(Student)
            .join(StudentGuardian)
            .where(col(StudentGuardian.guardian_id).in_(emailed))
            .order_by(col(Student.id))
        ).first()
        never_sent = session.exec(
            select(Student).where(
                ~col(Student.id).in_(
                    select(StudentGuardian.student_id).where(
                        col(StudentGuardian.guardian_id).in_(emailed)
                    )
                )
            )
        ).first()
        assert student is not None and never_sent is not None
        guardians = set(
            session.exec(
                select(StudentGuardian.guardian_id).where(
                    StudentGuardian.student_id == student.id,
                    col(StudentGuardian.guardian_id).in_(emailed),
                )
            ).all()
        )
    assert coverage.summary(engine, caaspp).corrected == 0
    assert batches.dry_run(engine, caaspp, batches.parse_scope(engine, caaspp, "corrections")).families == 0  # fmt: skip

    corrected = intake_folder(tmp_path) / "corrected"
    corrected.mkdir(mode=0o700)
    for kid in (student, never_sent):  # the second family never had the first version
        (corrected / name(kid.ssid)).write_bytes(ssr(kid.ssid, score=2600))
    assert "2 new versions" in cli(tmp_path, any_url, sink, "import", str(corrected)).stdout

    summary = coverage.summary(engine, caaspp)
    assert summary.corrected == 1
    assert "Corrected, not yet sent 1: batch scope corrections" in summary.text()
    assert reports.corrected_count(engine, caaspp) == 1
    timeline = [e.text for e in helpdesk.family(engine, desk, student.id).events]  # type: ignore[arg-type]
    assert "Corrected, not yet sent: CAASPP 2026 SB in en, version 2 replaces the report the family has (a batch with scope corrections sends it)" in timeline  # fmt: skip
    other = [e.text for e in helpdesk.family(engine, desk, never_sent.id).events]  # type: ignore[arg-type]
    assert not any(t.startswith("Corrected") for t in other)

    scope = batches.parse_scope(engine, caaspp, " Corrections ")
    assert scope == batches.Selection(batches.Source.CORRECTIONS)
    plan_run = batches.dry_run(engine, caaspp, scope)
    assert (plan_run.families, plan_run.ssrs) == (len(guardians), len(guardians))
    assert "replace the earlier reports" in plan_run.samples[0].document.body  # the sample counts 2
    batch_id = batches.create(engine, caaspp, scope, name="Corrections", password_delay=timedelta(0))  # fmt: skip
    engine.dispose()
    cli(tmp_path, any_url, sink, "worker", "--once")
    later = sink.received[before:]
    assert {r.recipient for r in later} == {
        i.address for i in items(engine) if i.batch_id == batch_id
    }
    assert len(later) == 2 * len(guardians)
    documents = [r for r in later if r.step == "document"]
    for document in documents:
        assert "corrected Student Score Report" in str(document.message["Subject"])
        assert "It replaces the earlier report" in document.body
        password = next(r for r in later if r.step == "password" and r.item_id == document.item_id)
        assert check_family(tmp_path, document, password) == 1

    assert coverage.summary(engine, caaspp).corrected == 0
    assert reports.corrected_count(engine, caaspp) == 0
    timeline = [e.text for e in helpdesk.family(engine, desk, student.id).events]  # type: ignore[arg-type]
    assert not any(t.startswith("Corrected") for t in timeline)
    with pytest.raises(InvalidInput, match="choose a re-send with a reason"):
        batches.create(engine, caaspp, scope, name="Again", password_delay=timedelta(0))
