"""What the print (p) and ETS paper (o) screens share: their channel's batch table, refreshed from
the database, confirming the day the selected batch's envelopes were mailed or handed out (e: only
that delivers, printing or receiving does not), and cancelling the selected batch (ctrl+x twice:
the second press confirms)."""

from __future__ import annotations

from datetime import date

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from screens.base import ConsoleScreen
from services.channels import batches as channel_batches
from services.core.channels import Option
from services.core.columns import utcnow
from services.core.errors import ConsoleError
from widgets.channel_batch_table import ChannelBatchTable


class MailedOnScreen(ModalScreen[date | None]):
    """Asks the day a batch's envelopes were mailed or handed out (today unless changed)."""

    CSS_PATH = "channel_batch_screen.tcss"
    BINDINGS = [Binding("escape", "cancel", "Not now")]

    def __init__(self, batch_id: int) -> None:
        super().__init__()
        self.batch_id = batch_id

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(
                f"Batch {self.batch_id}: the day its envelopes were mailed or handed out at "
                "school (YYYY-MM-DD). Its families count as delivered on that day.\n"
                "enter confirm · esc not now"
            )
            yield Input(value=f"{utcnow():%Y-%m-%d}", id="day")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        try:
            day = date.fromisoformat(event.value.strip())
        except ValueError:
            self.notify("Type the day as YYYY-MM-DD, like 2026-09-14", severity="error")
            return
        self.dismiss(day)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ChannelBatchScreen(ConsoleScreen):
    """Subclasses set CHANNEL and yield one ChannelBatchTable."""

    CHANNEL: Option
    BINDINGS = [
        # In the help, and named by the notices after printing or receiving: the footer is full.
        Binding(
            "e",
            "delivered",
            "Mailed",
            tooltip="The day the envelopes were mailed or handed out",
            show=False,
        ),
        # Destructive and rare: in the help (?), not the footer, which the screens' own keys fill.
        Binding("ctrl+x", "cancel_batch", "Cancel batch", show=False),
    ]
    armed: int | None = None  # the batch a first ctrl+x asked to cancel

    @work(thread=True, exclusive=True, group="list")
    def _refresh(self) -> None:
        try:
            rows = [
                s
                for s in channel_batches.summaries(self.ctx.engine, self.ctx.operator)
                if s.channel == self.CHANNEL.value
            ]
        except ConsoleError:
            return
        self.app.call_from_thread(self.query_one(ChannelBatchTable).show, rows)

    def action_delivered(self) -> None:
        selected = self.query_one(ChannelBatchTable).selected_id
        if selected is None:
            self.notify("Select a batch first", title="Mailed on")
            return

        def chosen(day: date | None) -> None:
            if day is not None:
                self._confirm_delivered(selected, day)

        self.app.push_screen(MailedOnScreen(selected), chosen)

    @work(thread=True, group="delivered")
    def _confirm_delivered(self, batch_id: int, day: date) -> None:
        try:
            moved = channel_batches.confirm_delivered(
                self.ctx.engine, self.ctx.operator, batch_id, day
            )
        except ConsoleError as error:
            self.app.call_from_thread(
                self.notify, str(error), title="Not confirmed", severity="error"
            )
            return
        self.app.call_from_thread(
            self.notify,
            f"Batch {batch_id}: {moved:,} students delivered on {day:%Y-%m-%d}",
            title="Mailed on",
        )
        self._refresh()

    def action_cancel_batch(self) -> None:
        selected = self.query_one(ChannelBatchTable).selected_id
        if selected is None:
            return
        if self.armed != selected:
            self.armed = selected
            self.notify(
                f"Press ctrl+x again to cancel batch {selected}: its students leave channel "
                f"{self.CHANNEL.value} (files already written stay on disk)",
                title="Cancel?",
                severity="warning",
            )
            return
        self.armed = None
        self.call_service(
            "cancel_batch",
            f"cancelling batch {selected}",
            lambda: channel_batches.cancel(self.ctx.engine, self.ctx.operator, selected),
            lambda _: self._cancelled(selected),
            refused="Not cancelled",
        )

    def _cancelled(self, batch_id: int) -> None:
        self.notify(f"Batch {batch_id} cancelled", title="Cancelled")
        self._refresh()
