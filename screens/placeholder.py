"""A destination whose content a later issue delivers; it says on screen which issue owns it."""

from __future__ import annotations

from collections.abc import Callable

from textual.app import ComposeResult
from textual.content import Content
from textual.widgets import Static

from screens.base import ConsoleScreen
from services.context import ConsoleContext


class PlaceholderScreen(ConsoleScreen):
    DEFAULT_CSS = """
    PlaceholderScreen #placeholder { margin: 1 2; padding: 1 2; border: round $primary; }
    """

    def __init__(self, ctx: ConsoleContext, title: str, owner: str, content: str) -> None:
        super().__init__(ctx)
        self.screen_title = title
        self.owner = owner
        self.content = content

    def compose_body(self) -> ComposeResult:
        yield Static(
            Content(
                f"{self.screen_title}: not built yet.\n\n"
                f"This screen arrives with {self.owner}: {self.content}.\n\n"
                "esc goes back, ? lists the keys."
            ),
            id="placeholder",
        )

    def on_mount(self) -> None:
        self.title = self.screen_title


def placeholder(title: str, owner: str, content: str) -> Callable[[ConsoleContext], ConsoleScreen]:
    """A destination factory for a screen that ``owner`` (e.g. "issue 3") will supply."""
    return lambda ctx: PlaceholderScreen(ctx, title, owner, content)
