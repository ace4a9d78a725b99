"""Which reminder notices are due, and the scan that plans, cancels and sends them.

The planning half is pure: given plain values (a credential's expiry, an LEA's pending SSRs, its
coordinators) and *today*, it says which notices should exist. The rule that makes downtime
harmless: of a subject's notices that have fallen due, only the most recent one is planned (it is
sent marked late); older ones are never written, and older ones planned before the downtime are
cancelled as superseded. Future notices within a horizon are planned ahead, so the console can show
what is coming.

``scan(engine, now, ...)`` takes the time as an argument, so tests drive a whole credential year in
seconds; the scheduler process calls it with the real clock.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from sqlalchemy import func, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from services.access.tables import Operator, Role
from services.audit import log as audit
from services.core.db import session_scope
from services.core.errors import InvalidInput
from services.core.programs import Program
from services.core.working_days import WorkingCalendar
from services.credential import lifecycle as credentials
from services.credential import reset as credential_reset
from services.delivery.delivered import report_undelivered
from services.delivery.ledger import bounce_rates
from services.intake.score_reports import ScoreReport
from services.reminders import ledger as notice_ledger
from services.reminders.ledger import RESET_KINDS, Notice, NoticeKind
from services.reminders.mail import RelayUnavailable
from services.roster.tables import LEA, Student

CREDENTIAL_OFFSETS = (14, 7, 3, 1, 0)  # days before expiry (seed 001), then daily after it
UNVERIFIED_EVERY = credentials.UNVERIFIED_DAYS  # days between "still not verified" notices
SSR_OFFSETS = (5, 1, 0)  # working days before the delivery deadline
PAST_DUE_EVERY = 5
"""Working days between warnings about SSRs past their deadline: the first working day after it,
then weekly, until they are delivered."""
PAST_DUE_LOOKBACK_DAYS = 366
"""Undelivered SSRs received longer ago than this are last season's; the scheduler stops warning."""
CLAIM_BATCH = 100  # notices claimed per transaction; each is still marked sent on its own
PROGRAM_COORDINATOR = {Program.CAASPP: Role.LEA_CAASPP, Program.ELPAC: Role.LEA_ELPAC}


@dataclass(frozen=True)
class ReminderPolicy:
    """When notices fall due: the LEA's time zone, its holidays, the offsets, the planning horizon."""

    timezone: str = "America/Los_Angeles"
    calendar: WorkingCalendar = field(default_factory=WorkingCalendar)
    credential_offsets: tuple[int, ...] = CREDENTIAL_OFFSETS
    ssr_offsets: tuple[int, ...] = SSR_OFFSETS
    horizon_days: int = 14
    audit_anchor: bool = False
    # a batch whose emails bounce this much (of those the relay accepted) is reported once to
    # the coordinators, when at least ``bounce_minimum`` families bounced ([bounces] alert_rate,
    # alert_minimum): a bad SIS export can make thousands of addresses wrong
    bounce_rate: float = 0.05
    bounce_minimum: int = 5
    """Mail the audit chain's head to every LEA's coordinators once a day (the scheduler does)."""

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidInput(
                f"Time zone {self.timezone!r} is unknown; use a name like America/Los_Angeles"
            ) from None

    def local_day(self, moment: datetime) -> date:
        """The calendar day ``moment`` falls on where the LEA is."""
        return moment.astimezone(ZoneInfo(self.timezone)).date()


@dataclass(frozen=True)
class CredentialFact:
    """A live (not superseded) TOMS credential of an LEA."""

    credential_id: int
    lea_id: int
    expires_at: datetime
    recorded_at: datetime | None = None
    verified: bool = True


@dataclass(frozen=True)
class PendingGroup:
    """SSRs of one LEA and program received on one day and not yet delivered."""

    lea_id: int
    program: Program
    received_on: date
    pending: int

    @property
    def subject(self) -> str:
        return f"ssr:{self.lea_id}:{self.program.value}:{self.received_on.isoformat()}"


@dataclass(frozen=True)
class Coordinator:
    username: str
    lea_id: int
    role: Role
    email: str | None
    language: str
    second_role: Role | None = None  # one person may hold both coordinator roles

    def holds(self, role: Role) -> bool:
        return role in (self.role, self.second_role)


@dataclass(frozen=True)
class PlannedNotice:
    """A notice that should be in the ledger, as plain values."""

    kind: NoticeKind
    subject: str
    offset: int
    recipient: str
    lea_id: int
    due_on: date
    event_on: date
    email: str | None
    language: str
    program: str | None = None
    pending: int = 0
    anchor: str | None = None

    @classmethod
    def on_day(
        cls, kind: NoticeKind, subject: str, person: Any, lea_id: int, day: date, **extra: Any
    ) -> PlannedNotice:
        """A notice due on, and about, ``day`` (offset 0) for one coordinator (``person``:
        anything with ``username``, ``email`` and ``language``)."""
        return cls(
            kind=kind,
            subject=subject,
            offset=0,
            recipient=person.username,
            lea_id=lea_id,
            due_on=day,
            event_on=day,
            email=person.email,
            language=person.language,
            **extra,
        )

    @property
    def key(self) -> tuple[NoticeKind, str, str]:
        return (self.kind, self.subject, self.recipient)

    def values(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "subject": self.subject,
            "offset": self.offset,
            "recipient": self.recipient,
            "lea_id": self.lea_id,
            "due_on": self.due_on,
            "event_on": self.event_on,
            "email": self.email,
            "language": self.language,
            "program": self.program,
            "pending": self.pending,
            "anchor": self.anchor,
        }


# --- pure planning ---------------------------------------------------------------------------


def choose(
    schedule: Iterable[tuple[int, date]], today: date, horizon_days: int
) -> list[tuple[int, date]]:
    """The latest (offset, due day) already due, plus those due within the horizon."""
    items = sorted(schedule, key=lambda item: (item[1], -item[0]))
    fallen = [item for item in items if item[1] <= today]
    ahead = [item for item in items if today < item[1] <= today + timedelta(days=horizon_days)]
    return fallen[-1:] + ahead


def credential_schedule(
    expiry_day: date, today: date, offsets: Iterable[int]
) -> list[tuple[int, date]]:
    """Each fixed offset's due day, and after expiry today's daily notice (negative offset)."""
    items = [(offset, expiry_day - timedelta(days=offset)) for offset in offsets]
    if today > expiry_day:
        items.append(((expiry_day - today).days, today))
    return items


def ssr_schedule(
    deadline: date, today: date, calendar: WorkingCalendar, offsets: Iterable[int]
) -> list[tuple[int, date]]:
    """Each offset's due day before the deadline; once it has passed, a past-due warning (negative
    offset: working days late) on its first working day after, then every ``PAST_DUE_EVERY``."""
    items = [(offset, calendar.add(deadline, -offset)) for offset in offsets]
    late = calendar.working_days_between(deadline, today)
    if late >= 1:
        latest = 1 + PAST_DUE_EVERY * ((late - 1) // PAST_DUE_EVERY)
        items.append((-latest, calendar.add(deadline, latest)))
    return items


def plan_credential(
    credential: CredentialFact,
    coordinators: Iterable[Coordinator],
    today: date,
    policy: ReminderPolicy,
) -> list[PlannedNotice]:
    """Expiry notices for both of the LEA's coordinators (one reset cuts off both programs)."""
    expiry_day = policy.local_day(credential.expires_at)
    chosen = choose(
        credential_schedule(expiry_day, today, policy.credential_offsets),
        today,
        policy.horizon_days,
    )
    return [
        PlannedNotice(
            kind=NoticeKind.CREDENTIAL_EXPIRY,
            subject=f"credential:{credential.credential_id}",
            offset=offset,
            recipient=person.username,
            lea_id=credential.lea_id,
            due_on=due_on,
            event_on=expiry_day,
            email=person.email,
            language=person.language,
        )
        for offset, due_on in chosen
        for person in coordinators
    ]


def plan_unverified(
    credential: CredentialFact,
    coordinators: Iterable[Coordinator],
    today: date,
    policy: ReminderPolicy,
) -> list[PlannedNotice]:
    """A week after it was recorded without TOMS confirming it, and weekly after, both
    coordinators are told (the console keeps retrying meanwhile)."""
    if credential.verified or credential.recorded_at is None:
        return []
    recorded = policy.local_day(credential.recorded_at)
    weeks = (today - recorded).days // UNVERIFIED_EVERY
    if weeks < 1:
        return []
    return [
        PlannedNotice(
            kind=NoticeKind.CREDENTIAL_UNVERIFIED,
            subject=f"credential:{credential.credential_id}",
            offset=-weeks * UNVERIFIED_EVERY,
            recipient=person.username,
            lea_id=credential.lea_id,
            due_on=recorded + timedelta(days=weeks * UNVERIFIED_EVERY),
            event_on=recorded,
            email=person.email,
            language=person.language,
        )
        for person in coordinators
    ]


def plan_reset_notes(session: Session, policy: ReminderPolicy) -> list[PlannedNotice]:
    """A coordination note goes to the other program's coordinators, an emergency reset to both
    programs', as soon as it is written, until it is agreed, acknowledged or withdrawn."""
    planned = []
    for request in credential_reset.requests_to_announce(session):
        day = policy.local_day(request.requested_at)
        kind = NoticeKind.RESET_EMERGENCY if request.emergency_reason else NoticeKind.RESET_NOTE
        for person in credential_reset.to_tell(session, request):
            planned.append(
                PlannedNotice.on_day(
                    kind,
                    f"reset:{request.id}",
                    person,
                    request.lea_id,
                    day,
                    program=Role(request.requested_role).name.removeprefix("LEA_"),
                )
            )
    return planned


def plan_ssr(
    group: PendingGroup, coordinators: Iterable[Coordinator], today: date, policy: ReminderPolicy
) -> list[PlannedNotice]:
    """Deadline notices for the program's coordinators, one per LEA, program and receipt day;
    past the deadline, a warning that the SSRs are past due."""
    if group.pending <= 0:
        return []
    role = PROGRAM_COORDINATOR[group.program]
    deadline, chosen = ssr_timing(group.program, group.received_on, today, policy)
    return [
        PlannedNotice(
            kind=NoticeKind.SSR_DEADLINE,
            subject=group.subject,
            offset=offset,
            recipient=person.username,
            lea_id=group.lea_id,
            due_on=due_on,
            event_on=deadline,
            email=person.email,
            language=person.language,
            program=group.program.value,
            pending=group.pending,
        )
        for offset, due_on in chosen
        for person in coordinators
        if person.holds(role)
    ]


@lru_cache(maxsize=4096)
def ssr_timing(
    program: Program, received_on: date, today: date, policy: ReminderPolicy
) -> tuple[date, tuple[tuple[int, date], ...]]:
    """The deadline of SSRs received on a day and their notices to plan (offset, due day): the same
    for every LEA, so a scan works them out once per program and day, not once per LEA."""
    deadline = policy.calendar.deadline(program, received_on)
    schedule = ssr_schedule(deadline, today, policy.calendar, policy.ssr_offsets)
    return deadline, tuple(choose(schedule, today, policy.horizon_days))


def plan_anchor(
    anchor: audit.Anchor | None, people: dict[int, list[Coordinator]], today: date
) -> list[PlannedNotice]:
    """Today's audit anchor for every LEA's coordinators: one notice per person and day (the
    ledger's key makes it idempotent), carrying the chain head as it was when first planned.

    Anyone who can write to the database can cut off the audit chain's end or rewrite it with
    fresh hashes; an anchor in the coordinators' mailboxes is out of their reach, and
    ``ssr-console audit verify --anchor SEQ:HASH`` checks the chain against it.
    """
    if anchor is None:
        return []
    return [
        PlannedNotice.on_day(
            NoticeKind.AUDIT_ANCHOR,
            f"audit:{today.isoformat()}",
            person,
            lea_id,
            today,
            anchor=str(anchor),
        )
        for lea_id, coordinators in people.items()
        for person in coordinators
    ]


def plan_bounce_rates(
    session: Session, people: dict[int, list[Coordinator]], today: date, policy: ReminderPolicy
) -> list[PlannedNotice]:
    """One notice per batch and coordinator once its bounce rate passes the threshold; the
    rate it had is kept in ``program`` ("12%") and the bounced families in ``pending``."""
    return [
        PlannedNotice.on_day(
            NoticeKind.BOUNCE_RATE,
            f"bounces:{found.batch_id}",
            person,
            found.lea_id,
            today,
            program=f"{found.rate:.0%}",
            pending=found.bounced,
        )
        for found in bounce_rates(session, policy.bounce_minimum)
        if found.rate >= policy.bounce_rate
        for person in people.get(found.lea_id, ())
    ]


def latest_per_recipient(notices: Iterable[Notice]) -> tuple[list[Notice], list[Notice]]:
    """Split due notices into the one to send per (kind, subject, recipient) and the superseded rest."""
    groups: dict[tuple[str, str, str], list[Notice]] = defaultdict(list)
    for notice in notices:
        groups[(notice.kind.value, notice.subject, notice.recipient)].append(notice)
    send, superseded = [], []
    for rows in groups.values():
        rows.sort(key=lambda n: (n.due_on, -n.offset))
        send.append(rows[-1])
        superseded.extend(rows[:-1])
    return send, superseded


# --- the data the planner reads --------------------------------------------------------------


def live_credentials(engine: Engine) -> Iterator[CredentialFact]:
    """Every LEA's live credential (streamed by the credentials service)."""
    for current in credentials.current_credentials(engine):
        yield CredentialFact(
            current.credential_id,
            current.lea_id,
            current.expires_at,
            current.created_at,
            current.verified,
        )


def coordinators_by_lea(session: Session) -> dict[int, list[Coordinator]]:
    """Active LEA CAASPP and ELPAC coordinators, by LEA (by either of their roles)."""
    coordinator_roles = [Role.LEA_CAASPP, Role.LEA_ELPAC]
    rows = session.execute(
        sa.select(
            col(Operator.username),
            col(Operator.lea_id),
            col(Operator.role),
            col(Operator.email),
            col(Operator.language),
            col(Operator.second_role),
        )
        .where(
            col(Operator.role).in_(coordinator_roles)
            | col(Operator.second_role).in_(coordinator_roles),
            col(Operator.active),
        )
        .order_by(col(Operator.lea_id), col(Operator.username))
    ).all()
    found: dict[int, list[Coordinator]] = defaultdict(list)
    for username, lea_id, role, email, language, second_role in rows:
        found[lea_id].append(Coordinator(username, lea_id, role, email, language, second_role))
    return found


def pending_groups(session: Session, today: date, policy: ReminderPolicy) -> list[PendingGroup]:
    """Undelivered SSRs received within ``PAST_DUE_LOOKBACK_DAYS``, past due or not, counted per
    LEA, program and receipt day.

    The database groups by UTC hour (a few rows per import, however many SSRs), and the hours are
    turned into the LEA's local receipt days here, so the count works the same on both databases.
    """
    tz = ZoneInfo(policy.timezone)
    earliest = today - timedelta(days=PAST_DUE_LOOKBACK_DAYS + 1)
    since = datetime.combine(earliest, datetime.min.time(), tz).astimezone(UTC)
    if session.get_bind().dialect.name == "sqlite":
        hour = func.strftime("%Y-%m-%d %H", ScoreReport.received_at)
    else:
        hour = func.to_char(func.timezone("UTC", ScoreReport.received_at), "YYYY-MM-DD HH24")
        # Once the estimate passes jit_above_cost, PostgreSQL JIT-compiles this query on every
        # scan (postgresql.org/docs/current/jit-decision.html): 2.8 s of 6.7 s for 300,000 SSRs,
        # every few minutes, for a plan that runs faster without it. Only this transaction.
        session.execute(text("SET LOCAL jit = off"))
    rows = session.execute(
        select(Student.lea_id, ScoreReport.program, hour, func.count())
        .join(Student, col(Student.id) == ScoreReport.student_id)
        .where(
            col(ScoreReport.received_at) >= since,
            col(Student.withdrawn_at).is_(None),  # withdrawn: no deadline warnings
            report_undelivered(),  # the definition coverage and the reports use too
        )
        .group_by(col(Student.lea_id), col(ScoreReport.program), hour)
    ).all()
    counts: dict[tuple[int, Program, date], int] = defaultdict(int)
    days: dict[str, date] = {}  # the same few hours recur for every LEA
    for lea_id, program, bucket, n in rows:
        if bucket not in days:
            moment = datetime.strptime(bucket, "%Y-%m-%d %H").replace(tzinfo=UTC)
            days[bucket] = moment.astimezone(tz).date()
        counts[(int(lea_id), Program(program), days[bucket])] += int(n)
    return [PendingGroup(lea, program, day, n) for (lea, program, day), n in sorted(counts.items())]


# --- the scan --------------------------------------------------------------------------------


class NoticeSender(Protocol):
    def message_id(self) -> str: ...

    def backoff(self, attempts: int) -> timedelta: ...

    def send(self, notice: Notice, lea_name: str) -> None: ...


@dataclass
class ScanReport:
    """What one scan did, for the scheduler status row, the log and the benchmark."""

    today: date
    credentials: int = 0
    ssr_groups: int = 0
    past_due: int = 0  # undelivered SSRs already past their deadline
    planned: int = 0
    sent: int = 0
    late: int = 0
    in_doubt: int = 0  # resent after a scheduler died with them in the relay's hands
    failed: int = 0
    cancelled: int = 0
    ms: int = 0
    errors: list[str] = field(default_factory=list)
    relay_down: bool = False

    def summary(self) -> str:
        return (
            f"{self.today.isoformat()}: {self.credentials} credentials, {self.ssr_groups} SSR groups"
            f"{f' ({self.past_due} SSRs PAST DUE)' if self.past_due else ''}; "
            f"planned {self.planned}, sent {self.sent} ({self.late} late, {self.in_doubt} in "
            f"doubt), failed {self.failed}, "
            f"cancelled {self.cancelled}"
        )


def scan(
    engine: Engine,
    now: datetime,
    sender: NoticeSender,
    policy: ReminderPolicy | None = None,
    *,
    guard: Callable[[], None] = lambda: None,
    fault: Callable[[str], None] = lambda point: None,
) -> ScanReport:
    """Plan the notices due by ``now``, cancel moot ones and send what is due, each exactly once.

    ``guard`` is called before each batch claim and raises if this process lost the scheduler lock;
    ``fault`` is a test hook called at ``after-claim`` and ``after-send``.
    """
    started = time.perf_counter()
    policy = policy or ReminderPolicy()
    today = policy.local_day(now)
    report = ScanReport(today)
    with session_scope(engine) as session:
        people = coordinators_by_lea(session)
        planned: list[PlannedNotice] = []
        for credential in live_credentials(engine):
            report.credentials += 1
            coordinators = people.get(credential.lea_id, ())
            planned += plan_credential(credential, coordinators, today, policy)
            planned += plan_unverified(credential, coordinators, today, policy)
        planned += plan_reset_notes(session, policy)
        if policy.audit_anchor:
            planned += plan_anchor(audit.current_anchor(engine), people, today)
        planned += plan_bounce_rates(session, people, today, policy)
        groups = pending_groups(session, today, policy)
        report.ssr_groups = len(groups)
        for group in groups:
            planned += plan_ssr(group, people.get(group.lea_id, ()), today, policy)
            if ssr_timing(group.program, group.received_on, today, policy)[0] < today:
                report.past_due += group.pending
        open_now = notice_ledger.open_keys(session)
        known = {(k.kind, k.subject, k.offset, k.recipient) for k in open_now}
        if planned:  # a key already in the ledger in any state is left as it is
            known |= notice_ledger.closed_keys(session, min(p.due_on for p in planned))
        fresh = [
            p.values() for p in planned if (p.kind, p.subject, p.offset, p.recipient) not in known
        ]
        report.planned = notice_ledger.plan(session, fresh)  # a key already sent stays as it is
        report.cancelled += _cancel_moot(session, planned, open_now)
    pending = {group.subject: group.pending for group in groups}
    with session_scope(engine) as session:
        send, superseded = latest_per_recipient(notice_ledger.due(session, today, now))
        report.cancelled += notice_ledger.cancel(
            session, [n.id for n in superseded if n.id is not None], "superseded by a later notice"
        )
    for start in range(0, len(send), CLAIM_BATCH):
        if report.relay_down:  # the rest stay due and go at the next scan
            break
        chunk = send[start : start + CLAIM_BATCH]
        _dispatch(engine, chunk, now, today, sender, pending, report, guard, fault)
    report.ms = int((time.perf_counter() - started) * 1000)
    return report


def announce_resets(
    engine: Engine, now: datetime, sender: NoticeSender, policy: ReminderPolicy | None = None
) -> ScanReport:
    """Email a coordination note or an emergency reset at once, not at the next scan: the notices
    are written to the ledger first (so the scheduler retries any that fail), then sent."""
    policy = policy or ReminderPolicy()
    report = ScanReport(policy.local_day(now))
    with session_scope(engine) as session:
        planned = plan_reset_notes(session, policy)
        report.planned = notice_ledger.plan(session, [p.values() for p in planned])
    with session_scope(engine) as session:
        due = [  # one left ``sending`` is the scheduler's to resolve (it may be sending it now)
            n
            for n in notice_ledger.due(session, report.today, now)
            if n.kind in RESET_KINDS and n.state is not notice_ledger.NoticeState.SENDING
        ]
    _dispatch(engine, due, now, report.today, sender, {}, report, lambda: None, lambda _: None)
    return report


def _cancel_moot(
    session: Session, planned: list[PlannedNotice], open_now: list[notice_ledger.OpenKey]
) -> int:
    """Open notices nothing plans any more: the credential was reset, the SSRs were delivered, or the recipient is no longer a coordinator."""
    wanted = {p.key for p in planned}
    subjects = {p.subject for p in planned}
    reasons: dict[str, list[int]] = defaultdict(list)
    for key in open_now:
        if (key.kind, key.subject, key.recipient) in wanted:
            continue
        if key.subject in subjects:
            reasons["recipient is no longer an active coordinator"].append(key.id)
        elif key.kind is NoticeKind.CREDENTIAL_EXPIRY:
            reasons["credential was reset or regenerated"].append(key.id)
        elif key.kind is NoticeKind.CREDENTIAL_UNVERIFIED:
            reasons["credential was verified or replaced"].append(key.id)
        elif key.kind in RESET_KINDS:
            reasons["reset was agreed, acknowledged or withdrawn"].append(key.id)
        elif key.kind is NoticeKind.AUDIT_ANCHOR:
            reasons["a newer audit anchor replaces it"].append(key.id)
        elif key.kind is NoticeKind.BOUNCE_RATE:
            reasons["the batch's bounce rate is under the threshold again"].append(key.id)
        else:
            reasons["SSRs delivered"].append(key.id)
    return sum(notice_ledger.cancel(session, ids, reason) for reason, ids in reasons.items())


def _dispatch(
    engine: Engine,
    notices: list[Notice],
    now: datetime,
    today: date,
    sender: NoticeSender,
    pending: dict[str, int],
    report: ScanReport,
    guard: Callable[[], None],
    fault: Callable[[str], None],
) -> None:
    """Claim a batch (committed), then send each notice and mark it sent or failed on its own."""
    expiring = {
        n.id: int(n.subject.removeprefix("credential:"))
        for n in notices
        if n.kind is NoticeKind.CREDENTIAL_EXPIRY and n.id is not None
    }
    live = credentials.current_among(engine, set(expiring.values()))
    moot = [notice_id for notice_id, credential_id in expiring.items() if credential_id not in live]
    if moot:  # the credential was reset since the scan began
        with session_scope(engine) as session:
            report.cancelled += notice_ledger.cancel(
                session, moot, "credential was reset or regenerated"
            )
    guard()
    wanted = [n.id for n in notices if n.id is not None and n.id not in moot]
    doubtful = {n.id for n in notices if notice_ledger.in_doubt(n)}
    claimed = notice_ledger.claim(engine, wanted, now, today, sender.message_id, pending)
    report.in_doubt += sum(n.id in doubtful for n in claimed)
    names = _lea_names(engine, {n.lea_id for n in claimed})
    with engine.connect() as connection:  # one commit per notice, on one connection
        unmarked: list[Notice] = []  # accepted; marked sent with the next notice's move, one commit
        for notice in claimed:
            fault("after-claim")
            if notice.email:
                try:
                    if report.relay_down:  # one wait for an unreachable relay per scan is enough
                        raise RelayUnavailable(f"not tried, relay down: {report.errors[-1]}")
                    handed = notice_ledger.hand_off(connection, notice, now, unmarked)
                    unmarked = []
                    if not handed:
                        continue  # no longer sending: nothing to do
                    sender.send(notice, names.get(notice.lea_id, f"LEA {notice.lea_id}"))
                except Exception as error:  # any failure is recorded and retried
                    retry_at = now + sender.backoff(notice.attempts)
                    notice_ledger.mark_failed(
                        connection, notice, str(error), retry_at, now, unmarked
                    )
                    unmarked = []
                    report.failed += 1
                    report.errors.append(str(error))
                    report.relay_down = report.relay_down or isinstance(error, RelayUnavailable)
                    continue
            fault("after-send")
            unmarked.append(notice)
            report.sent += 1
            report.late += int(notice.late)
        notice_ledger.mark_sent(connection, unmarked, now)


def _lea_names(engine: Engine, lea_ids: set[int]) -> dict[int, str]:
    with Session(engine) as session:
        rows = session.exec(select(LEA.id, LEA.name).where(col(LEA.id).in_(lea_ids))).all()
    return {int(lea_id): name for lea_id, name in rows if lea_id is not None}
