"""A family's timeline: one line per event, oldest first, scrolled with the keyboard.

The screen hands in plain (when, text) pairs; ``when`` is already formatted ("2026-06-01 16:00"
or "now" for a current state). Long lines wrap under their text, not under the time.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual.content import Content
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from widgets.plain import plain

WHEN_WIDTH = 16


class Timeline(OptionList):
    """Events as options, so arrows, page keys and home/end move through them."""

    DEFAULT_CSS = """
    Timeline, Timeline:focus { height: 1fr; border: none; padding: 0; }
    """

    def show(self, events: Sequence[tuple[str, str]]) -> None:
        self.clear_options()
        self.add_options(
            [Option(plain(f"{when:<{WHEN_WIDTH}} {text}")) for when, text in events]
            or [Option(Content("Nothing has happened yet."), disabled=True)]
        )
        if events:
            self.highlighted = len(events) - 1  # the newest is what the caller asks about
