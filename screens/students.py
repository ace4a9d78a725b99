"""Students of the operator's scope, one window at a time, filtered by name or SSID prefix."""

from __future__ import annotations

from functools import partial

from textual.app import ComposeResult

from screens.base import ConsoleScreen
from services.roster import browse
from widgets.paged_table import Column, PagedTable

WIDTHS = {"SSID": 10, "Name": 22, "Gr": 2, "School": 16, "Lang": 7, "EL": 2, "SSRs": 4}


class StudentsScreen(ConsoleScreen):
    TITLE = "Students"

    def compose_body(self) -> ComposeResult:
        ctx = self.ctx
        columns = [Column(c, WIDTHS.get(c)) for c in browse.student_columns(ctx.operator)]
        yield PagedTable(
            columns,
            partial(browse.students_page, ctx.engine, ctx.operator),
            placeholder="name (last first) or SSID prefix; enter keeps it, esc clears",
        )
