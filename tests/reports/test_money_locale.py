"""Money on the reports screen follows the operator's locale like the advisor's and the print
batch's: the review found "23,43 US$" in one place and "$63.71" in another for the same operator."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from services.core.channels import Option
from services.plan.advisor import money
from services.plan.decisions import decided_when
from services.reports.aggregates import ChannelCost, costs_text

COSTS = [
    ChannelCost(Option.PRINT, 1, 40, Decimal("23.43")),
    ChannelCost(Option.PAPER, 1, 12, Decimal("63.71")),
]


def test_costs_in_english() -> None:
    assert costs_text(COSTS, "en") == "C $23.43 · D $63.71"


def test_costs_in_spanish_match_the_advisor() -> None:
    text = costs_text(COSTS, "es")
    assert text == f"C {money(Decimal('23.43'), 'es')} · D {money(Decimal('63.71'), 'es')}"
    assert "23,43" in text and "63,71" in text and "$63.71" not in text


def test_times_follow_the_locale_and_say_utc() -> None:
    moment = datetime(2026, 8, 3, 14, 5, tzinfo=UTC)
    assert decided_when(moment, "en").endswith("UTC") and "2:05" in decided_when(moment, "en")
    assert "14:05" in decided_when(moment, "es")
