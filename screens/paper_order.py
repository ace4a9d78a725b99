"""Paper SSRs from ETS (option D, key o): an order by SSID for a class, a school or the LEA.

Keys only: k school (the LEA, then each school in turn), j grade (a class: one grade of the
school), f families (the plan's paper families, or every family not yet on a channel), ctrl+s
place the order and write its CSV, x write the selected order's CSV again, v mark the selected
order received from ETS, e the day it was mailed or handed out (only then is it delivered). The count and cost show before anything is recorded; where ETS no longer
offers paper the note says so and the order is refused.
"""

from __future__ import annotations

from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from screens.channel_batch_screen import ChannelBatchScreen
from services.access.permissions import school_scope
from services.channels import batches as channel_batches
from services.channels import paper_order
from services.channels.batches import Scope
from services.core.channels import Option
from services.core.columns import utcnow
from services.core.context import ConsoleContext
from services.core.errors import ConsoleError, InvalidInput
from services.core.programs import grade_label
from services.core.validation import GRADES
from services.plan import coverage
from services.plan.advisor import Rates, money
from services.roster import facts as roster_facts
from widgets.channel_batch_table import ChannelBatchTable
from widgets.plain import plain

WHO = (coverage.Who.PLAN, coverage.Who.ALL)
WHO_TEXT = {
    coverage.Who.PLAN: "the plan's paper families",
    coverage.Who.ALL: "every family not yet on a channel",
}


class PaperOrderScreen(ChannelBatchScreen):
    CHANNEL = Option.PAPER
    TITLE = "Paper from ETS (D)"
    CSS_PATH = "paper_order.tcss"
    BINDINGS = [
        Binding("k", "school", "School"),
        Binding("j", "grade", "Grade"),
        Binding("f", "families", "Families"),
        Binding("ctrl+s", "order", "Order", tooltip="Place the order"),
        Binding("x", "export", "Write CSV again", show=False),
        Binding("v", "received", "Received"),
    ]

    def __init__(self, ctx: ConsoleContext) -> None:
        super().__init__(ctx)
        self.problem = ""
        try:
            self.rates = channel_batches.configured_rates(ctx.settings)
        except InvalidInput as error:
            self.rates, self.problem = Rates(), f"{error}; using the default rates"
        # the LEA, or the site coordinator's own school, until the schools are read (on_mount)
        locked = school_scope(ctx.operator)
        self.schools: list[tuple[int | None, str]] = [
            (locked, "your school") if locked is not None else (None, "the whole LEA")
        ]
        self.school_index = 0
        self.grade: int | None = None
        self.who = coverage.Who.PLAN

    def compose_body(self) -> ComposeResult:
        yield Static("", id="choices")
        yield Static("Counting…", id="figures")
        yield Static("", id="note")
        yield ChannelBatchTable(id="orders", not_done="-")
        yield Static("", id="last")

    def on_mount(self) -> None:
        if self.problem:
            self.notify(self.problem, title="ETS rates", severity="warning")
        self._show_choices()
        self.query_one(ChannelBatchTable).focus()
        self._refresh()
        self.call_service(
            "school",
            "reading the schools",
            lambda: roster_facts.schools(self.ctx.engine, self.ctx.operator.lea_id),
            self._show_schools,
        )

    def _show_schools(self, found: list[tuple[int, str]]) -> None:
        locked = school_scope(self.ctx.operator)
        self.schools = (
            [(i, n) for i, n in found if i == locked]
            if locked is not None
            else [(None, "the whole LEA"), *found]
        )
        self._show_choices()

    def _scope(self) -> Scope:
        return Scope(school_id=self.schools[self.school_index][0], grade=self.grade)

    def _show_choices(self) -> None:
        school = self.schools[self.school_index][1]
        grade = "all grades" if self.grade is None else f"grade {grade_label(self.grade)} (a class)"
        self.query_one("#choices", Static).update(
            plain(f"k School    {school}\nj Grade     {grade}\nf Families  {WHO_TEXT[self.who]}")
        )
        self._figures()

    @work(thread=True, exclusive=True, group="figures")
    def _figures(self) -> None:
        note = ""
        try:
            seen = paper_order.preview(
                self.ctx.engine,
                self.ctx.operator,
                scope=self._scope(),
                who=self.who,
                rates=self.rates,
            )
            language = self.ctx.operator.language
            kind = "stuffed" if seen.stuffed else "per SSR"
            text = (
                f"{seen.ssrs:,} SSRs for {seen.students:,} students in {seen.families:,} families\n"
                f"ETS {money(seen.rate, language)} {kind}: {money(seen.ets_cost, language)}"
                f" · mailing {money(seen.mailing_cost, language)}"
                f" · total {money(seen.cost, language)}"
            )
            note = seen.note
        except ConsoleError as error:
            text = str(error)
        self.app.call_from_thread(self._show_figures, text, note)

    def _show_figures(self, text: str, note: str) -> None:
        self.query_one("#figures", Static).update(plain(text))
        self.query_one("#note", Static).update(plain(f"NOTE: {note}" if note else ""))

    def action_school(self) -> None:
        self.school_index = (self.school_index + 1) % len(self.schools)
        self.grade = None
        self._show_choices()

    def action_grade(self) -> None:
        if self.schools[self.school_index][0] is None:
            self.notify("Choose a school first (k): a class is a grade of one school")
            return
        grades = [None, *GRADES]
        self.grade = grades[(grades.index(self.grade) + 1) % len(grades)]
        self._show_choices()

    def action_families(self) -> None:
        self.who = WHO[(WHO.index(self.who) + 1) % len(WHO)]
        self._show_choices()

    def action_order(self) -> None:
        name, scope, who = f"ETS order {utcnow():%Y-%m-%d %H:%M}", self._scope(), self.who

        def order() -> tuple[int, Path, int]:
            batch = paper_order.create(
                self.ctx.engine,
                self.ctx.operator,
                name=name,
                scope=scope,
                who=who,
                rates=self.rates,
            )
            assert batch.id is not None
            return (batch.id, *self._write_list(batch.id))

        self.call_service("order", "placing the order", order, self._ordered, refused="Not ordered")

    def _ordered(self, written: tuple[int, Path, int]) -> None:
        self._refresh()
        self._figures()
        self._show_written(written)

    def action_export(self) -> None:
        selected = self.query_one(ChannelBatchTable).selected_id
        if selected is None:
            self.notify("No order yet: press ctrl+s to place one", title="ETS paper")
            return
        self.call_service(
            "export",
            f"writing the list of order {selected}",
            lambda: (selected, *self._write_list(selected)),
            self._show_written,
            refused="Order list not written",
        )

    def _write_list(self, batch_id: int) -> tuple[Path, int]:
        """The order's CSV for the ETS order form (in a worker): where, and how many SSRs."""
        path = paper_order.order_csv_path(self.ctx.settings, batch_id)
        return path, paper_order.export_csv(self.ctx.engine, self.ctx.operator, batch_id, path)

    def _show_written(self, written: tuple[int, Path, int]) -> None:
        batch_id, path, count = written
        self.query_one("#last", Static).update(
            plain(f"Order {batch_id}: {count:,} SSRs listed in {path}")
        )

    def action_received(self) -> None:
        selected = self.query_one(ChannelBatchTable).selected_id
        if selected is None:
            self.notify("No order yet: press ctrl+s to place one", title="ETS paper")
            return
        self._mark_received(selected)

    @work(thread=True, group="received")
    def _mark_received(self, batch_id: int) -> None:
        try:
            paper_order.mark_received(self.ctx.engine, self.ctx.operator, batch_id)
        except ConsoleError as error:
            self.app.call_from_thread(
                self.notify, str(error), title="Not changed", severity="error"
            )
            return
        self.app.call_from_thread(
            self.notify,
            f"Order {batch_id} received at the LEA: press e once it is mailed or handed out",
            title="ETS paper",
        )
        self._refresh()
