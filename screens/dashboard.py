"""The first screen: the operator's LEA (or school) at a glance.

Every figure is read in a worker thread, so the screen paints at once even on 300,000 students.
The panels below the roster come from PANELS: a service function ``dashboard_text(engine,
operator) -> str`` each, imported in its worker (off the first frame's path) and read again
whenever the dashboard comes back into view, and whenever the data changes while it is shown
(``follow_changes``: an import, a batch moving); adding or replacing a panel is a one-line edit.
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass

from textual import work
from textual.app import ComposeResult
from textual.containers import Grid, VerticalScroll
from textual.widgets import Static

from screens.base import ConsoleScreen
from services.core.context import ConsoleContext
from services.core.errors import ConsoleError
from services.core.validation import LANGUAGES
from services.reports import dashboard
from services.reports.dashboard import DashboardSummary
from widgets.plain import plain


@dataclass(frozen=True)
class Panel:
    key: str
    title: str
    source: str  # "module:function" returning the panel's text
    calendar: bool = False  # the function also takes the LEA's working-day calendar

    def read(self, ctx: ConsoleContext) -> str:
        """The panel's text for the operator of ``ctx``: a service call, for a worker."""
        module, _, function = self.source.partition(":")
        read = getattr(importlib.import_module(module), function)
        extra = [ctx.settings.calendar] if self.calendar else []
        return str(read(ctx.engine, ctx.operator, *extra))


# fmt: off
PANELS = [
    Panel("credential", "Credential", "services.credential.lifecycle:dashboard_text"),
    Panel("plan", "Distribution plan", "services.plan.decisions:dashboard_text"),
    Panel("coverage", "Coverage: one channel per SSR", "services.plan.coverage:dashboard_text"),
    Panel("batches", "Batches", "services.delivery.batches:dashboard_text"),
    Panel("deadlines", "Deadlines (20 working / 30 days)", "services.reports.deadlines:dashboard_text", calendar=True),
]
# fmt: on
SHOWN_SECONDS = 0.5


class DashboardScreen(ConsoleScreen):
    TITLE = "Dashboard"
    CSS_PATH = "dashboard.tcss"

    def __init__(self, ctx: ConsoleContext) -> None:
        super().__init__(ctx)
        self._left = threading.Event()  # set when the person leaves the dashboard
        self._painted = False  # its first frame is on screen
        self._waiting: threading.Event | None = None  # the stay in view the panels wait on

    def compose_body(self) -> ComposeResult:
        with VerticalScroll():
            yield Static("Loading…", id="where")
            with Grid():
                yield self._panel("roster", "Roster", "Counting…")
                yield self._panel("guardians", "Guardians", "Counting…")
                for panel in PANELS:
                    yield self._panel(panel.key, panel.title, "Loading…")
            yield Static(
                "? lists every key · ctrl+p opens a screen by name · esc goes back", id="hint"
            )

    @staticmethod
    def _panel(key: str, title: str, text: str) -> Static:
        panel = Static(plain(text), id=key, classes="panel")
        panel.border_title = title
        return panel

    def on_mount(self) -> None:
        self.follow_changes(self._reload)

    def on_show(self) -> None:
        """The first frame is on screen (Textual sends Show after painting a new layout): only
        now start counting. Read from mount on, the figures' queries shared the CPU with the first
        frame, and with twenty SSH sessions opening at once every dashboard waited for everyone's
        coverage panels (issue 22)."""
        if not self._painted:
            self._painted = True
            self._load_summary()
            self._read_when_shown()

    def on_screen_resume(self) -> None:
        if self._left.is_set():
            self._left = threading.Event()
        self._read_when_shown()

    def _read_when_shown(self) -> None:
        """Start the wait for this stay in view, once painted and only once per stay (Show and
        ScreenResume may come in either order)."""
        if self._painted and self._waiting is not self._left:
            self._waiting = self._left
            self._read_if_still_shown(self._left)

    def on_screen_suspend(self) -> None:
        self._left.set()

    @work(thread=True, group="back-in-view")
    def _read_if_still_shown(self, left: threading.Event) -> None:
        """Going from one screen to another can pass through the dashboard (esc, then the next
        screen's key): reading a district's coverage for that instant kept the database and the
        workers busy long after, so the panels are read only once the dashboard stayed in view
        for ``SHOWN_SECONDS``."""
        if not left.wait(SHOWN_SECONDS):
            self.app.call_from_thread(self._back_in_view)

    def _back_in_view(self) -> None:
        if not self.is_current:  # left while the call came
            return
        self._load_banners()
        for panel in PANELS:  # a plan saved or a credential reset meanwhile shows on return
            self._load_panel(panel)

    def _reload(self) -> None:
        """The data changed while the dashboard is shown: read every figure again."""
        self._load_summary()
        for panel in PANELS:
            self._load_panel(panel)

    @work(thread=True, exclusive=True, group="summary")
    def _load_summary(self) -> None:
        try:
            self.read_data_version()
            summary = dashboard.summary(self.ctx.engine, self.ctx.operator)
        except ConsoleError:  # the banner above says why; the panels keep what they showed
            return
        self.app.call_from_thread(self.show_summary, summary)

    def _load_panel(self, panel: Panel) -> None:
        self.run_worker(
            lambda: self._read_panel(panel), thread=True, exclusive=True, group=panel.key
        )

    def _read_panel(self, panel: Panel) -> None:
        try:
            text = panel.read(self.ctx)
        except ConsoleError as error:
            text = str(error)
        self.app.call_from_thread(self._show_panel, panel.key, text)

    def _show_panel(self, key: str, text: str) -> None:
        """On the loop, where widgets may be touched; a dashboard closed while the panel was read
        (the console quitting) has no panel left to show it in, and that is no error."""
        for panel in self.query(f"#{key}").results(Static):
            panel.update(plain(text))

    def show_summary(self, summary: DashboardSummary) -> None:
        self.query_one("#where", Static).update(plain(summary.where))
        reports = ", ".join(f"{p} {n:,}" for p, n in summary.reports_by_program.items())
        self.query_one("#roster", Static).update(
            plain(
                f"Schools    {summary.schools:,}\n"
                f"Students   {summary.students:,}\n"
                f"Guardians  {summary.guardians:,}\n"
                f"SSRs       {reports or 'none received yet'}"
            )
        )
        self.query_one("#guardians", Static).update(plain(_guardian_text(summary)))


def _guardian_text(summary: DashboardSummary) -> str:
    if not summary.contacts_shown or summary.guardians_by_language is None:
        return "Totals only: your role does not view guardian contact details."
    lines = [
        f"{LANGUAGES.get(code, code).split(' (')[0]:<11}{count:,}"
        for code, count in summary.guardians_by_language.items()
    ]
    lines += [
        f"With email {summary.guardians_with_email:,}",
        f"Use portal {summary.guardians_using_portal:,}",
        f"No address {summary.guardians_without_address:,}",
    ]
    return "\n".join(lines)
