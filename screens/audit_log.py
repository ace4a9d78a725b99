"""The audit log, newest first, filtered by operator, action, target and time; v verifies the
hash chain.

Filter (/): ``op:helpdesk action:delivery.resend target:delivery_item:42 since:2026-11-01
until:2026-11-25T18:00`` (``services.audit.filter``); a plain word matches the start of an
operator, action or target. Verifying walks the whole chain in a worker thread, streaming, and
says whether it holds or names the first event that does not fit.
"""

from __future__ import annotations

from functools import partial

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from screens.base import ConsoleScreen
from services.access.permissions import Permission, require
from services.audit import browse
from services.audit import log as audit
from widgets.paged_table import Column, PagedTable
from widgets.plain import plain

WIDTHS = {"#": 6, "When (UTC)": 16, "Operator": 10, "Action": 18, "Target": 16}


class AuditLogScreen(ConsoleScreen):
    TITLE = "Audit log"
    BINDINGS = [Binding("v", "verify", "Verify chain")]
    CSS_PATH = "audit_log.tcss"

    def compose_body(self) -> ComposeResult:
        ctx = self.ctx
        yield Static("", id="chain")
        yield PagedTable(
            [Column(c, WIDTHS.get(c)) for c in browse.audit_columns()],
            partial(browse.audit_page, ctx.engine, ctx.operator),
            placeholder="op:NAME action:X target:Y since:2026-11-01 until:…; esc clears",
        )

    def action_verify(self) -> None:
        self._chain("Verifying the hash chain…")
        self._verify()

    def _chain(self, text: str) -> None:
        if not self.is_attached:  # the screen was closed while the worker ran
            return
        line = self.query_one("#chain", Static)
        line.add_class("-shown")
        line.update(plain(text))

    @work(thread=True, exclusive=True, group="audit-verify")
    def _verify(self) -> None:
        require(self.ctx.operator, Permission.VIEW_AUDIT)
        result = audit.verify(self.ctx.engine)
        if result.ok:
            text = f"Hash chain intact: {result.events:,} events checked."
        else:
            text = f"Hash chain BROKEN: {result.problem} (after {result.events:,} events)."
        self.app.call_from_thread(self._chain, text)
        self.app.call_from_thread(
            self.notify, text, title="Audit log", severity="information" if result.ok else "error"
        )
