"""``ssr-console scheduler``: the one reminder scheduler process of a deployment.

APScheduler 3 runs two jobs with fixed ids, kept in the application database (SQLAlchemy job
store, table ``apscheduler_jobs``, created by APScheduler itself) and re-registered with
``replace_existing`` at every start: the notice scan every few minutes and a heartbeat. Before it
schedules anything the process takes the scheduler lock (``services.reminders.scheduler_lock``); a second
scheduler against the same database refuses and says which one runs.

A ``sending`` notice left by a killed process is sent again at the next scan, with the Message-ID
recorded before the first attempt (see ``services.reminders.ledger``): a lost reminder is worse than
a repeated one, and the repeat is recognisably the same message.

Configuration, from the config file::

    [scheduler]
    scan_minutes = 5
    timezone = "America/Los_Angeles"
    audit_anchor = true   # mail the audit chain's head (SEQ:HASH) to the coordinators daily

    [calendar]        # the school calendar the deadlines count on (services.core.working_days)
    last_day_of_instruction = 2026-06-04
    first_day_of_next_year = 2026-08-12
    holidays = [2026-07-03, 2026-09-07]

    [smtp]            # shared with the delivery mailer (services.delivery.mailer.MailConfig)
    host = "smtp.example.org"
    port = 587
    from_address = "ssr-console@district.example"
    starttls = true

``SSR_CONSOLE_FAULT=after-claim`` (or ``after-send``) makes the process SIGKILL itself at that point
of the first notice it sends: the hook the crash tests use.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.blocking import BlockingScheduler
from sqlalchemy.engine import Engine

from services.bounces.mailbox import BounceConfig
from services.core import toms, vault
from services.core.columns import utcnow
from services.core.db import is_sqlite
from services.core.errors import ConsoleError, InvalidInput
from services.core.settings import Settings
from services.credential import lifecycle as credentials
from services.delivery.mailer import MailConfig
from services.reminders import scan as reminders
from services.reminders.mail import NoticeMailer
from services.reminders.scan import ReminderPolicy
from services.reminders.scheduler_lock import LockLost, SchedulerLock

JOB_SCAN = "notice-scan"
JOB_HEARTBEAT = "scheduler-heartbeat"
FAULT_ENV = "SSR_CONSOLE_FAULT"
log = logging.getLogger("ssr_console.scheduler")


@dataclass(frozen=True)
class SchedulerConfig:
    scan_minutes: float = 5
    heartbeat_seconds: float = 30
    policy: ReminderPolicy = field(default_factory=ReminderPolicy)
    smtp: MailConfig = field(default_factory=MailConfig)

    @classmethod
    def from_settings(cls, settings: Settings) -> SchedulerConfig:
        section = _table(settings, "scheduler")
        try:
            audit_anchor = section.get("audit_anchor", True)
            if not isinstance(audit_anchor, bool):
                raise ValueError(f"audit_anchor must be true or false, not {audit_anchor!r}")
            bounces = BounceConfig.read(settings)
            policy = ReminderPolicy(
                timezone=str(section.get("timezone", ReminderPolicy.timezone)),
                calendar=settings.calendar,
                audit_anchor=audit_anchor,
                bounce_rate=bounces.alert_rate,
                bounce_minimum=bounces.alert_minimum,
            )
            return cls(
                scan_minutes=float(section.get("scan_minutes", cls.scan_minutes)),  # type: ignore[arg-type]
                heartbeat_seconds=float(section.get("heartbeat_seconds", cls.heartbeat_seconds)),  # type: ignore[arg-type]
                policy=policy,
                smtp=MailConfig.from_settings(settings),
            )
        except (TypeError, ValueError) as error:
            raise InvalidInput(
                f"The [scheduler] or [smtp] configuration is not valid: {error}"
            ) from None


def _table(settings: Settings, name: str) -> dict[str, object]:
    value = settings.extra.get(name, {})
    if not isinstance(value, dict):
        raise InvalidInput(f"[{name}] in the config must be a table of settings")
    return value


@dataclass
class Runtime:
    """What the job functions work with; APScheduler stores only their names, not this."""

    engine: Engine
    lock: SchedulerLock
    mailer: NoticeMailer
    config: SchedulerConfig
    clock: Callable[[], datetime] = utcnow
    fault: Callable[[str], None] = lambda point: None
    scheduler: BlockingScheduler | None = None
    verify_credentials: Callable[[datetime], int] = lambda now: 0


_runtime: Runtime | None = None


def scan_job() -> None:
    """The scan job: one pass of ``reminders.scan`` with the real clock."""
    assert _runtime is not None
    scan_once(_runtime)


def heartbeat_job() -> None:
    assert _runtime is not None
    try:
        _runtime.lock.heartbeat()
    except LockLost as error:
        _stop(_runtime, str(error))


def scan_once(runtime: Runtime) -> reminders.ScanReport | None:
    now = runtime.clock()
    try:
        runtime.lock.heartbeat()
        try:  # credentials recorded while TOMS was unreachable: ask again before the reminders
            runtime.verify_credentials(now)
        except ConsoleError as error:
            log.warning("credential verification skipped: %s", error)
        report = reminders.scan(
            runtime.engine,
            now,
            runtime.mailer,
            runtime.config.policy,
            guard=runtime.lock.verify,
            fault=runtime.fault,
        )
    except LockLost as error:
        _stop(runtime, str(error))
        return None
    except Exception as error:  # a scan that fails is logged, shown in the console and retried
        log.exception("notice scan failed")
        runtime.lock.record_scan(now, 0, "scan failed", f"{type(error).__name__}: {error}")
        return None
    last_error = report.errors[-1] if report.errors else None
    runtime.lock.record_scan(now, report.ms, report.summary(), last_error)
    log.info("scan %s (%d ms)", report.summary(), report.ms)
    return report


def _stop(runtime: Runtime, why: str) -> None:
    log.warning("scheduler stopping: %s", why)
    if runtime.scheduler is not None and runtime.scheduler.running:
        runtime.scheduler.shutdown(wait=False)


def _fault_from_env() -> Callable[[str], None]:
    point = os.environ.get(FAULT_ENV)

    def fault(reached: str) -> None:
        if reached == point:
            log.warning("fault injection: SIGKILL at %s", reached)
            os.kill(os.getpid(), signal.SIGKILL)

    return fault


def run(
    engine: Engine,
    settings: Settings,
    *,
    once: bool = False,
    now: datetime | None = None,
    scan_minutes: float | None = None,
) -> int:
    """Take the lock and run the scheduler until stopped (or one scan with ``once``)."""
    global _runtime
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    config = SchedulerConfig.from_settings(settings)
    lock = SchedulerLock(engine)
    lock.acquire()  # SchedulerBusy: the CLI prints its message and exits
    # SQLite checkpoints and removes its WAL each time the last connection closes (the engine
    # does not pool them); one connection held open for the process keeps each commit cheap.
    keeper = engine.connect() if is_sqlite(engine) else None
    runtime = Runtime(
        engine,
        lock,
        NoticeMailer(config.smtp),
        config,
        clock=(lambda: now) if now else utcnow,
        fault=_fault_from_env(),
        verify_credentials=_verifier(engine, settings),
    )
    try:
        if once:
            report = scan_once(runtime)
            print(report.summary() if report else "scan failed; see the log above")
            return 0 if report else 1
        _runtime = runtime
        runtime.scheduler = _scheduler(engine, config, scan_minutes or config.scan_minutes)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: _stop(runtime, "signal received"))
        # the process is the scheduler's alone, and what it holds now (modules, the engine, the
        # job store) lives as long as it does: full collections skip it from here on, as the
        # console's do (console.app._preload_and_freeze); in the 50-LEA benchmark one fell in
        # the steady scan and cost 85 of its 139 ms of CPU
        gc.freeze()
        log.info("scheduler started: %s", lock.holder)
        print(f"scheduler running ({lock.holder}); stop with Ctrl-C or SIGTERM", flush=True)
        runtime.scheduler.start()  # blocks until shutdown
        return 0
    finally:
        _runtime = None
        lock.release()
        if keeper is not None:
            keeper.close()


def _verifier(engine: Engine, settings: Settings) -> Callable[[datetime], int]:
    """Verify unverified credentials against ``[toms] url`` with the vault's key."""
    token_url = toms.token_url(settings)

    def verify(now: datetime) -> int:
        if token_url is None:
            return 0
        return credentials.verify_unverified(engine, vault.load(settings), token_url, now=now)

    return verify


def _scheduler(engine: Engine, config: SchedulerConfig, scan_minutes: float) -> BlockingScheduler:
    defaults: dict[str, Any] = {"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600}
    scheduler = BlockingScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=engine)}, job_defaults=defaults
    )
    scheduler.add_job(
        scan_job,
        "interval",
        minutes=scan_minutes,
        id=JOB_SCAN,
        name="notice scan",
        replace_existing=True,
        next_run_time=utcnow() + timedelta(seconds=1),  # catch up at start, then every interval
    )
    scheduler.add_job(
        heartbeat_job,
        "interval",
        seconds=config.heartbeat_seconds,
        id=JOB_HEARTBEAT,
        name="scheduler heartbeat",
        replace_existing=True,
    )
    return scheduler
