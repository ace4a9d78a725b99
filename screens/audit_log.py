"""The audit log, newest first, filtered by the start of an operator, action or target."""

from __future__ import annotations

from functools import partial

from textual.app import ComposeResult

from screens.base import ConsoleScreen
from services import browse
from widgets.paged_table import Column, PagedTable

WIDTHS = {"#": 6, "When (UTC)": 16, "Operator": 10, "Action": 18, "Target": 16}


class AuditLogScreen(ConsoleScreen):
    TITLE = "Audit log"

    def compose_body(self) -> ComposeResult:
        ctx = self.ctx
        yield PagedTable(
            [Column(c, WIDTHS.get(c)) for c in browse.audit_columns()],
            partial(browse.audit_page, ctx.engine, ctx.operator),
            placeholder="operator, action or target prefix; esc clears",
        )
