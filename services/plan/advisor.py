"""The distribution advisor: from the four guiding questions of seed 000 and the roster's facts to a
recommended channel (or combination of channels), with reasons, counts, costs and timing.

Pure functions over plain dataclasses, no database: ``services.roster.facts`` supplies the facts and
``services.plan.decisions`` saves the outcome. The rules, in order (thresholds are documented constants):

- A portal exists when the SIS's parent portal is in use (an answer ignored without an SIS) or a
  third-party portal is.
- With a portal and a usage share of at least ``PORTAL_FIRST`` (80%), the portal comes first; from
  ``PORTAL_WORTHWHILE`` (20%) up to that it is one channel of a combined approach; below 20%, or with
  no portal, the portal is left out: seed 000 names options B and C for "no parent portal or a low
  percentage of parent portal usage".
- Families the portal does not reach get secure electronic delivery (B) when they have an email
  address, and paper for the rest: printed locally (C) where there is an SIS to download from,
  paper from ETS (D) where there is none (seed 000: D is the option "for school districts with no
  SIS vendor"), unless ETS no longer offers paper.
- A family is one guardian; a family is assigned by ``channel_for``: portal user -> A, email -> B,
  anyone else -> the paper channel. The same function serves every saved plan, so batch screens and
  this advisor never disagree about who goes where.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal, InvalidOperation

from babel.dates import format_date
from babel.numbers import format_currency, format_percent

from services.core.channels import ASSIGNMENT_ORDER, Option, channel_for
from services.core.errors import InvalidInput

PORTAL_FIRST = 0.80
"""Share of families actively using the portal from which it is the first channel."""
PORTAL_WORTHWHILE = 0.20
"""Share below which setting up portal delivery is not recommended (seed 000's "low percentage")."""
SHARE_MISMATCH = 0.10
"""Answer and roster disagreeing by more than this is pointed out."""


@dataclass(frozen=True)
class Reason:
    """A reason shown beside a recommendation; ``key`` is stable for tests and saved plans."""

    key: str
    text: str


def _reasons(*pairs: tuple[str, str]) -> dict[str, Reason]:
    return {key: Reason(key, text) for key, text in pairs}


REASONS = _reasons(
    # Seed 000's bullets, option by option.
    ("A.fastest", "Fastest and most flexible delivery option"),
    ("A.sis_portal", "Good option for districts with an SIS and parent portal"),
    (
        "A.third_party",
        "Third-party portal: confirm its vendor can receive SSRs from TOMS",
    ),
    ("A.high_usage", "Good option for districts with a high percentage of portal usage"),
    ("A.no_postage", "No cost for postage and mailing"),
    ("B.low_portal", "Good option without a parent portal or with low portal usage"),
    ("B.secure", "Good with a secure distribution method (password-protected PDF)"),
    ("B.familiar", "Familiar download process for districts"),
    ("B.avenue", "An avenue for families to become familiar with electronic access"),
    ("C.low_portal", "Good option without a parent portal or with low portal usage"),
    ("C.no_secure", "Good option where there is no secure distribution method"),
    ("C.address", "Parent/guardian address included on the SSR at no extra charge"),
    ("C.familiar", "Download process is already familiar to districts"),
    ("D.fit", "Option with no SIS vendor, no parent portal, or low portal usage"),
    ("D.no_printing", "Does not require the ability to download and print locally"),
    ("D.address", "Ordered by SSID for a class, school or district; address included"),
    ("D.august", "Paper SSRs arrive from August: check the deadline to families"),
    # Notes about the answers and the roster, not tied to one option.
    ("note.no_roster", "No roster yet: counts and costs appear once it is imported"),
    (
        "note.sis_portal_ignored",
        "No SIS, so the SIS parent portal answer is ignored",
    ),
    ("note.share_ignored", "No portal is in use, so the portal-usage share is not used"),
    ("note.share_mismatch", "The share you gave differs from the roster; counts use the roster"),
    ("note.no_email", "No guardian on the roster has an email address"),
    ("note.no_address", "Families without a mailing address get their SSRs at school"),
    ("note.unlinked", "Students with no guardian on the roster get paper SSRs at school"),
    ("note.estimated", "No SSRs imported yet: one SSR per student is assumed"),
    ("note.ets_not_offered", "ETS no longer offers paper SSRs here: printing locally instead"),
)


@dataclass(frozen=True)
class FamilyGroup:
    """Families (guardians) that share the facts deciding their channel, and their SSR count."""

    portal: bool
    email: bool
    address: bool
    families: int
    ssrs: int


@dataclass(frozen=True)
class RosterFacts:
    """What the roster knows about one LEA or school, as counts (see ``services.roster.facts``)."""

    scope: str
    students: int = 0
    groups: tuple[FamilyGroup, ...] = ()
    unlinked_students: int = 0
    unlinked_ssrs: int = 0
    ssrs_estimated: bool = False
    guardians: int = 0  # entitled to the students' records; a household of several is one family

    def _count(self, predicate: str | None = None) -> int:
        return sum(g.families for g in self.groups if predicate is None or getattr(g, predicate))

    @property
    def families(self) -> int:
        return self._count()

    @property
    def portal_families(self) -> int:
        return self._count("portal")

    @property
    def email_families(self) -> int:
        return self._count("email")

    @property
    def address_families(self) -> int:
        return self._count("address")

    @property
    def ssrs(self) -> int:
        return sum(g.ssrs for g in self.groups) + self.unlinked_ssrs

    @property
    def empty(self) -> bool:
        return self.students == 0 and self.families == 0

    @property
    def portal_share(self) -> float | None:
        """Share of families marked as portal users, or None when there are no families."""
        return self.portal_families / self.families if self.families else None


@dataclass(frozen=True)
class Answers:
    """The four guiding questions, answered; ``portal_share`` is a fraction from 0 to 1."""

    has_sis: bool
    sis_portal: bool
    third_party_portal: bool
    portal_share: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.portal_share <= 1.0:
            raise InvalidInput(f"Portal usage must be between 0% and 100%, got {self.portal_share}")

    @property
    def portal_available(self) -> bool:
        return (self.has_sis and self.sis_portal) or self.third_party_portal


@dataclass(frozen=True)
class Draft:
    """Answers as far as they are known; None is a question still to answer."""

    has_sis: bool | None = None
    sis_portal: bool | None = None
    third_party_portal: bool | None = None
    portal_share: float | None = None

    def missing(self) -> tuple[str, ...]:
        """The numbers of the questions still to answer ("1" to "4")."""
        open_questions = (
            ("1", self.has_sis),
            ("2", self.sis_portal if self.has_sis else False),
            ("3", self.third_party_portal),
            ("4", self.portal_share),
        )
        return tuple(number for number, value in open_questions if value is None)

    def required(self) -> Answers:
        """Complete answers, or InvalidInput naming the questions still open."""
        answers = self.complete()
        if answers is None:
            raise InvalidInput(f"Answer question {', '.join(self.missing())} first")
        return answers

    def complete(self) -> Answers | None:
        if self.has_sis is None or self.third_party_portal is None or self.portal_share is None:
            return None
        if self.has_sis and self.sis_portal is None:
            return None
        sis_portal = bool(self.has_sis and self.sis_portal)
        return Answers(self.has_sis, sis_portal, self.third_party_portal, self.portal_share)


def prefill(facts: RosterFacts, saved: Answers | None = None) -> Draft:
    """Start from the saved plan's answers, else from what the roster knows.

    Guardians marked as portal users imply a portal, which the roster attributes to the SIS; the
    share comes from the roster whenever it has families.
    """
    share = facts.portal_share
    if saved is not None:
        return Draft(saved.has_sis, saved.sis_portal, saved.third_party_portal, saved.portal_share)
    if facts.portal_families:
        return Draft(has_sis=True, sis_portal=True, portal_share=share)
    return Draft(portal_share=share)


def parse_share(text: str) -> float:
    """A percentage typed by a person ("37", "37.5", "37%") as a fraction."""
    cleaned = text.strip().rstrip("%").strip().replace(",", ".")
    if not cleaned:
        raise InvalidInput("Enter the share of guardians who use the portal, from 0 to 100")
    try:
        value = float(cleaned)
    except ValueError:
        raise InvalidInput(f"Portal usage must be a number from 0 to 100, got {text!r}") from None
    if not 0 <= value <= 100:
        raise InvalidInput(f"Portal usage must be from 0 to 100 percent, got {text.strip()}")
    return value / 100


@dataclass(frozen=True)
class Rates:
    """Cost rates; defaults are DESIGN.md's ETS prices and 2025 US letter postage."""

    ets_per_ssr: Decimal = Decimal("1.48")
    ets_stuffed_per_ssr: Decimal = Decimal("2.00")
    ets_stuffed: bool = False  # order paper SSRs stuffed in envelopes, where ETS offers it
    ets_offered: bool = True
    print_per_page: Decimal = Decimal("0.10")
    pages_per_ssr: int = 2
    envelope: Decimal = Decimal("0.05")
    postage: Decimal = Decimal("0.78")  # set to 0 when reports are handed out at school

    @classmethod
    def from_mapping(cls, values: Mapping[str, object]) -> Rates:
        """Rates from a config table (``[advisor]``); unknown keys and bad values are refused."""
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InvalidInput(f"Unknown advisor rate(s): {', '.join(unknown)}")
        parsed: dict[str, object] = {}
        for key, raw in values.items():
            default = getattr(cls(), key)
            if isinstance(default, bool):
                if not isinstance(raw, bool):
                    raise InvalidInput(f"Advisor setting {key} must be true or false")
                parsed[key] = raw
            elif isinstance(default, int):
                if not isinstance(raw, int) or isinstance(raw, bool) or raw < 1:
                    raise InvalidInput(
                        f"Advisor setting {key} must be a whole number of at least 1"
                    )
                parsed[key] = raw
            else:
                parsed[key] = _money(key, raw)
        return replace(cls(), **parsed)  # type: ignore[arg-type]

    @property
    def ets_rate(self) -> Decimal:
        return self.ets_stuffed_per_ssr if self.ets_stuffed else self.ets_per_ssr


def _money(key: str, raw: object) -> Decimal:
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise InvalidInput(
            f"Advisor rate {key} must be an amount in dollars, got {raw!r}"
        ) from None
    if not value.is_finite() or value < 0:
        raise InvalidInput(f"Advisor rate {key} must be zero or more, got {raw!r}")
    return value


@dataclass(frozen=True)
class Channel:
    """One channel of a plan: who it reaches, what it costs, and why it was chosen."""

    option: Option
    families: int
    ssrs: int
    mailed_families: int
    cost: Decimal
    reasons: tuple[Reason, ...] = ()


@dataclass(frozen=True)
class Allocation:
    """The families and SSRs of a scope spread over a set of channels."""

    channels: tuple[Channel, ...]
    unreached_families: int
    unreached_ssrs: int

    @property
    def cost(self) -> Decimal:
        return sum((c.cost for c in self.channels), Decimal(0))

    @property
    def options(self) -> tuple[Option, ...]:
        return tuple(c.option for c in self.channels)

    def channel(self, option: Option) -> Channel | None:
        return next((c for c in self.channels if c.option is option), None)


def _cost(option: Option, ssrs: int, mailed: int, rates: Rates) -> Decimal:
    if option is Option.PRINT:
        printing = rates.print_per_page * rates.pages_per_ssr * ssrs
        return printing + (rates.envelope + rates.postage) * mailed
    if option is Option.PAPER:
        envelope = Decimal(0) if rates.ets_stuffed else rates.envelope
        return rates.ets_rate * ssrs + (envelope + rates.postage) * mailed
    return Decimal(0)  # electronic: no printing, no postage


def allocate(channels: Iterable[Option], facts: RosterFacts, rates: Rates) -> Allocation:
    """Assign every family of ``facts`` with ``channel_for`` and total each channel."""
    chosen = [o for o in ASSIGNMENT_ORDER if o in set(channels)]
    totals = {o: [0, 0, 0] for o in chosen}  # families, ssrs, mailed families
    unreached = [0, 0]
    for group in facts.groups:
        option = channel_for(chosen, portal=group.portal, email=group.email)
        if option is None:
            unreached[0] += group.families
            unreached[1] += group.ssrs
            continue
        totals[option][0] += group.families
        totals[option][1] += group.ssrs
        if not option.electronic and group.address:
            totals[option][2] += group.families
    paper = channel_for(chosen, portal=False, email=False)
    if paper is not None and not paper.electronic:
        totals[paper][1] += facts.unlinked_ssrs  # handed out at school: no postage
    else:
        unreached[1] += facts.unlinked_ssrs
    return Allocation(
        tuple(
            Channel(o, fam, ssrs, mailed, _cost(o, ssrs, mailed, rates))
            for o, (fam, ssrs, mailed) in totals.items()
        ),
        unreached[0],
        unreached[1],
    )


class Approach(enum.StrEnum):
    PORTAL_FIRST = "portal-first"
    COMBINED = "combined"
    ELECTRONIC_FIRST = "electronic-first"
    PAPER = "paper"


@dataclass(frozen=True)
class Recommendation:
    """The advisor's answer: channels in assignment order, each with its reasons and numbers."""

    answers: Answers
    approach: Approach
    allocation: Allocation
    notes: tuple[Reason, ...] = field(default=())

    @property
    def options(self) -> tuple[Option, ...]:
        return self.allocation.options

    @property
    def primary(self) -> Option:
        return self.options[0]

    @property
    def combined(self) -> bool:
        return len(self.options) > 1

    @property
    def label(self) -> str:
        return plan_label(self.options)


def plan_label(options: Iterable[Option]) -> str:
    """ "A Parent portal" or "Combined: A + B + C" for a set of channels."""
    ordered = [o for o in ASSIGNMENT_ORDER if o in set(options)]
    if len(ordered) == 1:
        return f"{ordered[0].value} {ordered[0].caption}"
    return "Combined: " + " + ".join(o.value for o in ordered)


def paper_option(answers: Answers, rates: Rates) -> Option:
    """Paper from ETS for a district without an SIS (if ETS offers it), else printing locally."""
    return Option.PAPER if not answers.has_sis and rates.ets_offered else Option.PRINT


def recommend(answers: Answers, facts: RosterFacts, rates: Rates | None = None) -> Recommendation:
    """The recommended channels for ``answers`` and ``facts``, with reasons (see module doc)."""
    rates = rates or Rates()
    portal = answers.portal_available
    share = answers.portal_share if portal else 0.0
    use_portal = portal and share >= PORTAL_WORTHWHILE
    if facts.empty:  # nothing known: email for those who have it, paper for the rest
        rest_exist = not use_portal or share < 1.0
        emails = paper_needed = rest_exist
    else:
        rest = [g for g in facts.groups if g.families and not (use_portal and g.portal)]
        emails = any(g.email for g in rest)
        paper_needed = any(not g.email for g in rest) or facts.unlinked_students > 0
    options = [Option.PORTAL] if use_portal else []
    if emails:
        options.append(Option.SECURE)
    if paper_needed or not options:
        options.append(paper_option(answers, rates))
    allocation = allocate(options, facts, rates)
    approach = _approach(options, share, use_portal)
    why = _why(answers, facts, share)
    channels = tuple(replace(c, reasons=why[c.option]) for c in allocation.channels)
    return Recommendation(
        answers,
        approach,
        replace(allocation, channels=channels),
        _notes(answers, facts, rates, allocation),
    )


def _approach(options: list[Option], share: float, use_portal: bool) -> Approach:
    if use_portal:
        return Approach.PORTAL_FIRST if share >= PORTAL_FIRST else Approach.COMBINED
    return Approach.ELECTRONIC_FIRST if Option.SECURE in options else Approach.PAPER


def _why(answers: Answers, facts: RosterFacts, share: float) -> dict[Option, tuple[Reason, ...]]:
    """Seed 000's bullets that apply to each option under these answers."""
    portal = answers.portal_available
    low = not portal or share < PORTAL_FIRST
    keys = {
        Option.PORTAL: [
            "A.fastest",
            "A.sis_portal" if answers.has_sis and answers.sis_portal else None,
            "A.third_party" if answers.third_party_portal else None,
            "A.high_usage" if portal and share >= PORTAL_FIRST else None,
            "A.no_postage",
        ],
        Option.SECURE: ["B.low_portal" if low else None, "B.secure", "B.familiar", "B.avenue"],
        Option.PRINT: [
            "C.low_portal" if low else None,
            "C.no_secure" if facts.empty or facts.email_families < facts.families else None,
            "C.address",
            "C.familiar",
        ],
        Option.PAPER: [
            "D.fit" if low or not answers.has_sis else None,
            "D.no_printing",
            "D.address",
            "D.august",
        ],
    }
    return {o: tuple(REASONS[k] for k in ks if k) for o, ks in keys.items()}


def _notes(
    answers: Answers, facts: RosterFacts, rates: Rates, allocation: Allocation
) -> tuple[Reason, ...]:
    keys = []
    if facts.empty:
        keys.append("note.no_roster")
    if answers.sis_portal and not answers.has_sis:
        keys.append("note.sis_portal_ignored")
    if not answers.portal_available and answers.portal_share > 0:
        keys.append("note.share_ignored")
    roster_share = facts.portal_share
    if (
        answers.portal_available
        and roster_share is not None
        and abs(roster_share - answers.portal_share) > SHARE_MISMATCH
    ):
        keys.append("note.share_mismatch")
    if facts.families and not facts.email_families:
        keys.append("note.no_email")
    if any(c.families > c.mailed_families for c in allocation.channels if not c.option.electronic):
        keys.append("note.no_address")
    if facts.unlinked_students:
        keys.append("note.unlinked")
    if facts.ssrs_estimated and not facts.empty:
        keys.append("note.estimated")
    if not answers.has_sis and not rates.ets_offered:
        keys.append("note.ets_not_offered")
    return tuple(REASONS[k] for k in keys)


@dataclass(frozen=True)
class OptionRow:
    """One row of the side-by-side table: an option used alone for the whole scope."""

    option: Option
    allocation: Allocation
    fits: tuple[Reason, ...]
    blocker: str = ""


def compare(
    answers: Answers, facts: RosterFacts, rates: Rates | None = None
) -> tuple[OptionRow, ...]:
    """Each option alone for the scope's families, so an overrule is made knowingly."""
    rates = rates or Rates()
    share = answers.portal_share if answers.portal_available else 0.0
    why = _why(answers, facts, share)
    blockers = {
        Option.PORTAL: "" if answers.portal_available else "No parent portal in use",
        Option.SECURE: "No guardian has an email address"
        if facts.families and not facts.email_families
        else "",
        Option.PRINT: "" if answers.has_sis else "No SIS to download SSRs from",
        Option.PAPER: "" if rates.ets_offered else "ETS no longer offers paper SSRs",
    }
    return tuple(
        OptionRow(o, allocate([o], facts, rates), why[o], blockers[o]) for o in ASSIGNMENT_ORDER
    )


def administration_year(today: date) -> int:
    """The spring administration being planned: this year's until August, next year's after."""
    return today.year if today.month < 8 else today.year + 1


def timing(option: Option, today: date, locale: str = "en", *, short: bool = False) -> str:
    """When families can have their SSRs on ``option``, as words in ``locale`` (short for tables)."""
    if option.electronic:
        return "On release" if short else "As soon as SSRs are available in TOMS"
    if option is Option.PRINT:
        return "Days after" if short else "Days after SSRs are available (download, print, mail)"
    august = date(administration_year(today), 8, 1)
    return f"From {format_date(august, format='medium' if short else 'long', locale=locale)}"


APPROACH_WORDS = {
    Approach.PORTAL_FIRST: "portal first, the rest by other channels",
    Approach.COMBINED: "a combined approach",
    Approach.ELECTRONIC_FIRST: "secure electronic first, paper for the rest",
    Approach.PAPER: "paper",
}


def recommendation_text(
    rec: Recommendation, facts: RosterFacts, today: date, locale: str = "en"
) -> str:
    """The recommendation as the advisor screen and ``ssr-console plan recommend`` show it."""
    lines = [
        f"{rec.label}: {APPROACH_WORDS[rec.approach]}.",
        f"Estimated cost {money(rec.allocation.cost, locale)} for "
        f"{counted(facts.ssrs, 'SSR', 'SSRs')} to {counted(facts.families, 'family', 'families')} "
        f"(households; {counted(facts.guardians, 'guardian', 'guardians')} entitled).",
    ]
    for channel in rec.allocation.channels:
        lines.append("")
        lines.append(
            f"{channel.option.value} {channel.option.caption}: "
            f"{counted(channel.families, 'family', 'families')}, "
            f"{counted(channel.ssrs, 'SSR', 'SSRs')}, {money(channel.cost, locale)}"
        )
        lines.append(f"  When: {timing(channel.option, today, locale)}")
        lines += [f"  + {reason.text}" for reason in channel.reasons]
    if rec.allocation.unreached_families:
        unreached = rec.allocation.unreached_families
        lines.append(f"\nNot reached: {counted(unreached, 'family', 'families')}")
    if rec.notes:
        lines.append("")
        lines += [f"Note: {note.text}" for note in rec.notes]
    return "\n".join(lines)


def counted(number: int, one: str, many: str) -> str:
    """ "1 family", "2 families": a count with its noun in the right number."""
    return f"{number:,} {one if number == 1 else many}"


def money(amount: Decimal, locale: str = "en") -> str:
    return format_currency(amount, "USD", locale=locale)


def percent(share: float, locale: str = "en") -> str:
    return format_percent(share, locale=locale)
