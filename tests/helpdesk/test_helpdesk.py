"""The help desk's services: indexed lookup, the family timeline, and the audited actions, with a
resend that really goes out again (aiosmtpd) under a new password the old one does not open."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from services.access import operators
from services.audit import log as audit
from services.audit.tables import AuditEvent
from services.channels import paper_order, print_batch
from services.channels.batches import Scope as ChannelScope
from services.core import db
from services.core.channels import Option
from services.core.errors import InvalidInput, NotFound, PermissionDenied
from services.core.settings import Settings
from services.delivery.ledger import DeliveryItem, ItemState, Step
from services.delivery.worker import Worker, WorkerConfig
from services.helpdesk import email_changes
from services.helpdesk import families as helpdesk
from services.intake.report_store import ReportStore
from services.plan import coverage
from services.roster.tables import Guardian, School, Student, StudentGuardian
from tests.databases import SeedDemo
from tests.delivery_harness import (
    MailSink,
    check_family,
    copy_database,
    first_school_batch,
    seeded_template,
    smtp_settings,
)

FAST = WorkerConfig(processes=1, poll_seconds=0.05, heartbeat_seconds=1.0, once_horizon_seconds=5)


@pytest.fixture
def world(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Iterator[Engine]:
    template = seeded_template(tmp_path_factory.getbasetemp(), students=40, seed=7)
    copy_database(template, tmp_path / "ssr.db")
    engine = db.make_engine(f"sqlite:///{tmp_path / 'ssr.db'}")
    yield engine
    engine.dispose()


def settings_for(tmp_path: Path, sink: MailSink) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'ssr.db'}",
        data_dir=tmp_path / "data",
        extra={"smtp": smtp_settings(sink)},
    )


async def deliver_first_school(engine: Engine, tmp_path: Path, sink: MailSink) -> int:
    """A secure-email batch for the first school, sent through the real SMTP sink."""
    batch_id, _ = first_school_batch(engine)
    await Worker(engine, settings_for(tmp_path, sink), config=FAST).run(once=True)
    return batch_id


def a_delivered_family(engine: Engine, batch_id: int) -> tuple[DeliveryItem, Guardian, Student]:
    with Session(engine) as session:
        item = session.exec(
            select(DeliveryItem)
            .where(DeliveryItem.batch_id == batch_id, DeliveryItem.state == ItemState.DONE)
            .order_by(col(DeliveryItem.id))
        ).first()
        assert item is not None
        guardian = session.get(Guardian, item.guardian_id)
        student = session.exec(
            select(Student)
            .join(StudentGuardian, col(StudentGuardian.student_id) == col(Student.id))
            .where(StudentGuardian.guardian_id == item.guardian_id)
            .order_by(col(Student.id))
        ).first()
    assert guardian is not None and student is not None
    return item, guardian, student


def test_search_by_ssid_name_email_and_phone(world: Engine) -> None:
    helper = operators.resolve(world, "helpdesk")
    with Session(world) as session:
        student, guardian = session.exec(
            select(Student, Guardian)
            .join(StudentGuardian, col(StudentGuardian.student_id) == col(Student.id))
            .join(Guardian, col(Guardian.id) == col(StudentGuardian.guardian_id))
            .where(col(Guardian.email).is_not(None), col(Guardian.phone).is_not(None))
            .order_by(col(Student.id))
        ).first()  # type: ignore[misc]
    assert student is not None and guardian is not None and guardian.phone
    found = {
        "ssid": helpdesk.search(world, helper, student.ssid[:6]),
        "student": helpdesk.search(
            world, helper, f"{student.last_name.upper()} {student.first_name}"
        ),
        "guardian": helpdesk.search(world, helper, f"{guardian.last_name}, {guardian.first_name}"),
        "email": helpdesk.search(world, helper, (guardian.email or "").upper()[:8]),
        "phone": helpdesk.search(world, helper, "".join(c for c in guardian.phone if c.isdigit())),
        "phone as written": helpdesk.search(world, helper, guardian.phone),
    }
    for how, hits in found.items():
        assert student.ssid in {h.ssid for h in hits}, how
    assert any(h.guardian_id == guardian.id for h in found["email"])
    assert helpdesk.search(world, helper, "   ") == []
    assert helpdesk.search(world, helper, "zzzz-nobody") == []


def test_site_coordinator_finds_only_their_school(world: Engine) -> None:
    site = operators.resolve(world, "site")
    with Session(world) as session:
        outside = session.exec(
            select(Student).where(Student.school_id != site.school_id).order_by(Student.id)
        ).first()
    assert outside is not None
    assert helpdesk.search(world, site, outside.ssid) == []
    with Session(world) as session:
        own, phone = session.exec(
            select(Student.ssid, Guardian.phone)
            .join(StudentGuardian, col(StudentGuardian.student_id) == col(Student.id))
            .join(Guardian, col(Guardian.id) == col(StudentGuardian.guardian_id))
            .where(Student.school_id == site.school_id, col(Guardian.phone).is_not(None))
        ).first()  # type: ignore[misc]
    found = helpdesk.search(world, site, phone[:9])  # a prefix most of the LEA shares
    assert own in {h.ssid for h in found}
    assert {h.school for h in found} == {found[0].school}
    with pytest.raises(NotFound):
        helpdesk.family(world, site, outside.id)  # type: ignore[arg-type]
    with pytest.raises(PermissionDenied):
        helpdesk.search(world, operators.resolve(world, "tech"), outside.ssid)


async def test_timeline_then_resend_with_a_new_password(
    world: Engine, tmp_path: Path, sink: MailSink
) -> None:
    batch_id = await deliver_first_school(world, tmp_path, sink)
    item, guardian, student = a_delivered_family(world, batch_id)
    helper = operators.resolve(world, "helpdesk")
    first = [r for r in sink.received if r.item_id == item.id]
    old_document, old_password = first[0], first[1]

    seen = helpdesk.family(world, helper, student.id)  # type: ignore[arg-type]
    texts = [e.text for e in seen.events]
    assert any(t.startswith("SSR received: CAASPP") for t in texts)
    assert any("Secure email batch" in t for t in texts)
    assert any(t.startswith("Document email accepted by the mail server") for t in texts)
    assert any(t.startswith("Password message accepted") for t in texts)
    assert seen.contacts[0].email == guardian.email  # the help desk sees contact details...
    assert old_password.password() not in " ".join(texts)  # ...never the password
    assert [d.item_id for d in seen.deliveries] == [item.id]

    with pytest.raises(InvalidInput, match="reason"):
        helpdesk.resend(world, helper, item.id, Step.DOCUMENT, "  ")  # type: ignore[arg-type]
    helpdesk.resend(world, helper, item.id, Step.PASSWORD, "Guardian deleted the password email")  # type: ignore[arg-type]
    with Session(world) as session:
        again = session.get(DeliveryItem, item.id)
        rows = session.exec(
            select(AuditEvent).where(AuditEvent.target == f"delivery_item:{item.id}")
        ).all()
    assert again is not None and again.state is ItemState.PENDING
    resend = rows[-1]
    assert (resend.action, resend.operator) == ("delivery.resend_password", "helpdesk")
    assert "Guardian deleted the password email" in resend.detail
    with pytest.raises(InvalidInput, match="Nothing has been sent"):
        helpdesk.resend(world, helper, item.id, Step.DOCUMENT, "twice in a row")  # type: ignore[arg-type]

    await Worker(world, settings_for(tmp_path, sink), config=FAST).run(once=True)
    second = [r for r in sink.received if r.item_id == item.id][2:]
    assert [r.step for r in second] == ["document", "password"]
    new_secret = second[1].password()
    assert new_secret != old_password.password()
    check_family(tmp_path, second[0], second[1])
    _, data = second[0].attachments()[0]
    resent = tmp_path / "resent.pdf"
    resent.write_bytes(data)
    refused = subprocess.run(
        ["qpdf", f"--password={old_password.password()}", "--decrypt", str(resent), "/dev/null"],
        capture_output=True,
    )
    assert refused.returncode != 0, "the old password must not open the resent report"
    assert old_document.index < second[0].index
    later = [e.text for e in helpdesk.family(world, helper, student.id).events]  # type: ignore[arg-type]
    assert any("Resend of the password requested" in t and "helpdesk" in t for t in later)
    assert audit.verify(world).ok


async def test_correct_email_readdresses_and_move_channel(
    world: Engine, tmp_path: Path, sink: MailSink
) -> None:
    batch_id = await deliver_first_school(world, tmp_path, sink)
    item, guardian, student = a_delivered_family(world, batch_id)
    helper = operators.resolve(world, "helpdesk")
    caaspp = operators.resolve(world, "caaspp")
    with pytest.raises(InvalidInput, match="not an email address"):
        email_changes.correct_email(world, helper, guardian.id, "no-at-sign", "typo on the form")  # type: ignore[arg-type]
    asked = email_changes.correct_email(
        world, helper, guardian.id, "New.Address@Example.org", "typo on the form"
    )  # type: ignore[arg-type]
    assert not asked.applied and asked.change_id is not None
    email_changes.approve(world, caaspp, asked.change_id)
    helpdesk.resend(world, helper, item.id, Step.DOCUMENT, "sent to the wrong address")  # type: ignore[arg-type]
    await Worker(world, settings_for(tmp_path, sink), config=FAST).run(once=True)
    resent = [r for r in sink.received if r.item_id == item.id][2:]
    assert {r.recipient for r in resent} == {"new.address@example.org"}

    helpdesk.move_channel(world, helper, guardian.id, Option.PRINT, "asked for paper at home")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="already on C"):
        helpdesk.move_channel(world, helper, guardian.id, Option.PRINT, "asked twice")  # type: ignore[arg-type]
    seen = helpdesk.family(world, helper, student.id)  # type: ignore[arg-type]
    assert seen.channel.startswith("C Print locally")
    texts = [e.text for e in seen.events]
    assert any(t.startswith("Email address change asked") and "helpdesk" in t for t in texts)
    assert any(t.startswith("Email address change approved by caaspp") for t in texts)
    assert any("guardian.email corrected by caaspp" in t and "typo on the form" in t for t in texts)
    assert any(t.startswith("Moved to C Print locally by helpdesk") for t in texts)
    with Session(world) as session:
        actions = session.exec(
            select(AuditEvent.action, AuditEvent.detail).where(
                AuditEvent.target == f"guardian:{guardian.id}"
            )
        ).all()
    assert [a for a, _ in actions] == [
        "guardian.email_change_requested",
        "guardian.email_change_approved",
        "guardian.email_corrected",
        "family.channel_moved",
    ]
    assert not any("new.address@example.org" in d for _, d in actions)  # masked in the log
    assert audit.verify(world).ok


def test_site_coordinator_may_not_act_for_another_school(world: Engine) -> None:
    site = operators.resolve(world, "site")
    with Session(world) as session:
        gid = session.exec(
            select(StudentGuardian.guardian_id)
            .join(Student, col(Student.id) == col(StudentGuardian.student_id))
            .where(Student.school_id != site.school_id)
        ).first()
    with pytest.raises(PermissionDenied, match="no child at your school"):
        helpdesk.move_channel(world, site, gid, Option.PAPER, "wants paper")  # type: ignore[arg-type]


def test_timeline_names_print_file_and_pages_and_the_paper_order(
    world: Engine, tmp_path: Path
) -> None:
    caaspp = operators.resolve(world, "caaspp")
    helper = operators.resolve(world, "helpdesk")
    first, second = [s.id for s in _schools(world)[:2]]
    printed = print_batch.create(
        world,
        caaspp,
        name="Hand-out",
        scope=ChannelScope(school_id=first),
        who=coverage.Who.ALL,
        options=print_batch.PrintOptions(handling=print_batch.Handling.HAND_OUT),
    )
    store = ReportStore(tmp_path / "data" / "reports")
    print_batch.run(world, caaspp, printed.id, tmp_path / "print", store)  # type: ignore[arg-type]
    paper_order.create(
        world, caaspp, name="ETS order", scope=ChannelScope(school_id=second), who=coverage.Who.ALL
    )
    manifest = next((tmp_path / "print").glob("*manifest.csv")).read_text().splitlines()
    family, *_, file_name, first_page, last_page, _status = manifest[1].split(",")
    with Session(world) as session:
        child = session.exec(
            select(Student.id)
            .join(StudentGuardian, col(StudentGuardian.student_id) == col(Student.id))
            .where(StudentGuardian.guardian_id == int(family), Student.school_id == first)
        ).first()
        ordered = session.exec(select(Student.id).where(Student.school_id == second)).first()
    texts = [e.text for e in helpdesk.family(world, helper, child).events]  # type: ignore[arg-type]
    assert any(
        t.startswith(f"Print locally batch {printed.id}")
        and f"file {file_name} pages {first_page}–{last_page}" in t
        for t in texts
    ), texts
    ordered_texts = [e.text for e in helpdesk.family(world, helper, ordered).events]  # type: ignore[arg-type]
    assert any(t.startswith("Paper from ETS batch") and "ordered" in t for t in ordered_texts)


def _schools(engine: Engine) -> list[School]:
    with Session(engine) as session:
        return list(session.exec(select(School).order_by(School.id)))


def test_lookup_and_actions_on_both_databases(
    any_url: str, tmp_path: Path, seed_demo: SeedDemo
) -> None:
    engine = db.make_engine(any_url)
    seed_demo(engine, Settings(any_url, tmp_path), students=30, seed=4, pdfs=False)
    helper = operators.resolve(engine, "helpdesk")
    with Session(engine) as session:
        student, guardian = session.exec(
            select(Student, Guardian)
            .join(StudentGuardian, col(StudentGuardian.student_id) == col(Student.id))
            .join(Guardian, col(Guardian.id) == col(StudentGuardian.guardian_id))
            .where(col(Guardian.phone).is_not(None), col(StudentGuardian.is_primary))
            .order_by(col(Student.id))
        ).first()  # type: ignore[misc]  # the family's guardian, whose channel is the student's
    assert student.ssid in {h.ssid for h in helpdesk.search(engine, helper, guardian.phone[:9])}
    assert student.ssid in {h.ssid for h in helpdesk.search(engine, helper, student.last_name)}
    email_changes.correct_email(engine, helper, guardian.id, "moved@example.org", "new address")
    helpdesk.move_channel(engine, helper, guardian.id, Option.PAPER, "no internet at home")
    seen = helpdesk.family(engine, helper, student.id)  # type: ignore[arg-type]
    assert seen.channel.startswith("D Paper from ETS")
    assert any("No SSR received" in e.text for e in seen.events)
    assert audit.verify(engine).ok
    engine.dispose()


async def test_a_refused_address_shows_as_bounced(
    world: Engine, tmp_path: Path, sink: MailSink
) -> None:
    _, item = first_school_batch(world)
    with Session(world) as session:
        student_id = session.exec(
            select(StudentGuardian.student_id).where(
                StudentGuardian.guardian_id == item.guardian_id
            )
        ).first()
    bad = item.address
    sink.rcpt_rules.append(lambda to, _n: "550 5.1.1 No such user" if to == bad else None)
    await Worker(world, settings_for(tmp_path, sink), config=FAST).run(once=True)
    seen = helpdesk.family(world, operators.resolve(world, "helpdesk"), student_id)  # type: ignore[arg-type]
    texts = [e.text for e in seen.events]
    assert any(
        t.startswith("Bounced: the mail server refused the message") and "550" in t for t in texts
    ), texts
    assert any(t.startswith("Now: failed") for t in texts)


def test_help_desk_cannot_redirect_a_familys_reports(
    any_url: str, tmp_path: Path, seed_demo: SeedDemo
) -> None:
    """A help desk correction changes nothing for sending until a coordinator decides: the
    address on file and the waiting deliveries stay, resends are held, the help desk cannot
    approve its own request; a rejection keeps the old address and frees resends again."""
    engine = db.make_engine(any_url)
    seed_demo(engine, Settings(any_url, tmp_path), students=30, seed=4, pdfs=True)
    helper = operators.resolve(engine, "helpdesk")
    caaspp = operators.resolve(engine, "caaspp")
    batch_id, waiting_item = first_school_batch(engine)
    with Session(engine) as session:
        guardian = session.get(Guardian, waiting_item.guardian_id)
        assert guardian is not None and guardian.email
        before = guardian.email
        student_id = session.exec(
            select(StudentGuardian.student_id).where(
                StudentGuardian.guardian_id == guardian.id, StudentGuardian.is_primary
            )
        ).first()

    asked = email_changes.correct_email(
        engine, helper, guardian.id, "attacker@evil.example", "parent called, new address"
    )  # type: ignore[arg-type]
    assert not asked.applied and asked.change_id is not None
    with Session(engine) as session:
        assert session.get(Guardian, guardian.id).email == before  # type: ignore[union-attr]
        assert session.get(DeliveryItem, waiting_item.id).address == before  # type: ignore[union-attr]
    with pytest.raises(InvalidInput, match="resends are held"):
        helpdesk.resend(engine, helper, waiting_item.id, Step.DOCUMENT, "lost the email")  # type: ignore[arg-type]
    with pytest.raises(PermissionDenied, match="may not approve a change"):
        email_changes.approve(engine, helper, asked.change_id)
    with pytest.raises(InvalidInput, match="already waits for a coordinator"):
        email_changes.correct_email(engine, helper, guardian.id, "other@evil.example", "again")  # type: ignore[arg-type]
    waiting = email_changes.pending(engine, caaspp)
    assert [(c.change_id, c.new_email, c.requested_by) for c in waiting] == [
        (asked.change_id, "attacker@evil.example", "helpdesk")
    ]
    card = helpdesk.family(engine, helper, student_id)  # type: ignore[arg-type]
    assert "waits for a coordinator" in card.waiting_change

    email_changes.reject(engine, caaspp, asked.change_id, "the family did not ask for this")
    with pytest.raises(InvalidInput, match="already rejected by caaspp"):
        email_changes.approve(engine, caaspp, asked.change_id)
    with Session(engine) as session:
        assert session.get(Guardian, guardian.id).email == before  # type: ignore[union-attr]
    assert email_changes.pending(engine, caaspp) == []
    texts = [e.text for e in helpdesk.family(engine, helper, student_id).events]  # type: ignore[arg-type]
    assert any(
        t.startswith("Email address change asked (waits for a coordinator) by helpdesk")
        for t in texts
    ), texts
    assert any(
        t.startswith("Email address change rejected by caaspp")
        and "the family did not ask for this" in t
        and "helpdesk" in t
        for t in texts
    ), texts
    assert audit.verify(engine).ok
    engine.dispose()
