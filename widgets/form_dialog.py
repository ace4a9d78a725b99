"""The small keyboard-only form dialog screens share: a note, a confirmation, a reason, a
person's details.

The credential, operators, help desk and reports screens all open it, so it lives with the other
shared pieces in widgets/ rather than in one of those screens. A dialog runs its action itself
when submitted; if the service refuses (bad input, not allowed, reset not coordinated), the
sentence appears in the dialog and everything typed stays there. With ``threaded=True`` the
action runs in a worker thread (a service call that reads or writes the database), the dialog
waiting for it without freezing the console.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static
from textual.worker import WorkerFailed

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
        threaded: bool = False,
    ) -> None:
        super().__init__(classes="-loud" if loud else "")
        self.dialog_title = title
        self.intro = intro
        self.fields = fields
        self._submit = submit
        self._threaded = threaded
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
        try:
            if self._threaded:
                run = partial(self._submit, values)
                await self.run_worker(run, thread=True, exit_on_error=False).wait()
            else:
                self._submit(values)
        except (ConsoleError, WorkerFailed) as failed:
            refusal = failed.error if isinstance(failed, WorkerFailed) else failed
            if not isinstance(refusal, ConsoleError):
                raise
            self.query_one("#error", Static).update(plain(str(refusal)))
            return
        finally:
            self._busy = False
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)
