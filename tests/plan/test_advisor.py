"""The advisor's rules, table-driven: every combination of the three yes/no answers times five
portal-usage shares, each with the expected channels, approach and reasons; then the edge cases
(no roster, 0% and 100%, no emails), costs, timing and bad input."""

from __future__ import annotations

import itertools
from datetime import date
from decimal import Decimal

import pytest

from services.core.channels import Option, channel_for
from services.core.errors import InvalidInput
from services.plan.advisor import (
    Answers,
    Approach,
    Draft,
    FamilyGroup,
    Rates,
    RosterFacts,
    allocate,
    compare,
    money,
    parse_share,
    prefill,
    recommend,
    timing,
)

A, B, C, D = Option.PORTAL, Option.SECURE, Option.PRINT, Option.PAPER
SHARES = (0.0, 0.1, 0.5, 0.8, 1.0)


def roster(share: float, families: int = 100) -> RosterFacts:
    """A roster whose portal users match ``share``: of the others, 60% have an email address."""
    portal = round(share * families)
    rest = families - portal
    email = rest * 6 // 10
    groups = [
        FamilyGroup(portal=True, email=True, address=True, families=portal, ssrs=portal),
        FamilyGroup(portal=False, email=True, address=True, families=email, ssrs=email),
        FamilyGroup(
            portal=False, email=False, address=True, families=rest - email, ssrs=rest - email
        ),
    ]
    return RosterFacts("Test LEA", students=families, groups=tuple(g for g in groups if g.families))


# (has SIS, SIS portal, third-party portal) -> does a portal exist, and which paper channel.
ANSWER_ROWS = {
    (True, True, True): (True, C),
    (True, True, False): (True, C),
    (True, False, True): (True, C),
    (True, False, False): (False, C),
    (False, True, True): (True, D),  # the SIS-portal answer is ignored without an SIS
    (False, True, False): (False, D),
    (False, False, True): (True, D),
    (False, False, False): (False, D),
}
# share -> (channels with a portal, approach) and (channels without one, approach); "P" = paper.
WITH_PORTAL = {
    0.0: ("BP", Approach.ELECTRONIC_FIRST),
    0.1: ("BP", Approach.ELECTRONIC_FIRST),
    0.5: ("ABP", Approach.COMBINED),
    0.8: ("ABP", Approach.PORTAL_FIRST),
    1.0: ("A", Approach.PORTAL_FIRST),
}
WITHOUT_PORTAL = {
    0.0: ("BP", Approach.ELECTRONIC_FIRST),
    0.1: ("BP", Approach.ELECTRONIC_FIRST),
    0.5: ("BP", Approach.ELECTRONIC_FIRST),
    0.8: ("BP", Approach.ELECTRONIC_FIRST),
    1.0: ("B", Approach.ELECTRONIC_FIRST),  # everyone on this roster has an email address
}
CASES = [
    (*answers, share)
    for answers, share in itertools.product(ANSWER_ROWS, SHARES)  # 8 x 5 = 40 cases
]


def expected_reasons(has_sis: bool, sis_portal: bool, third: bool, share: float, portal: bool):  # type: ignore[no-untyped-def]
    high = portal and share >= 0.8
    low = not high
    return {
        A: {"A.fastest", "A.no_postage"}
        | ({"A.sis_portal"} if has_sis and sis_portal else set())
        | ({"A.third_party"} if third else set())
        | ({"A.high_usage"} if high else set()),
        B: {"B.secure", "B.familiar", "B.avenue"} | ({"B.low_portal"} if low else set()),
        C: {"C.address", "C.familiar", "C.no_secure"} | ({"C.low_portal"} if low else set()),
        D: {"D.fit", "D.no_printing", "D.address", "D.august"},
    }


@pytest.mark.parametrize(("has_sis", "sis_portal", "third", "share"), CASES)
def test_every_answer_combination(
    has_sis: bool, sis_portal: bool, third: bool, share: float
) -> None:
    portal, paper = ANSWER_ROWS[(has_sis, sis_portal, third)]
    letters, approach = (WITH_PORTAL if portal else WITHOUT_PORTAL)[share]
    expected = tuple(Option(x) if x != "P" else paper for x in letters)
    facts = roster(share)
    rec = recommend(Answers(has_sis, sis_portal, third, share), facts)

    assert rec.options == expected
    assert rec.primary is expected[0]
    assert rec.approach is approach
    assert rec.combined == (len(expected) > 1)
    reasons = expected_reasons(has_sis, sis_portal, third, share, portal)
    for channel in rec.allocation.channels:
        assert {r.key for r in channel.reasons} == reasons[channel.option], channel.option
    # Every family lands on exactly one channel; the portal takes exactly the portal users.
    assert sum(c.families for c in rec.allocation.channels) == facts.families
    assert rec.allocation.unreached_families == 0
    if A in rec.options:
        assert rec.allocation.channel(A).families == facts.portal_families  # type: ignore[union-attr]
    notes = {n.key for n in rec.notes}
    assert ("note.sis_portal_ignored" in notes) == (sis_portal and not has_sis)
    assert ("note.share_ignored" in notes) == (not portal and share > 0)


def test_no_roster_recommends_from_the_answers_alone() -> None:
    empty = RosterFacts("Empty LEA")
    rec = recommend(Answers(True, True, False, 0.5), empty)
    assert rec.options == (A, B, C)
    assert all(c.families == 0 and c.ssrs == 0 for c in rec.allocation.channels)
    assert rec.allocation.cost == 0
    assert "note.no_roster" in {n.key for n in rec.notes}
    assert recommend(Answers(False, False, False, 0.0), empty).options == (B, D)
    assert recommend(Answers(True, True, False, 1.0), empty).options == (A,)
    assert prefill(empty) == Draft()  # nothing known: every question left to the coordinator


def test_zero_percent_portal_usage_leaves_the_portal_out() -> None:
    rec = recommend(Answers(True, True, False, 0.0), roster(0.0))
    assert A not in rec.options
    assert rec.approach is Approach.ELECTRONIC_FIRST
    assert rec.allocation.channel(B).families == 60  # type: ignore[union-attr]
    assert rec.allocation.channel(C).families == 40  # type: ignore[union-attr]


def test_full_portal_usage_is_the_portal_alone_at_no_cost() -> None:
    rec = recommend(Answers(True, True, False, 1.0), roster(1.0))
    assert rec.options == (A,) and rec.label == "A Parent portal"
    assert rec.allocation.cost == 0
    assert {r.key for r in rec.allocation.channels[0].reasons} >= {"A.high_usage", "A.sis_portal"}


def test_no_guardian_emails_means_paper_for_everyone_not_on_the_portal() -> None:
    facts = RosterFacts(
        "No email LEA",
        students=10,
        groups=(
            FamilyGroup(portal=True, email=False, address=True, families=4, ssrs=4),
            FamilyGroup(portal=False, email=False, address=True, families=6, ssrs=6),
        ),
    )
    assert recommend(Answers(True, True, False, 0.4), facts).options == (A, C)
    assert recommend(Answers(True, False, False, 0.0), facts).options == (C,)
    no_sis = recommend(Answers(False, False, False, 0.0), facts)
    assert no_sis.options == (D,) and no_sis.approach is Approach.PAPER
    assert "note.no_email" in {n.key for n in no_sis.notes}
    rows = {row.option: row for row in compare(Answers(True, False, False, 0.0), facts)}
    assert rows[B].blocker == "No guardian has an email address"
    assert rows[A].blocker == "No parent portal in use"


def test_students_without_guardians_and_families_without_address_go_on_paper() -> None:
    facts = RosterFacts(
        "Mixed",
        students=5,
        groups=(
            FamilyGroup(portal=False, email=True, address=False, families=1, ssrs=1),
            FamilyGroup(portal=False, email=False, address=False, families=2, ssrs=3),
        ),
        unlinked_students=1,
        unlinked_ssrs=2,
    )
    rec = recommend(Answers(True, False, False, 0.0), facts)
    paper = rec.allocation.channel(C)
    assert paper is not None and paper.ssrs == 5 and paper.mailed_families == 0
    assert {"note.no_address", "note.unlinked"} <= {n.key for n in rec.notes}


def test_costs_follow_the_rates() -> None:
    facts = roster(0.0, families=10)  # 6 email, 4 print; every family has an address
    print_only = allocate([C], facts, Rates())
    # 10 SSRs x 2 pages x $0.10 + 10 envelopes x ($0.05 + $0.78)
    assert print_only.cost == Decimal("10.30")
    ets = allocate([D], facts, Rates())
    assert ets.cost == Decimal("1.48") * 10 + Decimal("0.83") * 10
    stuffed = allocate([D], facts, Rates(ets_stuffed=True, postage=Decimal(0)))
    assert stuffed.cost == Decimal("20.00")
    combined = recommend(Answers(True, False, False, 0.0), facts)
    assert combined.allocation.channel(B).cost == 0  # type: ignore[union-attr]
    assert combined.allocation.cost == Decimal("0.20") * 4 + Decimal("0.83") * 4


def test_ets_paper_not_offered_prints_locally_instead() -> None:
    rates = Rates(ets_offered=False)
    rec = recommend(Answers(False, False, False, 0.0), roster(0.0), rates)
    assert rec.options == (B, C)
    assert "note.ets_not_offered" in {n.key for n in rec.notes}
    assert {r.option: r.blocker for r in compare(rec.answers, roster(0.0), rates)}[D]


def test_channel_for_follows_the_plan_order() -> None:
    assert channel_for([A, B, C], portal=True, email=True) is A
    assert channel_for([A, B, C], portal=False, email=True) is B
    assert channel_for([A, B, C], portal=False, email=False) is C
    assert channel_for([B, D], portal=True, email=False) is D
    assert channel_for([A], portal=False, email=True) is None
    assert channel_for([B], portal=False, email=False) is None


def test_prefill_from_roster_then_from_the_saved_plan() -> None:
    facts = roster(0.3)
    assert prefill(facts) == Draft(has_sis=True, sis_portal=True, portal_share=0.3)
    saved = Answers(True, False, True, 0.25)
    assert prefill(facts, saved).complete() == saved
    assert prefill(roster(0.0)).complete() is None  # SIS questions still open


def test_timing_and_money_in_the_operators_locale() -> None:
    assert timing(A, date(2026, 11, 25)) == "As soon as SSRs are available in TOMS"
    assert timing(D, date(2026, 11, 25)) == "From August 1, 2027"
    assert timing(D, date(2027, 3, 1), "es") == "From 1 de agosto de 2027"
    assert money(Decimal("1234.5"), "en") == "$1,234.50"
    spanish = money(Decimal("1234.5"), "es")
    assert spanish.startswith("1.234,50") and spanish.endswith("US$")


@pytest.mark.parametrize(
    ("text", "share"), [("37", 0.37), ("37.5%", 0.375), (" 0 ", 0.0), ("100", 1.0), ("12,5", 0.125)]
)
def test_parse_share_accepts_percentages(text: str, share: float) -> None:
    assert parse_share(text) == pytest.approx(share)


@pytest.mark.parametrize("text", ["", "abc", "101", "-5", "%"])
def test_parse_share_refuses_with_a_sentence(text: str) -> None:
    with pytest.raises(InvalidInput, match="[Pp]ortal usage|share of guardians"):
        parse_share(text)


def test_rates_from_config_are_checked() -> None:
    rates = Rates.from_mapping({"postage": "0.73", "ets_stuffed": True, "pages_per_ssr": 3})
    assert rates.postage == Decimal("0.73") and rates.ets_rate == Decimal("2.00")
    for bad, message in [
        ({"postage": "cheap"}, "amount in dollars"),
        ({"postage": -1}, "zero or more"),
        ({"ets_stuffed": "yes"}, "true or false"),
        ({"pages_per_ssr": 0}, "whole number"),
        ({"stamps": 1}, "Unknown advisor rate"),
    ]:
        with pytest.raises(InvalidInput, match=message):
            Rates.from_mapping(bad)


def test_answers_refuse_a_share_outside_0_to_1() -> None:
    with pytest.raises(InvalidInput):
        Answers(True, True, False, 1.5)
