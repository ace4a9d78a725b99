"""The dialog for a message in doubt, which the batch progress screen and the help desk's family
screen both open: what is in doubt (``services.delivery.in_doubt``), and for those who may decide
it, resend / it arrived / give up. The help desk only reads it (``services.access.permissions``).

Like ``FormDialog``, it does not reach the database itself: ``decide_in_doubt`` runs the reading
and the deciding it is given (service calls) in thread workers, so the console never freezes.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from textual.app import ComposeResult
from textual.binding import Binding
from textual.notifications import SeverityLevel
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

from services.core.errors import ConsoleError
from services.delivery.in_doubt import InDoubt
from services.delivery.ledger import ItemState, Resolution, Step
from widgets.plain import plain


class ResolveScreen(ModalScreen[Resolution | None]):
    """The decision for one uncertain item, after checking the relay's log or with the family."""

    CSS_PATH = "resolve_dialog.tcss"
    BINDINGS = [
        Binding("r", "choose('resend')", "Resend"),
        Binding("s", "choose('sent')", "It arrived"),
        Binding("g", "choose('fail')", "Give up"),
        Binding("escape", "choose('')", "Not now"),
    ]

    def __init__(self, doubt: InDoubt) -> None:
        super().__init__()
        self.doubt = doubt

    def compose(self) -> ComposeResult:
        arrived = (
            "it arrived (the password follows)"
            if self.doubt.step is Step.DOCUMENT
            else "it arrived (the family is done)"
        )
        keys = (
            f"r resend it · s {arrived} · g give up · esc decide later"
            if self.doubt.may_resolve
            else "A coordinator decides it (it records a delivery): ask one. esc close"
        )
        yield Static(
            plain(
                self.doubt.text() + "\n\nThe message may or may not have reached the family: "
                f"look it up in the relay's log.\n{keys}"
            )
        )

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The help desk reads the item; only those who run batches decide it."""
        return self.doubt.may_resolve or action != "choose" or parameters == ("",)

    def action_choose(self, choice: str) -> None:
        self.dismiss(Resolution(choice) if choice else None)


def decide_in_doubt(
    screen: Screen[None],
    read: Callable[[], InDoubt],
    decide: Callable[[Resolution], ItemState],
    after: Callable[[], object],
) -> None:
    """``read`` the item, show it (``ResolveScreen``) and ``decide`` as the operator chose, each
    in a thread worker of ``screen``; ``after`` runs once it is decided."""
    app = screen.app

    def notify(text: str, severity: SeverityLevel = "information") -> None:
        app.call_from_thread(app.notify, text, severity=severity)

    def resolve(doubt: InDoubt, resolution: Resolution) -> None:
        try:
            state = decide(resolution)
        except ConsoleError as error:
            notify(str(error), "error")
            return
        notify(f"Item {doubt.item_id}: now {state.label}")
        app.call_from_thread(after)

    def ask() -> None:
        try:
            doubt = read()
        except ConsoleError as error:
            notify(str(error), "error")
            return

        def chosen(resolution: Resolution | None) -> None:
            if resolution is not None:
                screen.run_worker(partial(resolve, doubt, resolution), thread=True)

        app.call_from_thread(app.push_screen, ResolveScreen(doubt), chosen)

    screen.run_worker(ask, thread=True, group="resolve")
