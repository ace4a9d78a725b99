"""Notices: the signed-in coordinator's reminder inbox and the state of the reminder scheduler.

The scheduler runs as its own process (``ssr-console scheduler``); this screen only reads what it
wrote: its heartbeat and last scan, the notices it sent, the ones it plans next and the ones
whose email keeps failing (they stay in the inbox meanwhile, so nothing is missed).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static, TabbedContent, TabPane

from screens.base import ConsoleScreen
from services.core.columns import utcnow
from services.core.errors import ConsoleError
from services.reminders import ledger as notice_ledger
from services.reminders import scheduler_lock
from services.reminders.ledger import Notice, NoticeCounts, about
from services.reminders.scheduler_lock import SchedulerStatus
from widgets.plain import PlainTable, plain

REFRESH_SECONDS = 5.0


@dataclass(frozen=True)
class _View:
    now: datetime
    status: SchedulerStatus
    counts: NoticeCounts
    inbox: list[Notice]
    upcoming: list[Notice]
    failures: list[Notice]


def _when(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "never"
    seconds = int((now - moment).total_seconds())
    if -7200 < seconds < 0:
        return f"in {-seconds // 60 + 1} min"
    if 0 <= seconds < 120:
        return f"{seconds} s ago"
    if 0 <= seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{moment:%Y-%m-%d %H:%M} UTC"


class NoticesScreen(ConsoleScreen):
    TITLE = "Notices"
    BINDINGS = [
        Binding("1", "tab('inbox')", "Inbox"),
        Binding("2", "tab('upcoming')", "Upcoming"),
        Binding("3", "tab('failures')", "Failures"),
        Binding("f5", "refresh", "Refresh"),
    ]
    CSS_PATH = "notices.tcss"

    def compose_body(self) -> ComposeResult:
        yield Static("Reading the scheduler state...", id="scheduler")
        with TabbedContent(initial="inbox"):
            with TabPane("1 Inbox", id="inbox"):
                yield PlainTable(id="inbox-table", cursor_type="row", zebra_stripes=True)
            with TabPane("2 Upcoming", id="upcoming"):
                yield PlainTable(id="upcoming-table", cursor_type="row", zebra_stripes=True)
            with TabPane("3 Failures", id="failures"):
                yield PlainTable(id="failures-table", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        self.query_one("#inbox-table", DataTable).add_columns("Due", "About", "State", "")
        self.query_one("#upcoming-table", DataTable).add_columns("Due", "To", "About")
        self.query_one("#failures-table", DataTable).add_columns("Next try", "To", "Tries", "Error")
        self.query_one("#inbox-table", DataTable).focus()
        self.action_refresh()
        self.set_interval(REFRESH_SECONDS, self.action_refresh)

    def action_tab(self, pane: str) -> None:
        self.query_one(TabbedContent).active = pane
        self.query_one(f"#{pane}-table", DataTable).focus()

    def action_refresh(self) -> None:
        self._load()

    @work(thread=True, exclusive=True)
    def _load(self) -> None:
        engine, operator = self.ctx.engine, self.ctx.operator
        try:
            notices = notice_ledger.view_for(engine, operator)
            view = _View(
                now=utcnow(),
                status=scheduler_lock.status(engine),
                counts=notices.counts,
                inbox=notices.inbox,
                upcoming=notices.upcoming,
                failures=notices.failures,
            )
        except ConsoleError as error:  # the banner says it too; keep the screen, say why
            self.app.call_from_thread(self.notify, str(error), severity="error")
            return
        self.app.call_from_thread(self._show, view)

    def _show(self, view: _View) -> None:
        status, counts = view.status, view.counts
        lines = [status.describe(view.now)]
        if status.last_scan_at is not None:
            lines.append(
                f"Last scan {_when(status.last_scan_at, view.now)} ({status.last_scan_ms} ms): "
                f"{status.last_scan_summary}"
            )
        if status.last_error:
            lines.append(f"Last error: {status.last_error}")
        lines.append(
            f"Notices: {counts.sent} sent · {counts.planned} planned · "
            f"{counts.failed} failing · {counts.cancelled} cancelled"
        )
        self.query_one("#scheduler", Static).update(plain("\n".join(lines)))
        self._fill(
            "#inbox-table",
            [
                (
                    f"{n.due_on:%m-%d}",
                    about(n),
                    n.state.value + (" late" if n.late else ""),
                    "" if n.read_at else "new",
                )
                for n in view.inbox
            ],
            [n.id for n in view.inbox],
        )
        self._fill(
            "#upcoming-table", [(f"{n.due_on:%m-%d}", n.recipient, about(n)) for n in view.upcoming]
        )
        self._fill(
            "#failures-table",
            [
                (
                    _when(n.next_attempt_at, view.now),
                    n.recipient,
                    str(n.attempts),
                    n.last_error or "",
                )
                for n in view.failures
            ],
        )

    def _fill(
        self, selector: str, rows: list[tuple[str, ...]], keys: list[int | None] | None = None
    ) -> None:
        table = self.query_one(selector, DataTable)
        cursor = table.cursor_row
        table.clear()
        for index, row in enumerate(rows):
            table.add_row(*row, key=str(keys[index]) if keys else None)
        if rows:
            table.move_cursor(row=min(cursor, len(rows) - 1))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on an inbox notice marks it read."""
        if event.data_table.id == "inbox-table" and event.row_key.value:
            notice_id, username = int(event.row_key.value), self.ctx.operator.username
            self.call_service(
                "mark_read",
                "marking the notice read",
                lambda: notice_ledger.mark_read(self.ctx.engine, notice_id, username),
                lambda _: self.action_refresh(),
            )
