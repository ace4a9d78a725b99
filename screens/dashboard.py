"""The first screen: the operator's LEA (or school) at a glance.

Roster and SSR counts come from services.dashboard in a worker thread, so the screen paints at
once even on 300,000 students. Panels whose content a later issue owns say which issue.
"""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.containers import Grid, VerticalScroll
from textual.content import Content
from textual.widgets import Static

from screens.base import ConsoleScreen
from services import credentials, dashboard, plan
from services.dashboard import DashboardSummary
from services.validation import LANGUAGES

PENDING_PANELS = {
    "batches": ("Batches", "Delivery batches and their progress: issues 7 and 8."),
    "deadlines": ("Deadlines", "Students at risk of missing the 20/30-day deadlines: issue 4."),
}
"""Panels shown as placeholders until the issue named in their text replaces them."""


class DashboardScreen(ConsoleScreen):
    TITLE = "Dashboard"
    DEFAULT_CSS = """
    DashboardScreen #where { padding: 0 1; text-style: bold; }
    DashboardScreen Grid { grid-size: 2; grid-gutter: 0 1; height: auto; padding: 0 1; }
    DashboardScreen .panel { height: auto; border: round $primary; padding: 0 1; }
    DashboardScreen .pending { color: $text-muted; }
    DashboardScreen #hint { padding: 0 1; color: $text-muted; }
    """

    def compose_body(self) -> ComposeResult:
        with VerticalScroll():
            yield Static("Loading…", id="where")
            with Grid():
                yield self._panel("roster", "Roster", "Counting…")
                yield self._panel("guardians", "Guardians", "Counting…")
                yield self._panel("plan", "Distribution plan", "Loading…")
                yield self._panel("credential", "Credential", "Loading…")
                for key, (title, text) in PENDING_PANELS.items():
                    yield self._panel(key, title, f"Placeholder. {text}", "pending")
            yield Static(
                "? lists every key · ctrl+p opens a screen by name · esc goes back", id="hint"
            )

    @staticmethod
    def _panel(key: str, title: str, text: str, extra: str = "") -> Static:
        panel = Static(Content(text), id=key, classes=f"panel {extra}".strip())
        panel.border_title = title
        return panel

    def on_mount(self) -> None:
        self._load()

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self._load_plan()  # the advisor may have saved a new plan meanwhile
        self._load_credential()  # or a coordinator generated or reset the credential

    @work(thread=True, exclusive=True, group="credential")
    def _load_credential(self) -> None:
        text = credentials.dashboard_text(self.ctx.engine, self.ctx.operator)
        self.app.call_from_thread(self.query_one("#credential", Static).update, Content(text))

    @work(thread=True, exclusive=True, group="plan")
    def _load_plan(self) -> None:
        text = plan.dashboard_text(self.ctx.engine, self.ctx.operator)
        self.app.call_from_thread(self.query_one("#plan", Static).update, Content(text))

    @work(thread=True, exclusive=True)
    def _load(self) -> None:
        summary = dashboard.summary(self.ctx.engine, self.ctx.operator)
        self.app.call_from_thread(self.show_summary, summary)

    def show_summary(self, summary: DashboardSummary) -> None:
        self.query_one("#where", Static).update(
            Content(f"{summary.lea_name} (CDS {summary.lea_cds}) · {summary.scope}")
        )
        reports = ", ".join(f"{p} {n:,}" for p, n in summary.reports_by_program.items())
        self.query_one("#roster", Static).update(
            Content(
                f"Schools    {summary.schools:,}\n"
                f"Students   {summary.students:,}\n"
                f"Guardians  {summary.guardians:,}\n"
                f"SSRs       {reports or 'none received yet'}"
            )
        )
        self.query_one("#guardians", Static).update(Content(_guardian_text(summary)))


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
