"""The TOMS credential of the operator's LEA: status, record and verify, reveal, the coordinated
reset walked through step by step, and the checklist of vendor systems that must be given it.

The credential is generated in TOMS by an LEA coordinator; this screen records it, never invents
one. Coordinators (LEA CAASPP, LEA ELPAC) get the keys that change things (none shadows an app-wide
destination key; the shifted ones, R K V X W, are the weighty ones); everyone else sees status,
dates, names and the checklist only, and the services refuse them anyway. A revealed secret goes
from the service into the SecretReveal widget and nowhere else, and is forgotten after 30 seconds
or as soon as this screen is covered or left.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.timer import Timer
from textual.widgets import DataTable, Static

from screens.base import ConsoleScreen
from services.access.permissions import Permission, allowed
from services.access.tables import Role
from services.core import toms, vault
from services.core.columns import utcnow
from services.core.context import ConsoleContext
from services.core.errors import ConsoleError, InvalidInput
from services.credential import lifecycle as credentials
from services.credential import reset as resets
from services.credential import systems
from services.credential.check import ConnectionResult
from services.credential.lifecycle import (
    COORDINATORS,
    CredentialStatus,
    HistoryEntry,
    HistoryEvent,
    StatusView,
)
from services.credential.systems import ChecklistItem
from services.credential.tables import CredentialReset
from services.delivery.mailer import MailConfig
from services.reminders import scan as reminders
from services.reminders.mail import NoticeMailer
from widgets.form_dialog import FormDialog, FormField
from widgets.plain import PlainTable, plain
from widgets.secret_reveal import SecretReveal

REVEAL_SECONDS = 30
"""A revealed secret is masked again (forgotten) this long after it was shown."""

MANAGE_ACTIONS = {
    "record",
    "reveal",
    "verify",
    "write_note",
    "acknowledge",
    "confirm",
    "withdraw",
    "emergency",
    "add_system",
    "retire_system",
    "mark_updated",
    "test_connection",
}
"""Actions shown only to the LEA CAASPP and LEA ELPAC coordinators."""

TOMS_STEPS = (
    "1. Sign in to TOMS as the LEA CAASPP or LEA ELPAC coordinator and open the SIS-vendor "
    "credential (the one for the parent portal and the other vendor systems).\n"
    "2. Regenerate it. The old one stops working at once, for every system, both programs.\n"
    "3. Type here the username and secret key TOMS shows, and the day it was generated.\n"
    "4. The console asks TOMS whether they are valid before keeping them; then give them to "
    "every system on the checklist (m) and test each one (t)."
)


@dataclass(frozen=True)
class Read:
    """What the screen shows, read together in a worker."""

    state: StatusView
    pending: CredentialReset | None
    entries: list[HistoryEntry]
    requests: list[CredentialReset]
    events: list[HistoryEvent]
    systems: list[ChecklistItem]


class CredentialScreen(ConsoleScreen):
    TITLE = "Credential"
    CSS_PATH = "credential.tcss"
    BINDINGS = [
        Binding("e", "record", "Enter", tooltip="Enter the credential TOMS showed"),
        Binding("v", "reveal", "Reveal", tooltip="Reveal the secret key (audited)"),
        Binding("V", "verify", "Verify", tooltip="Verify it with TOMS now"),
        Binding("R", "write_note", "Reset", tooltip="Request a reset (coordination note)"),
        Binding("k", "acknowledge", "Ack", tooltip="Acknowledge the other coordinator's note"),
        Binding("K", "confirm", "Agreed", tooltip="Record the agreement reached elsewhere"),
        Binding("W", "withdraw", "Withdraw request", show=False),
        Binding("X", "emergency", "EMERGENCY reset", show=False),
        Binding("plus", "add_system", "Add system", show=False),
        Binding("minus", "retire_system", "Retire system", show=False),
        Binding("m", "mark_updated", "Updated", tooltip="Mark the system updated"),
        Binding("t", "test_connection", "Test system", show=False),
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
        self.replaced = False  # the live key replaced an earlier one that systems may still hold
        self._mask: Timer | None = None

    def compose_body(self) -> ComposeResult:
        with VerticalScroll():
            yield Static("", id="status")
            yield SecretReveal(id="secret")
            yield Static("", id="request")
            table = PlainTable(id="systems", cursor_type="row", zebra_stripes=True)
            table.border_title = "Systems holding the credential (+ add, m updated, t test)"
            table.add_columns("System", "Current key", "Last test", "Token URL")
            yield table
            history = PlainTable(id="history", cursor_type="row")
            history.add_columns(
                "#", "Status", "Generated", "Expires", "Recorded", "Verified", "Replaced", "How"
            )
            yield history
            events = PlainTable(id="events", cursor_type="row")
            events.add_columns("When", "Who", "What", "Of")
            yield events
            notes = PlainTable(id="notes", cursor_type="row")
            notes.add_columns("#", "By", "Written", "Outcome", "Why", "When", "Vendor told")
            yield notes
            yield Static(plain(self._roles_text()), id="roles")

    def on_mount(self) -> None:
        self.title = self.TITLE
        self.reload()
        self.query_one("#systems", DataTable).focus()

    def on_screen_suspend(self) -> None:
        """Covered by a dialog or left for another screen: the revealed secret goes."""
        self.query_one(SecretReveal).action_forget()

    # --- what is shown ----------------------------------------------------------------------

    def reload(self) -> None:
        """Read everything the screen shows in a worker, then show it."""
        self._read()

    @work(thread=True, exclusive=True, group="credential-read")
    def _read(self) -> None:
        engine, operator = self.ctx.engine, self.ctx.operator
        try:
            state = credentials.status(engine, self.lea_id)
            pending = resets.open_request(engine, self.lea_id)
            entries = credentials.history(engine, operator, self.lea_id)
            requests = resets.reset_requests(engine, operator, self.lea_id)
            found = credentials.history_events(engine, operator, self.lea_id, limit=50)
            items = systems.checklist(engine, operator, self.lea_id)
        except ConsoleError as error:
            self.on_ui_thread(
                partial(self.notify, str(error), title="Credential", severity="error")
            )
            return
        self.on_ui_thread(self._show, Read(state, pending, entries, requests, found, items))

    def _show(self, read: Read) -> None:
        self.state, self.pending, entries, requests = (
            read.state,
            read.pending,
            read.entries,
            read.requests,
        )
        self.replaced = sum(e.status is not CredentialStatus.LEGACY for e in entries) > 1
        latest = requests[0] if requests else None
        self.to_acknowledge = self.pending or (
            latest if latest and latest.emergency_reason and not latest.acknowledged_at else None
        )
        status = self.query_one("#status", Static)
        status.update(plain(self._status_text()))
        status.set_class(self.state.needs_attention, "-alert")
        status.border_title = "TOMS credential (SIS vendors, CAASPP and ELPAC)"
        self.query_one("#request", Static).update(plain(self._request_text()))
        self._fill_systems(read.systems)
        history = self.query_one("#history", DataTable)
        history.border_title = f"History ({len(entries)})"
        history.clear()
        for e in entries:
            history.add_row(
                f"#{e.credential_id}",
                e.status.value,
                f"{e.generated_on}" if e.generated_on else "-",
                f"{e.expires_at:%Y-%m-%d}",
                f"{_when(e.recorded_at)} {e.recorded_by}",
                f"{_when(e.verified_at)} {e.verified_by}" if e.verified_at else "not verified",
                f"{_when(e.superseded_at)} {e.superseded_by}" if e.superseded_at else "-",
                e.how,
            )
        events = self.query_one("#events", DataTable)
        events.border_title = "Who did what (newest first)"
        events.clear()
        for event in read.events:
            events.add_row(_when(event.at), event.operator, event.action, event.target)
        notes = self.query_one("#notes", DataTable)
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

    def _fill_systems(self, items: list[ChecklistItem]) -> None:
        table = self.query_one("#systems", DataTable)
        row = table.cursor_row
        table.clear()
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
            text = s.summary + "."
            return text + (" Press e to enter the one TOMS issued." if self.manager else "")
        lines = [
            f"Status    {s.status.value.upper()} · {s.countdown} · expires {s.expires_at:%Y-%m-%d}"
        ]
        if self.manager:
            lines.append(f"Username  {s.username} · generated in TOMS {s.generated_on}")
        lines.append(f"Recorded  {_when(s.created_at)} by {s.created_by}")
        if s.verified:
            lines.append(f"TOMS      verified {_when(s.verified_at)}")
        else:
            lines.append(f"TOMS      NOT VERIFIED YET: {s.check_message or 'not checked'}")
        if s.emergency:
            lines.append(
                "EMERGENCY  recorded after a reset without coordination"
                + ("; acknowledged" if s.emergency_acknowledged else "; NOT YET ACKNOWLEDGED")
            )
        if s.systems_pending:
            lines.append(f"Checklist {s.systems_pending} system(s) still to be given this key")
        if s.status is CredentialStatus.EXPIRED and self.manager:
            lines.append("Regenerate it in TOMS, then record it here (e).")
        return "\n".join(lines)

    def _request_text(self) -> str:
        r = self.to_acknowledge
        if r is None:
            return ""
        who = (
            f"#{r.id} by {r.requested_by} ({Role(r.requested_role).label}), {_when(r.requested_at)}"
        )
        if r.emergency_reason:
            lines = [f"EMERGENCY reset {who}", f"  Reason: {r.emergency_reason}"]
            if r.credential_id is None:
                lines.append("  Next: regenerate in TOMS and record the new credential (e).")
            lines.append("  The other program's coordinator should acknowledge it (k).")
            return "\n".join(lines)
        lines = [
            f"Reset note {who}",
            f"  Why: {r.reason}",
            f"  When: {r.planned_for} · vendor told: {r.vendor_contact}",
        ]
        if r.self_coordinated:
            lines.append("  Self-coordinated: one person holds both coordinator roles.")
        if r.acknowledged_at:
            lines.append(f"  Acknowledged by {r.acknowledged_by}, {_when(r.acknowledged_at)}")
        if r.confirmed_at:
            lines.append(f"  Agreed elsewhere with {r.confirmed_with} ({r.confirmed_on})")
        if credentials.coordinated(r):
            lines.append("  Coordinated. Next: regenerate in TOMS, then record it here (e).")
        else:
            other = resets.other_role(Role(r.requested_role))
            lines.append(
                f"  Waiting for the {other.label} to acknowledge (k; they were emailed and see it "
                "in Notices), or record the agreement reached elsewhere (K)."
            )
        return "\n".join(lines)

    def _roles_text(self) -> str:
        if self.manager:
            return (
                "e enter from TOMS · v reveal · V verify · R request reset · k acknowledge · "
                "K agreed elsewhere · W withdraw · X EMERGENCY · +/- system · m updated · t test"
            )
        return "Status, dates, names and the checklist; only the LEA coordinators change it."

    # --- which keys apply -------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action not in MANAGE_ACTIONS or super().check_action(action, parameters) is not True:
            return super().check_action(action, parameters)
        if not self.manager:
            return False
        live = self.state.status in (
            CredentialStatus.ACTIVE,
            CredentialStatus.EXPIRING,
            CredentialStatus.EXPIRED,
        )
        own_role = self.ctx.operator.role.value
        pending = self.pending
        available = {
            "record": not live
            or self.state.status is CredentialStatus.EXPIRED
            or (pending is not None and credentials.coordinated(pending)),
            "reveal": live,
            "verify": live and not self.state.verified,
            "write_note": live and pending is None,
            "acknowledge": self.to_acknowledge is not None
            and self.to_acknowledge.requested_role != own_role
            and self.to_acknowledge.acknowledged_at is None
            and not self.to_acknowledge.self_coordinated,
            "confirm": pending is not None
            and pending.requested_role == own_role
            and not credentials.coordinated(pending),
            "withdraw": pending is not None,
            "emergency": live,
            "add_system": True,
            "retire_system": bool(self.system_ids),
            "mark_updated": live and bool(self.system_ids),
            "test_connection": live and bool(self.system_ids),
        }
        return available[action]

    # --- record, verify, reveal -----------------------------------------------------------

    def action_record(self) -> None:
        request = self.pending if self.pending and credentials.coordinated(self.pending) else None
        title = "Record the TOMS credential"
        if request is not None:
            title = f"Reset #{request.id}: regenerate in TOMS, then record it"
        self._dialog(
            title,
            TOMS_STEPS,
            [
                FormField("username", "Username TOMS showed", value=self.state.username or ""),
                FormField(
                    "secret", "Secret key TOMS showed (not shown as you type)", password=True
                ),
                FormField(
                    "generated", "Generated in TOMS on (YYYY-MM-DD)", value=f"{date.today()}"
                ),
            ],
            lambda v: self._record(
                v["username"], v["secret"], _day(v["generated"]), request.id if request else None
            ),
        )

    @work(thread=True, exclusive=True, group="credential-toms")
    def _record(self, username: str, secret: str, generated: date, reset_id: int | None) -> None:
        try:
            recorded = credentials.record(
                self.ctx.engine,
                self.ctx.operator,
                self.lea_id,
                vault.load(self.ctx.settings),
                toms.token_url(self.ctx.settings),
                username=username,
                secret=secret,
                generated_on=generated,
                reset_id=reset_id,
                policy=credentials.CredentialPolicy.from_settings(self.ctx.settings),
            )
        except ConsoleError as refusal:
            self.app.call_from_thread(self._said, "Not recorded", str(refusal), "error")
            return
        after = (
            " Now give it to every system on the checklist and test each (t)." if reset_id else ""
        )
        self.app.call_from_thread(
            self._said,
            "Credential recorded",
            recorded.message + "." + after,
            "information" if recorded.verified else "warning",
        )

    def action_verify(self) -> None:
        self._verify()

    @work(thread=True, exclusive=True, group="credential-toms")
    def _verify(self) -> None:
        try:
            result = credentials.verify(
                self.ctx.engine,
                self.ctx.operator,
                self.lea_id,
                vault.load(self.ctx.settings),
                toms.token_url(self.ctx.settings),
            )
        except ConsoleError as refusal:
            result = ConnectionResult(False, str(refusal))
        self.app.call_from_thread(
            self._said,
            "Verified with TOMS" if result.ok else "Not verified",
            result.message,
            "information" if result.ok else "error",
        )

    def action_reveal(self) -> None:
        self._reveal()

    @work(thread=True, exclusive=True, group="credential-reveal")
    def _reveal(self) -> None:
        try:
            shown = credentials.reveal(
                self.ctx.engine, self.ctx.operator, self.lea_id, vault.load(self.ctx.settings)
            )
        except ConsoleError as refusal:
            self.app.call_from_thread(self._said, "Reveal", str(refusal), "error")
            return
        self.app.call_from_thread(self._show_secret, shown.username, shown.secret)

    def _show_secret(self, username: str, secret: str) -> None:
        reveal = self.query_one(SecretReveal)
        reveal.show_once(f"Secret key for {username} (hidden again in {REVEAL_SECONDS} s)", secret)
        reveal.revealed = True
        reveal.focus()
        if self._mask is not None:
            self._mask.stop()
        self._mask = self.set_timer(REVEAL_SECONDS, reveal.action_forget)
        self.reload()

    # --- the coordinated reset ------------------------------------------------------------

    def action_write_note(self) -> None:
        def submit(v: dict[str, str]) -> None:
            request = resets.request_reset(
                self.ctx.engine,
                self.ctx.operator,
                self.lea_id,
                reason=v["reason"],
                planned_for=v["when"],
                vendor_contact=v["vendor"],
                vault=vault.load(self.ctx.settings),
            )
            if request.self_coordinated:
                self.notify(
                    "You hold both coordinator roles: the reset is recorded as self-coordinated. "
                    "Next: regenerate in TOMS, then record it here (e).",
                    title="Self-coordinated",
                )
            else:
                self._announce()

        self._dialog(
            "Coordination note for a reset",
            "Regenerating the credential in TOMS cuts every vendor system off, for CAASPP and "
            "ELPAC alike. Say why, when, and who at the vendor was told; the other program's "
            "coordinator is emailed at once and acknowledges it here.",
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
            lambda _: resets.acknowledge_reset(self.ctx.engine, self.ctx.operator, reset_id),
        )

    def action_confirm(self) -> None:
        if self.pending is None or self.pending.id is None:
            return
        reset_id = self.pending.id
        self._dialog(
            f"Agreement reached elsewhere for reset #{reset_id}",
            "Record that the other program's coordinator agreed outside the console.",
            [
                FormField("with", "Agreed with whom (and how)?", "name, by phone / meeting"),
                FormField("on", "When?", "e.g. 2026-03-02 10:15"),
            ],
            lambda v: resets.confirm_out_of_band(
                self.ctx.engine,
                self.ctx.operator,
                reset_id,
                confirmed_with=v["with"],
                confirmed_on=v["on"],
                vault=vault.load(self.ctx.settings),
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
            lambda _: resets.cancel_reset(self.ctx.engine, self.ctx.operator, reset_id),
        )

    def action_emergency(self) -> None:
        def submit(v: dict[str, str]) -> None:
            resets.emergency_reset(
                self.ctx.engine,
                self.ctx.operator,
                self.lea_id,
                reason=v["reason"],
                vault=vault.load(self.ctx.settings),
            )
            self._announce()

        self._dialog(
            "EMERGENCY reset without coordination",
            "Only when the key must die now (leaked, vendor compromised). Both coordinators are "
            "emailed at once; it is marked EMERGENCY in the audit log and on the dashboard until "
            "the other coordinator acknowledges it. Then regenerate in TOMS and record it (e).",
            [FormField("reason", "Reason (required)", "what happened")],
            submit,
            loud=True,
        )

    @work(thread=True, exclusive=True, group="credential-announce")
    def _announce(self) -> None:
        """Email the coordination note (or emergency) now; the scheduler retries a failure."""
        settings = self.ctx.settings
        try:
            report = reminders.announce_resets(
                self.ctx.engine, utcnow(), NoticeMailer(MailConfig.from_settings(settings))
            )
        except ConsoleError as error:
            self.app.call_from_thread(self._said, "Email not sent", str(error), "error")
            return
        if report.failed:
            text = (
                f"The email could not be sent ({report.errors[-1]}); the scheduler retries it, "
                "and the other coordinator sees it in Notices."
            )
            self.app.call_from_thread(self._said, "Email not sent yet", text, "warning")
        else:
            text = f"Emailed {report.sent} coordinator(s); they also see it in Notices."
            self.app.call_from_thread(self._said, "Coordinators told", text, "information")

    # --- the systems checklist ------------------------------------------------------------

    def action_add_system(self) -> None:
        self._dialog(
            "Add a system that holds the credential",
            "E.g. the SIS parent portal, the SIS-to-CERS roster sync, a special-education system.",
            [
                FormField("name", "System name", "e.g. PowerSchool parent portal"),
                FormField("url", "Its token URL (optional)", "https://host/api/v1/token"),
            ],
            lambda v: systems.add_system(
                self.ctx.engine,
                self.ctx.operator,
                self.lea_id,
                v["name"],
                v["url"] or None,
                vault=vault.load(self.ctx.settings),
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
            lambda _: systems.retire_system(self.ctx.engine, self.ctx.operator, system_id),
        )

    def action_mark_updated(self) -> None:
        system_id = self._selected_system()
        if system_id is not None:
            self.call_service(
                "mark_updated",
                "marking the system updated",
                lambda: systems.mark_updated(self.ctx.engine, self.ctx.operator, system_id),
                lambda _: self.reload(),
            )

    def action_test_connection(self) -> None:
        system_id = self._selected_system()
        if system_id is not None:
            self._test(system_id)

    @work(thread=True, exclusive=True, group="credential-test")
    def _test(self, system_id: int) -> None:
        try:
            result = systems.test_system(
                self.ctx.engine, self.ctx.operator, system_id, vault.load(self.ctx.settings)
            )
        except ConsoleError as refusal:  # no token URL, retired meanwhile, no credential
            result = ConnectionResult(False, str(refusal))
        self.app.call_from_thread(
            self._said,
            "Test connection: " + ("OK" if result.ok else "FAILED"),
            result.message,
            "information" if result.ok else "error",
        )

    # --- plumbing -------------------------------------------------------------------------

    def _said(self, title: str, message: str, severity: str) -> None:
        self.notify(message, title=title, severity=severity)  # type: ignore[arg-type]
        self.reload()

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
            FormDialog(title, intro, fields, submit, loud=loud), lambda _: self.reload()
        )


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(f"Write the day TOMS generated it as YYYY-MM-DD, not {text!r}") from None


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M}" if moment else "?"


def _outcome(r: CredentialReset) -> str:
    if r.emergency_reason:
        return "EMERGENCY" + (f", ack {r.acknowledged_by}" if r.acknowledged_by else ", not ack")
    if r.cancelled_at:
        return f"withdrawn by {r.cancelled_by}"
    agreed = (
        "self-coordinated"
        if r.self_coordinated
        else f"ack {r.acknowledged_by}"
        if r.acknowledged_by
        else f"agreed with {r.confirmed_with}"
        if r.confirmed_at
        else "waiting"
    )
    return ("recorded, " if r.credential_id else "") + agreed
