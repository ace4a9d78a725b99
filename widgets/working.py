"""The line that says what a screen is doing while a service call runs in a worker.

Hidden when the screen is idle; one line per call under way otherwise ("Working: creating the
print batch…"), so a person over a slow SSH link sees that the key was taken, and why the key
that started it is dimmed until it is done.
"""

from __future__ import annotations

from collections.abc import Iterable

from textual.widgets import Static

from widgets.plain import plain


class WorkingLine(Static):
    DEFAULT_CSS = """
    WorkingLine { display: none; height: auto; padding: 0 1; background: $accent 30%; }
    WorkingLine.-busy { display: block; }
    """

    def show(self, doing: Iterable[str]) -> None:
        lines = [f"Working: {what}" for what in doing]
        self.set_class(bool(lines), "-busy")
        self.update(plain("\n".join(lines)))
