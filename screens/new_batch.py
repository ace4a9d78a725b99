"""Start a delivery batch: name it, choose its families, read the dry run, then create it.

The scope is typed (``lea``, ``plan``, ``grade 5``, ``school <CDS>``, ``group <student group name>``),
and may be narrowed to one program and one administration year. ``enter`` in any field runs the dry
run: counts, families without email, the SSRs left out because families already have them or they
are in another batch, and the first lines of both messages in every language. Sending those again
is a separate choice: a re-send reason, which the audit log keeps. Create stays disabled until a
dry run of exactly these fields has been shown.
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
from services.delivery import batches
from services.delivery.sending_time import SendingTime


class NewBatchScreen(ModalScreen[int | None]):
    CSS_PATH = "new_batch.tcss"
    BINDINGS = [Binding("escape", "close", "Close")]

    def __init__(self, ctx: ConsoleContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.previewed: tuple[str, ...] | None = None
        self.policy: batches.PasswordPolicy | None = None
        self.creating = False  # the batch is being created in a worker

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Input(placeholder="Batch name, e.g. Spring 2026 ELPAC", id="name")
            yield Input(
                placeholder="Scope: lea, plan, corrections, grade 5, school <CDS>, group <name>",
                id="scope",
            )
            with Horizontal():
                yield Input(placeholder="Program: CAASPP, ELPAC (blank: both)", id="program")
                yield Input(placeholder="Year, e.g. 2026 (blank: all)", id="year")
            yield Input(
                placeholder="Re-send reason (blank: only SSRs families have not been sent)",
                id="resend",
            )
            with Horizontal():
                yield Button("Dry run", id="dry-run")
                yield Button("Create batch", id="create", variant="primary", disabled=True)
            yield Static("Type a name and a scope, then press enter for the dry run.", id="preview")

    def on_mount(self) -> None:
        self.query_one("#name", Input).focus()

    def _fields(self) -> tuple[str, ...]:
        names = ("scope", "program", "year")
        values = (self.query_one(f"#{name}", Input).value for name in names)
        resend = self.query_one("#resend", Input).value.strip()
        return (self.query_one("#name", Input).value.strip(), *values, resend)

    def _selection(self, fields: tuple[str, ...]) -> batches.Selection:
        _, scope, program, year, _ = fields
        selection = batches.parse_scope(self.ctx.engine, self.ctx.operator, scope)
        return batches.narrowed(selection, program, year)

    def on_input_changed(self, _: Input.Changed) -> None:
        self.query_one("#create", Button).disabled = (
            self.creating or self._fields() != self.previewed
        )

    def on_input_submitted(self, _: Input.Submitted) -> None:
        self._dry_run()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "dry-run":
            self._dry_run()
        elif event.button.id == "create":
            self._create()

    @work(thread=True, exclusive=True, group="dry-run")
    def _dry_run(self) -> None:
        fields = self._fields()
        ctx = self.ctx
        try:
            preview = batches.dry_run(
                ctx.engine, ctx.operator, self._selection(fields), resend=bool(fields[-1])
            )
            self.policy = batches.PasswordPolicy.from_settings(ctx.settings)
            sending = batches.dry_run_sending_time(
                ctx.engine,
                ctx.settings,
                ctx.operator,
                self._selection(fields),
                preview,
                by_sms=self.policy.channel == "sms",
            )
        except ConsoleError as error:
            self.app.call_from_thread(self._show_error, str(error))
            return
        self.app.call_from_thread(self._show_preview, fields, preview, sending)

    def _show_error(self, message: str) -> None:
        self.previewed, self.creating = None, False
        self.query_one("#create", Button).disabled = True
        self.query_one("#preview", Static).update(
            Content.from_markup("[b]Not possible:[/b] $message", message=safe_text(message))
        )

    def _show_preview(
        self, fields: tuple[str, ...], preview: batches.DryRun, sending: SendingTime
    ) -> None:
        languages = ", ".join(
            f"{LANGUAGES[code]} {count:,}" for code, count in sorted(preview.by_language.items())
        )
        samples = "\n".join(
            f"[b]{LANGUAGES[s.language]}[/b]\n  1: {s.document.subject}\n  2: {s.password.subject}"
            for s in preview.samples
        )
        self.query_one("#preview", Static).update(
            f"{preview.families:,} families will get {preview.ssrs:,} SSRs by email.\n"
            f"They are households of {preview.guardians:,} entitled guardians.\n"
            f"{self._left_out(preview)}\n"
            f"{preview.without_email:,} families in this scope have no email address "
            "(plan print or paper for them).\n"
            f"By language: {languages or 'none'}\n"
            f"Passwords go by {self.policy.channel if self.policy else 'email'}, "
            f"{self._delay()} after each document is accepted.\n"
            f"{sending.text()}\n\n{samples}"
        )
        self.previewed = fields if preview.families else None
        self.query_one("#create", Button).disabled = self._fields() != self.previewed

    def _create(self) -> None:
        fields = self._fields()
        if fields != self.previewed:
            self.notify("Run the dry run for these fields first", severity="warning")
            return
        if self.creating:  # a second press while the first is being created
            return
        self.creating = True
        self.query_one("#create", Button).disabled = True
        self.query_one("#preview", Static).update("Creating the batch…")
        self._create_batch(fields)

    @work(thread=True, exclusive=True, group="create")
    def _create_batch(self, fields: tuple[str, ...]) -> None:
        """Off the UI thread: a batch over a district selects and writes tens of thousands of
        rows, and the console must keep drawing meanwhile."""
        ctx = self.ctx
        try:
            policy = self.policy or batches.PasswordPolicy.from_settings(ctx.settings)
            batch_id = batches.create(
                ctx.engine,
                ctx.operator,
                self._selection(fields),
                name=fields[0],
                password_channel=policy.channel,
                password_delay=policy.delay,
                resend_reason=fields[-1] or None,
            )
        except ConsoleError as error:
            self.app.call_from_thread(self._show_error, str(error))
            return
        self.app.call_from_thread(self._created, batch_id)

    def _created(self, batch_id: int) -> None:
        self.notify(f"Batch {batch_id} created; the worker starts sending it", title="New batch")
        self.dismiss(batch_id)

    @staticmethod
    def _left_out(preview: batches.DryRun) -> str:
        """What the batch leaves out and why, or that a re-send leaves nothing out."""
        if preview.resend:
            return "Re-send: SSRs families already have are sent again; the reason is audited."
        left_out = preview.left_out_sent + preview.left_out_under_way
        if not left_out:
            return "No SSR in this scope has been sent or is in another batch."
        return (
            f"Left out: {left_out:,} SSRs ({preview.left_out_sent:,} already sent, "
            f"{preview.left_out_under_way:,} in another batch); {preview.left_out_families:,} "
            "families have nothing new. To send them again, give a re-send reason."
        )

    def _delay(self) -> str:
        minutes = self.policy.delay.total_seconds() / 60 if self.policy else 5
        return f"{minutes:g} minutes" if minutes else "right"

    def action_close(self) -> None:
        self.dismiss(None)
