"""The `?` overlay: every key of the screen it was opened on, read from the live bindings.

It is generated from ``Screen.active_bindings`` (focused widget, screen and app), so it lists
exactly what works at that moment and never goes stale as screens add keys.
"""

from __future__ import annotations

from typing import NamedTuple

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen, Screen
from textual.widgets import Static


class KeyHelp(NamedTuple):
    group: str
    key: str
    description: str


def help_text(binding: Binding) -> str:
    """What the help says a key does: its ``tooltip`` where the footer's short description needs
    more words (the footer fits 80 columns), else the description."""
    return binding.tooltip or binding.description or binding.action.replace("_", " ")


def describe_keys(screen: Screen[object]) -> list[KeyHelp]:
    """The active keys of ``screen``: its own first, then the focused widget's, then app-wide."""
    app = screen.app
    ranked: dict[tuple[int, str, str], str] = {}
    for key, active in screen.active_bindings.items():
        binding = active.binding
        if binding.system:
            continue
        node = active.node
        if node is screen:
            rank, group = 0, f"This screen ({screen.title or type(screen).__name__})"
        elif node is app:
            rank, group = 2, "Everywhere"
        else:
            rank, group = 1, node.BINDING_GROUP_TITLE or f"Focused: {type(node).__name__}"
        # Each key itself: a footer's key_display may stand for several keys ("1-5").
        label = app.get_key_display(Binding(key, binding.action))
        description = help_text(binding)
        ranked.setdefault((rank, group, label), description)
    return [
        KeyHelp(group, label, text)
        for (_, group, label), text in sorted(ranked.items(), key=lambda item: item[0][:2])
    ]


class HelpScreen(ModalScreen[None]):
    """Lists keys in two columns so a whole screen's keys fit 80x24; esc, ? or q closes it."""

    CSS_PATH = "help.tcss"
    BINDINGS = [
        Binding("escape", "dismiss", "Close help"),
        Binding("question_mark", "dismiss", "Close help"),
        Binding("q", "dismiss", "Close help"),
    ]

    def __init__(self, title: str, keys: list[KeyHelp]) -> None:
        super().__init__()
        self.help_title = title
        self.keys = keys

    def compose(self) -> ComposeResult:
        left, right = self.columns
        with VerticalScroll() as scroll:
            scroll.border_title = f"Keys: {self.help_title}"
            scroll.border_subtitle = "esc or ? closes"
            with Horizontal():
                yield Static(left, id="left")
                yield Static(right, id="right")

    @property
    def lines(self) -> list[Content]:
        """Group headings (bold) each followed by its keys."""
        lines: list[Content] = []
        group = None
        for entry in self.keys:
            if entry.group != group:
                group = entry.group
                lines.append(Content.styled(group, "bold"))
            lines.append(Content(f" {entry.key:<10} {entry.description}"))
        return lines

    @property
    def columns(self) -> tuple[Content, Content]:
        """The lines split in two halves, never leaving a heading alone at the foot of a column."""
        lines = self.lines
        half = (len(lines) + 1) // 2
        if (
            half
            and lines[half - 1].plain not in {e.key for e in self.keys}
            and any(lines[half - 1].plain == e.group for e in self.keys)
        ):
            half -= 1
        return Content("\n").join(lines[:half]), Content("\n").join(lines[half:])
