"""Every screen's keys at 80 columns: the footer shows each key it lists whole (none clipped off the
right edge), and always a help key (``?``, or ``f1`` while a text field takes ``?``), whose overlay
lists every other key of the screen. Screens are opened as the LEA CAASPP coordinator, who has
every key, on the demo LEA with a secure-email batch (for its progress screen)."""

from __future__ import annotations

import pytest
from textual.screen import Screen
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

from console.app import SSRConsoleApp
from console.navigation import DESTINATIONS
from screens.batch_progress import BatchProgressScreen
from screens.help import describe_keys, help_text
from screens.reports import AtRiskScreen
from services.access import operators
from services.core.context import ConsoleContext
from services.delivery import batches
from tests.pilot import settle

SIZE = (80, 24)
HELP_KEYS = {"question_mark", "f1"}


@pytest.fixture
def seeded(engine, settings, seed_demo):  # type: ignore[no-untyped-def]
    seed_demo(engine, settings, students=60, seed=7, pdfs=True)
    return engine


def footer_problems(screen: Screen[object]) -> list[str]:
    """What is wrong with the footer of ``screen`` as rendered: keys cut off, no help key, or a
    key of the screen neither in the footer nor in the help overlay."""
    footer = screen.query_one(Footer)
    shown = list(footer.query(FooterKey))
    edge = footer.region.right
    problems = [
        f"{key.key} “{key.description}” does not fit the footer"
        for key in shown
        if key.region.width == 0 or key.region.right > edge
    ]
    visible = {key.key for key in shown if key.region.width and key.region.right <= edge}
    if not visible & HELP_KEYS:
        problems.append("no help key (? or f1) in the footer")
    listed = {entry.description for entry in describe_keys(screen)}
    for active in screen.active_bindings.values():
        binding = active.binding
        if active.node is screen and binding.key not in visible:
            description = help_text(binding)
            if description not in listed:
                problems.append(f"{binding.key} “{description}” is in neither footer nor help")
    return problems


async def test_every_screens_keys_fit_the_footer_at_80_columns_or_are_in_help(
    seeded, settings
) -> None:  # type: ignore[no-untyped-def]
    operator = operators.resolve(seeded, "caaspp")
    batch_id = batches.create(seeded, operator, batches.Selection(), name="Spring SSRs")
    app = SSRConsoleApp(ConsoleContext(seeded, settings, operator))
    problems: dict[str, list[str]] = {}
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for destination in DESTINATIONS:
            await app.run_action(f"go({destination.key!r})")
            await settle(pilot)
            problems[destination.title] = footer_problems(app.screen)
        extra: list[Screen[object]] = [
            BatchProgressScreen(app.ctx, batch_id),
            AtRiskScreen(app.ctx),
        ]
        for screen in extra:
            await app.push_screen(screen)
            await settle(pilot)
            problems[type(screen).__name__] = footer_problems(screen)
            await app.pop_screen()
    failing = {title: found for title, found in problems.items() if found}
    assert not failing, "\n".join(f"{t}: {f}" for t, f in failing.items())
