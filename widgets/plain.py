"""Data on screen as plain text: never parsed as markup, control characters made visible.

A name like ``[/bold]`` ends a session when Textual parses it as markup (a DataTable parses
every ``str`` cell), and an escape sequence in it reaches the operator's terminal. Every widget
that shows data goes through ``plain`` or ``PlainTable`` (services/display.py does the escaping,
shared with the CLI).
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.content import Content
from textual.widgets import DataTable
from textual.widgets.data_table import RowKey

from services.display import safe_text


def plain(text: object) -> Content:
    """Text for a Static, Label or option: its lines kept, everything else shown as it is."""
    return Content(safe_text(text, multiline=True))


def cell(value: object) -> object:
    """A table cell: strings become plain one-line Text; numbers and renderables stay."""
    if isinstance(value, str):
        return Text(safe_text(value), end="")
    return value


class PlainTable(DataTable[Any]):
    """A DataTable whose string cells are data, not markup."""

    def add_row(
        self,
        *cells: Any,
        height: int | None = 1,
        key: str | None = None,
        label: Any = None,
    ) -> RowKey:
        return super().add_row(*(cell(c) for c in cells), height=height, key=key, label=label)
