"""The scheduler process: one per database, and a SIGKILL between ledger write and send loses nothing.

The processes here are real ``ssr-console scheduler`` processes; the SMTP server is aiosmtpd on
loopback. ``SSR_CONSOLE_FAULT`` makes a process SIGKILL itself at a named point of its first send.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from services.core import db
from services.core.programs import Program
from services.reminders import scheduler_lock
from services.reminders.ledger import Notice, NoticeState
from services.reminders.scheduler_lock import LockLost, SchedulerBusy, SchedulerLock
from tests.pilot import wait_for
from tests.reminders_world import SmtpServer, add_reports, at, build

ROOT = Path(__file__).resolve().parents[2]
EXPIRY = datetime(2027, 1, 12).date()


@pytest.fixture
def smtp():  # type: ignore[no-untyped-def]
    with SmtpServer() as server:
        yield server


def config_file(tmp_path: Path, smtp: SmtpServer, extra: str = "", anchor: bool = False) -> Path:
    """The scheduler's config; the daily audit anchor mail is off unless a test is about it, so
    the others count only their own notices."""
    if not anchor:
        off = "[scheduler]\naudit_anchor = false\n"
        extra = extra.replace("[scheduler]\n", off) if "[scheduler]\n" in extra else extra + off
    path = tmp_path / "config.toml"
    path.write_text(
        f'[smtp]\nhost = "127.0.0.1"\nport = {smtp.port}\nfrom_address = "console@ranchos.example"\n'
        + extra
    )
    return path


def console(url: str, config: Path, *args: str, fault: str | None = None) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSR_")}
    if fault:
        env["SSR_CONSOLE_FAULT"] = fault
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "console.cli",
            "--config",
            str(config),
            "--database-url",
            url,
            *args,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def notices(engine) -> list[Notice]:  # type: ignore[no-untyped-def]
    with Session(engine) as session:
        return list(session.exec(select(Notice).order_by(Notice.id)).all())


# --- the lock --------------------------------------------------------------------------------


def test_second_lock_on_sqlite_is_refused_until_released(engine) -> None:  # type: ignore[no-untyped-def]
    first, second = SchedulerLock(engine), SchedulerLock(engine)
    first.acquire()
    with pytest.raises(SchedulerBusy, match="already running against this database"):
        second.acquire()
    assert scheduler_lock.status(engine).running
    first.release()
    assert not scheduler_lock.status(engine).running
    second.acquire()
    with pytest.raises(LockLost):
        first.verify()
    second.release()


def test_expired_sqlite_lock_is_taken_over_and_the_old_holder_stops(engine) -> None:  # type: ignore[no-untyped-def]
    clock = [datetime(2027, 1, 1, tzinfo=UTC)]
    first = SchedulerLock(engine, ttl=timedelta(seconds=90), clock=lambda: clock[0])
    first.acquire()
    other = SchedulerLock(engine, clock=lambda: clock[0])
    other.host = "another-host"  # its pid check cannot apply: only the expiry frees the lock
    with pytest.raises(SchedulerBusy):
        other.acquire()
    clock[0] += timedelta(seconds=91)
    other.acquire()
    with pytest.raises(LockLost, match="took over"):
        first.heartbeat()


def test_lock_of_a_killed_process_on_this_host_is_taken_at_once(engine) -> None:  # type: ignore[no-untyped-def]
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    ghost = SchedulerLock(engine)
    ghost.pid = int(dead.stdout)
    ghost.acquire()
    SchedulerLock(engine).acquire()  # no need to wait 90 s for a process that is gone


def test_second_lock_on_postgresql_is_refused(migrated_pg_url: str) -> None:
    engine = db.make_engine(migrated_pg_url)
    first, second = SchedulerLock(engine), SchedulerLock(engine)
    first.acquire()
    with pytest.raises(SchedulerBusy, match=f"pid {os.getpid()}"):
        second.acquire()
    first.release()  # closing its connection frees the advisory lock
    second.acquire()
    second.heartbeat()
    second.release()
    engine.dispose()


# --- the process -----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["after-claim", "after-send"])
def test_sigkill_between_ledger_write_and_send_loses_nothing(  # type: ignore[no-untyped-def]
    tmp_path, migrated_sqlite_url, smtp, fault
) -> None:
    engine = db.make_engine(migrated_sqlite_url)
    build(engine, EXPIRY)
    config = config_file(tmp_path, smtp)
    now = at(EXPIRY - timedelta(days=3)).isoformat()

    killed = console(migrated_sqlite_url, config, "scheduler", "--once", "--now", now, fault=fault)
    killed.communicate(timeout=60)
    assert killed.returncode == -signal.SIGKILL
    claimed = [n for n in notices(engine) if n.state is NoticeState.SENDING]
    # both notices were claimed (with their Message-IDs) and committed before the first send
    assert len(claimed) == 2 and all(n.message_id for n in claimed)
    before = len(smtp.inbox.messages)
    assert before == (1 if fault == "after-send" else 0)

    restarted = console(migrated_sqlite_url, config, "scheduler", "--once", "--now", now)
    out, err = restarted.communicate(timeout=60)
    assert restarted.returncode == 0, err
    assert "sent 2" in out
    sent = notices(engine)
    assert [(n.recipient, n.state) for n in sent if n.offset == 3] == [
        ("caaspp", NoticeState.SENT),
        ("elpac", NoticeState.SENT),
    ]
    ids = [str(m["Message-ID"]) for m in smtp.inbox.messages]
    if fault == "after-claim":
        # the kill came before the SMTP conversation: each notice arrives exactly once
        assert sorted(ids) == sorted(n.message_id for n in sent if n.offset == 3)
        assert len(ids) == 2
    else:
        # the kill came after the server accepted it but before the ledger said so: the notice
        # is sent again (never lost), as the same message, which mail clients show once
        assert len(ids) == 3 and ids[0] == ids[1] == claimed[0].message_id
    again = console(migrated_sqlite_url, config, "scheduler", "--once", "--now", now)
    again.communicate(timeout=60)
    assert len(smtp.inbox.messages) == len(ids)  # a further restart sends nothing


@pytest.mark.slow
def test_two_schedulers_on_postgresql_the_second_refuses(migrated_pg_url, tmp_path, smtp) -> None:  # type: ignore[no-untyped-def]
    engine = db.make_engine(migrated_pg_url)
    build(engine, datetime.now(UTC).date() + timedelta(days=3))
    config = config_file(tmp_path, smtp, "[scheduler]\nheartbeat_seconds = 1\n")
    first = console(migrated_pg_url, config, "scheduler", "--scan-minutes", "0.02")
    try:
        wait_for(lambda: len(smtp.inbox.messages) >= 2, 30, "the first scheduler's two notices")
        assert len(smtp.inbox.messages) == 2
        second = console(migrated_pg_url, config, "scheduler", "--scan-minutes", "0.02")
        _, err = second.communicate(timeout=60)
        assert second.returncode == 2
        assert "Another reminder scheduler is already running against this database" in err
        once = console(migrated_pg_url, config, "scheduler", "--once")
        once.communicate(timeout=60)
        assert once.returncode == 2
        for _ in range(2):  # two more scans of the first scheduler
            seen = scheduler_lock.status(engine).last_scan_at
            wait_for(lambda seen=seen: scheduler_lock.status(engine).last_scan_at != seen, 30)
        assert len(smtp.inbox.messages) == 2  # not doubled
        state = scheduler_lock.status(engine)
        assert state.running and state.pid == first.pid and state.last_scan_at is not None
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=30)
    assert first.returncode == 0
    assert not scheduler_lock.status(engine).running
    engine.dispose()


def test_bad_scheduler_config_is_a_clear_error(tmp_path, migrated_sqlite_url, smtp) -> None:  # type: ignore[no-untyped-def]
    config = config_file(tmp_path, smtp, '[calendar]\nholidays = ["July 4th"]\n')
    bad = console(migrated_sqlite_url, config, "scheduler", "--once")
    _, err = bad.communicate(timeout=60)
    assert bad.returncode == 2
    assert "[calendar] holidays: 'July 4th' is not a date like 2026-07-03" in err
    assert "Traceback" not in err
    config = config_file(tmp_path, smtp, '[scheduler]\ntimezone = "Pacific/Nowhere"\n')
    bad = console(migrated_sqlite_url, config, "scheduler", "--once")
    _, err = bad.communicate(timeout=60)
    assert bad.returncode == 2 and "Time zone 'Pacific/Nowhere' is unknown" in err


@pytest.mark.slow
def test_scheduler_warns_of_ssrs_past_due_under_the_summer_rule(
    migrated_url, tmp_path, smtp
) -> None:  # type: ignore[no-untyped-def]
    """SSRs received after the last day of instruction are due 20 working days (CAASPP) or 15
    (ELPAC) into the next school year; the day after, a real ``scheduler --once`` warns."""
    engine = db.make_engine(migrated_url)
    world = build(engine, EXPIRY)
    add_reports(engine, world, Program.CAASPP, at(date(2026, 6, 20)), 4)
    add_reports(engine, world, Program.ELPAC, at(date(2026, 7, 1)), 2, first=10)
    config = config_file(
        tmp_path,
        smtp,
        "[calendar]\nlast_day_of_instruction = 2026-06-04\nfirst_day_of_next_year = 2026-08-12\n"
        "holidays = [2026-09-07]\n",
    )
    # CAASPP due Wed Sep 9 (day 20 of the year, Labor Day skipped), ELPAC Tue Sep 1 (day 15)
    url, now = migrated_url, at(date(2026, 9, 10)).isoformat()
    run = console(url, config, "scheduler", "--once", "--now", now)
    out, err = run.communicate(timeout=60)
    assert run.returncode == 0, err
    assert "(6 SSRs PAST DUE)" in out
    caaspp = "PAST DUE: 4 CAASPP score reports for Los Ranchos Unified were due Wednesday, "
    elpac = "VENCIDO: 2 informes ELPAC de Los Ranchos Unified debían entregarse el martes, "
    assert sorted(smtp.inbox.subjects()) == [
        ("ana@ranchos.example", caaspp + "September 9, 2026"),
        ("eli@ranchos.example", elpac + "1 de septiembre de 2026"),
    ]
    bodies = {str(m["To"]): m.get_content() for m in smtp.inbox.messages}
    assert "(5 CCR § 863)" in bodies["ana@ranchos.example"]
    assert "(5 CCR § 11518.15(b))" in bodies["eli@ranchos.example"]
    again = console(url, config, "scheduler", "--once", "--now", at(date(2026, 9, 11)).isoformat())
    again.communicate(timeout=60)
    assert len(smtp.inbox.messages) == 2  # the next warning is a week of working days later
    engine.dispose()


def test_the_audit_anchor_is_mailed_to_the_coordinators_once_a_day(  # type: ignore[no-untyped-def]
    tmp_path, migrated_url, smtp, capsys
) -> None:
    """The scheduler mails the chain head (SEQ:HASH) through the reminder path: each coordinator
    gets it once a day however many scans run, and it checks out with ``audit verify --anchor``."""
    from console.cli import main
    from services.audit import log as audit
    from services.audit.log import SYSTEM_ACTOR

    engine = db.make_engine(migrated_url)
    build(engine, EXPIRY)  # no credential or SSR notice falls due in October
    with db.session_scope(engine) as session:
        audit.record(session, SYSTEM_ACTOR, "test.action", "before the first scan")
    config = config_file(tmp_path, smtp, anchor=True)
    october = date(2026, 10, 1)
    for moment in (at(october, 8), at(october, 15), at(october + timedelta(days=1), 8)):
        scan = console(migrated_url, config, "scheduler", "--once", "--now", moment.isoformat())
        _, err = scan.communicate(timeout=60)
        assert scan.returncode == 0, err

    received = sorted(  # stable: each person's in the order they came
        ((str(m["To"]), str(m["Subject"]), m.get_content()) for m in smtp.inbox.messages),
        key=lambda message: message[0],
    )
    assert [(to, subject) for to, subject, _ in received] == [
        (
            "ana@ranchos.example",
            "Audit log anchor for Los Ranchos Unified, Thursday, October 1, 2026",
        ),
        (
            "ana@ranchos.example",
            "Audit log anchor for Los Ranchos Unified, Friday, October 2, 2026",
        ),
        (
            "eli@ranchos.example",
            "Ancla del registro de auditoría de Los Ranchos Unified, jueves, 1 de octubre de 2026",
        ),
        (
            "eli@ranchos.example",
            "Ancla del registro de auditoría de Los Ranchos Unified, viernes, 2 de octubre de 2026",
        ),
    ]
    anchors = {
        found for *_, body in received for found in re.findall(r"\b\d+:[0-9a-f]{64}\b", body)
    }
    assert len(anchors) == 2  # one per day, the same for both coordinators
    for anchor in anchors:
        assert main(["--database-url", migrated_url, "audit", "verify", "--anchor", anchor]) == 0
    assert "it holds event" in capsys.readouterr().out
