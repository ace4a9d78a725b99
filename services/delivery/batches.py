"""Delivery batches as operators see them: choose families, dry-run, create, watch progress.

A batch is chosen by school, grade, a list of guardians, the whole LEA, the families of a student
group (``services.roster.groups``), the plan's secure-electronic families (``services.plan.decisions``),
or the families owed a corrected SSR they had by email (``corrections``: ETS re-issued it). A family
is a household, written to through the guardian who represents it (``services.roster.facts.recipient``:
two households of one student get two deliveries); each gets their children's SSRs in the batch's
scope (the newest version of each report), and never what an earlier batch took for them. The items are inserted with one
``INSERT ... SELECT`` so a 300,000-SSR batch never passes through Python, and every figure shown
(dry run, progress, per school) is an SQL aggregate.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Integer, and_, bindparam, case, func, insert, literal, or_
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from services.access.permissions import Permission, allowed, require, school_scope
from services.access.tables import Operator
from services.audit import log as audit
from services.audit.log import Actor
from services.channels import batches as channel_batches
from services.core.channels import Option
from services.core.columns import utcnow
from services.core.db import session_scope
from services.core.errors import ConsoleError, InvalidInput, NotFound
from services.core.programs import Program
from services.core.scope import Source, report_filters
from services.core.settings import Settings
from services.core.validation import LANGUAGES, plain_text
from services.core.validation import grade as valid_grade
from services.core.working_days import WorkingCalendar
from services.delivery import ledger, mailer, messages, packaging
from services.delivery.delivered import corrects_email_delivery, report_taken
from services.delivery.ledger import (
    BatchKind,
    BatchStatus,
    DeliveryBatch,
    DeliveryItem,
    ItemState,
    SendQuota,
)
from services.delivery.sending_time import (
    SendingTime,
    earliest_deadline,
    relay_rate,
    sending_time,
)
from services.intake.score_reports import ScoreReport
from services.plan import decisions as plan
from services.roster import groups as student_groups
from services.roster.facts import (
    HAS_EMAIL,
    current_year,
    household_guardians,
    may_receive,
    recipient,
)
from services.roster.tables import LEA, Guardian, School, Student, StudentGuardian


@dataclass(frozen=True)
class Selection:
    """Which families a batch is for; ``program``/``admin_year`` narrow which SSRs are sent."""

    source: Source = Source.LEA
    school_id: int | None = None
    grade: int | None = None
    guardian_ids: tuple[int, ...] = ()
    program: Program | None = None
    admin_year: int | None = None
    group_id: int | None = None

    def check(self) -> None:
        if self.source is Source.SCHOOL and self.school_id is None:
            raise InvalidInput("Choose a school for a school batch")
        if self.source is Source.GRADE and self.grade is None:
            raise InvalidInput("Choose a grade for a grade batch")
        if self.source is Source.LIST and not self.guardian_ids:
            raise InvalidInput("A list batch needs at least one guardian")
        if self.source is Source.GROUP and self.group_id is None:
            raise InvalidInput("Choose a student group for a group batch")


def scoped(engine: Engine, operator: Operator, selection: Selection) -> Selection:
    """A group batch is held to the group's school (a group the operator may see); a site
    coordinator's batch to their school whatever they chose. A batch that names no year is for
    the current administration (``services.roster.facts.current_year``): TOMS keeps three years
    of SSRs, and a family asking again for this year's report must not be sent last year's too."""
    selection.check()
    if selection.admin_year is None:
        with Session(engine) as session:
            selection = replace(selection, admin_year=current_year(session, operator.lea_id))
    if selection.source is Source.GROUP:
        assert selection.group_id is not None
        group = student_groups.get(engine, operator, selection.group_id)
        selection = replace(selection, school_id=group.school_id)
    return held_to_school(operator, selection)


def held_to_school(operator: Operator, selection: Selection) -> Selection:
    """The selection as the operator may send it: a site coordinator's is their school's,
    whatever the caller chose (another school is refused with a sentence)."""
    school = school_scope(operator)
    if school is None:
        return selection
    if selection.school_id not in (None, school):
        raise InvalidInput("A site coordinator can only send for their own school")
    return replace(selection, school_id=school)


def family_conditions(engine: Engine, operator: Operator, selection: Selection) -> list[Any]:
    """The selection's conditions on Guardian (joined to Student through StudentGuardian) that
    do not depend on SSRs: the listed guardians, a group's families, the plan's secure-email
    families. SSR batches and notice batches (``services.delivery.notices``) share them. The
    school comes from the operator (``held_to_school``), never from the caller alone."""
    selection = held_to_school(operator, selection)
    lea_id = operator.lea_id
    held = [] if selection.school_id is None else [col(Student.school_id) == selection.school_id]
    # "+ 0" keeps SQLite (no statistics) from driving the join from the guardian index, which
    # made it loop over every student per guardian: minutes for 42,000 students instead of 0.4 s.
    conditions: list[Any] = [
        col(Guardian.lea_id) + 0 == lea_id,
        may_receive(),  # custody and "do not contact" (the SIS), on every source and batch kind
        *held,
    ]
    if selection.source is Source.LIST:
        conditions.append(Guardian.id.in_(selection.guardian_ids))  # type: ignore[union-attr]
    if selection.source is Source.GROUP:
        assert selection.group_id is not None
        conditions.append(col(Guardian.id).in_(student_groups.families(selection.group_id)))
    if selection.source is Source.CORRECTIONS:
        # Only the corrected SSRs; which of them are still owed is the "new" count below.
        conditions.append(corrects_email_delivery(col(Guardian.id)))
    if selection.source is Source.PLAN:
        current = plan.current(engine, lea_id, selection.school_id)
        if current is None:
            raise InvalidInput("There is no distribution plan yet; save one in the advisor first")
        conditions.append(plan.channel_filter(current, Option.SECURE))
    return conditions


def _families(engine: Engine, operator: Operator, selection: Selection) -> Any:
    """One row per guardian in scope: id, school, language, email, phone, and SSR counts:
    ``ssrs`` all in scope, ``new`` those no batch has taken yet (``services.delivery.delivered``), ``sent``
    those already with the family."""

    selection, lea_id = held_to_school(operator, selection), operator.lea_id
    conditions = report_filters(
        lea_id, selection.school_id, selection.grade, selection.program, selection.admin_year
    )
    # One guardian per household receives the SSRs (services.roster.facts.recipient); a notice,
    # which carries no record, tells every guardian who may receive them.
    conditions += [*family_conditions(engine, operator, selection), recipient()]
    return (
        sa_select(
            col(Guardian.id).label("guardian_id"),
            func.min(Student.school_id).label("school_id"),
            col(Guardian.preferred_language).label("language"),
            col(Guardian.email).label("email"),
            col(Guardian.phone).label("phone"),
            func.count(col(ScoreReport.id)).label("ssrs"),
            func.sum(case((report_taken(lea_id, guardian_id=col(Guardian.id)), 0), else_=1)).label(
                "new"
            ),
            func.sum(
                case(
                    (report_taken(lea_id, delivered=True, guardian_id=col(Guardian.id)), 1), else_=0
                )
            ).label("sent"),
        )
        .select_from(Guardian)
        .join(StudentGuardian, StudentGuardian.guardian_id == Guardian.id)  # type: ignore[arg-type]
        .join(Student, Student.id == StudentGuardian.student_id)  # type: ignore[arg-type]
        .join(ScoreReport, ScoreReport.student_id == Student.id)  # type: ignore[arg-type]
        .where(*conditions)
        .group_by(Guardian.id, Guardian.preferred_language, Guardian.email, Guardian.phone)  # type: ignore[arg-type]
    )


@dataclass(frozen=True)
class LanguageSample:
    language: str
    families: int
    document: messages.Rendered
    password: messages.Rendered


@dataclass(frozen=True)
class DryRun:
    """What a batch would do, before anything is sent. ``families`` are households, counted as
    the advisor and coverage count them (``services.roster.facts``)."""

    families: int
    ssrs: int
    without_email: int
    by_language: dict[str, int]
    samples: list[LanguageSample] = field(default_factory=list)
    left_out_sent: int = 0  # SSRs of reachable families left out: already with the family
    left_out_under_way: int = 0  # ... left out: in another live batch (any channel)
    left_out_families: int = 0  # reachable families left out: nothing new for them
    resend: bool = False  # a deliberate re-send: nothing is left out
    guardians: int = 0  # entitled guardians the families written to serve (several per household)


def dry_run(
    engine: Engine, operator: Operator, selection: Selection, *, resend: bool = False
) -> DryRun:
    """Counts, families without email, what is left out because families already have it or it
    is under way (unless ``resend``), and both messages rendered in every language."""
    require(operator, Permission.RUN_BATCHES, lea_id=operator.lea_id)
    selection = scoped(engine, operator, selection)
    families = (
        _families(engine, operator, selection)
        .add_columns(household_guardians().label("guardians"))
        .group_by(col(Guardian.household))
        .subquery()
    )
    has_email = and_(families.c.email.is_not(None), func.trim(families.c.email) != "")
    taken = literal(0) if resend else families.c.ssrs - families.c.new
    sent = literal(0) if resend else families.c.sent
    with Session(engine) as session:
        rows = session.execute(
            sa_select(
                families.c.language,
                has_email.label("has_email"),
                func.count(),
                func.coalesce(func.sum(families.c.ssrs - taken), 0),
                func.coalesce(func.sum(sent), 0),
                func.coalesce(func.sum(taken - sent), 0),
                func.count().filter(families.c.ssrs == taken),
                func.coalesce(
                    func.sum(case((families.c.ssrs == taken, 0), else_=families.c.guardians)), 0
                ),
            ).group_by(families.c.language, has_email)
        ).all()
        lea_name = _lea_name(session, operator.lea_id)
        program = selection.program.value if selection.program else None
        sample_season = season(session, operator.lea_id, program, selection.admin_year)
    by_language: dict[str, int] = {}
    total = ssrs = without = left_sent = left_live = left_families = guardians = 0
    for language, reachable, count, reports, already, live, nothing_new, served in rows:
        if not reachable:
            without += count
            continue
        left_sent += int(already)
        left_live += int(live)
        left_families += nothing_new
        if count == nothing_new:
            continue
        code = messages.message_language(language)
        by_language[code] = by_language.get(code, 0) + count - nothing_new
        total += count - nothing_new
        ssrs += int(reports)
        guardians += int(served)
    samples = [
        LanguageSample(
            code,
            by_language.get(code, 0),
            messages.document_message(
                code,
                guardian_name="Maria Garcia",
                lea_name=lea_name,
                count=2,
                season=sample_season,
                correction=selection.source is Source.CORRECTIONS,
            ),
            messages.password_message(
                code,
                guardian_name="Maria Garcia",
                lea_name=lea_name,
                password=packaging.passphrase(),
                season=sample_season,
            ),
        )
        for code in LANGUAGES
    ]
    return DryRun(
        total,
        ssrs,
        without,
        by_language,
        samples,
        left_sent,
        left_live,
        left_families,
        resend,
        guardians,
    )


def dry_run_sending_time(
    engine: Engine,
    settings: Settings,
    operator: Operator,
    selection: Selection,
    preview: DryRun,
    by_sms: bool,
    now: datetime | None = None,
) -> SendingTime:
    """How long the previewed batch would take through the relay's caps at the rate the relay
    took lately, the days its daily cap needs, against the scope's earliest SSR deadline
    (``by_sms``: passwords go by SMS, one message a family through the relay)."""
    config = mailer.MailConfig.from_settings(settings)
    now = now or utcnow()
    selection = scoped(engine, operator, selection)
    per_family = 1 if by_sms else 2  # a password sent by SMS is not relayed
    with Session(engine) as session:
        day = session.get(SendQuota, f"d:{now:%Y%m%d}")
    return sending_time(
        per_family * preview.families,
        per_minute_cap=config.per_minute,
        per_day_cap=config.per_day,
        rate_per_minute=relay_rate(engine, now),
        sent_today=day.count if day else 0,
        now=now,
        deadline=earliest_deadline(
            engine,
            settings.calendar,
            operator.lea_id,
            selection.school_id,
            selection.grade,
            selection.program.value if selection.program else None,
            selection.admin_year,
        ),
    )


def season(
    session: Session, lea_id: int, program: str | None, admin_year: int | None
) -> messages.Season:
    """The tests and school year a batch's messages name: its own, else the current one (as
    ``scoped``), else this calendar year's spring (a notice may go out before any SSR arrives)."""
    year = admin_year or current_year(session, lea_id) or utcnow().year
    return messages.Season(year, program)


def _lea_name(session: Session, lea_id: int) -> str:
    lea = session.get(LEA, lea_id)
    if lea is None:
        raise NotFound(f"There is no LEA {lea_id}")
    return lea.name


def create(
    engine: Engine,
    operator: Operator,
    selection: Selection,
    *,
    name: str,
    password_channel: str = "email",  # noqa: S107 - a channel name
    password_delay: timedelta = timedelta(minutes=5),
    resend_reason: str | None = None,
) -> int:
    """Create a running batch with one pending item per family that has an email address and an
    SSR no batch has taken yet. ``resend_reason``: a deliberate re-send of what families already
    have (a lost message, a new address), which takes every SSR in scope and is audited with why.
    """
    require(operator, Permission.RUN_BATCHES, lea_id=operator.lea_id)
    selection = scoped(engine, operator, selection)
    name = plain_text(name, "the batch name")
    if not name or len(name) > 200:
        raise InvalidInput("A batch needs a name of 1 to 200 characters")
    if resend_reason is not None:
        resend_reason = resend_reason.strip()
        if not resend_reason or len(resend_reason) > 500:
            raise InvalidInput("A re-send needs a reason of 1 to 500 characters")
    if password_channel not in ("email", "sms"):
        raise InvalidInput("The password goes by email or sms")
    if password_delay < timedelta(0):
        raise InvalidInput("The password delay cannot be negative")
    families = _families(engine, operator, selection).where(HAS_EMAIL).subquery()
    count = families.c.ssrs if resend_reason else families.c.new
    now = utcnow()
    with session_scope(engine) as session:
        batch = DeliveryBatch(
            lea_id=operator.lea_id,
            name=name,
            source=selection.source.value,
            school_id=selection.school_id,
            grade=selection.grade,
            program=selection.program.value if selection.program else None,
            admin_year=selection.admin_year,
            status=BatchStatus.RUNNING,
            password_channel=password_channel,
            password_delay_seconds=int(password_delay.total_seconds()),
            created_by=operator.username,
            resend_reason=resend_reason,
        )
        session.add(batch)
        session.flush()
        columns = DeliveryItem.__table__.c  # type: ignore[attr-defined]
        source = (
            sa_select(
                literal(batch.id),
                families.c.guardian_id,
                families.c.school_id,
                families.c.language,
                func.trim(families.c.email),
                families.c.phone,
                count,
                literal(ItemState.PENDING.value),
                literal(0),
                literal(now, type_=columns.next_attempt_at.type),
                literal(now, type_=columns.updated_at.type),
            )
            .where(count > 0)
            .order_by(families.c.school_id, families.c.guardian_id)
        )
        session.execute(
            insert(DeliveryItem).from_select(
                [
                    "batch_id",
                    "guardian_id",
                    "school_id",
                    "language",
                    "address",
                    "phone",
                    "ssr_count",
                    "state",
                    "attempts",
                    "next_attempt_at",
                    "updated_at",
                ],
                source,
            )
        )
        # Counted, not the statement's rowcount: psycopg reports -1 for this INSERT ... SELECT,
        # which made an empty batch look full on PostgreSQL.
        inserted = session.execute(
            select(func.count()).where(col(DeliveryItem.batch_id) == batch.id)
        ).scalar_one()
        if not inserted:
            raise InvalidInput(
                "No family in this selection has an email address and an SSR it has not been "
                "sent or has in another batch; to send SSRs again, choose a re-send with a reason"
            )
        batch.total_items = inserted
        session.add(batch)
        audit.record(
            session,
            Actor.of(operator),
            "batch.create",
            f"delivery_batch:{batch.id}",
            {
                "name": name,
                "source": selection.source.value,
                "school_id": selection.school_id,
                "grade": selection.grade,
                "group_id": selection.group_id,
                "families": inserted,
                **({"resend_reason": resend_reason} if resend_reason else {}),
            },
            lea_id=operator.lea_id,
        )
        return batch.id  # type: ignore[return-value]


@dataclass(frozen=True)
class FamilyReport:
    """One SSR to package for a family; the student is named by SSID only."""

    report_id: int
    ssid: str
    program: str
    test: str
    admin_year: int
    language: str
    file_path: str


def family_reports(
    session: Session, batch: DeliveryBatch, guardian_id: int, query: Any = None
) -> list[FamilyReport]:
    """The SSRs of the children whose household the guardian represents (``recipient``) in the
    batch's scope, in a stable order, without those an earlier batch took for this household,
    unless this one is a deliberate re-send.

    ``query``: the batch's ``family_reports_query``, when the caller keeps it for many families."""
    rows = session.execute(
        query if query is not None else family_reports_query(batch), {"guardian_id": guardian_id}
    ).all()
    return [
        FamilyReport(rid, ssid, Program(program).value, test, year, language, path)
        for rid, ssid, program, test, year, language, path in rows
    ]


def family_reports_query(batch: DeliveryBatch) -> Any:
    """The statement behind ``family_reports`` for one batch, the guardian a bound parameter.

    Composing it costs SQLAlchemy tens of milliseconds of Python, more than running it, so the
    worker builds it once per batch and runs it for each family it packages (everything in it
    is fixed when the batch is made)."""
    scope = report_filters(
        batch.lea_id,
        batch.school_id,
        batch.grade,
        batch.program,
        batch.admin_year,
        one_family=True,
    )
    guardian = bindparam("guardian_id", type_=Integer)
    return (
        sa_select(  # type: ignore[call-overload]
            ScoreReport.id,
            Student.ssid,
            ScoreReport.program,
            ScoreReport.test,
            ScoreReport.admin_year,
            ScoreReport.language,
            ScoreReport.file_path,
        )
        .join(Student, Student.id == ScoreReport.student_id)
        .join(StudentGuardian, StudentGuardian.student_id == Student.id)
        .where(
            StudentGuardian.guardian_id == guardian,
            recipient(),
            *scope,
            *([corrects_email_delivery(guardian)] if batch.source == Source.CORRECTIONS else []),
            *(
                []
                if batch.resend_reason
                else [~report_taken(batch.lea_id, before=batch, guardian_id=guardian)]
            ),
        )
        .order_by(Student.ssid, ScoreReport.program, ScoreReport.test, ScoreReport.language)
    )


# --- reading batches -----------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchSummary:
    id: int
    name: str
    status: BatchStatus
    total: int
    done: int
    failed: int
    uncertain: int
    created_by: str
    created_at: datetime
    channel: str = Option.SECURE.value  # A, C and D batches: services.channels.batches (issue 8)


NOTICE_CHANNEL = "N"
"""How the batch list marks a notice batch (``services.delivery.notices``): it delivers nothing."""


def _visible(operator: Operator) -> list[Any]:
    conditions: list[Any] = [DeliveryBatch.lea_id == operator.lea_id]
    if (school := school_scope(operator)) is not None:
        conditions.append(DeliveryBatch.school_id == school)
    return conditions


def list_batches(engine: Engine, operator: Operator, limit: int = 100) -> list[BatchSummary]:
    """The operator's batches, newest first, with their headline counts."""
    require(operator, Permission.RUN_BATCHES)
    counts = (
        select(
            DeliveryItem.batch_id,
            func.sum(case((col(DeliveryItem.state) == ItemState.DONE, 1), else_=0)).label("done"),
            func.sum(case((col(DeliveryItem.state) == ItemState.FAILED, 1), else_=0)).label(
                "failed"
            ),
            func.sum(case((col(DeliveryItem.state) == ItemState.UNCERTAIN, 1), else_=0)).label(
                "uncertain"
            ),
        )
        .group_by(DeliveryItem.batch_id)  # type: ignore[arg-type]
        .subquery()
    )
    with Session(engine) as session:
        rows = session.execute(
            select(DeliveryBatch, counts.c.done, counts.c.failed, counts.c.uncertain)
            .outerjoin(counts, counts.c.batch_id == DeliveryBatch.id)
            .where(*_visible(operator))
            .order_by(DeliveryBatch.id.desc())  # type: ignore[union-attr]
            .limit(limit)
        ).all()
    secure = [
        BatchSummary(
            b.id,
            b.name,
            b.status,
            b.total_items,
            int(done or 0),
            int(failed or 0),
            int(uncertain or 0),
            b.created_by,
            b.created_at,
            NOTICE_CHANNEL if b.kind is BatchKind.NOTICE else Option.SECURE.value,
        )
        for b, done, failed, uncertain in rows
    ]
    # Portal, print and paper-order batches share the list (issue 8); ids are per channel.
    others = [
        BatchSummary(**{k: v for k, v in asdict(c).items() if k != "printed"})
        for c in channel_batches.summaries(engine, operator, limit)
    ]
    return sorted(secure + others, key=lambda b: b.created_at, reverse=True)[:limit]


def dashboard_text(engine: Engine, operator: Operator, shown: int = 4) -> str:
    """The dashboard's batches panel: the newest batches of every channel and their progress."""
    if not allowed(operator, Permission.RUN_BATCHES):
        return "Batches are run by the LEA and site coordinators."
    batches = list_batches(engine, operator, limit=shown)
    if not batches:
        return "No delivery batches yet. Press b to open the batch list."
    lines = []
    for b in batches:
        line = f"{b.channel}{b.id} {b.name[:18]} {b.status.value}: {b.done:,}/{b.total:,}"
        if b.failed or b.uncertain:
            line += f" ({b.failed:,} failed, {b.uncertain:,} uncertain)"
        lines.append(line)
    return "\n".join(lines)


def get_batch(engine: Engine, operator: Operator, batch_id: int) -> DeliveryBatch:
    """A batch the operator may see, or NotFound."""
    require(operator, Permission.RUN_BATCHES)
    with Session(engine) as session:
        batch = session.exec(
            select(DeliveryBatch).where(DeliveryBatch.id == batch_id, *_visible(operator))
        ).first()
    if batch is None:
        raise NotFound(f"There is no delivery batch {batch_id} you can see")
    return batch


@dataclass(frozen=True)
class SchoolProgress:
    school: str
    total: int
    done: int
    failed: int
    uncertain: int


@dataclass(frozen=True)
class Failure:
    item_id: int
    guardian_id: int
    school: str
    state: ItemState
    reason: str


@dataclass(frozen=True)
class Progress:
    """Everything the progress screen shows, read in a handful of aggregate queries."""

    batch: DeliveryBatch
    counts: dict[ItemState, int]
    schools: list[SchoolProgress]
    problems: list[Failure]
    messages_last_5_min: int
    per_minute_cap: int
    per_day_cap: int
    sent_today: int
    remaining_messages: int
    rate_per_minute: float | None  # None: too few messages yet to measure a rate
    eta: timedelta | None
    workers: ledger.WorkerPresence
    next_try: datetime | None = None  # the earliest message waiting for a later try
    sending: SendingTime | None = None  # days the daily cap needs, against the deadline

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def done(self) -> int:
        return self.counts.get(ItemState.DONE, 0)

    @property
    def stalled(self) -> bool:
        """Messages are owed but no worker is running to send them."""
        return self.remaining_messages > 0 and not self.workers.running


RATE_SAMPLES = 10
"""Messages needed before a rate is measured, unless a full minute of sending has been seen."""
RATE_WINDOW = timedelta(minutes=5)


def measured_rate(messages: int, first: datetime | None, now: datetime) -> float | None:
    """Messages per minute over the time actually measured (from the first message of the window
    to now), or None while too little has been seen: two messages in a batch's first 6 seconds
    are not a rate (spread over 5 minutes they made a 6-second batch's ETA read "1h 13m")."""
    if not messages or first is None:
        return None
    span = max((now - first).total_seconds(), 0.0)
    if messages < RATE_SAMPLES and span < 60 or span < 1:
        return None
    return messages / (span / 60)


def progress(
    engine: Engine,
    operator: Operator,
    batch_id: int,
    *,
    per_minute_cap: int = 0,
    per_day_cap: int = 0,
    now: datetime | None = None,
    problems_limit: int = 50,
    host: str = "",
    stale_after: timedelta = ledger.STALE_AFTER,
    calendar: WorkingCalendar | None = None,
) -> Progress:
    """Per-state counts, per-school breakdown, failures and uncertain items, rate and ETA, and
    whether a worker is running (``host``: this machine, whose worker processes are checked);
    with the LEA's ``calendar``, the days left to send against the SSRs' deadline."""
    batch = get_batch(engine, operator, batch_id)
    now = now or utcnow()
    since = now - RATE_WINDOW
    sent = (col(DeliveryItem.document_sent_at), col(DeliveryItem.password_sent_at))
    with Session(engine) as session:
        counts = {
            ItemState(state): n
            for state, n in session.exec(
                select(DeliveryItem.state, func.count())
                .where(DeliveryItem.batch_id == batch_id)
                .group_by(DeliveryItem.state)
            ).all()
        }
        school_rows = session.execute(
            sa_select(
                func.coalesce(School.name, "(no school)"),
                func.count(),
                func.sum(case((col(DeliveryItem.state) == ItemState.DONE, 1), else_=0)),
                func.sum(case((col(DeliveryItem.state) == ItemState.FAILED, 1), else_=0)),
                func.sum(case((col(DeliveryItem.state) == ItemState.UNCERTAIN, 1), else_=0)),
            )
            .select_from(DeliveryItem)
            .outerjoin(School, School.id == DeliveryItem.school_id)  # type: ignore[arg-type]
            .where(DeliveryItem.batch_id == batch_id)  # type: ignore[arg-type]
            .group_by(col(School.name))
            .order_by(col(School.name))
        ).all()
        problem_rows = session.execute(
            sa_select(  # type: ignore[call-overload]
                DeliveryItem.id,
                DeliveryItem.guardian_id,
                func.coalesce(School.name, ""),
                DeliveryItem.state,
                func.coalesce(DeliveryItem.error, ""),
            )
            .outerjoin(School, School.id == DeliveryItem.school_id)
            .where(
                DeliveryItem.batch_id == batch_id,
                DeliveryItem.state.in_(  # type: ignore[attr-defined]
                    [ItemState.FAILED, ItemState.UNCERTAIN, ItemState.BOUNCED]
                ),
            )
            .order_by(DeliveryItem.id)  # type: ignore[arg-type]
            .limit(problems_limit)
        ).all()
        recent = session.execute(
            select(
                *(func.sum(case((at >= since, 1), else_=0)) for at in sent),
                *(func.min(case((at >= since, at))) for at in sent),
            ).where(DeliveryItem.batch_id == batch_id, or_(*(at >= since for at in sent)))
        ).one()
        day = session.get(SendQuota, f"d:{now:%Y%m%d}")
        next_try = session.exec(
            select(func.min(DeliveryItem.next_attempt_at)).where(
                DeliveryItem.batch_id == batch_id,
                col(DeliveryItem.state).in_([ItemState.PACKAGED, ItemState.DOCUMENT_SENT]),
                DeliveryItem.next_attempt_at > now,
            )
        ).one()
    recent_messages = int(recent[0] or 0) + int(recent[1] or 0)
    firsts = [at for at in recent[2:] if at is not None]
    rate = measured_rate(recent_messages, min(firsts) if firsts else None, now)
    per_family = 1 if batch.kind is BatchKind.NOTICE else 2  # a notice is one message
    remaining = per_family * sum(
        counts.get(s, 0)
        for s in (ItemState.PENDING, ItemState.PACKAGED, ItemState.SENDING_DOCUMENT)
    ) + sum(counts.get(s, 0) for s in (ItemState.DOCUMENT_SENT, ItemState.SENDING_PASSWORD))
    sent_today = day.count if day else 0
    return Progress(
        batch=batch,
        counts=counts,
        schools=[
            SchoolProgress(name, int(t), int(d or 0), int(f or 0), int(u or 0))
            for name, t, d, f, u in school_rows
        ],
        problems=[
            Failure(i, g, school, ItemState(state), reason)
            for i, g, school, state, reason in problem_rows
        ],
        messages_last_5_min=recent_messages,
        per_minute_cap=per_minute_cap,
        per_day_cap=per_day_cap,
        sent_today=sent_today,
        remaining_messages=remaining,
        rate_per_minute=rate,
        eta=(
            None
            if rate is None and remaining > 0
            else estimate(remaining, rate or 0.0, per_minute_cap, per_day_cap, sent_today, now)
        ),
        workers=ledger.worker_presence(engine, host, batch_id, now=now, stale_after=stale_after),
        next_try=next_try,
        sending=None
        if calendar is None
        else sending_time(
            remaining,
            per_minute_cap=per_minute_cap,
            per_day_cap=per_day_cap,
            rate_per_minute=rate,
            sent_today=sent_today,
            now=now,
            deadline=earliest_deadline(
                engine,
                calendar,
                batch.lea_id,
                batch.school_id,
                batch.grade,
                batch.program,
                batch.admin_year,
            ),
        ),
    )


def estimate(
    remaining: int,
    rate_per_minute: float,
    per_minute_cap: int,
    per_day_cap: int,
    sent_today: int,
    now: datetime,
) -> timedelta | None:
    """Time to send ``remaining`` messages at the observed rate, held to the caps.

    None when nothing has been sent recently (no rate to go by). With a daily cap, whatever does not
    fit today waits for the following days, which start at midnight UTC.
    """
    if remaining <= 0:
        return timedelta(0)
    rate = rate_per_minute
    if per_minute_cap:
        rate = min(rate, per_minute_cap) if rate > 0 else per_minute_cap
    if rate <= 0:
        return None
    if not per_day_cap:
        return timedelta(minutes=remaining / rate)
    today = max(0, per_day_cap - sent_today)
    if remaining <= today:
        return timedelta(minutes=remaining / rate)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    left = remaining - today
    full_days, last = divmod(left, per_day_cap)
    if last == 0:
        full_days, last = full_days - 1, per_day_cap
    return (midnight - now) + timedelta(days=full_days) + timedelta(minutes=last / rate)


async def test_send(
    engine: Engine, settings: Settings, operator: Operator, language: str = "en"
) -> str:
    """Send both messages, with a sample encrypted PDF (no student data), to the operator's own
    address, so the wording and the relay can be checked before a batch. Returns the address."""
    require(operator, Permission.RUN_BATCHES)
    if not operator.email:
        raise InvalidInput(f"Operator {operator.username} has no email address for a test send")
    config = mailer.MailConfig.from_settings(settings)
    with Session(engine) as session:
        lea_name = _lea_name(session, operator.lea_id)
        test_season = season(session, operator.lea_id, None, None)
    password = packaging.passphrase()
    with tempfile.TemporaryDirectory() as folder:
        sample = Path(folder) / "SAMPLE.pdf"
        _sample_pdf(sample)
        packaged = Path(folder) / packaging.attachment_name(["SAMPLE"], [])
        packaging.package([sample], packaged, password)
        name = operator.display_name
        document = messages.document_message(
            language, guardian_name=name, lea_name=lea_name, count=1, season=test_season
        )
        secret = messages.password_message(
            language, guardian_name=name, lea_name=lea_name, password=password, season=test_season
        )
        connection = mailer.SmtpConnection(config)
        try:
            for text, files in ((document, [packaged]), (secret, [])):
                result = await connection.send(
                    mailer.build_message(
                        config,
                        to=operator.email,
                        subject=f"[TEST] {text.subject}",
                        body=text.body,
                        reference=f"test; {operator.username}",
                        attachments=files,
                        language=text.content_language,
                        direction=messages.direction(text.language),
                    )
                )
                if result.outcome is not mailer.Outcome.ACCEPTED:
                    raise ConsoleError(
                        f"The relay did not accept the test message: {result.detail}"
                    )
        finally:
            await connection.close()
    with session_scope(engine) as session:
        audit.record(
            session,
            Actor.of(operator),
            "batch.test_send",
            f"operator:{operator.username}",
            {"language": language},
        )
    return operator.email


def _sample_pdf(path: Path) -> None:
    from reportlab.lib.pagesizes import letter
    from reportlab.pdfgen import canvas

    page = canvas.Canvas(str(path), pagesize=letter)
    page.setFont("Helvetica-Bold", 18)
    page.drawString(72, 700, "SAMPLE Student Score Report")
    page.setFont("Helvetica", 12)
    page.drawString(72, 676, "A test send from SSR Console. It holds no student data.")
    page.drawString(72, 652, "SSID: 0000000000 (sample)")
    page.save()


# --- operator actions (permission and scope checked here, state rules in the ledger) -------------


def set_status(engine: Engine, operator: Operator, batch_id: int, status: BatchStatus) -> None:
    """Pause, resume or cancel a batch the operator can see."""
    get_batch(engine, operator, batch_id)
    ledger.set_batch_status(engine, Actor.of(operator), batch_id, status)


def retry_failed(engine: Engine, operator: Operator, batch_id: int) -> int:
    """Send failed items again from where they failed; returns how many."""
    get_batch(engine, operator, batch_id)
    return ledger.retry_failed(engine, Actor.of(operator), batch_id)


def retry_now(engine: Engine, operator: Operator, batch_id: int) -> int:
    """Try the batch's waiting messages at once (after a relay outage); returns how many."""
    get_batch(engine, operator, batch_id)
    return ledger.retry_now(engine, Actor.of(operator), batch_id)


def resolve(
    engine: Engine,
    operator: Operator,
    item_id: int,
    resolution: ledger.Resolution,
    reason: str = "",
    *,
    batch_id: int | None = None,
) -> ItemState:
    """The operator's decision for an uncertain item of a batch they can see (``batch_id``: the
    batch the operator named, which must hold the item)."""
    with Session(engine) as session:
        item = session.get(DeliveryItem, item_id)
    if item is None or batch_id not in (None, item.batch_id):
        where = f" in batch {batch_id}" if batch_id is not None else ""
        raise NotFound(f"There is no delivery item {item_id}{where}")
    get_batch(engine, operator, item.batch_id)
    return ledger.resolve_uncertain(engine, Actor.of(operator), item_id, resolution, reason)


def parse_scope(engine: Engine, operator: Operator, text: str) -> Selection:
    """Read a scope typed by an operator: ``lea``, ``plan``, ``corrections`` (families owed a
    corrected SSR), ``grade 5``, ``school <CDS code>`` or ``group <student group name or number>``."""
    words = text.strip().lower().split()
    if not words or words == ["lea"]:
        return Selection()
    if words == ["plan"]:
        return Selection(Source.PLAN)
    if words == ["corrections"]:
        return Selection(Source.CORRECTIONS)
    if len(words) > 1 and words[0] == "group":
        named = text.strip()[len("group") :]
        return Selection(Source.GROUP, group_id=student_groups.find(engine, operator, named).id)
    if len(words) == 2 and words[0] == "grade":
        return Selection(Source.GRADE, grade=valid_grade(words[1]))
    if len(words) == 2 and words[0] == "school":
        with Session(engine) as session:
            school_id = session.exec(
                select(School.id).where(
                    School.cds_code == words[1], School.lea_id == operator.lea_id
                )
            ).first()
        if school_id is None:
            raise InvalidInput(f"No school of your LEA has the CDS code {words[1]}")
        return Selection(Source.SCHOOL, school_id=school_id)
    raise InvalidInput(
        "Type a scope: lea, plan, corrections, grade <number>, school <14-digit CDS code> or "
        "group <name>"
    )


def narrowed(selection: Selection, program: str = "", admin_year: str = "") -> Selection:
    """The selection limited to the SSRs of one program and/or one administration year, as an
    operator types them (blank: every program, every year)."""
    text = program.strip().upper()
    try:
        chosen = Program(text) if text else None
    except ValueError:
        raise InvalidInput(f"{program.strip()!r} is not a program: type CAASPP or ELPAC") from None
    year = admin_year.strip()
    if year and not (year.isdigit() and 2015 <= int(year) <= 2100):
        raise InvalidInput(f"{year!r} is not an administration year: type one like 2026")
    return replace(selection, program=chosen, admin_year=int(year) if year else None)


@dataclass(frozen=True)
class PasswordPolicy:
    """How a new batch sends passwords: ``[delivery] password_channel`` (email or sms) and
    ``password_delay_minutes`` after the document was accepted (default: email, 5 minutes)."""

    channel: str = "email"
    delay: timedelta = timedelta(minutes=5)

    @classmethod
    def from_settings(cls, settings: Settings) -> PasswordPolicy:
        """From ``[delivery]``, typed and checked by ``services.core.settings.DeliverySection``."""
        section = settings.delivery
        return cls(section.password_channel, section.password_delay)
