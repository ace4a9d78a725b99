"""Horizontal bar chart in block characters: one line per bar, readable without colour.

Each line is ``label  ████████▍      62%``; the bar's end uses the eighth-block characters, so a
40-column bar shows 320 steps. The widget is given plain (label, share, note) values by its
screen and never touches the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from textual.widgets import Static

from widgets.plain import plain

EIGHTHS = " ▏▎▍▌▋▊▉"
FULL = "█"


class Bar(NamedTuple):
    label: str
    share: float  # 0.0 to 1.0
    note: str = ""  # printed after the bar, e.g. "62% of 1,204"


def bar(share: float, width: int) -> str:
    """A bar of ``width`` cells filled to ``share``."""
    steps = round(max(0.0, min(1.0, share)) * width * 8)
    full, part = divmod(steps, 8)
    text = FULL * full + (EIGHTHS[part] if part else "")
    return text.ljust(width)


def render_lines(bars: Sequence[Bar], width: int, label_width: int = 18) -> list[str]:
    """The chart's lines for a total ``width`` of cells."""
    notes = max((len(b.note) for b in bars), default=0)
    room = max(4, width - label_width - notes - 3)
    lines = []
    for item in bars:
        label = item.label[:label_width].ljust(label_width)
        lines.append(f"{label} {bar(item.share, room)} {item.note.rjust(notes)}")
    return lines


class BarChart(Static):
    """A titled chart that redraws itself to the width it is given."""

    DEFAULT_CSS = """
    BarChart { height: auto; padding: 0 1; }
    """

    def __init__(self, title: str = "", *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.chart_title = title
        self.bars: list[Bar] = []

    def show(self, bars: Sequence[Bar], title: str | None = None) -> None:
        self.bars = list(bars)
        if title is not None:
            self.chart_title = title
        self._draw()

    def on_resize(self) -> None:
        self._draw()

    def _draw(self) -> None:
        width = max(20, self.content_region.width or 76)
        lines = render_lines(self.bars, width)
        head = [self.chart_title] if self.chart_title else []
        self.update(plain("\n".join(head + (lines or ["(nothing to chart)"]))))
