"""The distribution advisor: four questions, a live recommendation, the four options side by side,
and keys to save the plan or overrule it with a reason.

Everything is keyboard-driven and fits 80x24 by scrolling: y/n answer a question and move on, the
share is typed as a percentage, ctrl+s saves the recommendation, ctrl+o opens the overrule dialog.
Roster facts are counted in a worker thread, so the screen paints at once on any roster size.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Label, Select, SelectionList, Static

from screens.base import ConsoleScreen
from services.access.permissions import Permission, require, school_scope
from services.channels import batches as channel_batches
from services.core.channels import ASSIGNMENT_ORDER, Option
from services.core.context import ConsoleContext
from services.core.errors import ConsoleError, InvalidInput
from services.plan import decisions as plan
from services.plan import school_year
from services.plan.advisor import (
    Answers,
    Draft,
    Rates,
    Recommendation,
    RosterFacts,
    compare,
    counted,
    money,
    parse_share,
    percent,
    plan_label,
    prefill,
    recommend,
    recommendation_text,
    timing,
)
from services.roster import facts as roster_facts
from widgets.form_dialog import off_the_loop
from widgets.plain import PlainInput, PlainTable, plain
from widgets.question_form import YesNo

WHOLE_LEA = -1
"""The scope selector's value for the whole LEA (schools use their id)."""

QUESTIONS = {
    "has_sis": "1. Do you have a Student Information System (SIS)?",
    "sis_portal": "2. Do you use your SIS's parent portal?",
    "third_party": "3. Do you use a third-party parent portal?",
}


class AdvisorScreen(ConsoleScreen):
    TITLE = "Advisor"
    BINDINGS = [
        Binding("ctrl+s", "save", "Save plan"),
        Binding("ctrl+o", "overrule", "Overrule"),
    ]
    CSS_PATH = "advisor.tcss"

    def __init__(self, ctx: ConsoleContext) -> None:
        super().__init__(ctx)
        self.locale = ctx.operator.language
        self.locked_school = school_scope(ctx.operator)
        self.school_id: int | None = self.locked_school
        self.facts: RosterFacts | None = None
        self.recommendation: Recommendation | None = None
        self.rates_problem = ""
        try:
            self.rates = channel_batches.configured_rates(ctx.settings)
        except InvalidInput as problem:
            self.rates, self.rates_problem = Rates(), f"{problem}; using the default rates."

    def compose_body(self) -> ComposeResult:
        with VerticalScroll(id="advisor"):
            with Horizontal(id="scope-row"):
                yield Label("Answer for ")
                yield Select(
                    self._scopes([]),  # the schools arrive with the first count (_load)
                    value=self.locked_school or WHOLE_LEA,
                    allow_blank=False,
                    disabled=self.locked_school is not None,
                    id="scope",
                    compact=True,
                )
            for key, question in QUESTIONS.items():
                with Horizontal(classes="question"):
                    yield Label(question)
                    yield YesNo(id=key)
            with Horizontal(classes="question"):
                yield Label("4. What % of guardians actively use the portal?")
                yield Input(
                    placeholder="0-100",
                    restrict=r"[0-9.,%]*",
                    max_length=6,
                    id="share",
                    compact=True,
                )
            yield Static("", id="share-hint")
            yield Static(plain("Counting the roster…"), id="recommendation")
            yield Static("Each option alone for these families:", id="options-title")
            yield PlainTable(id="options", show_cursor=False, zebra_stripes=True)
            yield Static("", id="blockers")
            yield Static("", id="history")

    def _scopes(self, schools: list[tuple[int, str]]) -> list[tuple[str | Content, int]]:
        if self.locked_school is not None:
            own: list[tuple[str | Content, int]] = [
                (plain(name), i) for i, name in schools if i == self.locked_school
            ]
            return own or [("Your school", self.locked_school)]
        return [("Whole LEA", WHOLE_LEA), *((plain(f"School: {name}"), i) for i, name in schools)]

    def on_mount(self) -> None:
        self.query_one("#recommendation").border_title = "Recommendation"
        table = self.query_one("#options", DataTable)
        table.can_focus = False
        table.add_columns("Option", "Families", "SSRs", "Cost", "Ready", "Left out")
        self.query_one("#has_sis", YesNo).focus()
        if self.rates_problem:
            self.notify(self.rates_problem, title="Advisor rates", severity="warning")
        self._load(self.school_id, fill="all")

    @work(thread=True, exclusive=True, group="advisor-facts")
    def _load(self, school_id: int | None, fill: str) -> None:
        """Count the scope's roster; ``fill`` says which answers to pre-fill: all, share, none."""
        engine, operator = self.ctx.engine, self.ctx.operator
        try:
            facts = roster_facts.roster_facts(engine, operator.lea_id, school_id)
            saved = plan.current_for(engine, operator, school_id)
            history = plan.history(engine, operator, school_id, limit=5)
            year = school_year.current(engine, operator)
            schools = roster_facts.schools(engine, operator.lea_id) if fill == "all" else None
        except ConsoleError as problem:
            self.app.call_from_thread(self.notify, str(problem), severity="error")
            return
        self.app.call_from_thread(self._loaded, facts, saved, history, year, fill, schools)

    def _loaded(
        self,
        facts: RosterFacts,
        saved: plan.SavedPlan | None,
        history: list[plan.SavedPlan],
        year: school_year.SchoolYear,
        fill: str,
        schools: list[tuple[int, str]] | None = None,
    ) -> None:
        if schools is not None:
            scope = self.query_one("#scope", Select)
            with scope.prevent(Select.Changed):
                scope.set_options(self._scopes(schools))
                scope.value = self.school_id or WHOLE_LEA
        self.facts = facts
        own = saved if saved and saved.school_id == self.school_id else None
        draft = prefill(facts, own.answers if own else None)
        if fill == "all":
            for key, value in (
                ("has_sis", draft.has_sis),
                ("sis_portal", draft.sis_portal),
                ("third_party", draft.third_party_portal),
            ):
                if value is not None:
                    self.query_one(f"#{key}", YesNo).answer(value)
        if fill in ("all", "share") and draft.portal_share is not None:
            self.query_one("#share", Input).value = f"{round(draft.portal_share * 100, 1):g}"
        self._show_share_hint()
        self._show_history(saved, history, year)
        self.refresh_recommendation()

    def _show_share_hint(self) -> None:
        facts = self.facts
        if facts is None:
            return
        if facts.empty:
            text = f"{facts.scope}: no students or guardians on the roster yet."
        else:
            share = facts.portal_share
            text = (
                f"{facts.scope}: {facts.portal_families} of "
                f"{counted(facts.families, 'family', 'families')} marked as "
                f"portal users ({percent(share or 0, self.locale)}), {facts.email_families} "
                f"with email, {facts.address_families} with a mailing address; "
                f"{facts.students} students, {facts.ssrs} SSRs"
                + (" (estimated)" if facts.ssrs_estimated else "")
            )
        self.query_one("#share-hint", Static).update(plain(text))

    def _show_history(
        self,
        saved: plan.SavedPlan | None,
        history: list[plan.SavedPlan],
        year: school_year.SchoolYear,
    ) -> None:
        """The plan of the current school year (a new year starts without one), and the last
        decisions of any year."""
        of_year = f" for {roster_facts.school_year_label(year.year)}" if year.year else ""
        lines = [
            f"Plan in force{of_year}: "
            + plan.summary_text(saved, self.locale).replace("\n", "\n  ")
        ]
        if history:
            lines.append("History (newest first):")
            lines += [
                f"  {plan.decided_when(p.decided_at, self.locale)}  {p.label}  by {p.decided_by}"
                + (f"  overruled: {p.reason}" if p.overruled else "")
                for p in history
            ]
        self.query_one("#history", Static).update(plain("\n".join(lines)))

    def draft(self) -> Draft:
        """The answers on screen; raises InvalidInput for a share that is not a percentage."""
        has_sis = self.query_one("#has_sis", YesNo).value
        text = self.query_one("#share", Input).value
        return Draft(
            has_sis=has_sis,
            sis_portal=self.query_one("#sis_portal", YesNo).value if has_sis else False,
            third_party_portal=self.query_one("#third_party", YesNo).value,
            portal_share=parse_share(text) if text.strip() else None,
        )

    def answers(self) -> Answers:
        """Complete answers, or InvalidInput naming the questions still open."""
        return self.draft().required()

    @on(YesNo.Changed)
    @on(Input.Changed, "#share")
    def refresh_recommendation(self) -> None:
        """Recompute on every answer; the panel says what is missing or wrong instead."""
        self.query_one("#sis_portal", YesNo).disabled = (
            self.query_one("#has_sis", YesNo).value is False
        )
        panel = self.query_one("#recommendation", Static)
        if self.facts is None:
            return
        try:
            answers = self.answers()
        except InvalidInput as problem:
            self.recommendation = None
            panel.update(plain(f"{problem}."))
            self.query_one("#options", DataTable).clear()
            self.query_one("#blockers", Static).update("")
            return
        self.recommendation = recommend(answers, self.facts, self.rates)
        panel.update(plain(self._recommendation_text(self.recommendation)))
        self._fill_options(answers)

    def _recommendation_text(self, rec: Recommendation) -> str:
        assert self.facts is not None
        text = recommendation_text(rec, self.facts, date.today(), self.locale)
        return text + "\n\nctrl+s saves this plan · ctrl+o overrules it with a reason"

    def _fill_options(self, answers: Answers) -> None:
        assert self.facts is not None
        table = self.query_one("#options", DataTable)
        table.clear()
        today = date.today()
        rows = compare(answers, self.facts, self.rates)
        for row in rows:
            channel = row.allocation.channels[0]
            table.add_row(
                f"{row.option.value} {row.option.caption}",
                str(channel.families),
                str(channel.ssrs),
                money(row.allocation.cost, self.locale),
                timing(row.option, today, self.locale, short=True),
                str(row.allocation.unreached_families),
            )
        self.query_one("#blockers", Static).update(
            plain("\n".join(f"{r.option.value}: {r.blocker}" for r in rows if r.blocker))
        )

    def _refused(self, action: Callable[[], None]) -> bool:
        """Run a permission check; show its sentence and return True when refused."""
        try:
            action()
        except ConsoleError as refusal:
            self.notify(str(refusal), title="Not saved", severity="error")
            return True
        return False

    def action_save(self) -> None:
        """Save the recommendation as the plan of the chosen scope."""
        if self.facts is None:
            self.notify("Still counting the roster; try again in a moment", title="Not saved")
            return
        try:
            answers = self.answers()
        except ConsoleError as problem:
            self.notify(str(problem), title="Not saved", severity="error")
            return
        facts, school_id = self.facts, self.school_id
        self.call_service(
            "save",
            "saving the plan",
            lambda: plan.save(
                self.ctx.engine,
                self.ctx.operator,
                answers,
                facts,
                school_id=school_id,
                rates=self.rates,
            ),
            self._saved,
            refused="Not saved",
        )

    def _saved(self, saved: plan.SavedPlan | None) -> None:
        if saved is None:
            return
        self.notify(f"Plan saved: {saved.label}", title="Advisor")
        self._load(self.school_id, fill="none")

    def action_overrule(self) -> None:
        """Choose other channels than recommended, with a reason kept beside the plan."""
        if self._refused(
            lambda: require(self.ctx.operator, Permission.CHOOSE_PLAN, school_id=self.school_id)
        ):
            return
        if self.recommendation is None or self.facts is None:
            self.notify("Answer the four questions first", title="Overrule", severity="error")
            return
        answers, facts = self.recommendation.answers, self.facts

        def submit(channels: tuple[Option, ...], reason: str) -> plan.SavedPlan:
            return plan.save(
                self.ctx.engine,
                self.ctx.operator,
                answers,
                facts,
                school_id=self.school_id,
                channels=channels,
                reason=reason,
                rates=self.rates,
            )

        self.app.push_screen(
            OverruleDialog(self.recommendation.options, submit), callback=self._saved
        )

    @on(Select.Changed, "#scope")
    def _scope_changed(self, event: Select.Changed) -> None:
        value = event.value
        if not isinstance(value, int):  # the scope list has no blank entry
            return
        school_id = None if value == WHOLE_LEA else value
        if school_id != self.school_id:
            self.school_id, self.facts = school_id, None
            self.query_one("#recommendation", Static).update(plain("Counting the roster…"))
            self._load(school_id, fill="share")

    @on(Input.Submitted, "#share")
    def _share_entered(self) -> None:
        self.focus_next()


class OverruleDialog(ModalScreen[plan.SavedPlan | None]):
    """Pick the channels and say why; the plan is saved here, so a refusal keeps what was typed."""

    CSS_PATH = "advisor.tcss"
    BINDINGS = [
        Binding("escape", "dismiss_dialog", "Cancel"),
        Binding("ctrl+s", "submit", "Save overrule"),
    ]

    def __init__(
        self,
        recommended: tuple[Option, ...],
        submit: Callable[[tuple[Option, ...], str], plan.SavedPlan],
    ) -> None:
        super().__init__()
        self.recommended = recommended
        self.submit = submit
        self.saving = False

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "Overrule the recommendation"
            box.border_subtitle = "space toggles · tab · enter saves · esc cancels"
            yield Label(f"Recommended: {plan_label(self.recommended)}. Channels to use instead:")
            yield SelectionList[str](
                *(
                    (f"{o.value} {o.caption}", o.value, o in self.recommended)
                    for o in ASSIGNMENT_ORDER
                ),
                id="channels",
            )
            yield Label("Reason (kept with the plan and in the audit log):")
            yield PlainInput(placeholder="why these channels", max_length=500, id="reason")
            yield Static("", id="problem")

    def on_mount(self) -> None:
        self.query_one("#channels", SelectionList).focus()

    @on(Input.Submitted, "#reason")
    async def action_submit(self) -> None:
        if self.saving:  # a second enter while the first is being saved
            return
        letters = self.query_one("#channels", SelectionList).selected
        reason = self.query_one("#reason", Input).value
        problem = self.query_one("#problem", Static)
        problem.update("Saving…")
        self.saving = True
        try:
            channels = tuple(Option(letter) for letter in letters)
            saved = await off_the_loop(self, lambda: self.submit(channels, reason))
        except ConsoleError as refusal:
            problem.update(plain(str(refusal)))
            return
        finally:
            self.saving = False
        self.dismiss(saved)

    def action_dismiss_dialog(self) -> None:
        self.dismiss(None)
