"""The small keyboard-only form dialog screens share: a note, a confirmation, a reason, a
person's details.

The credential, operators, help desk and reports screens all open it, so it lives with the other
shared pieces in widgets/ rather than in one of those screens. A dialog runs its action itself
when submitted; if the service refuses (bad input, not allowed, reset not coordinated), the
sentence appears in the dialog and everything typed stays there. The action (a service call
that reads or writes the database) runs in a worker thread: the dialog says it is saving and
ignores another submit meanwhile, and the console keeps drawing frames. So the action must not
touch widgets; ``App.notify`` and starting a worker are safe from a thread (Textual 8).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.dom import DOMNode
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static
from textual.worker import WorkerFailed

from services.core.display import safe_text
from services.core.errors import ConsoleError
from widgets.plain import PlainInput, plain

T = TypeVar("T")


async def off_the_loop(node: DOMNode, call: Callable[[], T]) -> T:
    """``call()`` in a thread worker of ``node``, awaited: its result, or the ``ConsoleError``
    it raised (a refusal to show in the dialog); the console draws frames meanwhile."""
    try:
        return await node.run_worker(call, thread=True, exit_on_error=False).wait()
    except WorkerFailed as failed:
        if isinstance(failed.error, ConsoleError):
            raise failed.error from None
        raise


@dataclass(frozen=True)
class FormField:
    name: str
    label: str
    placeholder: str = ""
    value: str = ""
    password: bool = False


class FormDialog(ModalScreen[bool]):
    """Fields one under another; enter moves on and submits from the last; esc cancels."""

    CSS_PATH = "form_dialog.tcss"
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
        self._busy = False

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

    async def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        inputs = list(self.query(Input))
        position = inputs.index(event.input)
        if position + 1 < len(inputs):
            inputs[position + 1].focus()
        else:
            await self.action_submit()

    async def action_submit(self) -> None:
        if self._busy:  # a second enter while the first is still being saved
            return
        values = {f.name: self.query_one(f"#field-{f.name}", Input).value for f in self.fields}
        self._busy = True
        error = self.query_one("#error", Static)
        error.update("Saving…")
        try:
            await off_the_loop(self, partial(self._submit, values))
        except ConsoleError as refusal:
            error.update(plain(str(refusal)))
            return
        finally:
            self._busy = False
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)
