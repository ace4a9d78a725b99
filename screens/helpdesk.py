"""Help desk: find a family, read its timeline, and resend, correct the email or move the channel.

Type an SSID, a name ("last first"), an email or a phone number and press enter; pick a line
with the arrows and enter to open the family. On the family screen: f resends the document, k
the password (both under a new password), e corrects the email address, m moves the family to
another channel; each asks for a reason, and the service writes the audit event with the change.
u opens a message in doubt (the relay never answered): the help desk reads it, recipient masked;
a coordinator decides it (``services.access.permissions`` says why).
A help desk operator's email correction is a request: A (on the help desk screen) opens the
approvals list where a coordinator approves (y) or rejects (n) it.
"""

from __future__ import annotations

from functools import partial

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Input, Static

from screens.base import ConsoleScreen
from services.core.channels import Option
from services.core.context import ConsoleContext
from services.core.errors import ConsoleError, InvalidInput
from services.delivery import batches
from services.delivery.in_doubt import in_doubt
from services.delivery.ledger import Step
from services.helpdesk import email_changes
from services.helpdesk import families as helpdesk
from services.helpdesk.email_changes import PendingChange
from services.helpdesk.families import Family, Hit
from widgets.form_dialog import FormDialog, FormField
from widgets.plain import PlainInput, PlainTable, plain
from widgets.resolve_dialog import decide_in_doubt
from widgets.timeline import Timeline

WIDTHS = {"SSID": 10, "Student": 20, "Gr": 2, "Guardian": 18, "Email or phone": 20}


class HelpDeskScreen(ConsoleScreen):
    TITLE = "Help desk"
    BINDINGS = [
        Binding("slash", "focus_search", "Search"),
        Binding("A", "approvals", "Approvals"),
    ]
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
        if email_changes.may_approve(self.ctx.operator):
            self._count_approvals()

    @work(thread=True, exclusive=True, group="helpdesk-approvals")
    def _count_approvals(self) -> None:
        try:
            waiting = len(email_changes.pending(self.ctx.engine, self.ctx.operator))
        except ConsoleError:
            return  # the count is a hint; the approvals screen says what went wrong
        if waiting:
            self.app.call_from_thread(
                self._status,
                f"{waiting} email change(s) wait for your approval: tab, then A · "
                "or type what the caller gives you and press enter",
            )

    def action_focus_search(self) -> None:
        self.query_one("#search", Input).focus()

    def action_approvals(self) -> None:
        if not email_changes.may_approve(self.ctx.operator):
            self.notify(
                "Only a coordinator approves a change of a family's email address",
                severity="error",
            )
            return
        self.app.push_screen(EmailApprovalsScreen(self.ctx))

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
        Binding("u", "in_doubt", "In doubt", show=False),
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
            if c.email_failing:
                lines.append(f"  Email failing (bounced, correct it): {c.email_failing}")
        if family.waiting_change:
            lines.append(family.waiting_change)
        lines.append(f"Channel: {family.channel}")
        if family.deliveries:
            d = family.deliveries[-1]
            lines.append(f"Secure email: batch {d.batch_id}, {d.state}, to {d.address}")
        if any(d.in_doubt for d in family.deliveries):
            lines.append("A message is in doubt: u shows it")
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

    def action_in_doubt(self) -> None:
        """Open the family's message in doubt: the help desk reads it (recipient masked), a
        coordinator may decide it here as on the batch progress screen."""
        doubtful = [d for d in self.family.deliveries if d.in_doubt] if self.family else []
        if not doubtful:
            self.notify("No message of this family is in doubt", severity="warning")
            return
        ctx, item_id = self.ctx, doubtful[-1].item_id
        decide_in_doubt(
            self,
            partial(in_doubt, ctx.engine, ctx.operator, item_id),
            partial(batches.resolve, ctx.engine, ctx.operator, item_id),
            self.reload,
        )

    def action_correct_email(self) -> None:
        guardian = self._primary()
        if guardian is None or self.family is None:
            return
        ctx = self.ctx

        def submit(values: dict[str, str]) -> None:
            email_changes.correct_email(
                ctx.engine, ctx.operator, guardian, values["email"], values["reason"]
            )

        if email_changes.may_approve(ctx.operator):
            effect = (
                "Deliveries not yet sent go to the new address; to send again what already "
                "went out, resend afterwards."
            )
            done = "Email address corrected"
        else:
            effect = (
                "A coordinator approves the change before anything goes there; until then the "
                "address on file stays and resends are held."
            )
            done = "Change asked: it takes effect when a coordinator approves it"
        self._ask(
            FormDialog(
                "Correct the email address",
                f"For {self.family.contacts[0].name}. {effect}",
                [
                    FormField("email", "New email address", value=self.family.contacts[0].email),
                    FormField("reason", "Reason (required)", "e.g. typo on the enrolment form"),
                ],
                submit,
            ),
            done,
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


class EmailApprovalsScreen(ConsoleScreen):
    """Email changes the help desk asked for, waiting for a coordinator: approve or reject each."""

    TITLE = "Email changes to approve"
    BINDINGS = [
        Binding("y", "approve", "Approve"),
        Binding("n", "reject", "Reject"),
    ]
    CSS_PATH = "helpdesk.tcss"

    def __init__(self, ctx: ConsoleContext) -> None:
        super().__init__(ctx)
        self.changes: list[PendingChange] = []

    def compose_body(self) -> ComposeResult:
        yield PlainTable(id="changes", cursor_type="row", zebra_stripes=True)
        yield Static("Loading…", id="status")

    def on_mount(self) -> None:
        table = self.query_one("#changes", DataTable)
        for column, width in (("SSID", 10), ("Family", 16), ("Now", 16), ("Asked", 16)):
            table.add_column(column, width=width)
        table.add_column("By", width=9)
        self.reload()

    def reload(self) -> None:
        self._load()

    @work(thread=True, exclusive=True, group="email-approvals")
    def _load(self) -> None:
        try:
            changes = email_changes.pending(self.ctx.engine, self.ctx.operator)
        except ConsoleError as error:
            self.app.call_from_thread(self._status, str(error))
            return
        self.app.call_from_thread(self._show, changes)

    def _status(self, text: str) -> None:
        if self.is_attached:
            self.query_one("#status", Static).update(plain(text))

    def _show(self, changes: list[PendingChange]) -> None:
        if not self.is_attached:  # the screen was closed while the worker ran
            return
        self.changes = changes
        table = self.query_one("#changes", DataTable)
        table.clear()
        table.add_rows(
            [(c.ssid, c.guardian, c.old_email, c.new_email, c.requested_by) for c in changes]
        )
        if changes:
            chosen = changes[0]
            self._status(
                f"{len(changes)} waiting · y approve · n reject · first: “{chosen.reason}”"
            )
            table.focus()
        else:
            self._status("No email change waits for a decision.")

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if 0 <= event.cursor_row < len(self.changes):
            chosen = self.changes[event.cursor_row]
            self._status(
                f"Asked by {chosen.requested_by} on {chosen.requested_at:%Y-%m-%d %H:%M}: "
                f"“{chosen.reason}” · y approve · n reject"
            )

    def _chosen(self) -> PendingChange | None:
        row = self.query_one("#changes", DataTable).cursor_row
        if 0 <= row < len(self.changes):
            return self.changes[row]
        self.notify("No request chosen", severity="error")
        return None

    def _decide(self, dialog: FormDialog, done: str) -> None:
        def closed(submitted: bool | None) -> None:
            if submitted:
                self.notify(done, title="Email changes")
                self.reload()

        self.app.push_screen(dialog, closed)

    def action_approve(self) -> None:
        chosen = self._chosen()
        if chosen is None:
            return
        ctx = self.ctx

        def submit(_: dict[str, str]) -> None:
            email_changes.approve(ctx.engine, ctx.operator, chosen.change_id)

        self._decide(
            FormDialog(
                "Approve the new email address",
                f"{chosen.guardian} (SSID {chosen.ssid}): {chosen.old_email or 'no email'} → "
                f"{chosen.new_email}, asked by {chosen.requested_by}. Deliveries not yet sent "
                "go to the new address from now on.",
                [],
                submit,
            ),
            "Approved: the new address is on file",
        )

    def action_reject(self) -> None:
        chosen = self._chosen()
        if chosen is None:
            return
        ctx = self.ctx

        def submit(values: dict[str, str]) -> None:
            email_changes.reject(ctx.engine, ctx.operator, chosen.change_id, values["reason"])

        self._decide(
            FormDialog(
                "Reject the new email address",
                f"{chosen.guardian} (SSID {chosen.ssid}) keeps {chosen.old_email or 'no email'}.",
                [FormField("reason", "Reason (required)", "e.g. the family did not ask for it")],
                submit,
            ),
            "Rejected: the address on file stays",
        )
