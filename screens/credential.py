"""The SIS-vendor credential of the operator's LEA: status, the key shown once, coordinated reset,
and the checklist of vendor systems that must be given the new key.

Coordinators (LEA CAASPP, LEA ELPAC) get the keys that change things (none of them shadows an
app-wide destination key; the shifted ones, R K X, are the weighty ones); everyone else sees status,
dates, notes and the checklist only (and the services refuse them anyway). A newly issued secret
goes straight from the service into the SecretReveal widget and nowhere else on the screen.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Static

from screens.base import ConsoleScreen
from screens.credential_forms import FormDialog, FormField
from services.access.permissions import Permission, allowed
from services.access.tables import Role
from services.core.context import ConsoleContext
from services.core.errors import ConsoleError
from services.credential import check as credential_check
from services.credential import lifecycle as credentials
from services.credential.lifecycle import (
    COORDINATORS,
    CredentialPolicy,
    CredentialStatus,
    IssuedCredential,
    StatusView,
)
from services.credential.tables import CredentialReset
from widgets.plain import PlainTable, plain
from widgets.secret_reveal import SecretReveal

MANAGE_ACTIONS = {
    "generate",
    "write_note",
    "acknowledge",
    "confirm",
    "carry_out",
    "withdraw",
    "emergency",
    "add_system",
    "retire_system",
    "mark_updated",
    "test_connection",
}
"""Actions shown only to the LEA CAASPP and LEA ELPAC coordinators."""


class CredentialScreen(ConsoleScreen):
    TITLE = "Credential"
    DEFAULT_CSS = """
    CredentialScreen VerticalScroll { padding: 0 1; }
    CredentialScreen #status { border: round $primary; padding: 0 1; height: auto; }
    CredentialScreen #status.-alert { border: heavy $error; }
    CredentialScreen #request { height: auto; padding: 0 1; }
    CredentialScreen DataTable {
        height: auto; max-height: 9; margin-top: 1; border-top: solid $primary;
    }
    CredentialScreen #roles { color: $text-muted; }
    """
    BINDINGS = [
        Binding("g", "generate", "Generate"),
        Binding("R", "write_note", "Request reset"),
        Binding("k", "acknowledge", "Acknowledge"),
        Binding("K", "confirm", "Agreed elsewhere"),
        Binding("x", "carry_out", "Reset now"),
        Binding("W", "withdraw", "Withdraw request", show=False),
        Binding("X", "emergency", "EMERGENCY reset", show=False),
        Binding("plus", "add_system", "Add system", show=False),
        Binding("minus", "retire_system", "Retire system", show=False),
        Binding("m", "mark_updated", "Mark updated"),
        Binding("t", "test_connection", "Test", show=False),
    ]

    def __init__(self, ctx: ConsoleContext) -> None:
        super().__init__(ctx)
        self.lea_id = ctx.operator.lea_id
        self.manager = ctx.operator.role in COORDINATORS and allowed(
            ctx.operator, Permission.MANAGE_CREDENTIAL
        )
        self.state: StatusView = StatusView(self.lea_id, CredentialStatus.NONE)
        self.pending: CredentialReset | None = None
        self.to_acknowledge: CredentialReset | None = None
        self.system_ids: list[int] = []
        self._focus_secret = False
        self.replaced = False  # the live key replaced an earlier one that systems may still hold

    def compose_body(self) -> ComposeResult:
        with VerticalScroll():
            yield Static("", id="status")
            yield SecretReveal(id="secret")
            yield Static("", id="request")
            systems = PlainTable(id="systems", cursor_type="row", zebra_stripes=True)
            systems.border_title = "Systems holding the credential (+ add, m updated, t test)"
            systems.add_columns("System", "Current key", "Last test", "Token URL")
            yield systems
            history = PlainTable(id="history", cursor_type="row")
            history.add_columns("Key", "Status", "Issued", "By", "Expires", "How")
            yield history
            notes = PlainTable(id="notes", cursor_type="row")
            notes.add_columns("#", "By", "Written", "Outcome", "Why", "When", "Vendor told")
            yield notes
            yield Static(plain(self._roles_text()), id="roles")

    def on_mount(self) -> None:
        self.title = self.TITLE
        self.reload()
        self.query_one("#systems", DataTable).focus()

    # --- what is shown ----------------------------------------------------------------------

    def reload(self) -> None:
        engine, operator = self.ctx.engine, self.ctx.operator
        self.state = credentials.status(engine, self.lea_id)
        self.pending = credentials.open_request(engine, self.lea_id)
        entries = credentials.history(engine, operator, self.lea_id)
        self.replaced = len(entries) > 1
        latest_reset = entries[0].reset if entries else None
        self.to_acknowledge = self.pending or (
            latest_reset
            if latest_reset and latest_reset.emergency_reason and not latest_reset.acknowledged_at
            else None
        )
        status = self.query_one("#status", Static)
        status.update(plain(self._status_text()))
        status.set_class(self.state.needs_attention, "-alert")
        status.border_title = "SIS-vendor credential"
        self.query_one("#request", Static).update(plain(self._request_text()))
        self._fill_systems()
        history = self.query_one("#history", DataTable)
        history.border_title = f"History ({len(entries)})"
        history.clear()
        for entry in entries:
            c = entry.credential
            history.add_row(
                c.fingerprint,
                entry.status.value,
                _when(c.created_at),
                c.created_by,
                f"{c.expires_at:%Y-%m-%d}",
                _how(entry.reset),
            )
        notes = self.query_one("#notes", DataTable)
        requests = credentials.reset_requests(engine, operator, self.lea_id)
        notes.border_title = f"Coordination notes ({len(requests)})"
        notes.clear()
        for r in requests:
            notes.add_row(
                f"#{r.id}",
                r.requested_by,
                _when(r.requested_at),
                _outcome(r),
                r.reason,
                r.planned_for or "-",
                r.vendor_contact or "-",
            )
        self.refresh_bindings()

    def _fill_systems(self) -> None:
        table = self.query_one("#systems", DataTable)
        row = table.cursor_row
        table.clear()
        items = credentials.checklist(self.ctx.engine, self.ctx.operator, self.lea_id)
        self.system_ids = [i.system.id for i in items if i.system.id is not None]
        for item in items:
            entry = item.entry
            if item.updated and entry is not None:
                given = f"updated {_when(entry.updated_at)} by {entry.updated_by}"
            else:
                given = "STILL ON OLD KEY" if self.replaced else "not given yet"
                if self.state.credential_id is None:
                    given = "no key yet"
            tested = "never"
            if entry is not None and entry.tested_at is not None:
                tested = f"{'OK' if entry.test_ok else 'FAILED'}: {entry.test_message}"
            table.add_row(item.system.name, given, tested, item.system.token_url or "none")
        if items:
            table.move_cursor(row=min(row, len(items) - 1))

    def _status_text(self) -> str:
        s = self.state
        if s.status is CredentialStatus.NONE:
            return "No credential yet." + (" Press g to generate one." if self.manager else "")
        lines = [
            f"Status    {s.status.value.upper()} · {s.countdown} · expires {s.expires_at:%Y-%m-%d}",
            f"Username  {s.username} · fingerprint {s.fingerprint}",
            f"Issued    {_when(s.created_at)} by {s.created_by}",
        ]
        if s.emergency:
            lines.append(
                "EMERGENCY  issued by override without coordination"
                + ("; acknowledged" if s.emergency_acknowledged else "; NOT YET ACKNOWLEDGED")
            )
        if s.systems_pending:
            lines.append(f"Checklist {s.systems_pending} system(s) still to be given this key")
        return "\n".join(lines)

    def _request_text(self) -> str:
        r = self.to_acknowledge
        if r is None:
            return ""
        who = (
            f"#{r.id} by {r.requested_by} ({Role(r.requested_role).label}), {_when(r.requested_at)}"
        )
        if r.emergency_reason:
            return (
                f"EMERGENCY reset {who}\n  Reason: {r.emergency_reason}\n"
                "  The other program's coordinator should acknowledge it (k)."
            )
        lines = [
            f"Reset note {who}",
            f"  Why: {r.reason}",
            f"  When: {r.planned_for} · vendor told: {r.vendor_contact}",
        ]
        if r.acknowledged_at:
            lines.append(f"  Acknowledged by {r.acknowledged_by}, {_when(r.acknowledged_at)}")
        if r.confirmed_at:
            lines.append(f"  Confirmed out of band with {r.confirmed_with} ({r.confirmed_on})")
        if r.acknowledged_at or r.confirmed_at:
            lines.append("  Coordinated: x carries out the reset.")
        else:
            other = "ELPAC" if r.requested_role == Role.LEA_CAASPP.value else "CAASPP"
            lines.append(
                f"  Waiting for the LEA {other} coordinator to acknowledge (k), or an "
                "out-of-band confirmation (K)."
            )
        return "\n".join(lines)

    def _roles_text(self) -> str:
        if self.manager:
            return (
                "g generate · R request reset · k acknowledge · K agreed elsewhere · x reset · "
                "W withdraw · X EMERGENCY · +/- system · m updated · t test · ? explains"
            )
        return "You can see status, notes and the checklist; only the LEA coordinators change it."

    # --- which keys apply -------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action not in MANAGE_ACTIONS:
            return True
        if not self.manager:
            return False
        has_key = self.state.status is not CredentialStatus.NONE
        own_role = self.ctx.operator.role.value
        pending = self.pending
        available = {
            "generate": self.state.status in (CredentialStatus.NONE, CredentialStatus.EXPIRED),
            "write_note": has_key and pending is None,
            "acknowledge": self.to_acknowledge is not None
            and self.to_acknowledge.requested_role != own_role
            and self.to_acknowledge.acknowledged_at is None,
            "confirm": pending is not None and pending.requested_role == own_role,
            "carry_out": pending is not None,
            "withdraw": pending is not None,
            "emergency": has_key,
            "add_system": True,
            "retire_system": bool(self.system_ids),
            "mark_updated": has_key and bool(self.system_ids),
            "test_connection": has_key and bool(self.system_ids),
        }
        return available[action]

    # --- actions ----------------------------------------------------------------------------

    def action_generate(self) -> None:
        self._run(
            lambda: self._reveal(
                "New secret key",
                credentials.generate(
                    self.ctx.engine, self.ctx.operator, self.lea_id, self._policy()
                ),
            )
        )

    def action_write_note(self) -> None:
        def submit(v: dict[str, str]) -> None:
            credentials.request_reset(
                self.ctx.engine,
                self.ctx.operator,
                self.lea_id,
                reason=v["reason"],
                planned_for=v["when"],
                vendor_contact=v["vendor"],
            )

        self._dialog(
            "Coordination note for a reset",
            "A reset cuts every vendor system off, for CAASPP and ELPAC alike. Say why, when, and "
            "who at the vendor was told; the other program's coordinator then acknowledges it.",
            [
                FormField("reason", "Why reset?", "e.g. the vendor changed hosting"),
                FormField("when", "When?", "e.g. Friday 6 March after 17:00"),
                FormField("vendor", "Who at the vendor was told?", "name, company"),
            ],
            submit,
        )

    def action_acknowledge(self) -> None:
        request = self.to_acknowledge
        if request is None or request.id is None:
            return
        reset_id = request.id
        self._dialog(
            f"Acknowledge reset #{reset_id}",
            self._request_text() + "\n\nAcknowledge that your program was consulted?",
            [],
            lambda _: credentials.acknowledge_reset(self.ctx.engine, self.ctx.operator, reset_id),
        )

    def action_confirm(self) -> None:
        if self.pending is None or self.pending.id is None:
            return
        reset_id = self.pending.id

        def submit(v: dict[str, str]) -> None:
            credentials.confirm_out_of_band(
                self.ctx.engine,
                self.ctx.operator,
                reset_id,
                confirmed_with=v["with"],
                confirmed_on=v["on"],
            )

        self._dialog(
            f"Out-of-band confirmation for reset #{reset_id}",
            "Record that the other program's coordinator agreed outside the console.",
            [
                FormField("with", "Confirmed with whom (and how)?", "name, by phone / meeting"),
                FormField("on", "When?", "e.g. 2026-03-02 10:15"),
            ],
            submit,
        )

    def action_carry_out(self) -> None:
        if self.pending is None or self.pending.id is None:
            return
        reset_id = self.pending.id
        self._dialog(
            f"Reset the credential now (note #{reset_id})",
            "The current key stops working at once for every system, both programs. "
            "The new key is shown once.",
            [],
            lambda _: self._reveal(
                "New secret key (after reset)",
                credentials.reset(self.ctx.engine, self.ctx.operator, reset_id, self._policy()),
            ),
        )

    def action_withdraw(self) -> None:
        if self.pending is None or self.pending.id is None:
            return
        reset_id = self.pending.id
        self._dialog(
            f"Withdraw reset note #{reset_id}",
            "The note stays in the history as withdrawn.",
            [],
            lambda _: credentials.cancel_reset(self.ctx.engine, self.ctx.operator, reset_id),
        )

    def action_emergency(self) -> None:
        self._dialog(
            "EMERGENCY reset without coordination",
            "Only when the key must die now (leaked, vendor compromised). It cuts off every "
            "system for BOTH programs, is marked EMERGENCY in the audit log and on the dashboard "
            "until the other coordinator acknowledges it.",
            [FormField("reason", "Reason (required)", "what happened")],
            lambda v: self._reveal(
                "New secret key (EMERGENCY reset)",
                credentials.emergency_reset(
                    self.ctx.engine,
                    self.ctx.operator,
                    self.lea_id,
                    reason=v["reason"],
                    policy=self._policy(),
                ),
            ),
            loud=True,
        )

    def action_add_system(self) -> None:
        self._dialog(
            "Add a system that holds the credential",
            "E.g. the SIS parent portal, the SIS-to-CERS roster sync, a special-education system.",
            [
                FormField("name", "System name", "e.g. PowerSchool parent portal"),
                FormField("url", "Token URL (optional)", "https://host/api/v1/token"),
            ],
            lambda v: credentials.add_system(
                self.ctx.engine, self.ctx.operator, self.lea_id, v["name"], v["url"] or None
            ),
        )

    def action_retire_system(self) -> None:
        system_id = self._selected_system()
        if system_id is None:
            return
        self._dialog(
            "Retire system",
            "It leaves the inventory and the checklist (it no longer uses the credential).",
            [],
            lambda _: credentials.retire_system(self.ctx.engine, self.ctx.operator, system_id),
        )

    def action_mark_updated(self) -> None:
        system_id = self._selected_system()
        if system_id is not None:
            self._run(
                lambda: credentials.mark_updated(self.ctx.engine, self.ctx.operator, system_id)
            )

    def action_test_connection(self) -> None:
        system_id = self._selected_system()
        if system_id is None:
            return
        try:
            system = credentials.system_for_test(self.ctx.engine, self.ctx.operator, system_id)
        except ConsoleError as refusal:
            self.notify(str(refusal), title="Test connection", severity="error")
            return
        self._dialog(
            f"Test connection: {system.name}",
            f"Requests a token from {system.token_url} with the username and secret key you "
            "type. The key is used for this one request and not kept.",
            [
                FormField("username", "Username", value=self.state.username or ""),
                FormField("secret", "Secret key", password=True),
            ],
            lambda v: self._test(system_id, v["username"], v["secret"]),
        )

    @work(thread=True, exclusive=True, group="credential-test")
    def _test(self, system_id: int, username: str, secret: str) -> None:
        try:
            result = credential_check.check_system(
                self.ctx.engine, self.ctx.operator, system_id, username, secret
            )
        except ConsoleError as refusal:  # e.g. the system was retired meanwhile
            result = credential_check.ConnectionResult(False, str(refusal))
        self.app.call_from_thread(self._tested, result)

    def _tested(self, result: credential_check.ConnectionResult) -> None:
        self.notify(
            result.message,
            title="Test connection: " + ("OK" if result.ok else "FAILED"),
            severity="information" if result.ok else "error",
        )
        self.reload()

    # --- plumbing -------------------------------------------------------------------------

    def _reveal(self, label: str, issued: IssuedCredential) -> None:
        reveal = self.query_one(SecretReveal)
        reveal.show_once(
            f"{label} for {issued.username} (fingerprint {issued.fingerprint})", issued.secret
        )
        self._focus_secret = True

    def _policy(self) -> CredentialPolicy:
        """Read when a key is issued, so a bad ``[credential]`` config is refused in a sentence."""
        return CredentialPolicy.from_settings(self.ctx.settings)

    def _selected_system(self) -> int | None:
        table = self.query_one("#systems", DataTable)
        if not self.system_ids:
            return None
        return self.system_ids[min(table.cursor_row, len(self.system_ids) - 1)]

    def _dialog(
        self,
        title: str,
        intro: str,
        fields: list[FormField],
        submit: Callable[[dict[str, str]], object],
        *,
        loud: bool = False,
    ) -> None:
        self.app.push_screen(
            FormDialog(title, intro, fields, submit, loud=loud), lambda _: self._after_change()
        )

    def _after_change(self) -> None:
        self.reload()
        if self._focus_secret:
            self._focus_secret = False
            self.query_one(SecretReveal).focus()

    def _run(self, change: Callable[[], object]) -> None:
        try:
            change()
        except ConsoleError as refusal:
            self.notify(str(refusal), title="Refused", severity="error")
        self._after_change()


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M}" if moment else "?"


def _outcome(r: CredentialReset) -> str:
    if r.emergency_reason:
        return "EMERGENCY" + (f", ack {r.acknowledged_by}" if r.acknowledged_by else ", not ack")
    if r.cancelled_at:
        return f"withdrawn by {r.cancelled_by}"
    agreed = (
        f"ack {r.acknowledged_by}"
        if r.acknowledged_by
        else f"confirmed with {r.confirmed_with}"
        if r.confirmed_at
        else "waiting"
    )
    return ("carried out, " if r.credential_id else "") + agreed


def _how(reset: CredentialReset | None) -> str:
    if reset is None:
        return "generated"
    if reset.emergency_reason:
        ack = f", ack {reset.acknowledged_by}" if reset.acknowledged_by else ", not acknowledged"
        return f"EMERGENCY #{reset.id}: {reset.emergency_reason}{ack}"
    if reset.acknowledged_by:
        return f"reset #{reset.id}, acknowledged by {reset.acknowledged_by}"
    return f"reset #{reset.id}, confirmed with {reset.confirmed_with}"
