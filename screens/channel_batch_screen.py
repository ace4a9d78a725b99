"""What the print (p) and ETS paper (o) screens share: their channel's batch table, refreshed from
the database, and cancelling the selected batch (ctrl+x twice: the second press confirms)."""

from __future__ import annotations

from textual import work
from textual.binding import Binding

from screens.base import ConsoleScreen
from services.channels import batches as channel_batches
from services.core.channels import Option
from services.core.errors import ConsoleError
from widgets.channel_batch_table import ChannelBatchTable


class ChannelBatchScreen(ConsoleScreen):
    """Subclasses set CHANNEL and yield one ChannelBatchTable."""

    CHANNEL: Option
    # Destructive and rare: in the help (?), not the footer, which the screens' own keys fill.
    BINDINGS = [Binding("ctrl+x", "cancel_batch", "Cancel batch", show=False)]
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
        try:
            channel_batches.cancel(self.ctx.engine, self.ctx.operator, selected)
        except ConsoleError as error:
            self.notify(str(error), title="Not cancelled", severity="error")
            return
        self.notify(f"Batch {selected} cancelled", title="Cancelled")
        self._refresh()
