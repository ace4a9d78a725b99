"""The four distribution options of seed 000 (A portal, B secure electronic, C print locally, D paper
from ETS), and the one rule that gives a family its channel under a plan's options."""

from __future__ import annotations

import enum
from collections.abc import Iterable


class Option(enum.StrEnum):
    """The four options of seed 000, by their letter."""

    PORTAL = "A"
    SECURE = "B"
    PRINT = "C"
    PAPER = "D"

    @property
    def caption(self) -> str:
        return OPTION_TITLES[self]

    @property
    def electronic(self) -> bool:
        return self in (Option.PORTAL, Option.SECURE)


OPTION_TITLES = {
    Option.PORTAL: "Parent portal",
    Option.SECURE: "Secure electronic",
    Option.PRINT: "Print locally",
    Option.PAPER: "Paper from ETS",
}


ASSIGNMENT_ORDER = (Option.PORTAL, Option.SECURE, Option.PRINT, Option.PAPER)


def channel_for(channels: Iterable[Option], *, portal: bool, email: bool) -> Option | None:
    """The channel of one family under a plan's channels, or None when the plan leaves it out."""
    chosen = set(channels)
    if portal and Option.PORTAL in chosen:
        return Option.PORTAL
    if email and Option.SECURE in chosen:
        return Option.SECURE
    for paper in (Option.PRINT, Option.PAPER):
        if paper in chosen:
            return paper
    return None
