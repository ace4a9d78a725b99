"""A secret shown once: masked until asked, copyable over SSH, forgotten when dismissed.

The secret lives only in this widget. ``y`` copies it with OSC 52 (the terminal's clipboard, which
works through SSH); Textual's ``App.copy_to_clipboard`` also keeps a copy on the App for paste, so
the widget clears that copy right after. Unmounting the widget (closing its screen) forgets it.
"""

from __future__ import annotations

from textual.binding import Binding
from textual.content import Content
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget

MASK = "•"


class SecretReveal(Widget, can_focus=True):
    """Focus it, then ``v`` shows or hides the secret, ``y`` copies it, ``f`` forgets it."""

    BINDING_GROUP_TITLE = "Secret key"
    BINDINGS = [
        Binding("v", "toggle_shown", "Show/hide key"),
        Binding("y", "copy", "Copy key"),
        Binding("f", "forget", "Forget key"),
    ]
    DEFAULT_CSS = """
    SecretReveal { height: auto; border: heavy $warning; padding: 0 1; }
    SecretReveal:focus { border: heavy $accent; }
    SecretReveal.-empty { display: none; }
    """

    revealed: reactive[bool] = reactive(False)

    class Copied(Message):
        """The secret went to the terminal's clipboard (the message does not carry it)."""

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id, classes="-empty")
        self._secret = ""
        self._label = ""

    @property
    def holding(self) -> bool:
        return bool(self._secret)

    def show_once(self, label: str, secret: str) -> None:
        """Take the secret to show (masked) until the widget is dismissed or its screen closes."""
        self._secret, self._label = secret, label
        self.revealed = False
        self.remove_class("-empty")
        self.refresh(layout=True)

    def action_toggle_shown(self) -> None:
        if self._secret:
            self.revealed = not self.revealed

    def action_copy(self) -> None:
        if not self._secret:
            return
        self.app.copy_to_clipboard(self._secret)
        self.app._clipboard = ""  # Textual keeps a copy for in-app paste; the secret must not stay
        self.post_message(self.Copied())
        self.notify("Secret key copied to your terminal's clipboard (OSC 52)")

    def action_forget(self) -> None:
        self._secret = ""
        self.revealed = False
        self.add_class("-empty")
        self.refresh(layout=True)

    def on_unmount(self) -> None:
        self._secret = ""

    def render(self) -> Content:
        shown = self._secret if self.revealed else MASK * len(self._secret)
        return Content.assemble(
            (f"{self._label}\n", "bold"),
            (shown, "bold reverse" if self.revealed else ""),
            "\nShown only now: v show/hide · y copy · f forget. It is gone when you leave.",
        )
