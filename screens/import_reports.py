"""Import SSRs from TOMS bulk downloads (`/`, type a path) or from the TOMS-style API with the
credential recorded on the Credential screen (`t`); watch the counts, read every refusal.

The screen queues the import in the database (``services.intake.queue``) and ``ssr-console
worker`` runs it, outside this session: closing the session, or the console, stops nothing. The
counts, refusals and per-school summary come from the database, read in a worker every second,
so they are here again when the screen reopens. A run whose process died reads interrupted;
ctrl+r queues it again and the worker resumes it, storing nothing twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, Input, Static

from screens.base import ConsoleScreen
from services.core.context import ConsoleContext
from services.core.errors import ConsoleError
from services.intake import importer as intake
from services.intake import queue as import_queue
from services.intake.importer import GroupCount, Progress, Refused
from services.intake.records import ImportRun, RunStatus
from widgets.plain import PlainTable, plain

MAX_ROWS = 500  # the screen lists the first refusals; the rest stay in the database
REFRESH_SECONDS = 1.0
DONE = {RunStatus.FINISHED.value, RunStatus.FAILED.value, RunStatus.INTERRUPTED.value}


@dataclass(frozen=True)
class Seen:
    """One look at the latest run: the row, refusals not shown yet, and (once done) the
    per-school counts."""

    run: ImportRun
    refused: list[Refused]
    groups: list[GroupCount] | None


class ImportReportsScreen(ConsoleScreen):
    TITLE = "Import score reports"
    CSS_PATH = "import_reports.tcss"
    BINDINGS = [
        Binding("slash", "focus_paths", "Path", show=True),
        Binding("t", "from_api", "From TOMS", tooltip="Fetch from the TOMS API ([toms] url)"),
        Binding("ctrl+r", "resume", "Resume", tooltip="Resume the interrupted import"),
    ]

    def __init__(self, ctx: ConsoleContext) -> None:
        super().__init__(ctx)
        self.run: ImportRun | None = None  # the latest run, as last read
        self.shown_run: int | None = None  # the run whose refusals the table lists
        self.refusal = ""  # why the last import asked for was not queued, until another is

    def compose_body(self) -> ComposeResult:
        yield Input(
            placeholder="/ then a zip, folder or PDF path (several: separate with ;), enter",
            id="paths",
        )
        yield Static("No import yet.", id="stats")
        with Horizontal(id="tables"):
            yield PlainTable(id="exceptions", cursor_type="row", zebra_stripes=True)
            yield PlainTable(id="summary", cursor_type="row")

    def on_mount(self) -> None:
        self.query_one("#exceptions", DataTable).add_columns("Reason", "Source", "Detail")
        self.query_one("#summary", DataTable).add_columns("School", "Grade", "SSRs")
        self.query_one("#exceptions", DataTable).focus()  # letters stay navigation keys until /
        self._look()
        self.set_interval(REFRESH_SECONDS, self._look)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        under_way = self.run is not None and self.run.status not in DONE
        if action in ("from_api", "queue") and under_way:
            return None
        if action == "resume":
            run = self.run
            return run is not None and run.status in import_queue.RESUMABLE and not self.busy
        return super().check_action(action, parameters)

    def action_focus_paths(self) -> None:
        self.query_one("#paths", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        paths = [p.strip() for p in event.value.split(";") if p.strip()]
        if not paths:
            self.notify("Type the path of a zip file, a folder or a PDF", severity="warning")
            return
        if self.check_action("queue", ()) is not True:
            self.notify("An import is already under way", severity="warning")
            return
        ctx = self.ctx
        self._queue(lambda: import_queue.queue_paths(ctx.engine, ctx.settings, ctx.operator, paths))

    def action_from_api(self) -> None:
        ctx = self.ctx
        self._queue(lambda: import_queue.queue_api(ctx.engine, ctx.settings, ctx.operator))

    def action_resume(self) -> None:
        run = self.run
        if run is None or run.id is None:
            return
        run_id = run.id
        self.call_service(
            "resume",
            f"queueing run {run_id} again",
            lambda: import_queue.resume(self.ctx.engine, self.ctx.operator, run_id),
            lambda _: self._look(),
            refused="Not resumed",
        )

    def _queue(self, queue: Callable[[], int]) -> None:
        self.call_service(
            "queue",
            "queueing the import",
            queue,
            self._queued,
            refused="Import not started",
        )

    def _queued(self, _: int) -> None:
        self.refusal = ""
        self._look()

    def _service_refused(self, title: str, message: str) -> None:
        """A refused import also says why on the status line, where the counts would be."""
        super()._service_refused(title, message)
        if title == "Import not started":
            self.refusal = f"{title}: {message}"
            self.query_one("#stats", Static).update(plain(self.refusal))

    @work(thread=True, exclusive=True, group="import-look")
    def _look(self) -> None:
        """Read the latest run, the refusals not listed yet, and its summary once it is done."""
        ctx = self.ctx
        try:
            run = import_queue.latest(ctx.engine, ctx.operator)
            if run is None or run.id is None:
                return
            listed = self._listed() if run.id == self.shown_run else 0
            refused = intake.exceptions(
                ctx.engine, ctx.operator, run.id, limit=MAX_ROWS - listed, offset=listed
            )
            done = run.status in DONE
            groups = intake.by_school_grade(ctx.engine, ctx.operator, run.id) if done else None
        except ConsoleError:  # the banner says the database is away; look again next time
            return
        self.on_ui_thread(self._show, Seen(run, refused, groups))

    def _listed(self) -> int:
        return self.query_one("#exceptions", DataTable).row_count

    def _show(self, seen: Seen) -> None:
        run = seen.run
        before, self.run = self.run, run
        exceptions = self.query_one("#exceptions", DataTable)
        if run.id != self.shown_run or run.exceptions < exceptions.row_count:  # new, or resumed
            exceptions.clear()
            self.query_one("#summary", DataTable).clear()
            self.shown_run = run.id
        self.query_one("#stats", Static).update(plain(self.refusal or _status(run)))
        for item in seen.refused:
            if exceptions.row_count < MAX_ROWS:
                exceptions.add_row(item.reason.label, _tail(item.source, 48), item.detail)
        if seen.groups is not None:
            summary = self.query_one("#summary", DataTable)
            summary.clear()
            for group in seen.groups:
                summary.add_row(group.school, str(group.grade), f"{group.reports:,}")
        ended = before is not None and before.id == run.id and before.status not in DONE
        if ended and run.status in DONE:
            self.notify(
                f"{run.stored:,} stored, {run.exceptions:,} exceptions",
                title=f"Import run {run.id} {run.status}",
                severity="information" if run.status == RunStatus.FINISHED else "warning",
            )
        self.refresh_bindings()


def _status(run: ImportRun) -> str:
    """The status line: what the run is doing, and its counts as last committed."""
    elapsed = (
        (run.finished_at or run.heartbeat_at or run.started_at) - run.started_at
    ).total_seconds()
    progress = Progress(
        run.id or 0,
        files=run.files,
        reports=run.reports,
        stored=run.stored,
        duplicates=run.duplicates,
        new_versions=run.new_versions,
        exceptions=run.exceptions,
        elapsed=elapsed,
    )
    if run.status == RunStatus.QUEUED:
        state = "queued: waiting for `ssr-console worker` (this session may close)"
    elif run.status == RunStatus.RUNNING:
        state = "running in `ssr-console worker` (this session may close)"
    elif run.status == RunStatus.INTERRUPTED:
        state = "interrupted: its process died; ctrl+r resumes it (nothing is stored twice)"
    elif run.status == RunStatus.FAILED:
        state = "failed (the audit log says why); ctrl+r tries again"
    else:
        state = run.status
    return (
        f"Run {run.id} {state}\n{progress.files:,} files · {progress.files_per_s:,.0f} files/s · "
        f"matched {progress.stored:,} ({progress.new_versions:,} new versions) · already stored "
        f"{progress.duplicates:,} · Exceptions {progress.exceptions:,}"
    )


def _tail(text: str, width: int) -> str:
    """The end of a long source path, which is the part that names the file."""
    return text if len(text) <= width else "…" + text[-(width - 1) :]
