"""What a hard bounce changes: the family is not delivered (coverage lists it as bounced with the
reason), the help desk sees the bounce and its email failing until corrected, and one command puts
the batch's bounced families on print as a new batch; past a bounce rate, coordinators are told."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from sqlmodel import Session, col, select

from services.access import operators
from services.audit.tables import AuditEvent
from services.bounces import matching, moves
from services.bounces.tables import Outcome
from services.channels.batches import ChannelBatch, ChannelItem
from services.core.columns import utcnow
from services.delivery.ledger import DeliveryItem, ItemState
from services.delivery.mailer import MailConfig
from services.delivery.return_path import ReturnPath
from services.helpdesk import email_changes
from services.helpdesk import families as helpdesk
from services.plan import coverage
from services.reminders import scan as reminders
from services.reminders.ledger import Notice, NoticeKind, NoticeState
from services.reminders.mail import NoticeMailer
from services.reminders.scan import ReminderPolicy
from services.reports import aggregates
from services.roster.tables import Student, StudentGuardian
from tests.bounces import samples
from tests.bounces.conftest import BOUNCES, Sent
from tests.console.conftest import Cli


def _bounce(sent: Sent, item_id: int) -> DeliveryItem:
    parts = sent.families()[item_id]["document"]
    raw = samples.postfix_dsn(str(parts.message["Message-ID"]), parts.recipient, BOUNCES)
    assert matching.read_message(sent.engine, raw, ReturnPath(BOUNCES)) is Outcome.BOUNCED
    with Session(sent.engine) as session:
        item = session.get(DeliveryItem, item_id)
    assert item is not None and item.state is ItemState.BOUNCED
    return item


def _student_of(sent: Sent, guardian_id: int) -> Student:
    with Session(sent.engine) as session:
        student = session.exec(
            select(Student)
            .join(StudentGuardian, col(StudentGuardian.student_id) == col(Student.id))
            .where(StudentGuardian.guardian_id == guardian_id)
            .order_by(col(Student.id))
        ).first()
    assert student is not None
    return student


def test_a_bounced_family_is_uncovered_with_the_reason_and_failing_at_the_help_desk(
    sent: Sent,
) -> None:
    item = _bounce(sent, sorted(sent.families())[0])
    caaspp = operators.resolve(sent.engine, "caaspp")
    student = _student_of(sent, item.guardian_id)
    listed = {u.ssid: u for u in coverage.uncovered(sent.engine, caaspp, limit=500)}
    assert listed[student.ssid].why is coverage.Why.BOUNCED
    assert (
        "5.1.1" in listed[student.ssid].why_text and item.address in listed[student.ssid].why_text
    )

    assert student.id is not None
    family = helpdesk.family(sent.engine, caaspp, student.id)
    contact = next(c for c in family.contacts if c.guardian_id == item.guardian_id)
    assert "5.1.1" in contact.email_failing
    bounced = [e.text for e in family.events if e.text.startswith("Bounced")]
    assert bounced and "reported by mailer-daemon@mx.example.net" in bounced[0]
    assert "5.1.1" in bounced[0]

    email_changes.correct_email(
        sent.engine, caaspp, item.guardian_id, "fixed.parent@example.org", "called the school"
    )
    family = helpdesk.family(sent.engine, caaspp, student.id)
    contact = next(c for c in family.contacts if c.guardian_id == item.guardian_id)
    assert contact.email_failing == ""


def test_the_bounced_families_of_a_batch_move_to_print_as_a_new_batch(
    sent: Sent, tmp_path: Path
) -> None:
    ids = sorted(sent.families())
    bounced = [_bounce(sent, item_id) for item_id in ids[:3]]
    config = tmp_path / "config.toml"
    config.write_text("")
    config.chmod(0o600)
    cli = Cli(sent.settings, config, sent.engine)
    cli("batch", "move-bounced", f"N{sent.batch_id}").refused("nothing of it can bounce")
    made = cli("batch", "move-bounced", f"B{sent.batch_id}", "--to", "print")
    batch_id = made.ok().strip()
    assert batch_id.startswith("C") and "3 bounced families" in made.err
    with Session(sent.engine) as session:
        batch = session.get(ChannelBatch, int(batch_id[1:]))
        guardians = set(
            session.exec(
                select(ChannelItem.guardian_id).where(ChannelItem.batch_id == batch.id)  # type: ignore[union-attr]
            ).all()
        )
        actions = session.exec(select(AuditEvent.action)).all()
    assert batch is not None and batch.channel == "C"
    assert guardians == {item.guardian_id for item in bounced}
    assert "bounces.moved" in actions
    # they are covered again, and a second move finds no one left to take
    caaspp = operators.resolve(sent.engine, "caaspp")
    uncovered = {u.ssid for u in coverage.uncovered(sent.engine, caaspp, limit=500)}
    assert all(_student_of(sent, i.guardian_id).ssid not in uncovered for i in bounced)
    again = cli("batch", "move-bounced", f"B{sent.batch_id}")
    assert again.code == 1 and "Traceback" not in again.err
    assert moves.bounced_families(sent.engine, sent.batch_id) == sorted(
        i.guardian_id for i in bounced
    )


def test_coordinators_get_one_notice_when_a_batch_bounces_past_the_threshold(sent: Sent) -> None:
    ids = sorted(sent.families())
    policy = ReminderPolicy(bounce_rate=0.1, bounce_minimum=2)
    relay = NoticeMailer(MailConfig(host="127.0.0.1", port=sent.sink.port, timeout=10))
    _bounce(sent, ids[0])
    reminders.scan(sent.engine, utcnow(), relay, policy)
    assert _bounce_notices(sent) == []  # one bounce: under the minimum
    for item_id in ids[1:3]:
        _bounce(sent, item_id)
    report = reminders.scan(sent.engine, utcnow(), relay, policy)
    notices = _bounce_notices(sent)
    assert notices and {n.state for n in notices} == {NoticeState.SENT}, report.errors
    assert {n.subject for n in notices} == {f"bounces:{sent.batch_id}"}
    assert all(n.pending == 3 for n in notices)
    batch = f"B{sent.batch_id} "  # in every language's subject
    mailed = [r for r in sent.sink.received if batch in str(r.message["Subject"])]
    assert len(mailed) == len([n for n in notices if n.email]) > 0
    reminders.scan(sent.engine, utcnow(), relay, policy)  # a later scan: not again
    assert len(_bounce_notices(sent)) == len(notices)


def _bounce_notices(sent: Sent) -> list[Notice]:
    with Session(sent.engine) as session:
        return list(session.exec(select(Notice).where(Notice.kind == NoticeKind.BOUNCE_RATE)).all())


def test_reports_count_bounces_apart_and_name_the_reason(sent: Sent) -> None:
    item = _bounce(sent, sorted(sent.families())[0])
    caaspp = operators.resolve(sent.engine, "caaspp")
    aggregates.refresh(sent.engine, caaspp)
    rows = aggregates.coverage(sent.engine, caaspp, aggregates.Dimension.CHANNEL)
    secure = next(r for r in rows if r.label.startswith("B "))
    assert secure.bounced >= 1 and secure.failed >= secure.bounced
    assert f"({secure.bounced} bounced)" in aggregates.as_cells(secure)[5]
    assert aggregates.total(rows).bounced == secure.bounced
    student = _student_of(sent, item.guardian_id)
    late = aggregates.at_risk(
        sent.engine, caaspp, date(2030, 1, 2), sent.settings.calendar, limit=500
    )
    states = {r.ssid: r.state for r in late}
    assert states[student.ssid].startswith("bounced (B): ")
    assert "5.1.1" in states[student.ssid] and item.address in states[student.ssid]
