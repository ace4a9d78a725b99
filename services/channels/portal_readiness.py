"""Portal (option A) readiness: seed 001's preparation steps as a checklist, and the hand-off of
the families the portal does not reach.

The checklist, item by item:

- the parent/student portal is active (operator-entered: only the vendor knows);
- the vendor is on the Vendor Integration list (operator-entered, with the vendor's name);
- the SIS-vendor credential is valid and not about to expire (``services.credential.lifecycle``);
- the share of families with portal access, and its trend (a sample a day, kept);
- guardian addresses were updated in CALPADS recently (operator-entered date; the CALPADS
  residential address is the one printed on the SSR);
- the families the portal does not reach: families not using the portal whose students are on no
  channel yet, each one key away from another channel (print, ETS paper, secure email).

Once the portal is active and the credential valid, a portal batch records the plan's portal
families as covered by option A: TOMS hands their SSRs to the vendor, so the batch is done at once.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Select, func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from services.access.permissions import Permission, require
from services.access.tables import Operator
from services.audit import log as audit
from services.audit.log import Actor
from services.channels import batches as channel_batches
from services.channels import paper_order, print_batch
from services.channels.batches import ChannelBatch, ChannelItemState
from services.channels.portal_tables import PortalSetup, PortalShareSample
from services.core.channels import Option
from services.core.columns import utcnow
from services.core.db import session_scope
from services.core.errors import InvalidInput
from services.core.validation import plain_text
from services.credential import lifecycle as credentials
from services.credential.lifecycle import CredentialStatus
from services.delivery import batches
from services.plan import coverage
from services.plan.advisor import PORTAL_FIRST, PORTAL_WORTHWHILE, Rates
from services.roster.facts import HAS_ADDRESS, HAS_EMAIL, roster_facts
from services.roster.tables import Guardian

CALPADS_FRESH_DAYS = 90
"""Addresses updated in CALPADS within this many days count as recent."""
MAX_LIST_HANDOFF = 30_000
"""A secure-email hand-off names its families in one list; beyond this, use a plan batch."""
MAX_VENDOR = 200


class Mark(enum.StrEnum):
    """How one checklist item stands; the text marks read without colour (NO_COLOR)."""

    OK = "ok"
    WARN = "warn"
    FAIL = "fail"

    @property
    def symbol(self) -> str:
        return {"ok": "[ok]", "warn": "[!!]", "fail": "[no]"}[self.value]


@dataclass(frozen=True)
class Item:
    key: str
    label: str
    mark: Mark
    detail: str


@dataclass(frozen=True)
class Setup:
    """The operator-entered answers, as plain values."""

    portal_active: bool = False
    vendor_name: str = ""
    vendor_listed: bool = False
    calpads_updated_on: date | None = None
    updated_by: str = ""
    updated_at: datetime | None = None


@dataclass(frozen=True)
class Readiness:
    items: tuple[Item, ...]
    setup: Setup
    share: float | None
    previous: PortalShareSample | None
    not_reached: int

    @property
    def ready(self) -> bool:
        """The portal can carry SSRs: active, and a valid credential."""
        marks = {i.key: i.mark for i in self.items}
        return marks["portal"] is Mark.OK and marks["credential"] is not Mark.FAIL


def setup(engine: Engine, lea_id: int) -> Setup:
    with Session(engine) as session:
        row = session.get(PortalSetup, lea_id)
    if row is None:
        return Setup()
    return Setup(
        row.portal_active,
        row.vendor_name,
        row.vendor_listed,
        row.calpads_updated_on,
        row.updated_by,
        row.updated_at,
    )


def parse_date(text: str, today: date) -> date | None:
    """A CALPADS update date typed as YYYY-MM-DD (empty: not known); never in the future."""
    text = text.strip()
    if not text:
        return None
    try:
        value = date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"Type the CALPADS update date as YYYY-MM-DD, got {text!r}") from None
    if value > today:
        raise InvalidInput(f"The CALPADS update date {value} is in the future")
    return value


def save_setup(engine: Engine, operator: Operator, answers: Setup) -> Setup:
    """Keep the operator's answers for their LEA, with who said so and when (audited)."""
    require(operator, Permission.CHOOSE_PLAN, lea_id=operator.lea_id)
    vendor = plain_text(answers.vendor_name, "the vendor's name")
    if len(vendor) > MAX_VENDOR:
        raise InvalidInput(f"Keep the vendor's name under {MAX_VENDOR} characters")
    if answers.vendor_listed and not vendor:
        raise InvalidInput("Name the vendor you found on the Vendor Integration list")
    if answers.calpads_updated_on and answers.calpads_updated_on > utcnow().date():
        raise InvalidInput(f"The CALPADS update date {answers.calpads_updated_on} is in the future")
    with session_scope(engine) as session:
        row = session.get(PortalSetup, operator.lea_id) or PortalSetup(lea_id=operator.lea_id)
        row.portal_active = answers.portal_active
        row.vendor_name = vendor
        row.vendor_listed = answers.vendor_listed
        row.calpads_updated_on = answers.calpads_updated_on
        row.updated_by = operator.username
        row.updated_at = utcnow()
        session.add(row)
        audit.record(
            session,
            Actor.of(operator),
            "portal.setup",
            f"lea:{operator.lea_id}",
            {
                "portal_active": row.portal_active,
                "vendor": vendor,
                "vendor_listed": row.vendor_listed,
                "calpads_updated_on": str(row.calpads_updated_on or ""),
            },
            lea_id=operator.lea_id,
        )
    return setup(engine, operator.lea_id)


def _sample(engine: Engine, lea_id: int, today: date, families: int, portal: int) -> None:
    """Keep today's share (once a day; a later reading the same day replaces it)."""
    with session_scope(engine) as session:
        row = session.exec(
            select(PortalShareSample).where(
                PortalShareSample.lea_id == lea_id, PortalShareSample.taken_on == today
            )
        ).first() or PortalShareSample(lea_id=lea_id, taken_on=today, families=0, portal_families=0)
        row.families, row.portal_families = families, portal
        session.add(row)


def _previous(engine: Engine, lea_id: int, today: date) -> PortalShareSample | None:
    with Session(engine) as session:
        return session.exec(
            select(PortalShareSample)
            .where(PortalShareSample.lea_id == lea_id, col(PortalShareSample.taken_on) < today)
            .order_by(col(PortalShareSample.taken_on).desc())
            .limit(1)
        ).first()


def check(engine: Engine, operator: Operator, *, today: date | None = None) -> Readiness:
    """The checklist for the operator's LEA; also records today's portal share for the trend."""
    require(operator, Permission.VIEW_DASHBOARD)
    today = today or utcnow().date()
    answers = setup(engine, operator.lea_id)
    facts = roster_facts(engine, operator.lea_id)
    share = facts.portal_share
    previous = _previous(engine, operator.lea_id, today)
    if facts.families:
        _sample(engine, operator.lea_id, today, facts.families, facts.portal_families)
    reached = count_not_reached(engine, operator)
    items = (
        _portal_item(answers),
        _vendor_item(answers),
        _credential_item(engine, operator.lea_id),
        _share_item(share, facts.portal_families, facts.families, previous),
        _calpads_item(answers, today),
        Item(
            "not_reached",
            "Families the portal does not reach",
            Mark.OK if reached == 0 else Mark.WARN,
            "none left without a channel"
            if reached == 0
            else f"{reached:,} on no channel yet: hand them to print (m), ETS paper (t) or "
            "secure email (e)",
        ),
    )
    return Readiness(items, answers, share, previous, reached)


def _portal_item(answers: Setup) -> Item:
    if answers.portal_active:
        return Item("portal", "Parent/student portal active", Mark.OK, "active")
    return Item(
        "portal",
        "Parent/student portal active",
        Mark.FAIL,
        "not active: contact the vendor to activate it",
    )


def _vendor_item(answers: Setup) -> Item:
    label = "Vendor on the Vendor Integration list"
    if answers.vendor_listed:
        return Item("vendor", label, Mark.OK, answers.vendor_name)
    name = answers.vendor_name or "your vendor"
    return Item("vendor", label, Mark.FAIL, f"{name} not confirmed: check the list or call CalTAC")


def _credential_item(engine: Engine, lea_id: int) -> Item:
    state = credentials.status(engine, lea_id)
    label = "SIS-vendor credential valid"
    if state.status is CredentialStatus.ACTIVE and state.verified:
        return Item("credential", label, Mark.OK, state.summary)
    if state.status in (CredentialStatus.ACTIVE, CredentialStatus.EXPIRING):
        return Item("credential", label, Mark.WARN, state.summary + " (key c)")
    return Item("credential", label, Mark.FAIL, state.summary + " (key c)")


def _share_item(
    share: float | None, portal: int, families: int, previous: PortalShareSample | None
) -> Item:
    label = "Families with portal access"
    if share is None:
        return Item("share", label, Mark.FAIL, "no families on the roster yet")
    text = f"{share:.0%} ({portal:,} of {families:,})"
    if previous is not None and previous.families:
        before = previous.portal_families / previous.families
        points = round((share - before) * 100)
        trend = "no change" if points == 0 else f"{'up' if points > 0 else 'down'} {abs(points)} pt"
        text += f", {trend} since {previous.taken_on:%Y-%m-%d}"
    mark = (
        Mark.OK if share >= PORTAL_FIRST else Mark.WARN if share >= PORTAL_WORTHWHILE else Mark.FAIL
    )
    return Item("share", label, mark, text)


def _calpads_item(answers: Setup, today: date) -> Item:
    label = "Addresses updated in CALPADS"
    if answers.calpads_updated_on is None:
        return Item("calpads", label, Mark.FAIL, "no update date entered")
    age = (today - answers.calpads_updated_on).days
    when = f"{answers.calpads_updated_on:%Y-%m-%d} ({age} days ago)"
    if age <= CALPADS_FRESH_DAYS:
        return Item("calpads", label, Mark.OK, when)
    return Item("calpads", label, Mark.WARN, f"{when}: update them before SSRs go out")


def _handoff_students(engine: Engine, operator: Operator, channel: Option) -> Select[Any, Any]:
    return coverage.choose(engine, operator, channel, who=coverage.Who.HANDOFF)[1]


def count_not_reached(engine: Engine, operator: Operator) -> int:
    chosen = _handoff_students(engine, operator, Option.PRINT).subquery()
    with Session(engine) as session:
        return int(session.execute(select(func.count(func.distinct(chosen.c.gid)))).scalar_one())


@dataclass(frozen=True)
class Family:
    """A family the portal does not reach, and what other channels could reach it."""

    guardian_id: int
    name: str
    language: str
    email: bool
    address: bool
    students: int


def not_reached(
    engine: Engine, operator: Operator, *, limit: int = 50, offset: int = 0
) -> list[Family]:
    """A page of the families the portal does not reach, by name."""
    require(operator, Permission.VIEW_CONTACTS)
    chosen = _handoff_students(engine, operator, Option.PRINT).subquery()
    with Session(engine) as session:
        rows = session.execute(
            sa.select(
                col(Guardian.id),
                col(Guardian.last_name) + ", " + col(Guardian.first_name),
                col(Guardian.preferred_language),
                HAS_EMAIL,
                HAS_ADDRESS,
                func.count(),
            )
            .join(chosen, chosen.c.gid == col(Guardian.id))
            .group_by(col(Guardian.id), col(Guardian.last_name), col(Guardian.first_name))
            .order_by(col(Guardian.last_name), col(Guardian.first_name), col(Guardian.id))
            .limit(limit)
            .offset(offset)
        ).all()
    return [Family(int(g), n, lang, bool(e), bool(a), int(c)) for g, n, lang, e, a, c in rows]


@dataclass(frozen=True)
class Handoff:
    """A batch made for the families the portal does not reach."""

    channel: Option
    batch_id: int
    families: int


def handoff(
    engine: Engine, operator: Operator, channel: Option, *, rates: Rates | None = None
) -> Handoff:
    """One key: put the families the portal does not reach on ``channel`` (B, C or D)."""
    require(operator, Permission.RUN_BATCHES, lea_id=operator.lea_id)
    name = f"Portal hand-off {utcnow():%Y-%m-%d %H:%M}"
    if channel is Option.PRINT:
        batch = print_batch.create(engine, operator, name=name, who=coverage.Who.HANDOFF)
        return Handoff(channel, batch.id, batch.families)  # type: ignore[arg-type]
    if channel is Option.PAPER:
        batch = paper_order.create(
            engine, operator, name=name, who=coverage.Who.HANDOFF, rates=rates
        )
        return Handoff(channel, batch.id, batch.families)  # type: ignore[arg-type]
    if channel is Option.SECURE:
        chosen = _handoff_students(engine, operator, Option.SECURE).subquery()
        with Session(engine) as session:
            ids = (
                session.execute(
                    select(chosen.c.gid)
                    .join(Guardian, col(Guardian.id) == chosen.c.gid)
                    .where(HAS_EMAIL)
                    .group_by(chosen.c.gid)
                    .limit(MAX_LIST_HANDOFF + 1)
                )
                .scalars()
                .all()
            )
        if not ids:
            raise InvalidInput("None of these families has an email address: print or order paper")
        if len(ids) > MAX_LIST_HANDOFF:
            raise InvalidInput(
                f"More than {MAX_LIST_HANDOFF:,} families: make a secure-email batch from the plan"
            )
        batch_id = batches.create(
            engine,
            operator,
            batches.Selection(source=batches.Source.LIST, guardian_ids=tuple(int(i) for i in ids)),
            name=name,
        )
        return Handoff(channel, batch_id, len(ids))
    raise InvalidInput("Hand families to print (C), ETS paper (D) or secure email (B)")


def publish(
    engine: Engine,
    operator: Operator,
    *,
    name: str = "",
    who: coverage.Who = coverage.Who.PLAN,
) -> ChannelBatch:
    """Record the plan's portal families as delivered through the portal (option A);
    ``Who.CORRECTIONS``: the corrected SSRs of the families who had the earlier ones there."""
    require(operator, Permission.RUN_BATCHES, lea_id=operator.lea_id)
    state = check(engine, operator)
    if not state.ready:
        problems = "; ".join(
            f"{i.label}: {i.detail}"
            for i in state.items
            if i.key in ("portal", "credential") and i.mark is Mark.FAIL
        )
        raise InvalidInput(f"The portal cannot carry SSRs yet. {problems}")
    scope, students = coverage.choose(engine, operator, Option.PORTAL, who=who)
    with session_scope(engine) as session:
        return channel_batches.create(
            session,
            operator,
            Option.PORTAL,
            name=name or f"Portal {utcnow():%Y-%m-%d}",
            source=who.value,
            scope=scope,
            students=students,
            state=ChannelItemState.DONE,
            detail={"vendor": state.setup.vendor_name},
        )


def trend_since(engine: Engine, lea_id: int, days: int = 365) -> list[PortalShareSample]:
    """The share samples of the last ``days`` days, oldest first."""
    since = utcnow().date() - timedelta(days=days)
    with Session(engine) as session:
        return list(
            session.exec(
                select(PortalShareSample)
                .where(PortalShareSample.lea_id == lea_id, col(PortalShareSample.taken_on) >= since)
                .order_by(col(PortalShareSample.taken_on))
            ).all()
        )
