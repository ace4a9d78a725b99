"""The strip of standing messages over every screen (e.g. "the credential expires in 9 days").

Each line starts with its level in words, so it still reads right without colour (NO_COLOR).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from textual.widgets import Static

from widgets.plain import plain


class BannerLike(Protocol):
    level: str  # "info", "warning" or "error"
    text: str


class BannerBar(Static):
    """Hidden when there is nothing to say; one line per banner otherwise."""

    DEFAULT_CSS = """
    BannerBar { display: none; height: auto; padding: 0 1; background: $warning 30%; }
    BannerBar.-shown { display: block; }
    BannerBar.-error { background: $error 40%; }
    """

    def show(self, banners: Sequence[BannerLike]) -> None:
        self.set_class(bool(banners), "-shown")
        self.set_class(any(b.level == "error" for b in banners), "-error")
        self.update(plain("\n".join(f"{b.level.upper()}: {b.text}" for b in banners)))
