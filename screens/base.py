"""The frame every console screen shares: header, banners, the screen's own body, key footer.

Screens built on ConsoleScreen get the session context, the standing banners (read in a worker
each time the screen comes back into view) and a footer that shows their keys.
"""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Header

from services.core.context import ConsoleContext
from services.core.errors import ConsoleError
from services.reports import dashboard
from widgets.banner import BannerBar
from widgets.paged_table import PagedTable


class ConsoleScreen(Screen[None]):
    """Subclass and implement ``compose_body``; set TITLE to name the screen in the header."""

    def __init__(self, ctx: ConsoleContext) -> None:
        super().__init__()
        self.ctx = ctx

    def compose(self) -> ComposeResult:
        yield Header()
        yield BannerBar()
        yield from self.compose_body()
        yield Footer()

    def compose_body(self) -> ComposeResult:
        yield from ()

    def on_paged_table_failed(self, event: PagedTable.Failed) -> None:
        """A table's fetch was refused or failed: say so in a notification, keep the console up."""
        self.notify(str(event.error), title=self.title or "Table", severity="error")

    def on_screen_resume(self) -> None:
        self._load_banners()

    @work(thread=True, exclusive=True, group="banners")
    def _load_banners(self) -> None:
        try:
            found = dashboard.banners(self.ctx.engine, self.ctx.operator)
        except ConsoleError as error:  # e.g. the database went away: above every screen, say so
            found = [dashboard.Banner("error", str(error))]
        self.app.call_from_thread(self.query_one(BannerBar).show, found)
