"""Help desk: find a family, read its timeline, and resend, correct the email or move the channel.

Type an SSID, a name ("last first"), an email or a phone number and press enter; pick a line
with the arrows and enter to open the family. On the family screen: f resends the document, k
the password (both under a new password), e corrects the email address, m moves the family to
another channel; each asks for a reason, and the service writes the audit event with the change.
"""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Input, Static

from screens.base import ConsoleScreen
from services.core.channels import Option
from services.core.context import ConsoleContext
from services.core.errors import ConsoleError, InvalidInput
from services.delivery.ledger import Step
from services.helpdesk import families as helpdesk
from services.helpdesk.families import Family, Hit
from widgets.form_dialog import FormDialog, FormField
from widgets.plain import PlainInput, PlainTable, plain
from widgets.timeline import Timeline

WIDTHS = {"SSID": 10, "Student": 20, "Gr": 2, "Guardian": 18, "Email or phone": 20}


class HelpDeskScreen(ConsoleScreen):
    TITLE = "Help desk"
    BINDINGS = [Binding("slash", "focus_search", "Search")]
    CSS_PATH = "helpdesk.tcss"

    def __init__(self, ctx: ConsoleContext) -> None:
        super().__init__(ctx)
        self.hits: list[Hit] = []

    def compose_body(self) -> ComposeResult:
        yield PlainInput(placeholder="SSID, name (last first), email or phone; enter", id="search")
        yield PlainTable(id="hits", cursor_type="row", zebra_stripes=True)
        yield Static("Type what the caller gives you and press enter.", id="status")

    def on_mount(self) -> None:
        table = self.query_one("#hits", DataTable)
        for column in helpdesk.search_columns():
            table.add_column(column, width=WIDTHS.get(column))
        self.query_one("#search", Input).focus()

    def action_focus_search(self) -> None:
        self.query_one("#search", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.query_one("#status", Static).update("Searching…")
        self._search(event.value)

    @work(thread=True, exclusive=True, group="helpdesk-search")
    def _search(self, text: str) -> None:
        try:
            hits = helpdesk.search(self.ctx.engine, self.ctx.operator, text)
        except ConsoleError as error:
            self.app.call_from_thread(self._status, str(error))
            return
        self.app.call_from_thread(self._show, text, hits)

    def _status(self, text: str) -> None:
        if not self.is_attached:  # the screen was closed while the worker ran
            return
        self.query_one("#status", Static).update(plain(text))

    def _show(self, text: str, hits: list[Hit]) -> None:
        if not self.is_attached:  # the screen was closed while the worker ran
            return
        self.hits = hits
        table = self.query_one("#hits", DataTable)
        table.clear()
        table.add_rows([(h.ssid, h.student, str(h.grade), h.guardian, h.contact) for h in hits])
        if hits:
            more = " (first 50; type more)" if len(hits) >= helpdesk.SEARCH_LIMIT else ""
            self._status(f"{len(hits)} found for “{text.strip()}”{more} · enter opens · / search")
            table.focus()
        else:
            self._status(f"Nothing found for “{text.strip()}”." if text.strip() else "")

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if 0 <= event.cursor_row < len(self.hits):
            self.app.push_screen(FamilyScreen(self.ctx, self.hits[event.cursor_row].student_id))


class FamilyScreen(ConsoleScreen):
    """One student's family: contacts, channel, deliveries and the timeline, with the actions."""

    TITLE = "Family"
    BINDINGS = [
        Binding("f", "resend('document')", "Resend document"),
        Binding("k", "resend('password')", "Resend password (key)"),
        Binding("e", "correct_email", "Correct email"),
        Binding("m", "move_channel", "Move channel"),
    ]
    CSS_PATH = "helpdesk.tcss"

    def __init__(self, ctx: ConsoleContext, student_id: int) -> None:
        super().__init__(ctx)
        self.student_id = student_id
        self.family: Family | None = None

    def compose_body(self) -> ComposeResult:
        yield Static("Loading…", id="card")
        yield Timeline(id="timeline")

    def on_mount(self) -> None:
        self.reload()

    def reload(self) -> None:
        self._load()

    @work(thread=True, exclusive=True, group="helpdesk-family")
    def _load(self) -> None:
        try:
            found = helpdesk.family(self.ctx.engine, self.ctx.operator, self.student_id)
        except ConsoleError as error:
            self.app.call_from_thread(self._refused, str(error))
            return
        self.app.call_from_thread(self._show, found)

    def _refused(self, text: str) -> None:
        if not self.is_attached:  # the screen was closed while the worker ran
            return
        self.query_one("#card", Static).update(plain(text))

    def _show(self, family: Family) -> None:
        if not self.is_attached:  # the screen was closed while the worker ran
            return
        self.family = family
        self.sub_title = family.ssid
        lines = [f"{family.student} · SSID {family.ssid} · grade {family.grade} · {family.school}"]
        for c in family.contacts[:2]:
            role = "primary" if c.primary else c.relationship
            reach = " · ".join(x for x in (c.email or "no email", c.phone) if x)
            lines.append(f"{c.name} ({role}, {c.language}): {reach}")
        lines.append(f"Channel: {family.channel}")
        if family.deliveries:
            d = family.deliveries[-1]
            lines.append(f"Secure email: batch {d.batch_id}, {d.state}, to {d.address}")
        self.query_one("#card", Static).update(plain("\n".join(lines)))
        self.query_one(Timeline).show(
            [(e.at.strftime("%Y-%m-%d %H:%M") if e.at else "now", e.text) for e in family.events]
        )
        self.query_one(Timeline).focus()

    def _primary(self) -> int | None:
        if self.family is None or not self.family.contacts:
            self.notify("This student has no guardian on file", severity="error")
            return None
        return self.family.contacts[0].guardian_id

    def _ask(self, dialog: FormDialog, done: str) -> None:
        def closed(submitted: bool | None) -> None:
            if submitted:
                self.notify(done, title="Help desk")
                self.reload()

        self.app.push_screen(dialog, closed)

    def action_resend(self, step: str) -> None:
        if self.family is None:
            return
        if not self.family.deliveries:
            self.notify("This family has no secure-email delivery to resend", severity="error")
            return
        delivery = self.family.deliveries[-1]
        chosen = Step(step)
        ctx = self.ctx

        def submit(values: dict[str, str]) -> None:
            helpdesk.resend(ctx.engine, ctx.operator, delivery.item_id, chosen, values["reason"])

        self._ask(
            FormDialog(
                f"Resend the {chosen.value}",
                "The family gets its reports again in a new package under a new password, "
                "then the password in a separate message; the old password will not open "
                "the new package. Goes to the email address on file now.",
                [FormField("reason", "Reason (required)", "e.g. guardian deleted the email")],
                submit,
            ),
            f"Resend of the {chosen.value} queued",
        )

    def action_correct_email(self) -> None:
        guardian = self._primary()
        if guardian is None or self.family is None:
            return
        ctx = self.ctx

        def submit(values: dict[str, str]) -> None:
            helpdesk.correct_email(
                ctx.engine, ctx.operator, guardian, values["email"], values["reason"]
            )

        self._ask(
            FormDialog(
                "Correct the email address",
                f"For {self.family.contacts[0].name}. Deliveries not yet sent go to the new "
                "address; to send again what already went out, resend afterwards.",
                [
                    FormField("email", "New email address", value=self.family.contacts[0].email),
                    FormField("reason", "Reason (required)", "e.g. typo on the enrolment form"),
                ],
                submit,
            ),
            "Email address corrected",
        )

    def action_move_channel(self) -> None:
        guardian = self._primary()
        if guardian is None:
            return
        ctx = self.ctx

        def submit(values: dict[str, str]) -> None:
            letter = values["channel"].strip().upper()
            if letter not in {o.value for o in Option}:
                raise InvalidInput("Type one letter: A, B, C or D")
            helpdesk.move_channel(
                ctx.engine, ctx.operator, guardian, Option(letter), values["reason"]
            )

        choices = " · ".join(f"{o.value} {o.caption}" for o in Option)
        self._ask(
            FormDialog(
                "Move the family to another channel",
                f"{choices}. The family's choice then wins over the plan's rule.",
                [
                    FormField("channel", "Channel letter"),
                    FormField("reason", "Reason (required)", "e.g. asked for paper at home"),
                ],
                submit,
            ),
            "Family moved",
        )
