"""Print locally (option C, key p): choose families and layout, create and print, watch progress.

Keys only: f families (the plan's print families, or every family not yet on a channel), g order
(school and grade, or ZIP for bulk mail), m mail or hand out at school, + / - file size, ctrl+s
create and print, ctrl+r print the selected batch (one made by a portal hand-off, or one whose run
stopped part way: it resumes with the families not yet printed). Printing is queued in the
database and done by ``ssr-console worker``, so closing this session does not stop it; the worker
commits progress file by file, and the table and status line below read it every second. The
files land in the data folder under ``print/batch-<id>``. Printed is not delivered: e records the
day the selected batch's envelopes were mailed or handed out, and only then are its families done.
"""

from __future__ import annotations

from decimal import Decimal

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from screens.channel_batch_screen import ChannelBatchScreen
from services.channels import batches as channel_batches
from services.channels import print_batch
from services.channels.batches import ChannelBatch, ChannelSummary
from services.channels.print_batch import Handling, Order, PrintOptions, PrintState
from services.core.channels import Option
from services.core.columns import utcnow
from services.core.context import ConsoleContext
from services.core.errors import ConsoleError, InvalidInput
from services.delivery.ledger import BatchStatus
from services.plan import coverage
from services.plan.advisor import money
from widgets.channel_batch_table import ChannelBatchTable
from widgets.plain import plain

SPLIT_SIZES = (10, 25, 50, 100, 200, 500)
WHO = (coverage.Who.PLAN, coverage.Who.ALL)
WHO_TEXT = {
    coverage.Who.PLAN: "the plan's print families",
    coverage.Who.ALL: "every family not yet on a channel",
}
REFRESH_SECONDS = 1.0


class PrintBatchScreen(ChannelBatchScreen):
    CHANNEL = Option.PRINT
    TITLE = "Print locally (C)"
    CSS_PATH = "print_batch.tcss"
    BINDINGS = [
        Binding("f", "families", "Families"),
        Binding("g", "grouping", "Order"),
        Binding("m", "handling", "Mail/hand out"),
        Binding("plus,equals_sign", "split(1)", "Bigger files", show=False),
        Binding("minus", "split(-1)", "Smaller files", show=False),
        Binding("ctrl+s", "create", "Print", tooltip="Create and print"),
        Binding("ctrl+r", "print_selected", "Print selected", show=False),
    ]

    def __init__(self, ctx: ConsoleContext) -> None:
        super().__init__(ctx)
        self.who = coverage.Who.PLAN
        self.order = Order.SCHOOL
        self.handling = Handling.MAIL
        self.problem = ""
        try:
            channel_batches.configured_rates(ctx.settings)  # the worker prices with these rates
        except InvalidInput as error:
            self.problem = f"{error}; using the default rates"
        self.split_mb = self._configured_split()
        self.watched: int | None = None  # the batch last created or queued here

    def _configured_split(self) -> int:
        try:
            return print_batch.configured_split_mb(self.ctx.settings)
        except InvalidInput as error:
            self.problem = str(error)
            return print_batch.DEFAULT_SPLIT_MB

    def compose_body(self) -> ComposeResult:
        yield Static("", id="choices")
        yield Static("Counting…", id="preview")
        yield ChannelBatchTable(id="batches", not_done="No addr")
        yield Static("", id="last")

    def on_mount(self) -> None:
        if self.problem:
            self.notify(self.problem, title="Print settings", severity="warning")
        self._show_choices()
        self.query_one(ChannelBatchTable).focus()
        self.set_interval(REFRESH_SECONDS, self._tick)

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self._refresh()

    def _options(self) -> PrintOptions:
        handling = Handling.MAIL if self.order is Order.ZIP else self.handling
        return PrintOptions(self.order, handling, self.split_mb)

    def _show_choices(self) -> None:
        options = self._options()
        handling = (
            "mail (#10 window envelopes)"
            if options.handling is Handling.MAIL
            else ("hand out at school")
        )
        order = "school, grade, name" if options.order is Order.SCHOOL else "ZIP code (bulk mail)"
        self.query_one("#choices", Static).update(
            plain(
                f"f Families  {WHO_TEXT[self.who]}\n"
                f"g Order     {order}\n"
                f"m Handling  {handling}\n"
                f"+/- Files   split at {options.split_mb} MB"
            )
        )
        self._preview()

    @work(thread=True, exclusive=True, group="preview")
    def _preview(self) -> None:
        try:
            seen = print_batch.preview(self.ctx.engine, self.ctx.operator, who=self.who)
            text = (
                f"{seen.families:,} families, {seen.students:,} students; "
                f"{seen.without_address:,} without a usable address"
                + (" (listed, not printed)" if self._options().handling is Handling.MAIL else "")
            )
        except ConsoleError as error:
            text = str(error)
        self.app.call_from_thread(self.query_one("#preview", Static).update, plain(text))

    def action_families(self) -> None:
        self.who = WHO[(WHO.index(self.who) + 1) % len(WHO)]
        self._show_choices()

    def action_grouping(self) -> None:
        self.order = Order.ZIP if self.order is Order.SCHOOL else Order.SCHOOL
        self._show_choices()

    def action_handling(self) -> None:
        if self.order is Order.ZIP:
            self.notify("ZIP order is for mailing; press g for school order first", title="Print")
            return
        self.handling = Handling.HAND_OUT if self.handling is Handling.MAIL else Handling.MAIL
        self._show_choices()

    def action_split(self, step: int) -> None:
        sizes = sorted({*SPLIT_SIZES, self.split_mb})
        index = min(max(sizes.index(self.split_mb) + step, 0), len(sizes) - 1)
        self.split_mb = sizes[index]
        self._show_choices()

    def action_create(self) -> None:
        name, who, options = f"Print {utcnow():%Y-%m-%d %H:%M}", self.who, self._options()
        self.call_service(
            "create",
            "creating the print batch",
            lambda: print_batch.create(
                self.ctx.engine, self.ctx.operator, name=name, who=who, options=options
            ),
            lambda batch: self._watch(batch.id),
            refused="Not created",
        )

    def action_print_selected(self) -> None:
        selected = self.query_one(ChannelBatchTable).selected_id
        if selected is None:
            self.notify("No print batch yet: press ctrl+s to create one", title="Print")
            return
        self._print(selected)

    def _print(self, batch_id: int) -> None:
        """Queue the batch for ``ssr-console worker``; the status line then follows its progress."""
        self.call_service(
            "print_selected",
            f"queueing batch {batch_id} for the worker",
            lambda: print_batch.queue(self.ctx.engine, self.ctx.operator, batch_id),
            lambda _: self._watch(batch_id),
            refused="Not printed",
        )

    def _watch(self, batch_id: int | None) -> None:
        self.watched = batch_id
        self._tick()

    def _tick(self) -> None:
        self._refresh()
        table = self.query_one(ChannelBatchTable)
        self._status(self.watched or table.selected_id)

    @work(thread=True, exclusive=True, group="status")
    def _status(self, batch_id: int | None) -> None:
        """The watched batch's print progress, as the worker wrote it to the database."""
        if batch_id is None:
            return
        try:
            summary = next(
                s
                for s in channel_batches.summaries(self.ctx.engine, self.ctx.operator)
                if s.id == batch_id
            )
            batch = channel_batches.get(self.ctx.engine, self.ctx.operator, batch_id)
        except (ConsoleError, StopIteration):
            return
        self.app.call_from_thread(self._say, self._status_text(summary, batch))

    def _status_text(self, summary: ChannelSummary, batch: ChannelBatch) -> str:
        detail = channel_batches.details(batch)
        state = detail.get("print")
        if batch.status is BatchStatus.FINISHED:
            cost = money(Decimal(batch.cost_cents) / 100, self.ctx.operator.language)
            return (
                f"Batch {batch.id}: {summary.printed:,} families printed, {summary.failed:,} "
                f"listed; {batch.pages:,} pages in {len(detail.get('files', []))} file(s), "
                f"{cost}\n{detail.get('folder', '')}\n"
                + (
                    f"{summary.done:,} delivered"
                    if summary.done
                    else "Not delivered until mailed: press e with the day they went out"
                )
            )
        if batch.status is not BatchStatus.RUNNING:
            return f"Batch {batch.id} is {batch.status.value}"
        if state == PrintState.QUEUED.value:
            return f"Batch {batch.id}: waiting for `ssr-console worker` to print it"
        if state == PrintState.PRINTING.value:
            return (
                f"Batch {batch.id}: the worker is printing, {summary.printed:,} of "
                f"{summary.total:,} families done, {batch.pages:,} pages (this session may close)"
            )
        if state == PrintState.FAILED.value:
            return f"Batch {batch.id} stopped: {detail.get('error', '')}; ctrl+r prints the rest"
        return f"Batch {batch.id} is not printing; ctrl+r prints it"

    def _say(self, text: str) -> None:
        self.query_one("#last", Static).update(plain(text))
