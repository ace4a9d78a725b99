"""Tell families first: a notice batch, sent on a chosen date before the SSRs go out.

Name it, type its scope as for a delivery batch (``lea``, ``plan``, ``grade 5``, ``school <CDS>``,
``group <name>``) and a send date (``2026-12-03``: 8:00 where the LEA is; blank: now). ``enter``
shows the preview: families reached and not, by language, the sender address families are told
to expect, and the notice's subject in every language. Create stays disabled until the preview of
exactly these fields has been shown. The worker sends the notices when the date comes.
"""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from services.core.context import ConsoleContext
from services.core.display import safe_text
from services.core.errors import ConsoleError
from services.core.validation import LANGUAGES
from services.delivery import batches, notices


class NoticeBatchScreen(ModalScreen[int | None]):
    CSS_PATH = "notice_batch.tcss"
    BINDINGS = [Binding("escape", "close", "Close")]

    def __init__(self, ctx: ConsoleContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.previewed: tuple[str, ...] | None = None

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Input(placeholder="Batch name, e.g. Notice before spring SSRs", id="name")
            yield Input(
                placeholder="Scope: lea, plan, grade 5, school <CDS>, group <name>", id="scope"
            )
            yield Input(
                placeholder="Send on, e.g. 2026-12-03 or 2026-12-03 16:30 (blank: now)", id="when"
            )
            with Horizontal():
                yield Button("Preview", id="preview-button")
                yield Button("Create notice batch", id="create", variant="primary", disabled=True)
            yield Static(
                "Tell families how their SSRs will come, some days before they do. Type a name, "
                "a scope and a date, then press enter.",
                id="preview",
            )

    def on_mount(self) -> None:
        self.query_one("#name", Input).focus()

    def _fields(self) -> tuple[str, ...]:
        return tuple(
            self.query_one(f"#{n}", Input).value.strip() for n in ("name", "scope", "when")
        )

    def on_input_changed(self, _: Input.Changed) -> None:
        self.query_one("#create", Button).disabled = self._fields() != self.previewed

    def on_input_submitted(self, _: Input.Submitted) -> None:
        self._preview()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "preview-button":
            self._preview()
        elif event.button.id == "create":
            self._create()

    @work(thread=True, exclusive=True, group="notice-preview")
    def _preview(self) -> None:
        fields = self._fields()
        ctx = self.ctx
        try:
            selection = batches.parse_scope(ctx.engine, ctx.operator, fields[1])
            send_at = notices.parse_send_at(fields[2], ctx.settings)
            found = notices.preview(ctx.engine, ctx.settings, ctx.operator, selection, send_at)
            zone = notices.lea_zone(ctx.settings)
        except ConsoleError as error:
            self.app.call_from_thread(self._show_error, str(error))
            return
        self.app.call_from_thread(
            self._show_preview, fields, found, f"{send_at.astimezone(zone):%Y-%m-%d %H:%M %Z}"
        )

    def _show_error(self, message: str) -> None:
        self.previewed = None
        self.query_one("#create", Button).disabled = True
        self.query_one("#preview", Static).update(
            Content.from_markup("[b]Not possible:[/b] $message", message=safe_text(message))
        )

    def _show_preview(
        self, fields: tuple[str, ...], found: notices.NoticePreview, when: str
    ) -> None:
        languages = ", ".join(
            f"{LANGUAGES[code]} {count:,}" for code, count in sorted(found.by_language.items())
        )
        subjects = "\n".join(f"{LANGUAGES[s.language]}: {s.subject}" for s in found.samples)
        text = (
            f"{found.families:,} families will be told on {when}.\n"
            f"{found.without_email:,} families in this scope have no email address.\n"
            f"By language: {languages or 'none'}\n"
            f"It names the sender {found.sender}, says the password comes by "
            f"{found.password_channel}, and that the district never asks for it.\n\n{subjects}"
        )
        self.query_one("#preview", Static).update(Content(safe_text(text, multiline=True)))
        self.previewed = fields if found.families else None
        self.query_one("#create", Button).disabled = self._fields() != self.previewed

    def _create(self) -> None:
        fields = self._fields()
        if fields != self.previewed:
            self.notify("Show the preview for these fields first", severity="warning")
            return
        self._create_batch(fields)

    @work(thread=True, exclusive=True, group="notice-create")
    def _create_batch(self, fields: tuple[str, ...]) -> None:
        ctx = self.ctx
        try:
            selection = batches.parse_scope(ctx.engine, ctx.operator, fields[1])
            send_at = notices.parse_send_at(fields[2], ctx.settings)
            batch_id = notices.create(
                ctx.engine, ctx.settings, ctx.operator, selection, name=fields[0], send_at=send_at
            )
        except ConsoleError as error:
            self.app.call_from_thread(self._show_error, str(error))
            return
        self.app.call_from_thread(self._created, batch_id)

    def _created(self, batch_id: int) -> None:
        self.notify(
            f"Notice batch {batch_id} created; the worker sends it on its date", title="Notice"
        )
        self.dismiss(batch_id)

    def action_close(self) -> None:
        self.dismiss(None)
