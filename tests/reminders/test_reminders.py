"""Reminder planning and the scan, driven by an injected clock against a real SMTP server."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta

import pytest
from sqlmodel import Session, select

from services.access.tables import Role
from services.core import db
from services.core.programs import Program
from services.core.working_days import WorkingCalendar
from services.delivery.mailer import MailConfig
from services.reminders import ledger as notice_ledger
from services.reminders import scan as reminders
from services.reminders.ledger import Notice, NoticeKind, NoticeState
from services.reminders.mail import NoticeMailer
from services.reminders.scan import Coordinator, CredentialFact, PendingGroup, ReminderPolicy
from tests.reminders_world import SmtpServer, add_reports, at, build, days, issue

EXPIRY = date(2027, 1, 12)


@pytest.fixture
def smtp():  # type: ignore[no-untyped-def]
    with SmtpServer() as server:
        yield server


@pytest.fixture
def any_engine(migrated_url: str):  # type: ignore[no-untyped-def]
    """A migrated database, SQLite then PostgreSQL."""
    engine = db.make_engine(migrated_url)
    yield engine
    engine.dispose()


def mailer(smtp: SmtpServer) -> NoticeMailer:
    return NoticeMailer(
        MailConfig(host="127.0.0.1", port=smtp.port, from_address="console@ranchos.example")
    )


def run(engine, smtp, day, hour=8):  # type: ignore[no-untyped-def]
    return reminders.scan(engine, at(day, hour), mailer(smtp))


def ledger(engine) -> list[Notice]:  # type: ignore[no-untyped-def]
    with Session(engine) as session:
        return list(session.exec(select(Notice).order_by(Notice.id)).all())


# --- pure planning --------------------------------------------------------------------------

PEOPLE = [
    Coordinator("caaspp", 1, Role.LEA_CAASPP, "a@x.example", "en"),
    Coordinator("elpac", 1, Role.LEA_ELPAC, None, "vi"),
]


def test_choose_keeps_only_the_latest_fallen_due_and_the_horizon() -> None:
    expiry = date(2027, 1, 12)
    schedule = reminders.credential_schedule(expiry, expiry - timedelta(days=2), (14, 7, 3, 1, 0))
    chosen = reminders.choose(schedule, expiry - timedelta(days=2), horizon_days=14)
    assert [offset for offset, _ in chosen] == [3, 1, 0]


def test_daily_notice_after_expiry_is_todays_only() -> None:
    expiry = date(2027, 1, 12)
    today = expiry + timedelta(days=5)
    chosen = reminders.choose(
        reminders.credential_schedule(expiry, today, (14, 7, 3, 1, 0)), today, 14
    )
    assert chosen == [(-5, today)]


def test_credential_notices_go_to_both_coordinators() -> None:
    fact = CredentialFact(7, 1, at(EXPIRY, 23))
    planned = reminders.plan_credential(fact, PEOPLE, EXPIRY - timedelta(days=20), ReminderPolicy())
    # the horizon (14 days) reaches day -6: the 14- and 7-day notices are planned ahead
    assert {(p.recipient, p.offset) for p in planned} == {
        (r, o) for r in ("caaspp", "elpac") for o in (14, 7)
    }
    assert all(p.subject == "credential:7" and p.event_on == EXPIRY for p in planned)


def test_unverified_for_a_week_is_a_notice_to_both_then_weekly() -> None:
    recorded = at(date(2026, 11, 2), 9)
    fact = CredentialFact(7, 1, at(EXPIRY, 23), recorded, verified=False)
    policy = ReminderPolicy()
    assert reminders.plan_unverified(fact, PEOPLE, date(2026, 11, 8), policy) == []
    week = reminders.plan_unverified(fact, PEOPLE, date(2026, 11, 9), policy)
    assert {(p.recipient, p.offset, p.due_on) for p in week} == {
        (r, -7, date(2026, 11, 9)) for r in ("caaspp", "elpac")
    }
    assert all(p.kind is NoticeKind.CREDENTIAL_UNVERIFIED for p in week)
    later = reminders.plan_unverified(fact, PEOPLE, date(2026, 11, 20), policy)
    assert {p.offset for p in later} == {-14}
    verified = CredentialFact(7, 1, at(EXPIRY, 23), recorded, verified=True)
    assert reminders.plan_unverified(verified, PEOPLE, date(2026, 11, 20), policy) == []


def test_ssr_deadline_counts_working_days_and_skips_holidays() -> None:
    calendar = WorkingCalendar([date(2026, 5, 25)])  # Memorial Day
    received = date(2026, 5, 1)  # a Friday
    assert calendar.deadline(Program.CAASPP, received) == date(2026, 6, 1)
    assert WorkingCalendar().deadline(Program.CAASPP, received) == date(2026, 5, 29)
    assert calendar.deadline(Program.ELPAC, received) == date(2026, 5, 31)
    policy = ReminderPolicy(calendar=calendar)
    group = PendingGroup(1, Program.CAASPP, received, pending=40)
    planned = reminders.plan_ssr(group, PEOPLE, date(2026, 5, 22), policy)
    # only the CAASPP coordinator; 5 working days before June 1 skips the holiday: May 22
    assert [(p.recipient, p.offset, p.due_on) for p in planned] == [
        ("caaspp", 5, date(2026, 5, 22)),
        ("caaspp", 1, date(2026, 5, 29)),
        ("caaspp", 0, date(2026, 6, 1)),
    ]


def test_bad_holiday_is_refused_with_its_value() -> None:
    from services.core.errors import InvalidInput

    with pytest.raises(InvalidInput, match="2026-13-01"):
        WorkingCalendar.parse({"holidays": ["2026-07-03", "2026-13-01"]})


# --- the scan against a real SMTP server ----------------------------------------------------


def test_a_full_credential_year_sends_each_notice_once(engine, smtp) -> None:  # type: ignore[no-untyped-def]
    issued = EXPIRY - timedelta(days=365)
    world = build(engine, EXPIRY)
    for day in days(issued, EXPIRY + timedelta(days=3)):
        run(engine, smtp, day)
        if day >= EXPIRY - timedelta(days=15):
            run(engine, smtp, day, hour=15)  # a second scan the same day changes nothing
    issue(engine, world.lea_id, EXPIRY + timedelta(days=368))  # the reset stops the daily notices
    for day in days(EXPIRY + timedelta(days=4), EXPIRY + timedelta(days=10)):
        run(engine, smtp, day)

    received = Counter(smtp.inbox.subjects())
    assert all(n == 1 for n in received.values()), received
    by_person = Counter(to for to, _ in received)
    assert by_person == {"ana@ranchos.example": 8, "eli@ranchos.example": 8}
    sent = [(n.recipient, n.offset) for n in ledger(engine) if n.state is NoticeState.SENT]
    expected_offsets = [14, 7, 3, 1, 0, -1, -2, -3]
    assert sorted(sent) == sorted((r, o) for r in ("caaspp", "elpac") for o in expected_offsets)
    assert not any(n.late for n in ledger(engine))
    subjects = [s for to, s in smtp.inbox.subjects() if to == "ana@ranchos.example"]
    assert subjects[0] == (
        "SIS-vendor credential for Los Ranchos Unified expires in 14 days "
        "(Tuesday, January 12, 2027)"
    )
    assert "expires today" in subjects[4]
    assert "EXPIRED 1 day ago" in subjects[5] and "EXPIRED 3 days ago" in subjects[7]
    spanish = [s for to, s in smtp.inbox.subjects() if to == "eli@ranchos.example"]
    assert spanish[0].startswith("La credencial del proveedor SIS de Los Ranchos Unified vence")
    assert "martes, 12 de enero de 2027" in spanish[0]


def test_downtime_sends_one_late_notice_then_resumes_on_time(any_engine, smtp) -> None:  # type: ignore[no-untyped-def]
    engine = any_engine
    build(engine, EXPIRY)
    run(engine, smtp, EXPIRY - timedelta(days=15))  # plans 14, 7, 3, 1 and 0 ahead
    assert smtp.inbox.subjects() == []
    # down from day -15 to day -2
    run(engine, smtp, EXPIRY - timedelta(days=2))
    late = [n for n in ledger(engine) if n.state is NoticeState.SENT]
    assert [(n.recipient, n.offset, n.late) for n in late] == [
        ("caaspp", 3, True),
        ("elpac", 3, True),
    ]
    assert len(smtp.inbox.messages) == 2
    assert "late" in smtp.inbox.messages[0].get_payload()
    superseded = [n for n in ledger(engine) if n.state is NoticeState.CANCELLED]
    assert {(n.offset, n.cancel_reason) for n in superseded} == {
        (14, "superseded by a later notice"),
        (7, "superseded by a later notice"),
    }
    run(engine, smtp, EXPIRY - timedelta(days=1))
    on_time = [n for n in ledger(engine) if n.state is NoticeState.SENT and n.offset == 1]
    assert [(n.recipient, n.late) for n in on_time] == [("caaspp", False), ("elpac", False)]
    assert len(smtp.inbox.messages) == 4


def test_a_reset_cancels_planned_notices(any_engine, smtp) -> None:  # type: ignore[no-untyped-def]
    engine = any_engine
    world = build(engine, EXPIRY)
    run(engine, smtp, EXPIRY - timedelta(days=10))  # sends 14 late, plans 7, 3, 1, 0
    issue(engine, world.lea_id, EXPIRY + timedelta(days=365))
    run(engine, smtp, EXPIRY - timedelta(days=7))
    states = Counter((n.state, n.cancel_reason) for n in ledger(engine))
    assert states == {
        (NoticeState.SENT, None): 2,
        (NoticeState.CANCELLED, "credential was reset or regenerated"): 8,
    }
    assert len(smtp.inbox.messages) == 2


def test_smtp_failure_is_retried_with_backoff_and_visible(engine, smtp) -> None:  # type: ignore[no-untyped-def]
    build(engine, EXPIRY)
    smtp.inbox.refuse = True
    day = EXPIRY - timedelta(days=7)
    report = run(engine, smtp, day)
    assert report.failed == 2 and report.sent == 0
    failing = notice_ledger.failures(engine)
    assert {n.recipient for n in failing} == {"caaspp", "elpac"}
    assert all("451" in (n.last_error or "") and n.attempts == 1 for n in failing)
    # before the backoff (30 s +-20% at first) has passed nothing is tried; after it, it goes once
    reminders.scan(engine, at(day) + timedelta(seconds=10), mailer(smtp))
    assert notice_ledger.failures(engine)[0].attempts == 1
    smtp.inbox.refuse = False
    report = reminders.scan(engine, at(day) + timedelta(minutes=2), mailer(smtp))
    assert report.sent == 2 and notice_ledger.failures(engine) == []
    assert len(smtp.inbox.messages) == 2
    assert {n.attempts for n in ledger(engine) if n.state is NoticeState.SENT} == {2}


def test_unreachable_smtp_server_is_a_recorded_failure(engine) -> None:  # type: ignore[no-untyped-def]
    build(engine, EXPIRY)
    dead = NoticeMailer(MailConfig(host="127.0.0.1", port=1, timeout=2))
    report = reminders.scan(engine, at(EXPIRY), dead)
    assert report.failed == 2
    errors = sorted(n.last_error or "" for n in notice_ledger.failures(engine))
    # the first notice found the relay down; the second was not tried in the same scan
    assert errors[0].startswith("SMTP 127.0.0.1:1 retry: relay unreachable"), errors
    assert errors[1].startswith("not tried, relay down: SMTP 127.0.0.1:1"), errors


def test_inbox_only_coordinator_without_email(engine, smtp) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import update

    from services.access.tables import Operator
    from services.core.db import session_scope

    build(engine, EXPIRY)
    with session_scope(engine) as session:
        session.execute(update(Operator).where(Operator.username == "elpac").values(email=None))
    run(engine, smtp, EXPIRY - timedelta(days=3))
    assert [to for to, _ in smtp.inbox.subjects()] == ["ana@ranchos.example"]
    assert [n.offset for n in notice_ledger.inbox(engine, "elpac")] == [3]


def test_ssr_deadline_notices_aggregate_per_receipt_day(engine, smtp) -> None:  # type: ignore[no-untyped-def]
    world = build(engine, date(2027, 12, 1), languages=("zh_Hans", "fil"))
    received = date(2026, 5, 1)
    add_reports(engine, world, Program.CAASPP, at(received, 10), 30)
    add_reports(engine, world, Program.ELPAC, at(received, 11), 12, first=100)
    deadline = date(2026, 5, 29)  # 20 working days after Friday May 1
    for day in days(received, deadline + timedelta(days=3)):
        run(engine, smtp, day)
    sent = sorted(
        (n.recipient, n.program, n.offset, n.due_on, n.pending)
        for n in ledger(engine)
        if n.state is NoticeState.SENT and n.kind is NoticeKind.SSR_DEADLINE
    )
    assert sent == [
        ("caaspp", "CAASPP", -1, date(2026, 6, 1), 30),  # past due: the first working day after
        ("caaspp", "CAASPP", 0, deadline, 30),
        ("caaspp", "CAASPP", 1, date(2026, 5, 28), 30),
        ("caaspp", "CAASPP", 5, date(2026, 5, 22), 30),
        ("elpac", "ELPAC", -1, date(2026, 6, 1), 12),
        ("elpac", "ELPAC", 0, date(2026, 5, 31), 12),
        ("elpac", "ELPAC", 1, date(2026, 5, 29), 12),
        ("elpac", "ELPAC", 5, date(2026, 5, 25), 12),
    ]
    chinese = [s for to, s in smtp.inbox.subjects() if to == "ana@ranchos.example"]
    assert (
        chinese[0]
        == "Los Ranchos Unified 有 30 份 CAASPP 成绩报告尚未送达：截止 2026年5月29日星期五"
    )
    assert len(smtp.inbox.messages) == 8


def test_deadline_passed_during_downtime_sends_one_past_due_warning(engine, smtp) -> None:  # type: ignore[no-untyped-def]
    world = build(engine, date(2027, 12, 1))
    add_reports(engine, world, Program.CAASPP, at(date(2026, 5, 1), 10), 3)
    run(engine, smtp, date(2026, 5, 18))  # plans the 5-, 1- and 0-day notices (deadline May 29)
    run(engine, smtp, date(2026, 6, 2))  # back after the deadline: the SSRs are past due
    assert [s for _, s in smtp.inbox.subjects()] == [
        "PAST DUE: 3 CAASPP score reports for Los Ranchos Unified were due Friday, May 29, 2026"
    ]
    assert "(5 CCR § 863)" in smtp.inbox.messages[0].get_content()
    assert Counter((n.state, n.offset < 0) for n in ledger(engine)) == {
        (NoticeState.CANCELLED, False): 3,  # superseded by the warning
        (NoticeState.SENT, True): 1,
    }


def test_a_coordinator_who_leaves_gets_no_more_notices(engine, smtp) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import update

    from services.access.tables import Operator
    from services.core.db import session_scope

    build(engine, EXPIRY)
    run(engine, smtp, EXPIRY - timedelta(days=7))
    with session_scope(engine) as session:
        session.execute(update(Operator).where(Operator.username == "elpac").values(active=False))
    run(engine, smtp, EXPIRY - timedelta(days=3))
    assert Counter(to for to, _ in smtp.inbox.subjects()) == {
        "ana@ranchos.example": 2,
        "eli@ranchos.example": 1,
    }
    cancelled = {n.cancel_reason for n in ledger(engine) if n.recipient == "elpac" and n.offset < 7}
    assert cancelled == {"recipient is no longer an active coordinator"}


@pytest.mark.parametrize("language", ["en", "es", "zh_Hans", "vi", "fil"])
def test_every_notice_text_renders_in_every_language(language: str) -> None:
    from services.reminders.mail import render

    def notice(kind: NoticeKind, offset: int, late: bool = False) -> Notice:
        subject = (
            "credential:1" if kind is NoticeKind.CREDENTIAL_EXPIRY else "ssr:1:ELPAC:2026-05-01"
        )
        return Notice(
            kind=kind,
            subject=subject,
            offset=offset,
            recipient="x",
            lea_id=1,
            due_on=EXPIRY,
            event_on=EXPIRY,
            program="ELPAC",
            pending=12,
            language=language,
            late=late,
        )

    texts = [
        render(notice(NoticeKind.CREDENTIAL_EXPIRY, offset, late=offset == 3), "Ranchos")
        for offset in (14, 3, 1, 0, -2)
    ] + [render(notice(NoticeKind.SSR_DEADLINE, 1), "Ranchos")]
    assert len({t.subject for t in texts}) == len(texts)  # each says something different
    assert all("Ranchos" in t.subject and "2027" in t.subject for t in texts)
    assert "12" in texts[-1].subject and "ELPAC" in texts[-1].body
    assert texts[1].body != render(notice(NoticeKind.CREDENTIAL_EXPIRY, 3), "Ranchos").body  # late
    if language == "en":  # what TOMS asks: regenerate it there, then record it here
        assert texts[0].body.split("\n\n")[1].startswith("Regenerate the credential in TOMS")
        assert "record it in SSR Console" in texts[0].body
    others = [
        render(notice(kind, 0), "Ranchos")
        for kind in (
            NoticeKind.CREDENTIAL_UNVERIFIED,
            NoticeKind.RESET_NOTE,
            NoticeKind.RESET_EMERGENCY,
        )
    ]
    assert len({t.subject for t in others}) == 3
    assert all("Ranchos" in t.subject for t in others)
    assert all("ELPAC" in t.subject for t in others[1:])  # the requester's program


def test_pending_groups_agree_on_both_databases(any_engine) -> None:  # type: ignore[no-untyped-def]
    """Receipt days are the LEA's local days: 23:00 Pacific on May 1 is May 2 in UTC."""
    from services.core.db import session_scope

    engine = any_engine
    world = build(engine, date(2027, 12, 1))
    add_reports(engine, world, Program.CAASPP, at(date(2026, 5, 1), 23), 4)
    add_reports(engine, world, Program.CAASPP, at(date(2026, 5, 4), 9), 2, first=10)
    add_reports(engine, world, Program.ELPAC, at(date(2026, 5, 1), 8), 3, first=20)
    with session_scope(engine) as session:
        groups = reminders.pending_groups(session, date(2026, 5, 20), ReminderPolicy())
    assert [(g.program, g.received_on, g.pending) for g in groups] == [
        (Program.CAASPP, date(2026, 5, 1), 4),
        (Program.CAASPP, date(2026, 5, 4), 2),
        (Program.ELPAC, date(2026, 5, 1), 3),
    ]


def test_deadline_notice_counts_only_the_families_not_yet_delivered(any_engine) -> None:  # type: ignore[no-untyped-def]
    """Delivered (services.delivery.delivered): B with its password sent, C printed, D received, A
    published. A document without its password, a pending print item, a cancelled batch, and a
    second guardian's item in a plan batch still count as undelivered."""
    from services.channels.batches import ChannelBatch, ChannelItem, ChannelItemState
    from services.core.db import session_scope
    from services.delivery.ledger import BatchStatus, DeliveryBatch, DeliveryItem, ItemState
    from services.roster.tables import Guardian, Student, StudentGuardian

    engine = any_engine
    world = build(engine, date(2027, 12, 1))
    add_reports(engine, world, Program.CAASPP, at(date(2026, 5, 1), 10), 9)

    def pending() -> int:
        with session_scope(engine) as session:
            groups = reminders.pending_groups(session, date(2026, 5, 20), ReminderPolicy())
        return sum(g.pending for g in groups)

    assert pending() == 9
    with session_scope(engine) as session:
        students = list(session.exec(select(Student).order_by(Student.ssid)).all())
        guardians = []
        for n, student in enumerate(students):
            guardian = Guardian(
                lea_id=world.lea_id,
                first_name="G",
                last_name=f"Family{n}",
                name_key=f"family{n} g",
                email=f"g{n}@x.example",
            )
            session.add(guardian)
            session.flush()
            session.add(StudentGuardian(student_id=student.id, guardian_id=guardian.id))
            guardians.append(guardian)
        # Student 8's second guardian (not the family) is in a plan batch.
        session.add(
            StudentGuardian(
                student_id=students[8].id, guardian_id=guardians[7].id, is_primary=False
            )
        )
        session.flush()
        # The family of student 8 is its primary guardian; mark it so.
        link = session.exec(
            select(StudentGuardian).where(
                StudentGuardian.student_id == students[8].id,
                StudentGuardian.guardian_id == guardians[8].id,
            )
        ).one()
        link.is_primary = True
        session.add(link)

        def email_batch(status: BatchStatus, source: str, items: dict[int, ItemState]) -> None:
            batch = DeliveryBatch(
                lea_id=world.lea_id, name="Email", source=source, status=status, created_by="t"
            )
            session.add(batch)
            session.flush()
            for n, state in items.items():
                session.add(
                    DeliveryItem(
                        batch_id=batch.id,
                        guardian_id=guardians[n].id,
                        address=f"g{n}@x.example",
                        state=state,
                    )
                )

        def channel_batch(channel: str, items: dict[int, ChannelItemState]) -> None:
            batch = ChannelBatch(
                lea_id=world.lea_id,
                channel=channel,
                name="Paper",
                source="plan",
                status=BatchStatus.RUNNING,
                created_by="t",
            )
            session.add(batch)
            session.flush()
            for n, state in items.items():
                session.add(
                    ChannelItem(
                        batch_id=batch.id,
                        student_id=students[n].id,
                        guardian_id=guardians[n].id,
                        state=state,
                    )
                )

        email_batch(
            BatchStatus.RUNNING,
            "plan",
            {0: ItemState.DONE, 1: ItemState.PASSWORD_SENT, 2: ItemState.DOCUMENT_SENT},
        )
        email_batch(BatchStatus.CANCELLED, "lea", {3: ItemState.DONE})
        channel_batch("C", {4: ChannelItemState.DONE, 5: ChannelItemState.PENDING})
        channel_batch("D", {6: ChannelItemState.DONE})
        # Guardian 7 (family of student 7, second guardian of student 8) delivered by plan email.
        email_batch(BatchStatus.RUNNING, "plan", {7: ItemState.DONE})
    # Delivered: 0, 1 (B), 4 (C), 6 (D), 7 (B); not: 2, 3, 5, and 8 (a plan batch sends a
    # second guardian only the children whose family they are).
    assert pending() == 4
