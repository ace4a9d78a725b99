"""Coverage (key u): how many students' SSRs are on exactly one channel, and the uncovered, listed.

The uncovered are students with an SSR that no batch of any channel holds (or whose print run
listed them for want of an address), one window at a time, with their family and the reason;
type an SSID's first digits to find one. The portal readiness screen (w) hands such families to
another channel in one key; the print (p) and ETS paper (o) screens take every family not yet on
a channel.
"""

from __future__ import annotations

from functools import partial

from textual import work
from textual.app import ComposeResult
from textual.widgets import Static

from screens.base import ConsoleScreen
from services.core.errors import ConsoleError
from services.plan import coverage
from widgets.paged_table import Column, PagedTable
from widgets.plain import plain

COLUMNS = [
    Column("SSID", 10),
    Column("School", 18),
    Column("Gr", 2),
    Column("Family", 22),
    Column("Why", 22),
]


class CoverageScreen(ConsoleScreen):
    TITLE = "Coverage"
    CSS_PATH = "coverage.tcss"

    def compose_body(self) -> ComposeResult:
        yield Static("Counting…", id="summary")
        yield PagedTable(
            COLUMNS,
            partial(coverage.uncovered_page, self.ctx.engine, self.ctx.operator),
            placeholder="SSID prefix; enter keeps it, esc clears",
        )

    def on_mount(self) -> None:
        self._summary()

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self._summary()
        self.query_one(PagedTable).reload()

    @work(thread=True, exclusive=True, group="summary")
    def _summary(self) -> None:
        try:
            text = coverage.summary(self.ctx.engine, self.ctx.operator).text()
        except ConsoleError as error:
            text = str(error)
        self.app.call_from_thread(self.query_one("#summary", Static).update, plain(text))
