"""The small keyboard-only dialogs of the credential screen: a note, a confirmation, a reason.

A dialog runs its action itself when submitted; if the service refuses (bad input, not allowed,
reset not coordinated), the sentence appears in the dialog and everything typed stays there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from services.core.display import safe_text
from services.core.errors import ConsoleError
from widgets.plain import PlainInput, plain


@dataclass(frozen=True)
class FormField:
    name: str
    label: str
    placeholder: str = ""
    value: str = ""
    password: bool = False


class FormDialog(ModalScreen[bool]):
    """Fields one under another; enter moves on and submits from the last; esc cancels."""

    DEFAULT_CSS = """
    FormDialog { align: center middle; }
    FormDialog > VerticalScroll {
        width: 76; max-width: 100%; height: auto; max-height: 100%;
        border: round $primary; padding: 0 1; background: $surface;
    }
    FormDialog.-loud > VerticalScroll { border: heavy $error; }
    FormDialog .intro { margin-bottom: 1; }
    FormDialog #error { color: $error; text-style: bold; }
    FormDialog Input { margin-bottom: 0; }
    """
    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "submit", "Submit"),
        Binding("enter", "submit", "Confirm", show=False),
    ]

    def __init__(
        self,
        title: str,
        intro: str,
        fields: list[FormField],
        submit: Callable[[dict[str, str]], object],
        *,
        loud: bool = False,
    ) -> None:
        super().__init__(classes="-loud" if loud else "")
        self.dialog_title = title
        self.intro = intro
        self.fields = fields
        self._submit = submit

    def compose(self) -> ComposeResult:
        with VerticalScroll() as box:
            box.border_title = self.dialog_title
            box.border_subtitle = (
                "enter: next/submit · esc: cancel"
                if self.fields
                else "enter: confirm · esc: cancel"
            )
            yield Static(plain(self.intro), classes="intro")
            for field in self.fields:
                yield Label(plain(field.label))
                yield PlainInput(
                    value=safe_text(field.value),
                    placeholder=field.placeholder,
                    password=field.password,
                    id=f"field-{field.name}",
                )
            yield Static("", id="error")

    def on_mount(self) -> None:
        inputs = self.query(Input)
        if inputs:
            inputs.first().focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        inputs = list(self.query(Input))
        position = inputs.index(event.input)
        if position + 1 < len(inputs):
            inputs[position + 1].focus()
        else:
            self.action_submit()

    def action_submit(self) -> None:
        values = {f.name: self.query_one(f"#field-{f.name}", Input).value for f in self.fields}
        try:
            self._submit(values)
        except ConsoleError as refusal:
            self.query_one("#error", Static).update(plain(str(refusal)))
            return
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)
