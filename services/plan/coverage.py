"""Coverage: which channel each student's SSRs are on, so that every SSR is on exactly one.

A student's SSRs (the newest version of each report) go to each of the student's households (the
families of ``services.roster.facts.recipient``: two parents at two addresses are two). A
household is on a channel when a batch of that channel holds the student for it and has not
given up on them:

- B (secure email, ``services.delivery.ledger``): an item for the household's guardian that
  carries the student (``services.delivery.delivered.secure_item_carries``) and has not failed or
  bounced;
- A, C (``services.channels.batches``): an item for the student and that guardian, pending or
  done (a print run's family without a usable address is listed, not covered); D: an item for
  the student (ETS paper serves every household, ``services.delivery.delivered``).

A student is on one channel when each household is on exactly one, on several when a household
is on two or more (a family that gets the same report by email and on paper is a plan to fix),
uncovered otherwise; the uncovered are listed per household (family) with why. Families and
guardians are counted as the advisor and the batches count them. Every figure is one aggregate
query over the students in scope; lists are paged. The same rules choose the students of a new
batch (``_students_for``): the plan's families of a channel, every family in scope, or those the
portal does not reach; never a household already on a channel. An ETS paper order takes students
from the roster, whether or not their SSRs were imported (``roster_students``).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Select, and_, case, exists, func, literal, true
from sqlalchemy.engine import Engine
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from services.access.permissions import Permission, require
from services.access.tables import Operator
from services.channels import batches as channel_batches
from services.channels.batches import COVERING, ChannelBatch, ChannelItem, ChannelItemState, Scope
from services.core.channels import ASSIGNMENT_ORDER, Option
from services.core.errors import InvalidInput
from services.core.paging import Page, prefix
from services.core.scope import report_filters
from services.delivery.delivered import (
    channel_item_reaches,
    correction_owed,
    delivered_on,
    owed_corrections,
    report_delivered,
    report_taken,
    secure_item_carries,
)
from services.delivery.ledger import GAVE_UP, DeliveryBatch, DeliveryItem, ItemState
from services.intake.score_reports import ScoreReport
from services.plan import decisions as plan
from services.plan import family_channel
from services.roster.facts import (
    current_year,
    delivery_guardians,
    english_fallback,
    may_receive,
    recipient,
    school_year_label,
)
from services.roster.tables import Guardian, School, Student, StudentGuardian


def students_with_ssrs(lea_id: int, scope: Scope) -> Select[Any, Any]:
    """Students of the scope with at least one SSR: ``sid``, ``ssrs`` (newest versions)."""
    return (
        sa.select(col(Student.id).label("sid"), func.count(col(ScoreReport.id)).label("ssrs"))
        .join(ScoreReport, col(ScoreReport.student_id) == col(Student.id))
        .where(
            *report_filters(lea_id, scope.school_id, scope.grade, scope.program, scope.admin_year)
        )
        .group_by(col(Student.id))
    )


def roster_students(lea_id: int, scope: Scope) -> Select[Any, Any]:
    """Students of the scope on the roster, SSRs imported or not: ``sid``, ``ssrs`` (0).

    An ETS paper order is made by SSID (seed 000: option D "does not require the ability to
    download"), so a district that never downloads a PDF can still order for its students.
    """
    # withdrawn students are out of every new batch (as in core.scope.report_filters)
    conditions: list[Any] = [col(Student.lea_id) == lea_id, col(Student.withdrawn_at).is_(None)]
    if scope.school_id is not None:
        conditions.append(col(Student.school_id) == scope.school_id)
    if scope.grade is not None:
        conditions.append(col(Student.grade) == scope.grade)
    return sa.select(col(Student.id).label("sid"), literal(0).label("ssrs")).where(*conditions)


def families(lea_id: int, scope: Scope) -> Any:
    """Subquery ``sid``, ``gid``: each student with an SSR and the guardian of each household."""
    return delivery_guardians(students_with_ssrs(lea_id, scope).subquery("with_ssrs"))


def on_channel(
    option: Option, lea_id: int, sid: Any, school_id: Any, grade: Any, gid: Any = None
) -> Any:
    """SQL: the student ``sid`` (in ``school_id``, ``grade``) is on channel ``option`` for the
    household of guardian ``gid`` (None: for any household)."""
    if option is Option.SECURE:
        return exists().where(
            *secure_item_carries(sid, school_id, grade, gid),
            col(DeliveryBatch.lea_id) == lea_id,
            col(DeliveryItem.state).not_in(GAVE_UP),
        )
    return exists().where(
        col(ChannelItem.student_id) == sid,
        col(ChannelItem.state).in_(COVERING),
        col(ChannelBatch.id) == col(ChannelItem.batch_id),
        col(ChannelBatch.channel) == option.value,
        channel_item_reaches(gid),
    )


def _flags(lea_id: int, scope: Scope) -> Any:
    """Per student in scope and household: sid, gid (NULL: the student has none) and one 0/1
    column per channel."""
    with_ssrs = students_with_ssrs(lea_id, scope).subquery("with_ssrs")
    family = delivery_guardians(with_ssrs)
    columns = [
        case(
            (
                on_channel(
                    o, lea_id, with_ssrs.c.sid, Student.school_id, Student.grade, family.c.gid
                ),
                1,
            ),
            else_=0,
        ).label(o.value)
        for o in ASSIGNMENT_ORDER
    ]
    return (
        select(with_ssrs.c.sid, family.c.gid, *columns)
        .select_from(with_ssrs)
        .join(Student, col(Student.id) == with_ssrs.c.sid)
        .outerjoin(family, family.c.sid == with_ssrs.c.sid)
        .subquery("flags")
    )


def _channels(flags: Any) -> Any:
    return sum((flags.c[o.value] for o in ASSIGNMENT_ORDER), literal(0))


@dataclass(frozen=True)
class CoverageSummary:
    """How many students with SSRs are on one channel, on several, on none; per channel."""

    students: int
    once: int
    several: int
    uncovered: int
    by_channel: dict[Option, int]
    corrected: int = 0  # students whose family is owed a corrected SSR (ETS re-issued it)
    year: int | None = None  # the administration counted (``in_force``); None: none imported
    english_fallback: int = 0  # families written to in English: no catalog for their language
    translated: int = 0  # families who received an SSR in their own (non-English) language
    families: int = 0  # households the students' SSRs go to (``services.roster.facts.recipient``)
    guardians: int = 0  # guardians entitled to them (several in one household are one family)

    @property
    def complete(self) -> bool:
        return self.students > 0 and self.once == self.students

    def text(self) -> str:
        """The dashboard's coverage panel, headed by the school year it counts."""
        heading = [f"School year {school_year_label(self.year)}"] if self.year is not None else []
        if not self.students:
            return "\n".join([*heading, "No SSRs received yet."])
        share = self.once / self.students
        lines = [
            *heading,
            f"On one channel {self.once:,} of {self.students:,} ({share:.0%})",
            " · ".join(f"{o.value} {n:,}" for o, n in self.by_channel.items()),
            f"Uncovered      {self.uncovered:,}",
            f"Families       {self.families:,} ({self.guardians:,} guardians entitled)",
        ]
        if self.several:
            lines.append(f"On 2+ channels {self.several:,}: fix the plan")
        if self.corrected:
            lines.append(f"Corrected, not yet sent {self.corrected:,}: batch scope corrections")
        if self.translated:
            lines.append(f"Families sent a translated SSR {self.translated:,}")
        if self.english_fallback:
            lines.append(
                f"Families written to in English (no texts in their language) {self.english_fallback:,}"
            )
        return "\n".join(lines)


def in_force(engine: Engine, operator: Operator, scope: Scope | None = None) -> Scope:
    """The scope as the operator may see it (a site coordinator: their school), for the LEA's
    current administration (``services.roster.facts.current_year``) unless it names a year: TOMS keeps three years of SSRs, and last
    year's reports are not this year's to deliver."""
    scope = channel_batches.scoped(operator, scope or Scope())
    if scope.admin_year is None:
        with Session(engine) as session:
            scope = replace(scope, admin_year=current_year(session, operator.lea_id))
    return scope


def summary(engine: Engine, operator: Operator, scope: Scope | None = None) -> CoverageSummary:
    """Coverage of the operator's LEA (a site coordinator: their school), one aggregate query."""
    require(operator, Permission.VIEW_DASHBOARD)
    scope = in_force(engine, operator, scope)
    flags = _flags(operator.lea_id, scope)
    channels = _channels(flags)
    per_student = (
        select(
            flags.c.sid,
            func.min(channels).label("fewest"),
            func.max(channels).label("most"),
            *(func.max(flags.c[o.value]).label(o.value) for o in ASSIGNMENT_ORDER),
        )
        .group_by(flags.c.sid)
        .subquery("per_student")
    )
    chosen = report_filters(
        operator.lea_id, scope.school_id, scope.grade, scope.program, scope.admin_year
    )
    single = per_student.c.fewest == 1
    link = aliased(StudentGuardian)
    with Session(engine) as session:
        corrected = session.execute(owed_corrections(operator.lea_id, chosen)).scalar_one()
        families, guardians, fallback = session.execute(
            select(
                func.count(func.distinct(flags.c.gid)),
                sa.select(func.count(func.distinct(col(StudentGuardian.guardian_id))))
                .where(col(StudentGuardian.student_id).in_(select(flags.c.sid)), may_receive())
                .scalar_subquery(),
                func.count(func.distinct(case((english_fallback(), col(Guardian.id))))),
            )
            .select_from(flags)
            .outerjoin(Guardian, col(Guardian.id) == flags.c.gid)
        ).one()
        translated = session.execute(
            select(func.count(func.distinct(link.guardian_id)))
            .select_from(ScoreReport)
            .join(Student, col(Student.id) == col(ScoreReport.student_id))
            .join(link, col(link.student_id) == col(Student.id))
            .where(
                *chosen,
                col(ScoreReport.language) != "en",
                recipient(link),
                report_delivered(link.guardian_id),
            )
        ).scalar_one()
        row = session.execute(
            select(
                func.count(),
                func.coalesce(
                    func.sum(case((and_(single, per_student.c.most == 1), 1), else_=0)), 0
                ),
                func.coalesce(func.sum(case((per_student.c.most > 1, 1), else_=0)), 0),
                *(func.coalesce(func.sum(per_student.c[o.value]), 0) for o in ASSIGNMENT_ORDER),
            ).select_from(per_student)
        ).one()
    students, once, several, *per_channel = (int(v) for v in row)
    return CoverageSummary(
        students=students,
        once=once,
        several=several,
        uncovered=students - once - several,
        by_channel=dict(zip(ASSIGNMENT_ORDER, per_channel, strict=True)),
        corrected=int(corrected),
        year=scope.admin_year,
        english_fallback=int(fallback),
        translated=int(translated),
        families=int(families),
        guardians=int(guardians or 0),
    )


def dashboard_text(engine: Engine, operator: Operator) -> str:
    """The dashboard's coverage panel for the operator's scope."""
    return summary(engine, operator).text()


class Why(enum.StrEnum):
    """Why a student is on no channel."""

    NO_GUARDIAN = "no guardian on file"
    NO_ADDRESS = "no usable mailing address"
    NOT_IN_BATCH = "in no batch yet"
    BOUNCED = "email bounced"  # the family's secure email bounced (services.bounces)


@dataclass(frozen=True)
class Uncovered:
    """One uncovered student, named by SSID, with their family and the reason."""

    ssid: str
    school: str
    grade: int
    guardian_id: int | None
    guardian: str
    why: Why
    detail: str = ""  # a bounce: the server's reason and the address ("bounced: 5.1.1 ... (to x)")

    @property
    def why_text(self) -> str:
        return self.detail or self.why.value


def uncovered(
    engine: Engine,
    operator: Operator,
    *,
    limit: int = 50,
    offset: int = 0,
    ssid_prefix: str = "",
) -> list[Uncovered]:
    """A page of the uncovered students (optionally those whose SSID starts with
    ``ssid_prefix``), by family then SSID."""
    require(operator, Permission.VIEW_STUDENTS)
    flags = _flags(operator.lea_id, in_force(engine, operator))
    listed_without_address = exists().where(
        col(ChannelItem.student_id) == flags.c.sid,
        col(ChannelItem.state) == ChannelItemState.NO_ADDRESS,
    )
    bounced = (
        sa.select(col(DeliveryItem.error))
        .where(
            *secure_item_carries(
                flags.c.sid, col(Student.school_id), col(Student.grade), flags.c.gid
            ),
            col(DeliveryItem.state) == ItemState.BOUNCED,
        )
        .order_by(col(DeliveryItem.id).desc())
        .limit(1)
        .correlate_except(StudentGuardian, DeliveryItem, DeliveryBatch)
        .scalar_subquery()
    )
    why = case(
        (flags.c.gid.is_(None), Why.NO_GUARDIAN.value),
        (listed_without_address, Why.NO_ADDRESS.value),
        (bounced.is_not(None), Why.BOUNCED.value),
        else_=Why.NOT_IN_BATCH.value,
    )
    with Session(engine) as session:
        rows = session.execute(
            sa.select(
                col(Student.ssid),
                col(School.name),
                col(Student.grade),
                flags.c.gid,
                func.coalesce(Guardian.last_name + ", " + Guardian.first_name, ""),
                why,
                bounced,
            )
            .select_from(flags)
            .join(Student, col(Student.id) == flags.c.sid)
            .join(School, col(School.id) == col(Student.school_id))
            .outerjoin(Guardian, col(Guardian.id) == flags.c.gid)
            .where(
                _channels(flags) == 0, *([prefix(Student.ssid, ssid_prefix)] if ssid_prefix else [])
            )
            .order_by(flags.c.gid, col(Student.ssid))
            .limit(limit)
            .offset(offset)
        ).all()
    return [
        Uncovered(s, sc, int(g), gid, name, Why(w), b or "" if w == Why.BOUNCED else "")
        for s, sc, g, gid, name, w, b in rows
    ]


def uncovered_page(
    engine: Engine, operator: Operator, offset: int, limit: int, filter_text: str = ""
) -> Page:
    """A window of the uncovered students for a paged table; a digit filter is an SSID prefix."""
    require(operator, Permission.VIEW_STUDENTS)
    text = filter_text.strip()
    if text and not text.isdigit():
        raise InvalidInput("Filter the uncovered by SSID: type its first digits")
    flags = _flags(operator.lea_id, in_force(engine, operator))
    matching = [_channels(flags) == 0]
    if text:
        matching.append(
            flags.c.sid.in_(sa.select(col(Student.id)).where(prefix(Student.ssid, text)))
        )
    with Session(engine) as session:
        total = session.execute(
            sa.select(func.count()).select_from(flags).where(*matching)
        ).scalar_one()
    rows = uncovered(engine, operator, limit=limit, offset=offset, ssid_prefix=text)
    return Page(
        [(u.ssid, u.school[:18], str(u.grade), u.guardian[:22], u.why_text) for u in rows],
        int(total),
    )


def uncovered_families(engine: Engine, operator: Operator) -> Iterator[int | None]:
    """The family (guardian id; None for students without one) of every uncovered student,
    each once, streamed in id order."""
    require(operator, Permission.VIEW_DASHBOARD)
    flags = _flags(operator.lea_id, in_force(engine, operator))
    with Session(engine) as session:
        result = session.execute(
            select(flags.c.gid)
            .where(_channels(flags) == 0)
            .group_by(flags.c.gid)
            .order_by(flags.c.gid)
            .execution_options(yield_per=1000)
        )
        for (gid,) in result:
            yield gid


class Who(enum.StrEnum):
    """Which families of the scope a new batch takes (never students already on a channel)."""

    PLAN = "plan"  # the families the plan in force puts on the batch's channel
    ALL = "all"  # every family of the scope
    HANDOFF = "handoff"  # families that do not use the portal (portal readiness hand-off)
    CORRECTIONS = "corrections"  # owed a corrected SSR whose earlier version went by this channel


def corrections_on(lea_id: int, scope: Scope, channel: Option, sid: Any, gid: Any) -> Any:
    """SQL: student ``sid`` of the scope is owed, in the household of guardian ``gid``, a
    corrected SSR (``correction_owed``) whose earlier version reached that household on
    ``channel`` (portal, print or ETS paper), and that no live batch of any channel holds for it
    yet: a ``corrections`` batch of that channel takes them."""
    return (
        exists()
        .where(
            col(Student.id) == sid,
            col(ScoreReport.student_id) == col(Student.id),
            *report_filters(lea_id, scope.school_id, scope.grade, scope.program, scope.admin_year),
            correction_owed(lea_id, gid),
            delivered_on(channel.value, gid),
            ~report_taken(lea_id, guardian_id=gid),
        )
        .correlate_except(Student, ScoreReport)  # its own Student, not the batch query's
    )


def _moved_to(engine: Engine, lea_id: int, channel: Option) -> bool:
    with Session(engine) as session:
        return family_channel.anyone_moved_to(session, lea_id, channel)


def choose(
    engine: Engine,
    operator: Operator,
    channel: Option,
    scope: Scope | None = None,
    who: Who = Who.PLAN,
    exclude: Iterable[int] = (),
    only: Iterable[int] | None = None,
) -> tuple[Scope, Select[Any, Any]]:
    """The scope in force for ``operator`` (``in_force``) and the students a new ``channel``
    batch takes in it (``_students_for``): what every channel's preview and create start from."""
    scope = in_force(engine, operator, scope)
    return scope, _students_for(
        engine, operator.lea_id, scope, who, channel, exclude=exclude, only=only
    )


def _students_for(
    engine: Engine,
    lea_id: int,
    scope: Scope,
    who: Who,
    channel: Option,
    *,
    exclude: Iterable[int] = (),
    only: Iterable[int] | None = None,
) -> Select[Any, Any]:
    """``sid``, ``gid`` of the students a new ``channel`` batch takes, one row per household
    (portal, print) or per student (ETS paper: one set per student serves every household);
    ``exclude`` leaves out families (guardian ids) on purpose, ``only`` takes none but these (the
    bounced families of a batch, ``services.bounces.moves``). A household already on any channel
    is never taken, so a new batch cannot put an SSR on a second channel; ``Who.CORRECTIONS``
    takes only households on this channel that are owed a corrected SSR on it."""
    family = (
        delivery_guardians(roster_students(lea_id, scope).subquery("on_roster"))
        if channel is Option.PAPER and who is not Who.CORRECTIONS
        else families(lea_id, scope)
    )
    conditions: list[Any] = (
        [corrections_on(lea_id, scope, channel, family.c.sid, family.c.gid)]
        if who is Who.CORRECTIONS  # already on this channel: owed the corrected version on it
        else [
            ~on_channel(o, lea_id, family.c.sid, Student.school_id, Student.grade, family.c.gid)
            for o in ASSIGNMENT_ORDER
        ]
    )
    if who is Who.PLAN:
        current = plan.current(engine, lea_id, scope.school_id)
        if current is None:
            raise InvalidInput("There is no distribution plan yet; save one in the advisor first")
        if channel not in current.channels and not _moved_to(engine, lea_id, channel):
            raise InvalidInput(
                f"The plan in force ({current.label}) does not use {channel.value} "
                f"{channel.caption}; choose the families another way"
            )
        conditions.append(plan.channel_filter(current, channel))
    if who is Who.HANDOFF:
        conditions.append(col(Guardian.uses_portal) != true())
    excluded = sorted(set(exclude))
    if excluded:
        conditions.append(col(Guardian.id).not_in(excluded))
    if only is not None:
        conditions.append(col(Guardian.id).in_(sorted(set(only))))
    chosen = (
        select(family.c.sid, family.c.gid)
        .join(Student, col(Student.id) == family.c.sid)
        .join(Guardian, col(Guardian.id) == family.c.gid)
        .where(and_(*conditions))
    )
    if channel is not Option.PAPER:
        return chosen
    return chosen.with_only_columns(family.c.sid, func.min(family.c.gid).label("gid")).group_by(
        family.c.sid
    )
