"""The Textual application: the dashboard first, every destination one key away.

Keys: the destination letters (see console.navigation), ``?`` help, ``esc`` back, ``ctrl+p``
command palette, ``q``/``ctrl+q`` quit. Textual 8 binds no suspend key (ctrl+z) by default and
puts the terminal in raw mode, so ctrl+z never stops the process; tests keep it that way.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable
from functools import partial
from pathlib import Path, PurePath
from weakref import WeakValueDictionary

from rich.text import Text
from textual import events
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.content import Content
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.worker import WorkerFailed

import screens
import widgets
from console import crash
from console.collector import Collector
from console.navigation import BY_KEY, DESTINATIONS, DestinationCommands, preload
from screens.base import ConsoleScreen
from screens.help import HelpScreen, describe_keys
from services.access.permissions import require
from services.core import db
from services.core.context import ConsoleContext
from services.core.display import safe_text
from services.core.errors import ConsoleError
from services.reports import dashboard

NO_SCREENSHOTS = "Screenshots are turned off: a screen can show a secret key"
RECLAIM_CHECK_SECONDS = 2.0
"""How often a console process checks whether the collector's reclaim is due."""


def _stylesheets() -> list[str | PurePath]:
    """Every screen's and dialog's stylesheet: the ``.tcss`` files beside the modules of screens/
    and widgets/ (tests/screens/test_styles.py holds each of them to be a screen's CSS_PATH)."""
    return [
        path.resolve()  # as Textual names a screen's, so it finds it already read
        for package in (screens, widgets)
        for path in sorted(Path(package.__path__[0]).glob("*.tcss"))
    ]


class SSRConsoleApp(App[None]):
    TITLE = "SSR Console"
    CSS_PATH = _stylesheets()
    """Read with Textual's own styles before the first frame. Textual reads a screen's CSS_PATH
    when the screen is first pushed, and then parses every rule again (a fresh stylesheet, none
    of its parse cache) and restyles every widget of every open screen: 130-250 ms on the event
    loop at each screen's first opening (tests/screens/test_no_freeze.py, issue 21). A screen
    whose stylesheet is already read is pushed without either."""
    COMMANDS = App.COMMANDS | {DestinationCommands}
    BINDINGS = [
        Binding("question_mark", "help", "Help"),
        Binding("f1", "help", "Help", priority=True),  # shown when a text field takes ?
        Binding("escape", "back", "Back"),
        Binding("q", "quit", "Quit"),
        Binding("ctrl+p", "command_palette", "Palette", show=False),
        *(Binding(d.key, f"go({d.key!r})", f"Go to {d.title}", show=False) for d in DESTINATIONS),
    ]

    def __init__(self, ctx: ConsoleContext, *, owns_process: bool = False) -> None:
        """``owns_process``: the console is all this process runs (``ssr-console open``, an SSH
        session), so what it loads may be hidden from the garbage collector once it is up."""
        super().__init__()
        self.ctx = ctx
        self.owns_process = owns_process
        # Destination key -> its screen while open. Weak: a closed screen held here kept its
        # widgets and their render caches alive for the rest of the session (issue 21).
        self._opened: WeakValueDictionary[str, ConsoleScreen] = WeakValueDictionary()
        self.collector = Collector() if owns_process else None
        operator = ctx.operator
        self.sub_title = (
            f"{operator.display_name} · {operator.roles_label} · "
            f"{dashboard.lea_label(ctx.engine, operator)}"
        )

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """Every notification as plain text: messages carry names, addresses and file names,
        which are never markup and whose control characters are shown, not sent."""
        super().notify(
            safe_text(message, multiline=True),
            title=safe_text(title),
            severity=severity,
            timeout=timeout,
            markup=False,
        )

    def format_title(self, title: str, sub_title: str) -> Content:
        """The header shows an operator's name and a family's SSID: data, so made safe."""
        return super().format_title(safe_text(title), safe_text(sub_title))

    def _handle_exception(self, error: Exception) -> None:
        """The backstop under every screen's workers: a ``ConsoleError`` a worker did not catch
        (the database went away while it read, say) becomes a notification, and the session goes
        on. Anything else, and any error while a screen is built, still ends the app with its
        traceback: a half-built screen or a bug must not be hidden.

        Textual routes every unhandled error here and has no public hook for it
        (tests/test_database_unavailable.py fails if the name changes)."""
        if isinstance(error, WorkerFailed) and isinstance(error.error, ConsoleError):
            self.notify(str(error.error), title="Could not finish", severity="error")
            return
        super()._handle_exception(error)

    def _fatal_error(self) -> None:
        """An error that ends the app shows one sentence, never Textual's traceback: it lists
        local variables (a revealed secret, a family's address), and over SSH the terminal is a
        remote person's. The stack, without locals or the message, goes to the data folder's
        ``console-errors.log`` (``console.crash``). Textual calls this from ``_handle_exception``
        with the error being handled; it has no public hook for it."""
        error = sys.exc_info()[1] or self._exception
        where = f"console of {self.ctx.operator.username}"
        try:
            incident = crash.record(self.ctx.settings.data_dir, error, where) if error else "-"
        except OSError:
            incident = "not logged: the data folder cannot be written"
        self.bell()
        self.panic(
            Text(
                f"SSR Console stopped on an unexpected error (reference {incident}); "
                "the administrator's log has the details."
            )
        )

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        """Textual's own palette commands, less "Screenshot": it saved the screen, a revealed TOMS
        secret included, as an SVG in ~/Downloads with mode 0644 (issue 18)."""
        for command in super().get_system_commands(screen):
            if command.title != "Screenshot":
                yield command

    def action_screenshot(self, filename: str | None = None, path: str | None = None) -> None:
        """No screenshots: a screen can hold a revealed secret, and the file would outlive it."""
        self.notify(NO_SCREENSHOTS, severity="warning")

    def deliver_screenshot(
        self, filename: str | None = None, path: str | None = None, time_format: str | None = None
    ) -> str | None:
        self.notify(NO_SCREENSHOTS, severity="warning")
        return None

    def on_ready(self) -> None:
        """Soon after the first frame, import the other screens so opening them is instant."""
        collector = self.collector
        if collector is None:
            load = preload
        else:
            load = partial(_preload_and_freeze, collector)
            self.set_interval(RECLAIM_CHECK_SECONDS, self._reclaim_if_due)
        self.set_timer(0.5, lambda: self.run_worker(load, thread=True, name="preload screens"))

    async def on_event(self, event: events.Event) -> None:
        if self.collector is not None and isinstance(event, events.InputEvent):
            self.collector.input_seen()
        await super().on_event(event)

    def on_unmount(self) -> None:
        if self.collector is not None:
            self.collector.stop()

    def _reclaim_if_due(self) -> None:
        """The garbage the collector's frozen heap holds, collected while nobody waits."""
        if self.collector is not None:
            self.collector.reclaim_if_due(busy=any(w.is_running for w in self.workers))

    def get_default_screen(self) -> ConsoleScreen:
        """The first destination. Textual reads no CSS_PATH for the default screen (App._init_mode):
        the app's CSS_PATH holds the dashboard's (tests/screens/test_snapshots.py pictures it)."""
        return DESTINATIONS[0].factory(self.ctx)

    async def action_go(self, key: str) -> None:
        """Open a destination above the dashboard, or say plainly why the operator may not.

        The stack stays shallow: the dashboard, the destination, and whatever that screen opened.
        A destination already open is returned to (keeping its filter) rather than opened twice.
        """
        destination = BY_KEY[key]
        if destination.permission is not None:
            try:
                require(self.ctx.operator, destination.permission)
            except ConsoleError as refusal:
                self.notify(
                    str(refusal), title=f"{destination.title}: not allowed", severity="error"
                )
                return
        target = self.screen_stack[0] if destination is DESTINATIONS[0] else self._opened.get(key)
        screen = None
        if target not in self.screen_stack:
            target = None
            try:  # built before anything is closed: a refusal leaves the operator where they were
                # No screen is built on a database that is away. Asked from a thread: a server
                # that does not answer held every frame of the session for up to its connect
                # timeout (10 s by default), and a local PostgreSQL's first connect is 16 ms.
                await asyncio.to_thread(db.ping, self.ctx.engine)
                screen = destination.factory(self.ctx)
            except ConsoleError as error:
                self.notify(str(error), title=destination.title, severity="error")
                return
        if screen is None:
            while len(self.screen_stack) > 1 and self.screen is not target:
                await self.pop_screen()
            return
        self._opened[key] = screen
        if len(self.screen_stack) == 1:
            await self.push_screen(screen)
        else:
            await self._replace_above_dashboard(screen)

    async def _replace_above_dashboard(self, screen: ConsoleScreen) -> None:
        """Put ``screen`` in place of every screen above the dashboard, none of them (nor the
        dashboard) shown in between. Popping them first made each one beneath current again for
        an instant: laid out, drawn and reading its figures in workers, only to be covered
        (tests/screens/test_no_freeze.py, issue 21). Textual can only switch the top screen, so
        the covered ones are taken out of its stack (``_screen_stack``, the list itself) and
        removed, as its own ``_replace_screen`` removes a popped one."""
        covered = self.screen_stack[1:-1]
        await self.switch_screen(screen)
        for stale in covered:
            self._screen_stack.remove(stale)
            await stale.remove()

    async def action_back(self) -> None:
        if len(self.screen_stack) > 1:
            await self.pop_screen()

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            title = self.screen.title or type(self.screen).__name__
            self.push_screen(HelpScreen(title, describe_keys(self.screen)))


def _preload_and_freeze(collector: Collector) -> None:
    """Import every screen, then hide what the started console holds from the garbage collector.

    Modules, stylesheets and the dashboard live as long as the console does, yet every full
    collection walked them all again: 50-150 ms of CPU on the event loop, about one per screen
    opened (tests/screens/test_no_freeze.py, issue 21). ``gc.freeze`` moves every object tracked
    so far to a permanent generation that later collections ignore
    (docs.python.org/3/library/gc.html#gc.freeze); from then on ``console.collector`` freezes what
    each full collection leaves too. Only a process that is the console's alone does this: in a
    host process (a test run) it would keep every earlier object, garbage included, until the
    collector's next reclaim.
    """
    preload()
    collector.start()
