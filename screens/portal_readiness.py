"""Portal readiness (option A, key w): seed 001's checklist, the operator's answers, and the
families the portal does not reach, each one key from another channel.

Keys: x portal active yes/no, y vendor on the integration list yes/no, tab to the vendor name and
the CALPADS date, ctrl+s save the answers; ctrl+u publish the portal batch (the plan's portal families
are then covered by A); m hand the families the portal does not reach to print, t to ETS paper,
e to secure email. Marks read without colour: [ok], [!!] (attention), [no].
"""

from __future__ import annotations

from dataclasses import replace

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, Input, Label, Static

from screens.base import ConsoleScreen
from services.access.permissions import Permission, allowed
from services.channels import batches as channel_batches
from services.channels import portal_readiness
from services.channels.portal_readiness import Readiness, Setup
from services.channels.portal_tables import PortalShareSample
from services.core.channels import Option
from services.core.columns import utcnow
from services.core.context import ConsoleContext
from services.core.errors import ConsoleError, InvalidInput
from services.plan.advisor import Rates
from widgets.plain import PlainInput, PlainTable, plain

TREND_POINTS = 5
"""Daily share samples shown in the trend line (the newest)."""
HANDOFF_KEYS = {"m": Option.PRINT, "t": Option.PAPER, "e": Option.SECURE}


HAND_OFF = Binding.Group("Move", compact=True)
"""The families the portal does not reach, handed to print (m), ETS paper (t) or email (e)."""


class PortalReadinessScreen(ConsoleScreen):
    TITLE = "Portal readiness (A)"
    CSS_PATH = "portal_readiness.tcss"
    BINDINGS = [
        Binding("x", "toggle_portal", "Portal", tooltip="Portal in use: on/off"),
        Binding("y", "toggle_listed", "Listed"),
        Binding("ctrl+s", "save", "Save", tooltip="Save answers"),
        Binding("ctrl+u", "publish", "Publish", tooltip="Publish to the portal (A)"),
        # One footer entry for the three hand-offs ("m t e Move"); the help names each.
        Binding("m", "handoff('m')", "To print", group=HAND_OFF),
        Binding("t", "handoff('t')", "To ETS", group=HAND_OFF),
        Binding("e", "handoff('e')", "To email", group=HAND_OFF),
    ]

    def __init__(self, ctx: ConsoleContext) -> None:
        super().__init__(ctx)
        self.answers = Setup()
        try:
            self.rates = channel_batches.configured_rates(ctx.settings)
        except InvalidInput:
            self.rates = Rates()

    def compose_body(self) -> ComposeResult:
        yield Static("Checking…", id="checklist")
        yield Static("", id="trend")
        with Horizontal(classes="answer"):
            yield Label("Vendor (tab here)")
            yield PlainInput(placeholder="vendor name", max_length=200, id="vendor", compact=True)
        with Horizontal(classes="answer"):
            yield Label("CALPADS updated")
            yield Input(
                placeholder="YYYY-MM-DD", max_length=10, restrict=r"[0-9-]*", id="calpads",
                compact=True,
            )  # fmt: skip
        yield PlainTable(id="families", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        table = self.query_one("#families", DataTable)
        table.add_columns("Family (not reached)", "Lang", "Email", "Address", "Students")
        table.focus()
        self._load()

    @work(thread=True, exclusive=True, group="check")
    def _load(self) -> None:
        try:
            state = portal_readiness.check(self.ctx.engine, self.ctx.operator)
            samples = portal_readiness.trend_since(self.ctx.engine, self.ctx.operator.lea_id)
            families: list[portal_readiness.Family] = []
            if allowed(self.ctx.operator, Permission.VIEW_CONTACTS):
                families = portal_readiness.not_reached(
                    self.ctx.engine, self.ctx.operator, limit=200
                )
        except ConsoleError as error:
            self.app.call_from_thread(self.notify, str(error), severity="error")
            return
        self.app.call_from_thread(self._show, state, families, samples)

    def _show(
        self,
        state: Readiness,
        families: list[portal_readiness.Family],
        samples: list[PortalShareSample],
    ) -> None:
        self.answers = state.setup
        self._show_checklist(state)
        trend = " → ".join(
            f"{s.taken_on:%m-%d} {s.portal_families / s.families:.0%}"
            for s in samples[-TREND_POINTS:]
            if s.families
        )
        self.query_one("#trend", Static).update(plain(f"Portal share trend: {trend}"))
        self.query_one("#vendor", Input).value = state.setup.vendor_name
        on = state.setup.calpads_updated_on
        self.query_one("#calpads", Input).value = f"{on:%Y-%m-%d}" if on else ""
        table = self.query_one("#families", DataTable)
        table.clear()
        for family in families:
            table.add_row(
                family.name[:30],
                family.language,
                "yes" if family.email else "no",
                "yes" if family.address else "no",
                str(family.students),
            )

    def _show_checklist(self, state: Readiness) -> None:
        lines = [f"{i.mark.symbol} {i.label}: {i.detail}" for i in state.items]
        self.query_one("#checklist", Static).update(plain("\n".join(lines)))

    def action_toggle_portal(self) -> None:
        self._answered(replace(self.answers, portal_active=not self.answers.portal_active))

    def action_toggle_listed(self) -> None:
        self._answered(replace(self.answers, vendor_listed=not self.answers.vendor_listed))

    def _answered(self, answers: portal_readiness.Setup) -> None:
        self.answers = answers
        lines = [
            f"Portal active: {'yes' if self.answers.portal_active else 'no'}",
            f"on the Vendor Integration list: {'yes' if self.answers.vendor_listed else 'no'}",
        ]
        self.notify(", ".join(lines) + " (ctrl+s saves)", title="Portal answers")

    def action_save(self) -> None:
        try:
            calpads = portal_readiness.parse_date(
                self.query_one("#calpads", Input).value, utcnow().date()
            )
        except ConsoleError as error:
            self.notify(str(error), title="Not saved", severity="error")
            return
        answers = replace(
            self.answers,
            vendor_name=self.query_one("#vendor", Input).value,
            calpads_updated_on=calpads,
        )
        self.call_service(
            "save",
            "saving the portal answers",
            lambda: portal_readiness.save_setup(self.ctx.engine, self.ctx.operator, answers),
            lambda _: self._done("Portal answers saved"),
            refused="Not saved",
        )

    def action_publish(self) -> None:
        self.call_service(
            "publish",
            "publishing to the portal",
            lambda: portal_readiness.publish(self.ctx.engine, self.ctx.operator),
            lambda batch: self._done(
                f"Portal batch {batch.id}: {batch.families:,} families covered by the portal"
            ),
            refused="Not published",
        )

    def action_handoff(self, key: str) -> None:
        channel = HANDOFF_KEYS[key]
        where = {Option.PRINT: "key p", Option.PAPER: "key o", Option.SECURE: "key b"}[channel]
        self.call_service(
            "handoff",
            f"handing the families to {channel.value} {channel.caption}",
            lambda: portal_readiness.handoff(
                self.ctx.engine, self.ctx.operator, channel, rates=self.rates
            ),
            lambda done: self._done(
                f"{done.families:,} families handed to {channel.value} {channel.caption}: "
                f"batch {done.batch_id} ({where})",
                "Hand-off",
            ),
            refused="Not handed off",
        )

    def _done(self, message: str, title: str = "Portal readiness") -> None:
        self.notify(message, title=title)
        self._load()
