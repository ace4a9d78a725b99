"""One delivery batch, live: progress bar, per-state counts, rate and ETA under the relay's caps,
per-school breakdown, failures and uncertain items, and the actions an operator takes on them.

Everything shown is read from the database once a second in a thread worker (the batch runs in
``ssr-console worker``, not here), so closing this screen or the SSH session changes nothing.
Keys: ``p`` pause/resume, ``x`` cancel (asks first), ``f`` retry failed, ``u`` decide the highlighted
uncertain item (resend, count as sent, or give up), ``r`` try the messages waiting for an
unreachable relay now (the worker reads it from the database), ``m`` move the families whose email
bounced to a new print batch (asks first; ``services.bounces.moves``).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, ProgressBar, Static

from screens.base import ConsoleScreen
from services.bounces import moves
from services.core.columns import utcnow
from services.core.context import ConsoleContext
from services.core.errors import ConsoleError
from services.delivery import batches, mailer
from services.delivery.in_doubt import in_doubt
from services.delivery.ledger import BatchStatus, ItemState
from services.delivery.worker import WorkerConfig
from widgets.plain import PlainTable, plain
from widgets.resolve_dialog import decide_in_doubt

REFRESH_SECONDS = 1.0
SHOWN_STATES = (
    ItemState.PENDING,
    ItemState.PACKAGED,
    ItemState.SENDING_DOCUMENT,
    ItemState.DOCUMENT_SENT,
    ItemState.SENDING_PASSWORD,
    ItemState.PASSWORD_SENT,
    ItemState.DONE,
    ItemState.FAILED,
    ItemState.UNCERTAIN,
    ItemState.BOUNCED,
    ItemState.CANCELLED,
)


def duration(value: timedelta | None) -> str:
    """``2d 3h``, ``1h 20m``, ``4m``: an ETA as a person reads it (None: no rate measured yet)."""
    if value is None:
        return "estimating"
    minutes = int(value.total_seconds() // 60)
    days, minutes = divmod(minutes, 1440)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m" if minutes else "under a minute"


def worker_line(progress: batches.Progress, now: datetime) -> str:
    """Whether a worker is sending this batch; with none, since when (the database's record of
    the last heartbeat or item change), so a dead worker never passes for a running batch."""
    workers = progress.workers
    if workers.running:
        return f"Worker: {workers.running} running"
    if workers.last_seen is None:
        return "No worker is running: start `ssr-console worker`"
    ago = duration(now - workers.last_seen).replace("under a minute", "<1m")
    return (
        f"No worker running since {workers.last_seen:%H:%M} UTC ({ago} ago): "
        "start `ssr-console worker`"
    )


def relay_line(progress: batches.Progress, now: datetime) -> str:
    """An unreachable relay, since when and why, and when the next try is ("" while it answers)."""
    since = progress.workers.relay_down_since
    if since is None:
        return ""
    ago = duration(now - since).replace("under a minute", "<1m")
    nxt = progress.next_try
    when = f"next try {nxt:%H:%M:%S} UTC" if nxt is not None and nxt > now else "trying now"
    return (
        f"Relay unreachable since {since:%H:%M} UTC ({ago}): {progress.workers.relay_error}\n"
        f"{when} · r retry now"
    )


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question for a destructive action; ``y`` confirms, ``n`` or ``esc`` does not."""

    CSS_PATH = "batch_progress.tcss"
    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n", "answer(False)", "No"),
        Binding("escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        yield Static(f"{self.question}\n\n[b]y[/b] yes · [b]n[/b] no")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class BatchProgressScreen(ConsoleScreen):
    TITLE = "Batch progress"
    CSS_PATH = "batch_progress.tcss"
    BINDINGS = [
        Binding("p", "pause_resume", "Pause/resume"),
        Binding("x", "cancel_batch", "Cancel"),
        Binding("f", "retry_failed", "Retry", tooltip="Retry failed"),
        Binding("u", "resolve", "Resolve", tooltip="Resolve uncertain items"),
        Binding("r", "retry_now", "Now", tooltip="Try the messages waiting for the relay now"),
        Binding(
            "m", "move_bounced", "Bounced", tooltip="Move bounced families to print", show=False
        ),
    ]

    def __init__(self, ctx: ConsoleContext, batch_id: int) -> None:
        super().__init__(ctx)
        self.batch_id = batch_id
        self.progress: batches.Progress | None = None
        try:
            config = mailer.MailConfig.from_settings(ctx.settings)
            self.caps = (config.per_minute, config.per_day)
        except ConsoleError:
            self.caps = (0, 0)
        try:
            stale = WorkerConfig.from_settings(ctx.settings).stale_after_seconds
        except ConsoleError:
            stale = WorkerConfig.stale_after_seconds
        self.stale_after = timedelta(seconds=stale)
        self.host = socket.gethostname()

    def compose_body(self) -> ComposeResult:
        yield Static("Loading…", id="headline")
        yield ProgressBar(total=None, show_eta=False, id="bar")
        yield Static("", id="figures")
        with Horizontal(id="tables"):
            with Vertical(id="schools"):
                yield PlainTable(id="school-table", cursor_type="row", zebra_stripes=True)
            with Vertical(id="problems"):
                yield PlainTable(id="problem-table", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        self.query_one("#school-table", DataTable).add_columns("School", "Done", "Fail", "Unc")
        self.query_one("#problem-table", DataTable).add_columns("Item", "State", "Reason")
        self.query_one("#problem-table", DataTable).focus()
        self.refresh_progress()
        self.set_interval(REFRESH_SECONDS, self.refresh_progress)

    @work(thread=True, exclusive=True, group="progress")
    def refresh_progress(self) -> None:
        ctx = self.ctx
        try:
            found = batches.progress(
                ctx.engine,
                ctx.operator,
                self.batch_id,
                per_minute_cap=self.caps[0],
                per_day_cap=self.caps[1],
                host=self.host,
                stale_after=self.stale_after,
                calendar=ctx.settings.calendar,
            )
        except ConsoleError as error:
            self.app.call_from_thread(self.notify, str(error), severity="error")
            return
        self.app.call_from_thread(self._show, found)

    def _show(self, progress: batches.Progress) -> None:
        if not self.is_attached:  # closed while the worker read: nothing left to show it on
            return
        previous, self.progress = self.progress, progress
        batch = progress.batch
        self.title = f"Batch {batch.id}: {batch.name}"
        status = batch.status.value
        if progress.stalled and batch.status is not BatchStatus.FINISHED:
            status += ", no worker"
        self.query_one("#headline", Static).update(
            plain(
                f"Batch {batch.id} · {batch.name} · {status} · "
                f"{progress.done:,}/{progress.total:,} families done"
            )
        )
        self.query_one("#bar", ProgressBar).update(
            total=max(progress.total, 1), progress=progress.done
        )
        counts = " · ".join(
            f"{state.label} {progress.counts[state]:,}"
            for state in SHOWN_STATES
            if progress.counts.get(state)
        )
        per_minute, per_day = self.caps
        caps = ", ".join(
            text
            for text in (
                f"{per_minute:,}/min" if per_minute else "",
                f"{per_day:,}/day ({progress.sent_today:,} today)" if per_day else "",
            )
            if text
        )
        rate = progress.rate_per_minute
        eta = "none without a worker" if progress.stalled else duration(progress.eta)
        self.query_one("#figures", Static).update(
            plain(
                f"{counts}\n"
                + (f"Rate {rate:,.1f} msg/min" if rate is not None else "Rate estimating")
                + (f" · caps {caps}" if caps else "")
                + f" · {progress.remaining_messages:,} messages left · ETA {eta}\n"
                + "".join(
                    f"{note}\n" for note in (progress.sending.notes() if progress.sending else [])
                )
                + worker_line(progress, utcnow())
                + (f"\n{relay}" if (relay := relay_line(progress, utcnow())) else "")
            )
        )
        # Read every second: a table refilled with the same rows is measured and drawn again
        # for nothing (issue 21), so each is refilled only when its rows changed.
        if previous is None or progress.schools != previous.schools:
            self._fill_schools(progress)
        if previous is None or progress.problems != previous.problems:
            self._fill_problems(progress)

    def _fill_schools(self, progress: batches.Progress) -> None:
        table = self.query_one("#school-table", DataTable)
        table.clear()
        for school in progress.schools:
            table.add_row(
                school.school[:16],
                f"{school.done:,}/{school.total:,}",
                f"{school.failed:,}",
                f"{school.uncertain:,}",
            )

    def _fill_problems(self, progress: batches.Progress) -> None:
        table = self.query_one("#problem-table", DataTable)
        keep = table.cursor_row
        table.clear()
        for problem in progress.problems:
            table.add_row(
                str(problem.item_id), problem.state.label, problem.reason, key=str(problem.item_id)
            )
        if table.row_count:
            table.move_cursor(row=min(keep, table.row_count - 1))

    def _act(self, key: str, doing: str, done: str, action: Callable[[], object]) -> None:
        """Run a change to the batch in a worker; say ``done`` and read the progress again."""
        self.call_service(key, doing, action, partial(self._acted, done))

    def _acted(self, done: str, result: object) -> None:
        self.notify(done.format(result=result))
        self.refresh_progress()

    def action_pause_resume(self) -> None:
        if self.progress is None:
            return
        running = self.progress.batch.status is BatchStatus.RUNNING
        target = BatchStatus.PAUSED if running else BatchStatus.RUNNING
        self._act(
            "pause_resume",
            "pausing the batch" if running else "resuming the batch",
            "Batch paused" if running else "Batch resumed",
            lambda: batches.set_status(self.ctx.engine, self.ctx.operator, self.batch_id, target),
        )

    def action_cancel_batch(self) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self._act(
                    "cancel_batch",
                    "cancelling the batch",
                    "Batch cancelled",
                    lambda: batches.set_status(
                        self.ctx.engine, self.ctx.operator, self.batch_id, BatchStatus.CANCELLED
                    ),
                )

        self.app.push_screen(
            ConfirmScreen(
                f"Cancel batch {self.batch_id}? Families not yet sent their document will not be;"
                " those who have it still get their password."
            ),
            answered,
        )

    def action_retry_failed(self) -> None:
        self._act(
            "retry_failed",
            "queueing the failed items again",
            "{result} failed items will be sent again",
            lambda: batches.retry_failed(self.ctx.engine, self.ctx.operator, self.batch_id),
        )

    def action_retry_now(self) -> None:
        self._retry_now()

    @work(thread=True, group="retry")
    def _retry_now(self) -> None:
        try:
            count = batches.retry_now(self.ctx.engine, self.ctx.operator, self.batch_id)
        except ConsoleError as error:
            self.app.call_from_thread(self.notify, str(error), severity="error")
            return
        self.app.call_from_thread(
            self.notify, f"{count:,} waiting messages will be tried now", title="Retry now"
        )
        self.refresh_progress()

    def action_move_bounced(self) -> None:
        bounced = self.progress.counts.get(ItemState.BOUNCED, 0) if self.progress else 0
        if not bounced:
            self.notify("No family of this batch has bounced", severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._move_bounced()

        self.app.push_screen(
            ConfirmScreen(
                f"Move the {bounced:,} families whose email bounced to a new print batch? "
                "The worker prints it."
            ),
            answered,
        )

    @work(thread=True, group="bounced")
    def _move_bounced(self) -> None:
        ctx = self.ctx
        try:
            moved = moves.move_bounced(ctx.engine, ctx.settings, ctx.operator, self.batch_id)
        except ConsoleError as error:
            self.app.call_from_thread(self.notify, str(error), severity="error")
            return
        self.app.call_from_thread(
            self.notify,
            f"{moved.families:,} families moved to print batch C{moved.id}",
            title="Bounced families",
        )
        self.refresh_progress()

    def action_resolve(self) -> None:
        table = self.query_one("#problem-table", DataTable)
        if self.progress is None or not table.row_count:
            self.notify("No failed or uncertain item to decide", severity="warning")
            return
        problem = self.progress.problems[table.cursor_row]
        if problem.state is not ItemState.UNCERTAIN:
            self.notify(f"Item {problem.item_id} is {problem.state.label}, not uncertain")
            return

        ctx = self.ctx
        decide_in_doubt(
            self,
            partial(in_doubt, ctx.engine, ctx.operator, problem.item_id),
            partial(batches.resolve, ctx.engine, ctx.operator, problem.item_id),
            self.refresh_progress,
        )
