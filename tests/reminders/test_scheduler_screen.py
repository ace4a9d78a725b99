"""The Notices screen at 80x24, opened with its key: scheduler status, inbox, upcoming, failures."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

from sqlmodel import Session, select
from textual.widgets import DataTable, Static, TabbedContent

from console.app import SSRConsoleApp
from screens.notices import NoticesScreen
from services.access.tables import Operator
from services.core.columns import utcnow
from services.core.context import ConsoleContext
from services.delivery.mailer import MailConfig
from services.reminders import ledger as notice_ledger
from services.reminders import scan as reminders
from services.reminders.mail import NoticeMailer
from services.reminders.scheduler_lock import SchedulerLock
from tests.reminders_world import SmtpServer, at, build

EXPIRY = date(2027, 1, 12)


def _rows(screen: NoticesScreen, table: str) -> list[list[str]]:
    data = screen.query_one(f"#{table}-table", DataTable)
    return [[str(cell) for cell in data.get_row_at(i)] for i in range(data.row_count)]


async def test_notices_screen_shows_status_inbox_upcoming_and_failures(engine, settings) -> None:  # type: ignore[no-untyped-def]
    build(engine, EXPIRY)
    with SmtpServer() as smtp:
        mailer = NoticeMailer(MailConfig(host="127.0.0.1", port=smtp.port))
        # the scheduler runs outside any event loop; so does the scan here
        await asyncio.to_thread(reminders.scan, engine, at(EXPIRY - timedelta(days=7)), mailer)
        smtp.inbox.refuse = True  # the 3-day notice fails
        await asyncio.to_thread(reminders.scan, engine, at(EXPIRY - timedelta(days=3)), mailer)
    lock = SchedulerLock(engine)
    lock.acquire()
    lock.record_scan(utcnow(), 42, "2027-01-09: sent 0, failed 2")
    with Session(engine) as session:
        caaspp = session.exec(select(Operator).where(Operator.username == "caaspp")).one()
    app = SSRConsoleApp(ConsoleContext(engine, settings, caaspp))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("n")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, NoticesScreen), [n.message for n in app._notifications]
        await app.workers.wait_for_complete()
        await pilot.pause()
        status = str(screen.query_one("#scheduler", Static).render())
        assert "Scheduler alive on" in status
        assert "s ago (42 ms)" in status
        assert "2 sent · 4 planned · 2 failing" in status  # the LEA's ledger: both coordinators
        inbox = _rows(screen, "inbox")
        assert inbox[0][1].startswith("Credential expires in 3 d") and inbox[0][2] == "failed"
        assert inbox[1][1].startswith("Credential expires in 7 d") and inbox[1][3] == "new"
        await pilot.press("enter")  # marks the selected (3-day) notice read
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert notice_ledger.inbox(engine, "caaspp")[0].read_at is not None

        await pilot.press("2")
        assert screen.query_one(TabbedContent).active == "upcoming"
        upcoming = _rows(screen, "upcoming")
        assert [row[2][:22] for row in upcoming][:2] == [
            "Credential expires in ",
            "Credential expires in ",
        ]
        assert {row[1] for row in upcoming} == {"caaspp", "elpac"}

        await pilot.press("3")
        failures = _rows(screen, "failures")
        assert {row[1] for row in failures} == {"caaspp", "elpac"}
        assert all("451" in row[3] for row in failures)
        assert "Failures" in app.export_screenshot()
    lock.release()


async def test_notices_screen_says_when_no_scheduler_ever_ran(engine, settings) -> None:  # type: ignore[no-untyped-def]
    build(engine, EXPIRY)
    with Session(engine) as session:
        elpac = session.exec(select(Operator).where(Operator.username == "elpac")).one()
    app = SSRConsoleApp(ConsoleContext(engine, settings, elpac))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("n")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        status = str(app.screen.query_one("#scheduler", Static).render())
        assert "never run" in status and "ssr-console scheduler" in status
