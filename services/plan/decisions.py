"""The LEA's distribution plan: saving the advisor's answer (or an overrule), its history, and the
channel each family is on, which batch screens use to propose recipients.

A school may have a plan of its own; a school without one follows its LEA's plan. A family a person
moved to another channel (``services.plan.family_channel``) is on that channel whatever the plan says.
``channel_of`` (one family, Python) and ``channel_filter`` (SQL) are the one place this rule lives;
a student's channel is their family's (``student_channel``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from babel.dates import format_datetime
from sqlalchemy import and_, func, not_, or_, true
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from services.access.permissions import Permission, require, school_scope
from services.access.tables import Operator
from services.audit import log as audit
from services.core.channels import ASSIGNMENT_ORDER, Option, channel_for
from services.core.db import session_scope
from services.core.errors import InvalidInput, NotFound
from services.core.validation import plain_text
from services.plan import family_channel
from services.plan.advisor import (
    Allocation,
    Answers,
    Draft,
    Rates,
    RosterFacts,
    allocate,
    counted,
    money,
    plan_label,
    prefill,
    recommend,
)
from services.plan.tables import DistributionPlan
from services.roster.facts import HAS_EMAIL, has_text, may_receive, roster_facts, started_year
from services.roster.tables import LEA, Guardian, School, Student, StudentGuardian

MAX_REASON = 500


@dataclass(frozen=True)
class ChannelFigures:
    """A channel's figures as they were when the plan was saved."""

    option: Option
    families: int
    ssrs: int
    cost: Decimal


@dataclass(frozen=True)
class SavedPlan:
    """A plan as plain values: what was chosen, over what answers, by whom and when."""

    id: int
    lea_id: int
    school_id: int | None
    school_year: int | None
    channels: tuple[Option, ...]
    recommended: tuple[Option, ...]
    overruled: bool
    reason: str
    answers: Answers
    families: int
    ssrs: int
    cost: Decimal
    figures: tuple[ChannelFigures, ...]
    decided_by: str
    decided_role: str
    decided_at: datetime

    @property
    def label(self) -> str:
        return plan_label(self.channels)

    def channel_for(self, guardian: Guardian) -> Option | None:
        """The channel of one family under this plan; None when the plan does not reach it."""
        return channel_for(
            self.channels, portal=guardian.uses_portal, email=has_text(guardian.email)
        )


def _options(text: str) -> tuple[Option, ...]:
    return tuple(Option(letter) for letter in text.split(",") if letter)


def _letters(options: Iterable[Option]) -> str:
    return ",".join(o.value for o in ASSIGNMENT_ORDER if o in set(options))


def _plain(row: DistributionPlan) -> SavedPlan:
    assert row.id is not None
    figures = tuple(
        ChannelFigures(Option(f["option"]), f["families"], f["ssrs"], Decimal(f["cost"]))
        for f in json.loads(row.breakdown)
    )
    return SavedPlan(
        id=row.id,
        lea_id=row.lea_id,
        school_id=row.school_id,
        school_year=row.school_year,
        channels=_options(row.channels),
        recommended=_options(row.recommended),
        overruled=row.overruled,
        reason=row.reason,
        answers=Answers(row.has_sis, row.sis_portal, row.third_party_portal, row.portal_share),
        families=row.families,
        ssrs=row.ssrs,
        cost=Decimal(row.cost_cents) / 100,
        figures=figures,
        decided_by=row.decided_by,
        decided_role=row.decided_role,
        decided_at=row.decided_at,
    )


def _check_channels(channels: Iterable[Option]) -> tuple[Option, ...]:
    chosen = tuple(o for o in ASSIGNMENT_ORDER if o in set(channels))
    if not chosen:
        raise InvalidInput("Choose at least one channel (A, B, C or D)")
    if Option.PRINT in chosen and Option.PAPER in chosen:
        raise InvalidInput("Choose one paper channel: print locally (C) or paper from ETS (D)")
    return chosen


def _target(session: Session, lea_id: int, school_id: int | None) -> str:
    lea = session.get(LEA, lea_id)
    if lea is None:
        raise NotFound(f"No LEA with id {lea_id}")
    if school_id is None:
        return f"lea:{lea.cds_code}"
    school = session.get(School, school_id)
    if school is None or school.lea_id != lea_id:
        raise NotFound(f"No school with id {school_id} in {lea.name}")
    return f"school:{school.cds_code}"


def save(
    engine: Engine,
    operator: Operator,
    answers: Answers,
    facts: RosterFacts,
    *,
    school_id: int | None = None,
    channels: Iterable[Option] | None = None,
    reason: str = "",
    rates: Rates | None = None,
) -> SavedPlan:
    """Save the plan for the operator's LEA (or one school): the recommendation, or an overrule.

    Choosing other channels than the advisor recommends is an overrule and needs a reason; the
    decision and its audit event are written in one transaction.
    """
    require(operator, Permission.CHOOSE_PLAN, lea_id=operator.lea_id, school_id=school_id)
    rates = rates or Rates()
    recommended = recommend(answers, facts, rates).options
    chosen = _check_channels(recommended if channels is None else channels)
    overruled = set(chosen) != set(recommended)
    reason = plain_text(reason, "the reason")
    if overruled and not reason:
        raise InvalidInput(
            "Say why you overrule the recommendation: the reason is kept with the plan"
        )
    if len(reason) > MAX_REASON:
        raise InvalidInput(f"Keep the reason under {MAX_REASON} characters")
    allocation = allocate(chosen, facts, rates)
    with session_scope(engine) as session:
        target = _target(session, operator.lea_id, school_id)
        row = DistributionPlan(
            lea_id=operator.lea_id,
            school_id=school_id,
            school_year=started_year(session, operator.lea_id),
            channels=_letters(chosen),
            recommended=_letters(recommended),
            overruled=overruled,
            reason=reason,
            has_sis=answers.has_sis,
            sis_portal=answers.sis_portal,
            third_party_portal=answers.third_party_portal,
            portal_share=answers.portal_share,
            families=facts.families,
            ssrs=facts.ssrs,
            cost_cents=int((allocation.cost * 100).to_integral_value()),
            breakdown=json.dumps(_breakdown(allocation)),
            decided_by=operator.username,
            decided_role=operator.role.value,
        )
        session.add(row)
        session.flush()
        audit.record(
            session,
            audit.Actor.of(operator),
            "plan.overrule" if overruled else "plan.save",
            target,
            {
                "plan_id": row.id,
                "channels": row.channels,
                "recommended": row.recommended,
                "reason": reason,
                "portal_share": round(answers.portal_share, 4),
            },
            lea_id=operator.lea_id,
        )
        return _plain(row)


def _breakdown(allocation: Allocation) -> list[dict[str, object]]:
    return [
        {"option": c.option.value, "families": c.families, "ssrs": c.ssrs, "cost": str(c.cost)}
        for c in allocation.channels
    ]


def _scope_rows(lea_id: int, school_id: int | None):  # type: ignore[no-untyped-def]
    school = (
        DistributionPlan.school_id.is_(None)  # type: ignore[union-attr]
        if school_id is None
        else DistributionPlan.school_id == school_id
    )
    return (
        select(DistributionPlan)
        .where(DistributionPlan.lea_id == lea_id, school)
        .order_by(DistributionPlan.id.desc())  # type: ignore[union-attr]
    )


def current(engine: Engine, lea_id: int, school_id: int | None = None) -> SavedPlan | None:
    """The plan in force: the school's own newest plan, else the LEA's; None before any is saved.

    A plan belongs to the school year the LEA had started when it was saved (``year start``): a
    new year starts without one. Plans of an LEA that never started a year are all its own."""
    with Session(engine) as session:
        year = started_year(session, lea_id)
        of_year = (
            col(DistributionPlan.school_year).is_(None)
            if year is None
            else col(DistributionPlan.school_year) == year
        )
        row = None
        if school_id is not None:
            row = session.exec(_scope_rows(lea_id, school_id).where(of_year).limit(1)).first()
        if row is None:
            row = session.exec(_scope_rows(lea_id, None).where(of_year).limit(1)).first()
        return _plain(row) if row else None


def current_for(
    engine: Engine, operator: Operator, school_id: int | None = None
) -> SavedPlan | None:
    """The plan in force for the operator's LEA, for anyone who may view the dashboard; a site
    coordinator's is their school's, whichever school the caller names."""
    require(operator, Permission.VIEW_DASHBOARD)
    return current(engine, operator.lea_id, school_scope(operator) or school_id)


@dataclass(frozen=True)
class Advice:
    """Where the advisor starts for one operator: their scope's roster counts, the plan in force,
    and the four answers pre-filled from that scope's own saved plan, else from the roster."""

    school_id: int | None
    facts: RosterFacts
    saved: SavedPlan | None
    draft: Draft


def advice_for(engine: Engine, operator: Operator) -> Advice:
    """The advisor's starting point for the operator's own scope: a site coordinator's school,
    anyone else's LEA (the scope is the operator's, never the caller's choice)."""
    require(operator, Permission.VIEW_DASHBOARD)
    school_id = school_scope(operator)
    facts = roster_facts(engine, operator.lea_id, school_id)
    saved = current(engine, operator.lea_id, school_id)
    own = saved if saved and saved.school_id == school_id else None
    return Advice(school_id, facts, saved, prefill(facts, own.answers if own else None))


def history(
    engine: Engine, operator: Operator, school_id: int | None = None, limit: int = 50
) -> list[SavedPlan]:
    """The decisions for the operator's LEA (or one school), newest first; a site coordinator's
    school's, whichever school the caller names."""
    require(operator, Permission.VIEW_DASHBOARD)
    school_id = school_scope(operator) or school_id
    with Session(engine) as session:
        rows = session.exec(_scope_rows(operator.lea_id, school_id).limit(limit)).all()
        return [_plain(row) for row in rows]


def channel_of(session: Session, guardian: Guardian, school_id: int | None) -> Option | None:
    """The family's channel: a person's choice, else the plan in force for the school (None when
    neither reaches it)."""
    assert guardian.id is not None
    override = family_channel.chosen(session, guardian.id)
    if override is not None:
        return Option(override.channel)
    in_force = current(session.get_bind(), guardian.lea_id, school_id)  # type: ignore[arg-type]
    return in_force.channel_for(guardian) if in_force else None


def guardian_channel(
    engine: Engine, guardian_id: int, school_id: int | None = None
) -> Option | None:
    """The channel of one guardian: a person's choice, else the plan in force for their LEA (or
    the given school)."""
    with Session(engine) as session:
        guardian = session.get(Guardian, guardian_id)
        if guardian is None:
            raise NotFound(f"No guardian with id {guardian_id}")
        return channel_of(session, guardian, school_id)


def student_channel(engine: Engine, student_id: int) -> Option | None:
    """The channel of a student's SSRs to their first household: that of their primary guardian,
    moved by a person or under the plan in force for their school (a second household, at another
    address, has its own: ``services.roster.facts.recipient``); None when nothing reaches them or
    they have no guardian."""
    with Session(engine) as session:
        student = session.get(Student, student_id)
        if student is None:
            raise NotFound(f"No student with id {student_id}")
        guardian = session.exec(
            select(Guardian)
            .join(StudentGuardian, col(StudentGuardian.guardian_id) == col(Guardian.id))
            .where(col(StudentGuardian.student_id) == student_id, may_receive())
            .order_by(col(StudentGuardian.is_primary).desc(), col(Guardian.id))
            .limit(1)
        ).first()
        return channel_of(session, guardian, student.school_id) if guardian else None


def channel_filter(plan: SavedPlan | None, option: Option) -> ColumnElement[bool]:
    """A WHERE clause on Guardian selecting the families on ``option``: those a person moved
    there, and those ``plan`` puts there that nobody moved elsewhere.

    It mirrors ``channel_of`` in SQL, so a batch can stream its recipients from the database.
    """
    moved = func.coalesce(family_channel.chosen_channel(), "")
    return or_(moved == option.value, and_(moved == "", _planned(plan, option)))


def _planned(plan: SavedPlan | None, option: Option) -> ColumnElement[bool]:
    """The plan's rule alone (``advisor.channel_for`` in SQL)."""
    reaches: dict[Option, ColumnElement[bool]] = {
        Option.PORTAL: col(Guardian.uses_portal) == true(),
        Option.SECURE: HAS_EMAIL,
        Option.PRINT: true(),
        Option.PAPER: true(),
    }
    if plan is None or option not in plan.channels:
        return not_(true())
    earlier = [reaches[o] for o in plan.channels[: plan.channels.index(option)]]
    if not earlier:
        return reaches[option]
    return and_(reaches[option], not_(or_(*earlier)))


def decided_when(moment: datetime, locale: str = "en") -> str:
    """A decision's time in ``locale``, in UTC and saying so."""
    return f"{format_datetime(moment, format='short', tzinfo=UTC, locale=locale)} UTC"


NO_PLAN = "No plan saved yet."


def summary_text(plan: SavedPlan | None, locale: str = "en") -> str:
    """A few lines on the plan in force, for the dashboard, the advisor screen and ``plan show``;
    each adds its own way to save one when there is none."""
    if plan is None:
        return NO_PLAN
    lines = [plan.label + (" (overruled)" if plan.overruled else "")]
    lines += [
        f"{f.option.value} {f.option.caption}: {counted(f.families, 'family', 'families')}"
        for f in plan.figures
    ]
    lines.append(f"Estimate {money(plan.cost, locale)}")
    lines.append(f"By {plan.decided_by}, {decided_when(plan.decided_at, locale)}")
    if plan.reason:
        lines.append(f"Why: {plan.reason}")
    return "\n".join(lines)


def dashboard_text(engine: Engine, operator: Operator) -> str:
    """The dashboard's plan panel for the operator's scope (their school's plan, else the LEA's)."""
    plan = current_for(engine, operator, school_scope(operator))
    text = summary_text(plan, operator.language)
    return text if plan else f"{text} Press a to open the advisor."
