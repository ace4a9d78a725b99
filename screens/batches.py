"""The delivery batches of the operator's LEA (or school), newest first, refreshed every second.

``enter`` opens a batch's live progress, ``e`` starts a new batch (dry run first), ``f`` schedules
a notice telling families how their SSRs will come (``services.delivery.notices``), ``t`` sends both
messages with a sample PDF to the operator's own address. Batches run in ``ssr-console worker``;
this screen only reads and asks.
"""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from screens.base import ConsoleScreen
from screens.batch_progress import BatchProgressScreen
from screens.new_batch import NewBatchScreen
from screens.notice_batch import NoticeBatchScreen
from services.core.errors import ConsoleError
from services.delivery import batches
from widgets.plain import PlainTable

REFRESH_SECONDS = 1.0
CHANNEL_SCREENS = {"A": "w", "C": "p", "D": "o"}
"""Destination keys of the screens for portal, print and paper-order batches (issue 8)."""


class BatchesScreen(ConsoleScreen):
    TITLE = "Delivery batches"
    CSS_PATH = "batches.tcss"
    BINDINGS = [
        Binding("e", "new_batch", "New batch"),
        Binding("f", "notice", "Notice to families"),
        Binding("t", "test_send", "Test send"),
    ]

    shown: list[batches.BatchSummary] | None = None  # the rows the table holds

    def compose_body(self) -> ComposeResult:
        yield Static(
            "enter: progress · e: new batch · f: notice to families first · t: test send", id="hint"
        )
        yield PlainTable(id="batches", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("Id", "Name", "Status", "Done", "Failed", "Unc.", "By")
        table.focus()
        self.refresh_batches()
        self.set_interval(REFRESH_SECONDS, self.refresh_batches)

    @work(thread=True, exclusive=True, group="batches")
    def refresh_batches(self) -> None:
        try:
            found = batches.list_batches(self.ctx.engine, self.ctx.operator)
        except ConsoleError as error:
            self.app.call_from_thread(self.notify, str(error), severity="error")
            return
        self.app.call_from_thread(self._show, found)

    def _show(self, found: list[batches.BatchSummary]) -> None:
        if found == self.shown:  # read every second: the same rows are not measured again
            return
        self.shown = found
        table = self.query_one(DataTable)
        keep = table.cursor_row
        table.clear()
        for batch in found:
            table.add_row(
                f"{batch.channel}{batch.id}",
                batch.name[:24],
                batch.status.value,
                f"{batch.done:,}/{batch.total:,}",
                f"{batch.failed:,}",
                f"{batch.uncertain:,}",
                batch.created_by,
                key=f"{batch.channel}{batch.id}",  # ids are per channel (issue 8)
            )
        if table.row_count:
            table.move_cursor(row=min(keep, table.row_count - 1))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """``enter`` on a row opens that batch's progress; print, paper-order and portal batches
        open their own screen (issue 8)."""
        key = str(event.row_key.value)
        if key[0] in CHANNEL_SCREENS:
            # After this handler returns: going there pops this screen.
            self.app.call_later(self.app.run_action, f"go({CHANNEL_SCREENS[key[0]]!r})")
            return
        self.app.push_screen(BatchProgressScreen(self.ctx, int(key[1:])))

    def action_new_batch(self) -> None:
        self.app.push_screen(NewBatchScreen(self.ctx), self._batch_created)

    def action_notice(self) -> None:
        self.app.push_screen(NoticeBatchScreen(self.ctx), self._batch_created)

    def _batch_created(self, _batch_id: int | None) -> None:
        self.refresh_batches()

    def action_test_send(self) -> None:
        self.notify("Sending the two test messages…")
        self._test_send()

    @work(exclusive=True, group="test-send")
    async def _test_send(self) -> None:
        try:
            address = await batches.test_send(
                self.ctx.engine, self.ctx.settings, self.ctx.operator, self.ctx.operator.language
            )
        except ConsoleError as error:
            self.notify(str(error), title="Test send", severity="error")
            return
        self.notify(f"Both messages sent to {address}", title="Test send")
