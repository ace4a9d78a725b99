"""Import the roster from the SIS: `/`, type the OneRoster zip or folder and the contacts CSV,
enter for a dry run (new, changed and missing records, every refused line); `ctrl+s` then imports
exactly what the dry run showed. `x` switches between a full import (students missing from the
files are withdrawn) and a partial one (one school's files: nobody is withdrawn).

The dry run and the import run in a thread worker that calls ``services.roster.sis_import``;
the screen only shows what comes back, as plain text.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.widgets import DataTable, Input, Static

from screens.base import ConsoleScreen
from services.core.errors import ConsoleError
from services.roster import sis_import
from services.roster.sis_import import RosterOptions, RosterResult
from widgets.plain import PlainInput, PlainTable, plain


class RosterImportScreen(ConsoleScreen):
    TITLE = "Roster import"
    CSS_PATH = "roster_import.tcss"
    BINDINGS = [
        Binding("slash", "focus_paths", "Paths", show=True),
        Binding("ctrl+s", "import_now", "Import", show=True),
        Binding("x", "toggle_partial", "Full/partial", show=True),
    ]

    def __init__(self, ctx) -> None:  # type: ignore[no-untyped-def]
        super().__init__(ctx)
        self.partial = False
        self.checked: list[Path] | None = None  # the paths of the dry run on screen

    def compose_body(self) -> ComposeResult:
        yield PlainInput(
            placeholder="/ then the OneRoster zip or folder; the contacts CSV (separate with ;)",
            id="paths",
        )
        yield Static(id="mode")
        yield Static("Type the paths and press enter for a dry run.", id="result")
        yield PlainTable(id="refused", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        self.query_one("#refused", DataTable).add_columns("File", "Line", "Why refused")
        self._show_mode()
        self.query_one("#refused", DataTable).focus()  # letters stay keys until /

    def _show_mode(self) -> None:
        text = (
            "Partial import: nobody is withdrawn"
            if self.partial
            else "Full import: students missing from the files are withdrawn"
        )
        self.query_one("#mode", Static).update(text)

    def action_focus_paths(self) -> None:
        self.query_one("#paths", Input).focus()

    def action_toggle_partial(self) -> None:
        self.partial = not self.partial
        self.checked = None  # a dry run of the other mode is needed before importing
        self._show_mode()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        paths = [Path(p.strip()).expanduser() for p in event.value.split(";") if p.strip()]
        if not paths:
            self.notify(
                "Type the OneRoster zip or folder, and the contacts CSV", severity="warning"
            )
            return
        self.query_one("#refused", DataTable).focus()
        self._start(paths, dry_run=True)

    def action_import_now(self) -> None:
        if self.checked is None:
            self.notify("Press enter for a dry run first: it shows what would change")
            return
        self._start(self.checked, dry_run=False)

    def _start(self, paths: list[Path], *, dry_run: bool) -> None:
        if any(w.name == "roster" and w.is_running for w in self.workers):
            self.notify("The roster is already being read", severity="warning")
            return
        self.query_one("#result", Static).update("Dry run…" if dry_run else "Importing…")
        self.query_one("#refused", DataTable).clear()
        self._run(paths, dry_run)

    @work(thread=True, exclusive=True, name="roster")
    def _run(self, paths: list[Path], dry_run: bool) -> None:
        ctx = self.ctx
        options = RosterOptions.from_settings(ctx.settings, full=not self.partial, dry_run=dry_run)
        try:
            result = sis_import.import_for(ctx.engine, ctx.settings, ctx.operator, paths, options)
        except ConsoleError as error:
            self._post(self._failed, str(error))
            return
        self._post(self._show, result, paths)

    def _post(self, show: Callable[..., None], *args: object) -> None:
        with suppress(RuntimeError):  # the app is no longer running
            self.app.call_from_thread(self._if_shown, show, *args)

    def _if_shown(self, show: Callable[..., None], *args: object) -> None:
        with suppress(NoMatches):
            if self.is_attached:
                show(*args)

    def _failed(self, message: str) -> None:
        self.query_one("#result", Static).update(plain(f"Not imported: {message}"))
        self.notify(message, title="Roster import", severity="error")

    def _show(self, result: RosterResult, paths: list[Path]) -> None:
        lines = str(result).splitlines()
        if result.dry_run:
            lines.append("ctrl+s imports this")
        self.query_one("#result", Static).update(plain("\n".join(lines)))
        table = self.query_one("#refused", DataTable)
        for refused in result.refused:
            table.add_row(refused.file.rsplit("/", 1)[-1], str(refused.line), refused.reason)
        self.checked = paths if result.dry_run else None
        title = "Dry run" if result.dry_run else "Roster imported"
        self.notify(
            f"{result.students.new:,} new, {result.students.changed:,} changed students; "
            f"{result.refused_count:,} lines refused",
            title=title,
        )
