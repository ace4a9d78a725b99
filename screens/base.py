"""The frame every console screen shares: header, banners, the screen's own body, key footer.

Screens built on ConsoleScreen get the session context, the standing banners (read in a worker
each time the screen comes back into view) and a footer that shows their keys. A screen whose
figures must stay current calls ``follow_changes``: the data version (``services.audit.log.head``)
is read in a worker every few seconds, and the screen's callback runs when it moved.

A screen never calls a service on the event loop (one slow call freezes that person's session):
actions go through ``call_service``, which runs the call in a thread worker, shows what is under
way on the working line and dims the action's key until the call has answered.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import suppress
from functools import partial
from typing import Any, TypeVar

from textual import work
from textual.app import ComposeResult
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Footer, Header

from services.audit import log as audit
from services.core.context import ConsoleContext
from services.core.errors import ConsoleError
from services.reports import dashboard
from widgets.banner import BannerBar
from widgets.paged_table import PagedTable
from widgets.working import WorkingLine

T = TypeVar("T")


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
        self.busy: dict[str, str] = {}  # action -> what its service call is doing, while it runs

    def compose(self) -> ComposeResult:
        yield Header()
        yield BannerBar()
        yield from self.compose_body()
        yield WorkingLine()
        # ctrl+p (the palette) is in the help and on the dashboard: its room goes to the screen keys
        yield Footer(show_command_palette=False)

    def compose_body(self) -> ComposeResult:
        yield from ()

    def on_paged_table_failed(self, event: PagedTable.Failed) -> None:
        """A table's fetch was refused or failed: say so in a notification, keep the console up."""
        self.notify(str(event.error), title=self.title or "Table", severity="error")

    def on_screen_resume(self) -> None:
        self._load_banners()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """An action whose service call is still running is dimmed (None), not run twice."""
        return None if action in self.busy else True

    def call_service(
        self,
        action: str,
        doing: str,
        call: Callable[[], T],
        then: Callable[[T], object] | None = None,
        *,
        refused: str = "Refused",
    ) -> None:
        """Run ``call`` (a service call) in a thread worker, then ``then(result)`` on the UI
        thread; a ``ConsoleError`` becomes a notification titled ``refused``. ``doing`` is shown
        on the working line and ``action`` is dimmed meanwhile; a second press is ignored."""
        if action in self.busy:
            return
        self.busy[action] = doing
        self._show_busy()
        self.run_worker(
            partial(self._serve, action, call, then, refused), thread=True, group="service"
        )

    def _serve(
        self,
        action: str,
        call: Callable[[], T],
        then: Callable[[T], object] | None,
        refused: str,
    ) -> None:
        try:
            result = call()
        except ConsoleError as refusal:
            self.on_ui_thread(
                self._service_answered, action, self._service_refused, refused, str(refusal)
            )
            return
        except BaseException:  # a bug: free the key, then let the app's backstop show it
            self.on_ui_thread(self._service_answered, action, None)
            raise
        self.on_ui_thread(self._service_answered, action, then, result)

    def _service_answered(
        self, action: str, then: Callable[..., object] | None, *args: Any
    ) -> None:
        self.busy.pop(action, None)
        self._show_busy()
        if then is not None:
            then(*args)

    def _service_refused(self, title: str, message: str) -> None:
        self.notify(message, title=title, severity="error")

    def _show_busy(self) -> None:
        self.query_one(WorkingLine).show(self.busy.values())
        self.refresh_bindings()

    def on_ui_thread(self, show: Callable[..., object], *args: Any) -> None:
        """From a worker: run ``show(*args)`` on the UI thread if this screen is still up; once
        the person has left it (or closed the session) the result stays in the database."""
        with suppress(RuntimeError):  # the app is no longer running
            self.app.call_from_thread(self._if_attached, show, *args)

    def _if_attached(self, show: Callable[..., object], *args: Any) -> None:
        with suppress(NoMatches):  # the screen is being taken down: its widgets are going
            if self.is_attached:
                show(*args)

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
