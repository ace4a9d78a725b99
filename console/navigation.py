"""Where the console can go: one Destination per screen, bound to a key app-wide.

A destination's factory is usually ``lazy("screens.module:ScreenClass")``, which imports the module when the screen is first opened, which
keeps the console's cold start to the dashboard's own imports (any
``Callable[[ConsoleContext], ConsoleScreen]`` works, such as a ``ConsoleScreen`` subclass).
The permission here only decides whether the app opens the screen; the services behind it
enforce data access themselves.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from screens.audit_log import AuditLogScreen
from screens.base import ConsoleScreen
from screens.dashboard import DashboardScreen
from screens.students import StudentsScreen
from services.access.permissions import Permission
from services.core.context import ConsoleContext


@dataclass(frozen=True)
class Destination:
    key: str
    title: str
    factory: Callable[[ConsoleContext], ConsoleScreen]
    permission: Permission | None


@dataclass(frozen=True)
class LazyScreen:
    """A screen factory that imports its module only when the screen is first opened."""

    module: str
    name: str

    def __call__(self, ctx: ConsoleContext) -> ConsoleScreen:
        return getattr(importlib.import_module(self.module), self.name)(ctx)


def lazy(target: str) -> LazyScreen:
    """``lazy("screens.module:ScreenClass")``: a factory for DESTINATIONS."""
    module, _, name = target.partition(":")
    return LazyScreen(module, name)


def preload() -> None:
    """Import every lazily loaded screen; the app runs this in the background once it is up."""
    for destination in DESTINATIONS:
        if isinstance(destination.factory, LazyScreen):
            importlib.import_module(destination.factory.module)


P = Permission
# One line per destination, so adding or moving a screen is a one-line edit.
# fmt: off
DESTINATIONS: list[Destination] = [
    Destination("d", "Dashboard", DashboardScreen, P.VIEW_DASHBOARD),
    Destination("s", "Students", StudentsScreen, P.VIEW_STUDENTS),
    Destination("c", "Credential", lazy("screens.credential:CredentialScreen"), P.VIEW_CREDENTIAL_STATUS),
    Destination("a", "Advisor", lazy("screens.advisor:AdvisorScreen"), P.VIEW_DASHBOARD),
    Destination("i", "Import", lazy("screens.import_reports:ImportReportsScreen"), P.IMPORT_REPORTS),
    Destination("b", "Batches", lazy("screens.batches:BatchesScreen"), P.RUN_BATCHES),
    Destination("p", "Print locally", lazy("screens.print_batch:PrintBatchScreen"), P.RUN_BATCHES),
    Destination("o", "Paper from ETS", lazy("screens.paper_order:PaperOrderScreen"), P.RUN_BATCHES),
    Destination("w", "Portal readiness", lazy("screens.portal_readiness:PortalReadinessScreen"), P.VIEW_DASHBOARD),
    Destination("u", "Coverage", lazy("screens.coverage:CoverageScreen"), P.VIEW_STUDENTS),
    Destination("n", "Notices", lazy("screens.notices:NoticesScreen"), P.VIEW_CREDENTIAL_STATUS),
    Destination("h", "Help desk", lazy("screens.helpdesk:HelpDeskScreen"), P.RESEND),
    Destination("r", "Reports", lazy("screens.reports:ReportsScreen"), P.VIEW_REPORTS),
    Destination("l", "Audit log", AuditLogScreen, P.VIEW_AUDIT),
    Destination("O", "Operators", lazy("screens.operators:OperatorsScreen"), P.MANAGE_OPERATORS),
    Destination("Y", "Roster import", lazy("screens.roster_import:RosterImportScreen"), P.IMPORT_ROSTER),
]
# fmt: on
BY_KEY = {d.key: d for d in DESTINATIONS}


class DestinationCommands(Provider):
    """Command palette entries "Go to <screen>" for every destination (ctrl+p)."""

    def _entries(self) -> list[tuple[str, str, Callable[[], object]]]:
        return [
            (
                f"Go to {d.title}",
                f"key {d.key}",
                partial(self.app.run_action, f"go({d.key!r})"),
            )
            for d in DESTINATIONS
        ]

    async def discover(self) -> Hits:
        for text, help_text, command in self._entries():
            yield DiscoveryHit(text, command, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, help_text, command in self._entries():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), command, help=help_text)
