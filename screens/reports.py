"""Reports: coverage and delivery by school, grade, language, program or channel, as a table and a
bar chart; the students at risk of missing their deadline; cost so far by channel; CSV export.

Keys: 1-5 choose the breakdown, g limits to a student group (empty: everyone), f makes groups
from a CERS group file, m makes one by filter, k lists the students at risk, x exports what is shown to CSV, u works the figures out again now.

The figures stay current by themselves: the screen follows the data version (``follow_changes``)
and works them out again in the background after an import, a batch moving or a plan saved (at
most every ``AUTO_REFRESH_GAP`` seconds while a batch is sending). While that runs, the last
figures stay on screen with the time they were worked out; otherwise they are current and no time
is shown. The line under them counts the notice batches that told families first.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static
from textual.worker import get_current_worker

from screens.base import ConsoleScreen
from services.access.permissions import Permission, require, school_scope
from services.core import csv_export, private_files, validation
from services.core.columns import utcnow
from services.core.context import ConsoleContext
from services.core.errors import ConsoleError, InvalidInput
from services.core.paging import Page
from services.delivery import notices
from services.plan.decisions import decided_when
from services.reports import aggregates as reports
from services.reports.aggregates import AtRisk, ChannelCost, Dimension, Row
from services.roster import groups as student_groups
from services.roster.groups import GroupSummary
from widgets.bar_chart import Bar, BarChart
from widgets.form_dialog import FormDialog, FormField
from widgets.paged_table import Column, PagedTable
from widgets.plain import PlainTable, plain

AUTO_REFRESH_GAP = 10.0
"""Seconds between two refreshes the data's changes start (a sending batch changes it every second)."""
WIDTHS = (16, 8, 9, 7, 7, 6, 5, 5)
KEYS = {str(i): d for i, d in enumerate(Dimension, start=1)}
RISK_COLUMNS = ("SSID", "School", "Gr", "Prog", "Received", "Deadline", "State")
RISK_WIDTHS = (10, 18, 2, 6, 10, 10, 12)


@dataclass(frozen=True)
class _Figures:
    rows: list[Row]
    risk: int
    costs: list[ChannelCost]
    as_of: datetime | None
    notices: str
    corrected: int = 0  # students owed a corrected SSR (services.reports.aggregates)


def _exports(ctx: ConsoleContext) -> Path:
    return Path(ctx.settings.data_dir) / "exports"


def _export_path(ctx: ConsoleContext, what: str) -> str:
    return str(_exports(ctx) / f"{what}-{utcnow():%Y%m%d-%H%M}.csv")


def _target(ctx: ConsoleContext, typed: str) -> Path:
    """The file typed in the export dialog; the console's own exports folder is made on demand."""
    path = Path(typed.strip()).expanduser()
    if path.parent == _exports(ctx):
        private_files.make_dirs(path.parent)
    return path


class ReportsScreen(ConsoleScreen):
    TITLE = "Reports"
    BINDINGS = [
        *(
            Binding(k, f"breakdown({k!r})", f"By {d.value}", show=False)
            for k, d in KEYS.items()
            if k != "1"
        ),
        Binding("1", "breakdown('1')", "Breakdown", key_display="1-5", tooltip="By school"),
        Binding("g", "group", "Group"),
        Binding("f", "group_file", "Group from file", show=False),
        Binding("m", "group_filter", "Make group", show=False),
        Binding("k", "at_risk", "At risk"),
        Binding("x", "export", "Export", tooltip="Export CSV"),
        Binding("u", "refresh", "Update now", show=False),  # figures follow the data anyway
    ]
    CSS_PATH = "reports.tcss"

    def __init__(self, ctx: ConsoleContext) -> None:
        super().__init__(ctx)
        reports.scope_for(ctx.engine, ctx.operator)  # refused here when they may not see reports
        self.group_id: int | None = None  # one student group, or the operator's whole scope
        self.group_name = ""
        self.dimension = Dimension.SCHOOL
        self.figures: _Figures | None = None
        self.refreshing = False
        self.refreshed = 0.0  # monotonic time the last refresh ended

    def compose_body(self) -> ComposeResult:
        yield Static("Loading…", id="summary")
        yield PlainTable(id="table", cursor_type="row", zebra_stripes=True)
        yield BarChart(id="chart")

    def on_mount(self) -> None:
        table = self.query_one("#table", DataTable)
        for label, width in zip(reports.COLUMNS, WIDTHS, strict=True):
            table.add_column(label, width=width)
        self._load(refresh_if_stale=True)
        self.follow_changes(self._data_changed)

    def _data_changed(self) -> None:
        """The data moved: work the figures out again, unless that is under way or just done."""
        if not self.refreshing and time.monotonic() - self.refreshed >= AUTO_REFRESH_GAP:
            self._load(force=True)

    # --- loading -----------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="reports")
    def _load(self, refresh_if_stale: bool = False, force: bool = False) -> None:
        ctx, group_id = self.ctx, self.group_id
        try:
            head = self.read_data_version()
            as_of = reports.refreshed_at(ctx.engine, ctx.operator, group_id)
            changed = as_of is None or (head.at is not None and head.at > as_of)
            if force or (refresh_if_stale and (changed or reports.is_stale(as_of))):
                self.refreshing = True
                if as_of is not None:
                    self.app.call_from_thread(self._show, self._read(as_of), "working out…")
                else:
                    self.app.call_from_thread(self._note, "Working out the figures…")
                reports.refresh(ctx.engine, ctx.operator, group_id)
                as_of = reports.refreshed_at(ctx.engine, ctx.operator, group_id)
            figures = self._read(as_of)
        except ConsoleError as error:  # e.g. the database is busy: say so, keep the console
            self.app.call_from_thread(self._note, str(error))
            return
        finally:
            if self.refreshing:
                self.refreshing = False
                self.refreshed = time.monotonic()
        if not get_current_worker().is_cancelled:  # a newer breakdown was asked for meanwhile
            self.app.call_from_thread(self._show, figures, "")

    def _read(self, as_of: datetime | None) -> _Figures:
        ctx, operator, group_id = self.ctx, self.ctx.operator, self.group_id
        rows = reports.coverage(ctx.engine, operator, self.dimension, group_id)
        risk = reports.at_risk_count(
            ctx.engine, operator, date.today(), ctx.settings.calendar, group_id
        )
        costs = [] if group_id else reports.cost_by_channel(ctx.engine, operator)
        told = (
            ""
            if group_id
            else notices.figures_text(
                notices.figures(ctx.engine, operator), notices.lea_zone(ctx.settings)
            )
        )
        corrected = reports.corrected_count(ctx.engine, operator, group_id)
        return _Figures(rows, risk, costs, as_of, told, corrected)

    def _note(self, text: str) -> None:
        if not self.is_attached:  # the screen was closed while the worker ran
            return
        self.query_one("#summary", Static).update(plain(text))

    def _show(self, figures: _Figures, state: str) -> None:
        if not self.is_attached:  # the screen was closed while the worker ran
            return
        self.figures = figures
        whole = reports.total(figures.rows)
        # The time only while newer figures are being worked out: otherwise they are current.
        when = (
            f" · as of {decided_when(figures.as_of, self.ctx.operator.language)} · {state}"
            if state and figures.as_of
            else (f" · {state}" if state else "")
        )
        who = (
            f"group “{self.group_name}”"
            if self.group_name
            else ("your school" if school_scope(self.ctx.operator) else "the LEA")
        )
        cost = reports.costs_text(figures.costs, self.ctx.operator.language)
        lines = [
            f"By {self.dimension.value} · {who}{when}",
            f"{whole.units:,} students×program · delivered {whole.delivered_share:.0%} · "
            f"at risk {figures.risk:,} (k)",
        ]
        if figures.corrected:
            lines.append(
                f"Corrected, not yet sent: {figures.corrected:,} (batch scope corrections)"
            )
        if cost:
            lines.append(f"Cost so far: {cost}")
        if figures.notices:
            lines.append(figures.notices)
        self._note("\n".join(lines))
        table = self.query_one("#table", DataTable)
        table.clear()
        table.add_rows([reports.as_cells(r) for r in figures.rows])
        if figures.rows:
            table.add_row(*reports.as_cells(whole))
        self.query_one(BarChart).show(
            [Bar(r.label, r.delivered_share, f"{r.delivered_share:.0%}") for r in figures.rows],
            "Delivered, share of students:",
        )

    # --- keys --------------------------------------------------------------------------------

    def action_breakdown(self, key: str) -> None:
        self.dimension = KEYS[key]
        self._load()

    def action_refresh(self) -> None:
        self._load(force=True)

    def action_group(self) -> None:
        ctx = self.ctx

        def submit(values: dict[str, str]) -> None:
            text = values["group"].strip()
            if not text:
                self.group_id = None
                self.group_name = ""
                return
            if not text.isdigit():
                raise InvalidInput("Type a group number from the list, or leave it empty")
            group = student_groups.get(ctx.engine, ctx.operator, int(text))
            self.group_id = group.id
            self.group_name = group.name

        def ask(groups: list[GroupSummary]) -> None:
            listing = "\n".join(
                f"{g.id:>4}  {g.name} ({g.school_year}, {g.subject or 'any subject'}, "
                f"{g.students:,})"
                for g in groups
            )
            self.app.push_screen(
                FormDialog(
                    "Limit to a student group",
                    (listing or "No groups yet.") + "\nEmpty: every student in your scope.",
                    [FormField("group", "Group number", value=str(self.group_id or ""))],
                    submit,
                ),
                self._reload_if_changed,
            )

        self.call_service(
            "group",
            "reading the student groups",
            lambda: student_groups.list_groups(ctx.engine, ctx.operator, limit=8),
            ask,
        )

    def _reload_if_changed(self, done: bool | None) -> None:
        if done:
            self._load()

    def action_group_file(self) -> None:
        ctx = self.ctx
        outcome: list[str] = []

        def submit(values: dict[str, str]) -> None:
            report = student_groups.import_file(
                ctx.engine, ctx.operator, Path(values["path"].strip()).expanduser()
            )
            outcome.append(
                f"{report.lines:,} lines read: {report.added:,} students added to "
                f"{report.groups:,} group(s)."
            )
            refused = report.problem_count + report.unknown_count
            if refused:
                path = _target(ctx, _export_path(ctx, "group-import-problems"))
                csv_export.export(
                    path, ("line", "kind", "detail"), student_groups.problem_rows(report)
                )
                outcome.append(f"{refused:,} line(s) not used, all listed in {path}:")
                outcome.extend(
                    f"  line {line}: {kind} {detail}"
                    for line, kind, detail in list(student_groups.problem_rows(report))[:6]
                )

        def show(done: bool | None) -> None:
            if done:
                self.app.push_screen(
                    FormDialog("Group file imported", "\n".join(outcome), [], lambda _: None)
                )

        self.app.push_screen(
            FormDialog(
                "Student groups from a CERS file",
                "Columns: group_name, school id, school year, subject, SSID, login.",
                [FormField("path", "CSV file", "/path/to/groups.csv")],
                submit,
            ),
            show,
        )

    def action_group_filter(self) -> None:
        ctx = self.ctx

        def submit(values: dict[str, str]) -> None:
            grade, language = values["grade"].strip(), values["language"].strip()
            made = student_groups.create_from_filter(
                ctx.engine,
                ctx.operator,
                values["name"],
                values["year"],
                student_groups.Filter(
                    school_id=student_groups.school_id_for(
                        ctx.engine, ctx.operator, values["school"]
                    ),
                    grade=validation.grade(grade) if grade else None,
                    language=language or None,
                ),
            )
            self.notify(
                f"Group {made.id} “{made.name}”: {made.students:,} students", title="Groups"
            )

        year = utcnow().year if utcnow().month >= 7 else utcnow().year - 1
        self.app.push_screen(
            FormDialog(
                "Make a student group by filter",
                "Leave a field empty for any. The group keeps the students the filter selects now.",
                [
                    FormField("name", "Group name"),
                    FormField("year", "School year", value=f"{year}-{(year + 1) % 100:02d}"),
                    FormField("school", "School CDS code (14 digits)"),
                    FormField("grade", "Grade"),
                    FormField("language", "Primary language (en, es, zh_Hans, vi, fil)"),
                ],
                submit,
            )
        )

    def action_at_risk(self) -> None:
        try:
            require(self.ctx.operator, Permission.VIEW_STUDENTS)  # the list names students
        except ConsoleError as refusal:
            self.notify(str(refusal), title="At risk", severity="error")
            return
        self.app.push_screen(AtRiskScreen(self.ctx, self.group_id))

    def action_export(self) -> None:
        if self.figures is None:
            return
        rows = [*self.figures.rows, reports.total(self.figures.rows)]
        dimension, ctx = self.dimension, self.ctx

        def submit(values: dict[str, str]) -> None:
            path = _target(ctx, values["path"])
            count = csv_export.export(path, reports.COLUMNS, ([*reports.as_cells(r)] for r in rows))
            self.notify(f"{count} rows written to {path}", title="Export")

        self.app.push_screen(
            FormDialog(
                "Export to CSV",
                f"The breakdown by {dimension.value}, as shown.",
                [
                    FormField(
                        "path", "File", value=_export_path(self.ctx, f"coverage-{dimension.value}")
                    )
                ],
                submit,
            )
        )


class AtRiskScreen(ConsoleScreen):
    """The students whose SSRs may miss the statutory deadline, oldest receipt first."""

    TITLE = "At risk of missing the deadline"
    BINDINGS = [Binding("x", "export", "Export CSV")]

    def __init__(self, ctx: ConsoleContext, group_id: int | None = None) -> None:
        super().__init__(ctx)
        self.group_id = group_id
        self.calendar = ctx.settings.calendar
        self.today = date.today()

    def compose_body(self) -> ComposeResult:
        yield PagedTable(
            [Column(c, w) for c, w in zip(RISK_COLUMNS, RISK_WIDTHS, strict=True)],
            self._page,
            placeholder="(no filter here)",
        )

    def _page(self, offset: int, limit: int, _filter: str) -> Page:
        found = reports.at_risk(
            self.ctx.engine,
            self.ctx.operator,
            self.today,
            self.calendar,
            self.group_id,
            limit=limit,
            offset=offset,
        )
        total = reports.at_risk_count(
            self.ctx.engine, self.ctx.operator, self.today, self.calendar, self.group_id
        )
        return Page([_cells(r) for r in found], total)

    def on_paged_table_failed(self, event: PagedTable.Failed) -> None:
        self.notify(str(event.error), title="At risk", severity="error")

    def action_export(self) -> None:
        ctx, group_id, today, calendar = self.ctx, self.group_id, self.today, self.calendar

        def rows():  # type: ignore[no-untyped-def]
            offset = 0
            while page := reports.at_risk(
                ctx.engine, ctx.operator, today, calendar, group_id, limit=1000, offset=offset
            ):
                yield from (_cells(r) for r in page)
                offset += len(page)

        def submit(values: dict[str, str]) -> None:
            path = _target(ctx, values["path"])
            count = csv_export.export(path, RISK_COLUMNS, rows())
            self.notify(f"{count} rows written to {path}", title="Export")

        self.app.push_screen(
            FormDialog(
                "Export to CSV",
                "Every student at risk, oldest receipt first.",
                [FormField("path", "File", value=_export_path(ctx, "at-risk"))],
                submit,
            )
        )


def _cells(r: AtRisk) -> tuple[str, ...]:
    return (r.ssid, r.school, str(r.grade), r.program, f"{r.received}", f"{r.deadline}", r.state)
