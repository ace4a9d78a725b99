"""Aggregate reports for coordinators: coverage and delivery by school, grade, language, program
and channel; students at risk of missing the statutory deadline; cost so far by channel.

Everything is an SQL aggregate over the operator's scope (their LEA; a site coordinator's school;
optionally one student group), so a 300,000-student LEA answers in well under a second and no
student row passes through Python. Each student's SSRs of one program are a *unit*; its state is
the best any channel reached for the household it reached least far (every household the
student's reports go to, ``services.roster.facts.recipient``, is owed them):

- delivered (``services.delivery.delivered``, shared with coverage and the deadline notices): the family's
  secure email went out with its password (B), the envelopes were mailed or handed out on the day
  an operator confirmed (C printed locally, D paper from ETS), or the reports were published in
  the portal (A);
- to mail: printed (C) or received from ETS (D), at the LEA and not yet mailed or handed out;
- on a channel: in a batch that is still working on it (sending, printing, ordered from ETS);
- failed: every attempt failed (no address for a mailing, the mail server refused, or the family's
  mail server bounced the email: counted apart as "bounced", with the reason in the at-risk list);
- not covered: in no batch at all.

A student whose family had a report that ETS has since corrected is counted apart, live, as
"corrected, not yet sent" (``corrected_count``) until the corrected version is delivered.

Deadlines (``services.core.working_days``): CAASPP 20 working days after receipt, ELPAC 30 calendar
days; received after the last day of instruction, 20 (CAASPP) or 15 (ELPAC) working days into the
next school year (5 CCR § 863, § 11518.15(b)). A unit not yet delivered whose deadline is within ``AT_RISK_WORKING_DAYS`` working days (or
already past) is at risk.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, case, delete, func, insert, literal, or_
from sqlalchemy import select as select_columns  # more columns than sqlmodel.select types
from sqlalchemy.engine import Engine
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from services.access.permissions import Permission, require, school_scope
from services.access.tables import Operator
from services.channels.batches import IN_HAND, ChannelBatch, ChannelItem, ChannelItemState
from services.core.channels import ASSIGNMENT_ORDER, Option
from services.core.columns import utcnow
from services.core.db import is_sqlite, session_scope
from services.core.programs import Program
from services.core.scope import report_filters
from services.core.validation import LANGUAGES
from services.core.working_days import WorkingCalendar
from services.delivery.delivered import (
    CHANNEL_DELIVERED,
    SECURE_DELIVERED,
    channel_item_reaches,
    owed_corrections,
    secure_item_carries,
)
from services.delivery.ledger import (
    BatchKind,
    BatchStatus,
    DeliveryBatch,
    DeliveryItem,
    ItemState,
)
from services.intake.score_reports import ScoreReport
from services.plan.advisor import money
from services.reports.tables import ReportUnit
from services.roster.facts import current_year, recipient
from services.roster.groups import get as get_group
from services.roster.groups import member_ids
from services.roster.tables import LEA, School, Student, StudentGuardian

AT_RISK_WORKING_DAYS = 5


class Dimension(enum.StrEnum):
    """What the coverage report is broken down by."""

    SCHOOL = "school"
    GRADE = "grade"
    LANGUAGE = "language"
    PROGRAM = "program"
    CHANNEL = "channel"


class Status(enum.IntEnum):
    """A unit's state, ordered so the best of several attempts is their maximum."""

    NONE = 0
    FAILED = 1
    ON_CHANNEL = 2
    IN_HAND = 3  # printed or received from ETS: at the LEA, not yet mailed or handed out
    DELIVERED = 4


_RANK = {Option.PAPER: 1, Option.PRINT: 2, Option.SECURE: 3, Option.PORTAL: 4}
"""Tie-break between channels at the same status; code = status * 10 + rank."""
BOUNCED_RANK = 5
"""The rank of a secure-email unit whose email bounced (``services.bounces``): its own code, so the
reports can count and name bounces apart from other failures."""
_BY_RANK = {rank: option for option, rank in _RANK.items()} | {BOUNCED_RANK: Option.SECURE}
_B_FAILED = (ItemState.FAILED, ItemState.UNCERTAIN)


@dataclass(frozen=True)
class Scope:
    """Whose students a report counts: the operator's LEA or school, perhaps one group."""

    lea_id: int
    school_id: int | None = None
    group_id: int | None = None


def scope_for(engine: Engine, operator: Operator, group_id: int | None = None) -> Scope:
    """The operator's scope, refused when they may not see reports; a group must be theirs.

    Every report below takes the operator and works its scope out here, never from the caller:
    a site coordinator asking for the LEA still gets their own school."""
    require(operator, Permission.VIEW_REPORTS)
    if group_id is not None:
        get_group(engine, operator, group_id)  # NotFound for another school's group
    return Scope(operator.lea_id, school_scope(operator), group_id)


# --- the per-unit state, worked out in SQL and kept in report_unit ----------------------------


def _best(engine: Engine, *codes: Any) -> Any:
    """The greatest of some codes, each evaluated once: SQLite's scalar max(), else greatest()."""
    return func.max(*codes) if is_sqlite(engine) else func.greatest(*codes)


def _secure_code(household: Any = None) -> Any:
    """Correlated: the best code of the student's secure-email deliveries (0 if none);
    ``household``: a StudentGuardian alias of the outer query, its guardian's household's."""
    item_state = col(DeliveryItem.state)
    rank = _RANK[Option.SECURE]
    code = case(
        (item_state.in_(SECURE_DELIVERED), Status.DELIVERED * 10 + rank),
        (item_state == ItemState.BOUNCED, Status.FAILED * 10 + BOUNCED_RANK),
        (item_state.in_(_B_FAILED), Status.FAILED * 10 + rank),
        else_=Status.ON_CHANNEL * 10 + rank,
    )
    return func.coalesce(
        select(func.max(code))
        .select_from(StudentGuardian)
        .join(DeliveryItem, col(DeliveryItem.guardian_id) == col(StudentGuardian.guardian_id))
        .join(DeliveryBatch, col(DeliveryBatch.id) == col(DeliveryItem.batch_id))
        .where(
            *secure_item_carries(
                col(Student.id),
                col(Student.school_id),
                col(Student.grade),
                None if household is None else household.guardian_id,
            )
        )
        .correlate(Student, *([] if household is None else [household]))
        .scalar_subquery(),
        0,
    )


def _channel_code(household: Any = None) -> Any:
    """Correlated: the best code of the student's portal, print and paper batches (0 if none);
    ``household``: as ``_secure_code`` (ETS paper serves every household)."""
    state = col(ChannelItem.state)
    rank = case(*((col(ChannelBatch.channel) == o.value, _RANK[o]) for o in _RANK), else_=0)
    code = (
        case(
            (state.in_(CHANNEL_DELIVERED), Status.DELIVERED * 10),
            (state.in_(IN_HAND), Status.IN_HAND * 10),
            (state == ChannelItemState.PENDING, Status.ON_CHANNEL * 10),
            else_=Status.FAILED * 10,
        )
        + rank
    )
    return func.coalesce(
        select(func.max(code))
        .select_from(ChannelItem)
        .join(ChannelBatch, col(ChannelBatch.id) == col(ChannelItem.batch_id))
        .where(
            col(ChannelItem.student_id) == col(Student.id),
            col(ChannelBatch.status) != BatchStatus.CANCELLED,
            state != ChannelItemState.CANCELLED,
            channel_item_reaches(None if household is None else household.guardian_id),
        )
        .correlate(Student, *([] if household is None else [household]))
        .scalar_subquery(),
        0,
    )


def _code(engine: Engine) -> Any:
    """Correlated on Student: the unit's code, that of the household it reached least far (a
    report is delivered when every household has it, ``services.delivery.delivered``); a student
    without a household to send to: the best any batch reached."""
    household = aliased(StudentGuardian)
    least = (
        select(func.min(_best(engine, _secure_code(household), _channel_code(household))))
        .select_from(household)
        .where(col(household.student_id) == col(Student.id), recipient(household))
        .correlate(Student)
        .scalar_subquery()
    )
    return func.coalesce(least, _best(engine, _secure_code(), _channel_code()))


def _unit_rows(engine: Engine, school_ids: list[int], year: int, now: datetime) -> Any:
    """The report_unit rows of some schools' students (one per student and program) for the
    administration ``year``."""
    return (
        select_columns(
            col(Student.id),
            col(ScoreReport.program),
            col(Student.lea_id),
            col(Student.school_id),
            col(Student.grade),
            col(Student.primary_language),
            func.min(col(ScoreReport.received_at)),
            _code(engine),
            literal(now, type_=ReportUnit.__table__.c.refreshed_at.type),  # type: ignore[attr-defined]
        )
        .join(ScoreReport, col(ScoreReport.student_id) == col(Student.id))
        .where(col(Student.school_id).in_(school_ids), col(ScoreReport.admin_year) == year)
        .group_by(col(Student.id), col(ScoreReport.program))
    )


REFRESH_SCHOOLS = 20
"""Schools per refresh transaction: short write locks, so batches keep sending meanwhile."""
STALE_AFTER = timedelta(minutes=10)


def refresh(engine: Engine, operator: Operator, group_id: int | None = None) -> int:
    """Work out every unit's state in the scope again and keep it in report_unit.

    Only the LEA's current administration (``services.roster.facts.current_year``) counts (last year's SSRs went out last year), as in
    ``services.plan.coverage``. School by school (``REFRESH_SCHOOLS`` per transaction); returns the
    number of units. A group scope refreshes the group's schools in full.
    """
    scope = scope_for(engine, operator, group_id)
    now = utcnow()
    conditions: list[Any] = [col(School.lea_id) == scope.lea_id]
    if scope.school_id is not None:
        conditions.append(col(School.id) == scope.school_id)
    with Session(engine) as session:
        schools = [int(i) for i in session.execute(select(School.id).where(*conditions)).scalars()]
        year = current_year(session, scope.lea_id) or 0  # no SSRs yet: no units
    columns = [
        "student_id",
        "program",
        "lea_id",
        "school_id",
        "grade",
        "language",
        "received",
        "code",
        "refreshed_at",
    ]
    for start in range(0, len(schools), REFRESH_SCHOOLS):
        chunk = schools[start : start + REFRESH_SCHOOLS]
        with session_scope(engine) as session:
            if not is_sqlite(engine):  # two refreshes of one LEA take turns (SQLite: write lock)
                session.execute(select(LEA.id).where(LEA.id == scope.lea_id).with_for_update())
            session.execute(
                delete(ReportUnit).where(
                    col(ReportUnit.lea_id) == scope.lea_id, col(ReportUnit.school_id).in_(chunk)
                )
            )
            session.execute(
                insert(ReportUnit).from_select(columns, _unit_rows(engine, chunk, year, now))
            )
    with Session(engine) as session:  # psycopg reports no rowcount for INSERT ... SELECT
        return int(
            session.execute(
                select(func.count()).where(
                    col(ReportUnit.lea_id) == scope.lea_id, col(ReportUnit.school_id).in_(schools)
                )
            ).scalar_one()
        )


def _view(scope: Scope) -> list[Any]:
    """WHERE conditions on report_unit for a scope."""
    conditions: list[Any] = [col(ReportUnit.lea_id) == scope.lea_id]
    if scope.school_id is not None:
        conditions.append(col(ReportUnit.school_id) == scope.school_id)
    if scope.group_id is not None:
        conditions.append(col(ReportUnit.student_id).in_(member_ids(scope.group_id)))
    return conditions


def corrected_count(engine: Engine, operator: Operator, group_id: int | None = None) -> int:
    """Students of the scope whose family is owed a corrected SSR of the current administration
    (``services.delivery.delivered.correction_owed``), counted live: a correction is urgent."""
    scope = scope_for(engine, operator, group_id)
    with Session(engine) as session:
        year = current_year(session, scope.lea_id)
        chosen = report_filters(scope.lea_id, scope.school_id, None, None, year)
        if scope.group_id is not None:
            chosen.append(col(Student.id).in_(member_ids(scope.group_id)))
        return int(session.execute(owed_corrections(scope.lea_id, chosen)).scalar_one())


def refreshed_at(
    engine: Engine, operator: Operator, group_id: int | None = None
) -> datetime | None:
    """When the scope's figures were worked out (the oldest school's), None if never."""
    scope = scope_for(engine, operator, group_id)
    with Session(engine) as session:
        moment = session.execute(
            select(func.min(ReportUnit.refreshed_at)).where(*_view(scope))
        ).scalar()
    return _aware(moment) if moment is not None else None


def is_stale(moment: datetime | None, now: datetime | None = None) -> bool:
    return moment is None or (now or utcnow()) - moment > STALE_AFTER


# --- coverage and delivery by a dimension ------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One line of the coverage report: a school, a grade, a language, a program or a channel."""

    label: str
    units: int
    delivered: int
    on_channel: int
    failed: int
    uncovered: int
    in_hand: int = 0  # printed or received from ETS, not yet mailed or handed out
    bounced: int = 0  # of ``failed``: the family's mail server bounced the email

    @property
    def delivered_share(self) -> float:
        return self.delivered / self.units if self.units else 0.0

    @property
    def covered_share(self) -> float:
        return (self.delivered + self.in_hand + self.on_channel) / self.units if self.units else 0.0


COLUMNS = ("Group", "Students", "Delivered", "To mail", "Sending", "Failed", "None", "Done%")


def as_cells(row: Row) -> tuple[str, ...]:
    return (
        row.label,
        f"{row.units:,}",
        f"{row.delivered:,}",
        f"{row.in_hand:,}",
        f"{row.on_channel:,}",
        f"{row.failed:,}" + (f" ({row.bounced:,} bounced)" if row.bounced else ""),
        f"{row.uncovered:,}",
        f"{row.delivered_share:.0%}",
    )


def coverage(
    engine: Engine, operator: Operator, dimension: Dimension, group_id: int | None = None
) -> list[Row]:
    """Students (per program) with SSRs, by ``dimension``, counted by delivery state."""
    scope = scope_for(engine, operator, group_id)
    keys: dict[Dimension, Any] = {
        Dimension.SCHOOL: col(ReportUnit.school_id),
        Dimension.GRADE: col(ReportUnit.grade),
        Dimension.LANGUAGE: col(ReportUnit.language),
        Dimension.PROGRAM: col(ReportUnit.program),
        Dimension.CHANNEL: None,
    }
    key = keys[dimension]
    grouping: list[Any] = [col(ReportUnit.code)] if key is None else [key, col(ReportUnit.code)]
    # GROUP BY (key, code) over the covering index; the few result rows are folded here.
    query = select_columns(*grouping, func.count()).where(*_view(scope)).group_by(*grouping)
    with Session(engine) as session:
        found = session.execute(query).all()
        names = _school_names(session, scope) if dimension is Dimension.SCHOOL else {}
    tally: dict[Any, dict[Status, int]] = {}
    bounced: dict[Any, int] = {}
    for *parts, count in found:
        code = int(parts[-1])
        group = _channel_rank(code % 10) if key is None else parts[0]
        status = Status(code // 10)
        counts = tally.setdefault(group, dict.fromkeys(Status, 0))
        counts[status] += int(count)
        if code % 10 == BOUNCED_RANK:
            bounced[group] = bounced.get(group, 0) + int(count)
    rows = [
        Row(
            _label(dimension, group, names),
            sum(counts.values()),
            counts[Status.DELIVERED],
            counts[Status.ON_CHANNEL],
            counts[Status.FAILED],
            counts[Status.NONE],
            counts[Status.IN_HAND],
            bounced.get(group, 0),
        )
        for group, counts in tally.items()
    ]
    return sorted(rows, key=lambda r: _sort_key(dimension, r))


def _channel_rank(rank: int) -> int:
    """A bounced unit is a secure-email one in the channel breakdown."""
    return _RANK[Option.SECURE] if rank == BOUNCED_RANK else rank


def _school_names(session: Session, scope: Scope) -> dict[int, str]:
    query = select(School.id, School.name).where(col(School.lea_id) == scope.lea_id)
    return {int(i): str(n) for i, n in session.execute(query).all()}


def _label(dimension: Dimension, key: Any, names: dict[int, str]) -> str:
    if dimension is Dimension.SCHOOL:
        return names.get(int(key), f"school {key}")
    if dimension is Dimension.GRADE:
        return f"Grade {key}"
    if dimension is Dimension.LANGUAGE:
        return LANGUAGES.get(str(key), str(key))
    if dimension is Dimension.CHANNEL:
        option = _BY_RANK.get(int(key))
        return f"{option.value} {option.caption}" if option else "No channel"
    return str(key)


def _sort_key(dimension: Dimension, row: Row) -> tuple[Any, ...]:
    if dimension is Dimension.GRADE:
        return (int(row.label.split()[-1]),)
    if dimension is Dimension.CHANNEL:
        return (row.label == "No channel", row.label)
    return (row.label,)


def total(rows: list[Row]) -> Row:
    """The sum of a report's rows."""
    return Row(
        "All",
        sum(r.units for r in rows),
        sum(r.delivered for r in rows),
        sum(r.on_channel for r in rows),
        sum(r.failed for r in rows),
        sum(r.uncovered for r in rows),
        sum(r.in_hand for r in rows),
        sum(r.bounced for r in rows),
    )


# --- deadlines --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AtRisk:
    """One student's SSRs of a program that may miss their deadline."""

    ssid: str
    school: str
    grade: int
    program: str
    received: date
    deadline: date
    state: str


def risk_cutoffs(
    today: date, calendar: WorkingCalendar, within: int = AT_RISK_WORKING_DAYS
) -> dict[Program, datetime]:
    """Per program, the receipt moment (UTC) before which a unit's deadline falls within
    ``within`` working days of ``today`` (or has passed)."""
    horizon = calendar.add(today, within)
    return {
        program: datetime.combine(
            calendar.latest_receipt(program, horizon) + timedelta(days=1), time.min, UTC
        )
        for program in Program
    }


def _at_risk(cutoffs: dict[Program, datetime]) -> Any:
    return and_(
        col(ReportUnit.code) < Status.DELIVERED * 10,
        or_(
            *(
                and_(col(ReportUnit.program) == program.value, col(ReportUnit.received) < moment)
                for program, moment in cutoffs.items()
            )
        ),
    )


def at_risk_count(
    engine: Engine,
    operator: Operator,
    today: date,
    calendar: WorkingCalendar,
    group_id: int | None = None,
) -> int:
    """How many units are not delivered and due within a week of working days, or overdue."""
    scope = scope_for(engine, operator, group_id)
    query = select(func.count()).where(*_view(scope), _at_risk(risk_cutoffs(today, calendar)))
    with Session(engine) as session:
        return int(session.execute(query).scalar_one())


def at_risk(
    engine: Engine,
    operator: Operator,
    today: date,
    calendar: WorkingCalendar,
    group_id: int | None = None,
    *,
    limit: int = 100,
    offset: int = 0,
) -> list[AtRisk]:
    """A page of the units at risk, oldest receipt first; it names students by SSID, so only
    roles that may view students see it (the tech coordinator sees the count)."""
    require(operator, Permission.VIEW_STUDENTS)
    scope = scope_for(engine, operator, group_id)
    # The window is chosen from the covering risk index alone; only its rows are joined.
    window = (
        select(ReportUnit.student_id, ReportUnit.program)
        .where(*_view(scope), _at_risk(risk_cutoffs(today, calendar)))
        .order_by(col(ReportUnit.received), col(ReportUnit.student_id))
        .limit(limit)
        .offset(offset)
        .subquery("window")
    )
    query = (
        select_columns(
            col(Student.ssid),
            col(School.name),
            col(ReportUnit.grade),
            col(ReportUnit.program),
            col(ReportUnit.received),
            col(ReportUnit.code),
        )
        .join(
            window,
            and_(
                window.c.student_id == col(ReportUnit.student_id),
                window.c.program == col(ReportUnit.program),
            ),
        )
        .join(Student, col(Student.id) == col(ReportUnit.student_id))
        .join(School, col(School.id) == col(ReportUnit.school_id))
        .order_by(col(ReportUnit.received), col(ReportUnit.student_id))
    )
    with Session(engine) as session:
        rows = session.execute(query).all()
        bounced = _bounce_reasons(
            session, [ssid for ssid, *_, code in rows if int(code or 0) % 10 == BOUNCED_RANK]
        )
    found = []
    for ssid, school, grade, program, received, unit_code in rows:
        moment = _aware(received)
        program = Program(program)
        found.append(
            AtRisk(
                ssid,
                school,
                int(grade),
                program.value,
                moment.date(),
                calendar.deadline(program, moment.date()),
                _state_text(int(unit_code or 0)) + bounced.get(ssid, ""),
            )
        )
    return found


def _bounce_reasons(session: Session, ssids: list[str]) -> dict[str, str]:
    """For students whose family's email bounced: ": <the server's words> (to <address>)"."""
    if not ssids:
        return {}
    rows = session.execute(
        select_columns(col(Student.ssid), col(DeliveryItem.error))
        .join(StudentGuardian, col(StudentGuardian.student_id) == col(Student.id))
        .join(DeliveryItem, col(DeliveryItem.guardian_id) == col(StudentGuardian.guardian_id))
        .where(col(Student.ssid).in_(ssids), col(DeliveryItem.state) == ItemState.BOUNCED)
        .order_by(col(DeliveryItem.id))
    ).all()
    return {ssid: ": " + (error or "").removeprefix("bounced: ") for ssid, error in rows}


def _aware(value: Any) -> datetime:
    if isinstance(value, str):  # SQLite hands back text from an aggregate over a datetime column
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _state_text(code: int) -> str:
    status, option = Status(code // 10), _BY_RANK.get(code % 10)
    if status is Status.NONE:
        return "in no batch"
    if code % 10 == BOUNCED_RANK:
        return "bounced (B)"
    where = f" ({option.value})" if option else ""
    return {
        Status.FAILED: "failed",
        Status.ON_CHANNEL: "under way",
        Status.IN_HAND: "to mail",
    }.get(status, "delivered") + where


# --- cost ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChannelCost:
    """What a channel has cost so far, with what it carried."""

    option: Option
    batches: int
    families: int
    cost: Decimal


def costs_text(costs: list[ChannelCost], locale: str) -> str:
    """Cost per channel in the operator's locale, formatted by Babel as every other screen shows
    money (``services.plan.advisor.money``): one convention, not "23,43 US$" beside "$63.71"."""
    return " · ".join(f"{cost.option.value} {money(cost.cost, locale)}" for cost in costs)


def cost_by_channel(engine: Engine, operator: Operator) -> list[ChannelCost]:
    """Money spent per channel in batches not cancelled: print runs (pages, envelopes, postage)
    and ETS paper orders as recorded on their batches; portal and secure email cost no fee. Kept
    per batch, so never per student group."""
    scope = scope_for(engine, operator)
    conditions: list[Any] = [
        col(ChannelBatch.lea_id) == scope.lea_id,
        col(ChannelBatch.status) != BatchStatus.CANCELLED,
    ]
    secure: list[Any] = [
        col(DeliveryBatch.lea_id) == scope.lea_id,
        col(DeliveryBatch.status) != BatchStatus.CANCELLED,
        col(DeliveryBatch.kind) == BatchKind.DELIVERY,  # notices: services.delivery.notices
    ]
    if scope.school_id is not None:
        conditions.append(col(ChannelBatch.school_id) == scope.school_id)
        secure.append(col(DeliveryBatch.school_id) == scope.school_id)
    with Session(engine) as session:
        rows = {
            str(channel): (int(n), int(families or 0), int(cents or 0))
            for channel, n, families, cents in session.execute(
                select(
                    ChannelBatch.channel,
                    func.count(),
                    func.sum(ChannelBatch.families),
                    func.sum(ChannelBatch.cost_cents),
                )
                .where(*conditions)
                .group_by(ChannelBatch.channel)
            ).all()
        }
        b_batches, b_families = session.execute(
            select(func.count(), func.coalesce(func.sum(DeliveryBatch.total_items), 0)).where(
                *secure
            )
        ).one()
    rows[Option.SECURE.value] = (int(b_batches), int(b_families), 0)
    costs = []
    for option in ASSIGNMENT_ORDER:
        batches, families, cents = rows.get(option.value, (0, 0, 0))
        costs.append(ChannelCost(option, batches, families, Decimal(cents) / 100))
    return costs
