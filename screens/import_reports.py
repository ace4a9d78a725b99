"""Import SSRs from TOMS bulk downloads (`/`, type a path) or from the TOMS-style API with the
credential recorded on the Credential screen (`t`); watch the counts, read every refusal.

The import runs in a thread worker that calls ``services.intake.importer``; its progress arrives through
the service's callback (posted back to the UI thread) and is also committed to the database, so
the last run's counts, refusals and per-school summary are here again when the screen reopens.
Leaving the screen does not stop an import: updates for a screen no longer shown are dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.css.query import NoMatches
from textual.widgets import DataTable, Input, Static

from screens.base import ConsoleScreen
from services.core import toms, vault
from services.core.errors import ConsoleError, InvalidInput
from services.credential import lifecycle as credentials
from services.intake import importer as intake
from services.intake.importer import GroupCount, ImportSummary, Progress, Refused
from services.intake.toms_api import TomsClient
from widgets.plain import PlainTable, plain

MAX_ROWS = 500  # the screen lists the first refusals; the rest stay in the database


class ImportReportsScreen(ConsoleScreen):
    TITLE = "Import score reports"
    CSS_PATH = "import_reports.tcss"
    BINDINGS = [
        Binding("slash", "focus_paths", "Path", show=True),
        Binding("t", "from_api", "From TOMS", tooltip="Fetch from the TOMS API ([toms] url)"),
    ]

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
        self._show_last_run()

    def action_focus_paths(self) -> None:
        self.query_one("#paths", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        paths = [Path(p.strip()).expanduser() for p in event.value.split(";") if p.strip()]
        if not paths:
            self.notify("Type the path of a zip file, a folder or a PDF", severity="warning")
            return
        if self._starting():
            self._run_import(paths)

    def action_from_api(self) -> None:
        if self._starting():
            self._run_import(None)

    def _starting(self) -> bool:
        if any(w.name == "import" and w.is_running for w in self.workers):
            self.notify("An import is already running", severity="warning")
            return False
        self.query_one("#exceptions", DataTable).clear()
        self.query_one("#summary", DataTable).clear()
        self.query_one("#stats", Static).update("Starting…")
        return True

    @work(thread=True, exclusive=True, name="import")
    def _run_import(self, paths: list[Path] | None) -> None:
        """Off the UI thread: the service does the work and reports through the callback.
        ``paths`` None: from the TOMS API, with the LEA's recorded credential."""
        ctx = self.ctx
        report = lambda p: self._post(self._show_progress, p)  # noqa: E731
        try:
            if paths is None:
                summary = asyncio.run(self._from_api(report))
            else:
                summary = intake.import_paths(
                    ctx.engine, ctx.settings, paths, ctx.operator, progress=report
                )
        except intake.ImportStopped as error:  # begun, then stopped: the message says what was kept
            self._post(self._failed, str(error), "")
            return
        except ConsoleError as error:
            self._post(self._failed, str(error))
            return
        self._post(self._show_summary, summary)

    async def _from_api(self, report: Callable[[Progress], None]) -> ImportSummary:
        settings = self.ctx.settings
        url = toms.api_url(settings)
        if url is None:
            raise InvalidInput("No TOMS API is configured: set [toms] url")
        username, secret = credentials.api_credential(
            self.ctx.engine, self.ctx.operator.lea_id, vault.load(settings)
        )
        hosts = toms.download_hosts(settings)
        async with TomsClient(
            url, username, secret, download_hosts=hosts, deadline=toms.request_deadline(settings)
        ) as client:
            return await intake.import_from_api(
                self.ctx.engine, settings, client, self.ctx.operator, progress=report
            )

    def _post(self, show: Callable[..., None], *args: object) -> None:
        """Hand a result to the UI thread; once the operator has left the screen (or closed the
        session) the import carries on regardless and its counts stay in the database."""
        with suppress(RuntimeError):  # the app is no longer running
            self.app.call_from_thread(self._if_shown, show, *args)

    def _if_shown(self, show: Callable[..., None], *args: object) -> None:
        with suppress(NoMatches):  # the screen is being taken down: its widgets are going
            if self.is_attached:
                show(*args)

    def _failed(self, message: str, prefix: str = "Import not started: ") -> None:
        self.query_one("#stats", Static).update(plain(f"{prefix}{message}"))
        self.notify(message, title="Import", severity="error")

    def _show_progress(self, progress: Progress, status: str = "running") -> None:
        self.query_one("#stats", Static).update(
            f"Run {progress.run_id} {status}: {progress.files:,} files · "
            f"{progress.files_per_s:,.0f} files/s · matched {progress.stored:,} "
            f"({progress.new_versions:,} new versions) · already stored {progress.duplicates:,}\n"
            f"Exceptions {progress.exceptions:,}"
        )
        self._add_refusals(progress.refused)

    def _add_refusals(self, refused: tuple[Refused, ...] | list[Refused]) -> None:
        table = self.query_one("#exceptions", DataTable)
        for item in refused:
            if table.row_count >= MAX_ROWS:
                break
            table.add_row(item.reason.label, _tail(item.source, 48), item.detail)

    def _show_groups(self, groups: tuple[GroupCount, ...] | list[GroupCount]) -> None:
        table = self.query_one("#summary", DataTable)
        table.clear()
        for group in groups:
            table.add_row(group.school, str(group.grade), f"{group.reports:,}")

    def _show_summary(self, summary: ImportSummary) -> None:
        self._show_progress(summary.progress, summary.status)
        self._show_groups(summary.by_school_grade)
        self.notify(
            f"{summary.progress.stored:,} stored, {summary.progress.exceptions:,} exceptions",
            title=f"Import run {summary.progress.run_id} {summary.status}",
        )

    def _show_last_run(self) -> None:
        ctx = self.ctx
        run = intake.latest_run(ctx.engine, ctx.operator)
        if run is None or run.id is None:
            return
        counts = Progress(
            run.id,
            files=run.files,
            reports=run.reports,
            stored=run.stored,
            duplicates=run.duplicates,
            new_versions=run.new_versions,
            exceptions=run.exceptions,
            elapsed=((run.finished_at or run.started_at) - run.started_at).total_seconds(),
        )
        self._show_progress(counts, run.status)
        self._add_refusals(intake.exceptions(ctx.engine, ctx.operator, run.id, limit=MAX_ROWS))
        self._show_groups(intake.by_school_grade(ctx.engine, ctx.operator, run.id))


def _tail(text: str, width: int) -> str:
    """The end of a long source path, which is the part that names the file."""
    return text if len(text) <= width else "…" + text[-(width - 1) :]
