"""The frame every console screen shares: header, banners, the screen's own body, key footer.

Screens built on ConsoleScreen get the session context, the standing banners (read in a worker
each time the screen comes back into view) and a footer that shows their keys. A screen whose
figures must stay current calls ``follow_changes``: the data version (``services.audit.log.head``)
is read in a worker every few seconds, and the screen's callback runs when it moved.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from textual import work
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Header

from services.audit import log as audit
from services.core.context import ConsoleContext
from services.core.errors import ConsoleError
from services.reports import dashboard
from widgets.banner import BannerBar
from widgets.paged_table import PagedTable


class ConsoleScreen(Screen[None]):
    """Subclass and implement ``compose_body``; set TITLE to name the screen in the header."""

    CHANGES_SECONDS = 2.0
    """How often a screen that follows changes reads the data version."""
    CHANGES_GAP = 10.0
    """Least seconds between two calls of its callback: a sending batch changes the data every
    second, and reading a district's figures that often would load the database for nothing."""

    def __init__(self, ctx: ConsoleContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.data_version: int | None = None  # the version the screen's figures were read at
        self._on_change: Callable[[], None] | None = None
        self._changed_at = 0.0  # monotonic time of the last callback

    def compose(self) -> ComposeResult:
        yield Header()
        yield BannerBar()
        yield from self.compose_body()
        # ctrl+p (the palette) is in the help and on the dashboard: its room goes to the screen keys
        yield Footer(show_command_palette=False)

    def compose_body(self) -> ComposeResult:
        yield from ()

    def on_paged_table_failed(self, event: PagedTable.Failed) -> None:
        """A table's fetch was refused or failed: say so in a notification, keep the console up."""
        self.notify(str(event.error), title=self.title or "Table", severity="error")

    def on_screen_resume(self) -> None:
        self._load_banners()

    def follow_changes(self, on_change: Callable[[], None]) -> None:
        """Call ``on_change`` (on the UI thread) while the data moved past the version the
        screen last read at (``read_data_version``)."""
        self._on_change = on_change
        self.set_interval(self.CHANGES_SECONDS, self._check_changes)

    def read_data_version(self) -> audit.Head:
        """Note the data version the screen is about to read its figures at (from a worker)."""
        head = audit.head(self.ctx.engine)
        self.data_version = head.seq
        return head

    @work(thread=True, exclusive=True, group="data-version")
    def _check_changes(self) -> None:
        if self.data_version is None or not self.is_current:  # still reading, or hidden
            return
        now = time.monotonic()
        if now - self._changed_at < self.CHANGES_GAP:
            return
        try:
            seq = audit.head(self.ctx.engine).seq
        except ConsoleError:  # the banner says the database is away; try again next time
            return
        if seq != self.data_version and self._on_change is not None and self.is_attached:
            self._changed_at = now
            self.app.call_from_thread(self._on_change)

    @work(thread=True, exclusive=True, group="banners")
    def _load_banners(self) -> None:
        try:
            found = dashboard.banners(self.ctx.engine, self.ctx.operator)
        except ConsoleError as error:  # e.g. the database went away: above every screen, say so
            found = [dashboard.Banner("error", str(error))]
        self.app.call_from_thread(self.query_one(BannerBar).show, found)
