"""Question widgets for short keyboard-first forms: a one-line yes/no answered with y or n.

The pressed answer shows as a dot and the highlighted one is underlined, so both read under
NO_COLOR.

Answering by letter moves on to the next question, so a form of yes/no questions is a few
keystrokes; arrows and space still work as in any RadioSet.
"""

from __future__ import annotations

from textual.binding import Binding
from textual.widgets import RadioButton, RadioSet


class _Choice(RadioButton):
    """A radio button whose dot shows only when pressed, so the answer reads without colour."""

    @property
    def BUTTON_INNER(self) -> str:  # type: ignore[override]
        return "●" if self.value else " "


class YesNo(RadioSet):
    """A yes/no answer on one line; ``value`` is True, False or None (not answered yet)."""

    BINDING_GROUP_TITLE = "Yes/no question"
    BINDINGS = [
        Binding("y", "answer(True)", "Yes", show=False),
        Binding("n", "answer(False)", "No", show=False),
    ]
    DEFAULT_CSS = """
    YesNo { layout: horizontal; height: 1; width: auto; }
    YesNo > RadioButton { width: auto; margin-right: 2; }
    YesNo:focus > RadioButton.-selected > .toggle--label { text-style: bold underline; }
    """

    def __init__(self, value: bool | None = None, *, id: str | None = None) -> None:
        super().__init__(
            _Choice("Yes", value=value is True),
            _Choice("No", value=value is False),
            id=id,
            compact=True,
        )

    @property
    def value(self) -> bool | None:
        index = self.pressed_index
        return None if index < 0 else index == 0

    def answer(self, yes: bool) -> None:
        """Press Yes or No (posts ``Changed`` like a keypress would)."""
        self.query(RadioButton)[0 if yes else 1].value = True

    def action_answer(self, yes: bool) -> None:
        """Answer by letter, then move on to the next question."""
        self.answer(yes)
        self.screen.focus_next()
