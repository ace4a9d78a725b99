"""Data on screen as plain text: never parsed as markup, control characters made visible.

A name like ``[/bold]`` ends a session when Textual parses it as markup (a DataTable parses
every ``str`` cell), and an escape sequence in it reaches the operator's terminal. Every widget
that shows data goes through ``plain`` or ``PlainTable`` (services/core/display.py does the escaping,
shared with the CLI), and every field an operator types into is a ``PlainInput``.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.content import Content
from textual.widgets import DataTable, Input
from textual.widgets.data_table import RowKey

from services.core.display import safe_text
from services.core.errors import InvalidInput
from services.core.validation import plain_text


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


class PlainInput(Input):
    """An Input that refuses a typed or pasted control character with a sentence, so it is
    neither echoed to the operator's terminal nor stored for someone else's."""

    def replace(self, text: str, start: int, end: int) -> None:
        try:
            plain_text(text, "the text")
        except InvalidInput as refusal:
            self.app.bell()
            self.notify(str(refusal), title="Not typed", severity="warning")
            return
        super().replace(text, start, end)
