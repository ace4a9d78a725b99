"""The batch runner behind ``ssr-console worker``: packages and sends, prints the print batches
operators queued (``services.channels.print_batch``) and runs the imports they queued
(``services.intake.queue``), outside any SSH session.

One asyncio loop runs a packager (encryption on every core through a process pool, only a little
ahead of sending, so passwords spend little time at rest and 300,000 SSRs never sit on disk at once)
and one sender per SMTP connection. Everything it knows is in the ledger, so a worker can be killed
at any moment and restarted: on start it settles what a dead worker left (``ledger.recover``).

Logs name items, batches and students by id and SSID only; passwords never appear in them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import shutil
import signal
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from sqlalchemy import case, func, or_
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from services.channels import print_batch
from services.core import private_files
from services.core import vault as password_vault
from services.core.columns import utcnow
from services.core.db import is_sqlite, session_scope
from services.core.errors import ConsoleError, DatabaseUnavailable
from services.core.scope import Source
from services.core.settings import Settings
from services.delivery import batches, ledger, messages, packaging
from services.delivery.ledger import Claim, DeliveryBatch, DeliveryItem, ItemState, Step
from services.delivery.mailer import (
    MailConfig,
    Outcome,
    Outgoing,
    Quota,
    SendResult,
    SmtpConnection,
    backoff,
    build_message,
    new_message_id,
    prune_quota,
    relay_backoff,
)
from services.delivery.return_path import ReturnPath
from services.delivery.sms_gateway import SmsConfig, SmsGateway
from services.intake import queue as import_queue
from services.intake.report_store import ReportStore

log = logging.getLogger("ssr.delivery")

SWEEP_SECONDS = 1.0
"""How often, at most, the packages of families whose password went out are deleted."""

QUEUE_POLL_SECONDS = 1.0
"""How often, at least this far apart, the printer and the importer look for queued work: each
look is a query in a thread (about 1.2 ms of CPU); at the senders' poll (50 ms in bench/send.py)
the two cost the worker 1 ms per message sent, and an operator's print batch or import waits
one second at most."""


@dataclass(frozen=True)
class WorkerConfig:
    """The ``[delivery]`` section: how far to package ahead and how the runner paces itself."""

    lookahead: int = 64
    processes: int = 0  # encryption processes; 0: one per core
    poll_seconds: float = 0.5
    heartbeat_seconds: float = 10.0
    stale_after_seconds: float = 120.0
    once_horizon_seconds: float = 60.0
    reconnect_seconds: float = 0.5  # first wait after the database dropped; doubles each time
    reconnect_max_seconds: float = 30.0

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkerConfig:
        """From ``[delivery]``, typed and checked by ``services.core.settings.DeliverySection``."""
        section = settings.delivery
        return cls(**{name: getattr(section, name) for name in cls.__dataclass_fields__})


@dataclass
class Tally:
    """What one run did, for the command's last line and the tests."""

    packaged: int = 0
    notices: int = 0
    documents: int = 0
    passwords: int = 0
    retried: int = 0
    failed: int = 0
    uncertain: int = 0
    recovered_uncertain: int = 0

    def __str__(self) -> str:
        return (
            f"packaged={self.packaged} notices={self.notices} documents={self.documents} "
            f"passwords={self.passwords} "
            f"retried={self.retried} failed={self.failed} uncertain={self.uncertain} "
            f"recovered_uncertain={self.recovered_uncertain}"
        )


@dataclass
class _BatchInfo:
    lea_name: str
    channel: str
    delay: timedelta
    correction: bool  # a ``corrections`` batch: its document email says what it replaces
    season: messages.Season  # the tests and school year its messages name


@dataclass(frozen=True)
class _Packaged:
    package: ledger.Package
    ssids: list[str]  # for the log line that says it was made


@dataclass
class Worker:
    engine: Engine
    settings: Settings
    clock: Callable[[], datetime] = utcnow
    mail: MailConfig | None = None
    config: WorkerConfig | None = None
    worker_id: str = field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    )
    # Tasks that run beside the senders until the worker stops (the bounce mailbox reader,
    # ``services.bounces.mailbox``); each is given the stop event and must not raise.
    companions: Sequence[Callable[[asyncio.Event], Awaitable[None]]] = ()

    def __post_init__(self) -> None:
        self.mail = self.mail or MailConfig.from_settings(self.settings)
        self.config = self.config or WorkerConfig.from_settings(self.settings)
        sms = SmsConfig.from_settings(self.settings)
        self._sms = SmsGateway(sms) if sms else None
        self.vault = password_vault.load(self.settings)
        self.quota = Quota(self.mail.per_minute, self.mail.per_day)
        self.return_path = ReturnPath.from_settings(self.settings)
        self.outbox = self.settings.data_dir / "outbox"
        self.store = ReportStore(self.settings.report_store)
        self.tally = Tally()
        self._stop = asyncio.Event()
        self._busy = 0  # sends in progress
        self._packaging = 0  # packages being encrypted
        self._printing = False  # a print batch is being printed
        self._importing = False  # a queued import is running
        self._relay_down_since: datetime | None = None  # the relay unreachable since then
        # Senders look for work once a poll while none is due, not once each (``_idle``): a new
        # ``_work`` event is set when something may have become due (packages recorded, a
        # document accepted, stop), and ``_empty`` says which event a claim found nothing under.
        self._work = asyncio.Event()
        self._empty: tuple[asyncio.Event, float] | None = None
        self._batches: dict[int, _BatchInfo] = {}
        # each batch, with its batches.family_reports_query
        self._report_queries: dict[int, tuple[DeliveryBatch, Any]] = {}

    def stop(self) -> None:
        """Finish the messages being sent, then return from ``run``."""
        self._stop.set()
        self._more_work()

    def _more_work(self) -> None:
        """Something may have become due: idle senders look again at once."""
        self._work.set()
        self._work = asyncio.Event()

    async def run(self, once: bool = False) -> Tally:
        """Work until stopped; with ``once``, until nothing is due within the once-horizon."""
        assert self.mail is not None and self.config is not None
        await self._db(
            ledger.register_worker, self.engine, self.worker_id, socket.gethostname(), os.getpid()
        )
        self.tally.recovered_uncertain = await self._db(self._recover)
        if self.tally.recovered_uncertain:
            log.warning(
                "%d in-flight items marked uncertain after a crash", self.tally.recovered_uncertain
            )
        # On SQLite, closing the last connection checkpoints the WAL; one connection held open for
        # the run keeps each short transaction from paying for a checkpoint.
        keepalive = self.engine.connect() if is_sqlite(self.engine) else None
        pool = self._pool()
        connections = [SmtpConnection(self.mail) for _ in range(self.mail.connections)]
        tasks = [
            asyncio.create_task(self._packager(pool)),
            asyncio.create_task(self._printer()),
            asyncio.create_task(self._importer()),
        ]
        tasks += [asyncio.create_task(self._sender(c)) for c in connections]
        tasks += [asyncio.create_task(companion(self._stop)) for companion in self.companions]  # type: ignore[arg-type]
        beat = self.clock()
        swept, swept_at = -1, -SWEEP_SECONDS  # passwords sent at the last sweep, and when
        try:
            while not self._stop.is_set():
                # Sweeping costs a query (and Python) each time: once a second while passwords
                # go out, and with each heartbeat for what others cancelled or bounced.
                if swept != self.tally.passwords and time.monotonic() - swept_at >= SWEEP_SECONDS:
                    swept, swept_at = self.tally.passwords, time.monotonic()
                    await self._db(asyncio.to_thread, self._finish_sent)
                if any(t.done() for t in tasks):
                    for task in tasks:
                        if task.done() and task.exception():
                            raise task.exception()  # type: ignore[misc]
                idle = not (self._busy or self._packaging or self._printing or self._importing)
                if once and idle and await self._db(self._idle_until_horizon):
                    break
                if (self.clock() - beat).total_seconds() >= self.config.heartbeat_seconds:
                    await self._db(self._heartbeat)
                    await self._db(asyncio.to_thread, self._finish_sent)
                    beat = self.clock()
                await asyncio.sleep(self.config.poll_seconds)
        except DatabaseUnavailable:
            if not self._stop.is_set():
                raise
            # stopped during an outage: the next start's recovery settles what is left
        finally:
            self._stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            for connection in connections:
                await connection.close()
            if self._sms:
                await self._sms.close()
            pool.shutdown(cancel_futures=True)
            try:
                self._finish_sent()
                ledger.unregister_worker(self.engine, self.worker_id)
            except DatabaseUnavailable as error:
                log.warning("stopped while the database is unavailable: %s", _reason(error))
            if keepalive is not None:
                with contextlib.suppress(DatabaseUnavailable):
                    keepalive.close()
        return self.tally

    async def _db(self, call: Callable[..., Any], *args: Any) -> Any:
        """``call(*args)`` (awaited if it returns an awaitable), waiting out a database outage.

        While the database cannot be used (a dropped connection, a restarting server, a locked
        file) the worker says so in its log and tries again after 0.5 s, 1 s, 2 s... up to
        ``reconnect_max_seconds``, instead of ending: an outcome it already knows (a message the
        relay accepted) is written once the database is back, not lost. Only a worker asked to
        stop gives up; its next start's recovery settles what it left.
        """
        assert self.config is not None
        failures = 0
        while True:
            try:
                result = call(*args)
                if asyncio.iscoroutine(result):
                    result = await result
            except DatabaseUnavailable as error:
                if self._stop.is_set():
                    raise
                failures += 1
                wait = min(
                    self.config.reconnect_max_seconds,
                    self.config.reconnect_seconds * 2 ** min(failures - 1, 16),
                )
                log.warning(
                    "database unavailable (%s); waiting %.1f s, then reconnecting (attempt %d)",
                    _reason(error),
                    wait,
                    failures,
                )
                await self._pause(wait)
                continue
            if failures:
                log.warning("database reachable again after %d attempt(s); carrying on", failures)
            return result

    def _heartbeat(self) -> None:
        ledger.heartbeat(self.engine, self.worker_id, socket.gethostname(), os.getpid())
        if not is_sqlite(self.engine):  # other workers may have died meanwhile
            self.tally.recovered_uncertain += self._recover()
        with session_scope(self.engine) as session:
            prune_quota(session, self.clock())

    def _recover(self) -> int:
        assert self.config is not None
        return ledger.recover(
            self.engine,
            self.worker_id,
            socket.gethostname(),
            timedelta(seconds=self.config.stale_after_seconds),
        )

    def _pool(self) -> Executor:
        assert self.config is not None
        processes = self.config.processes or os.cpu_count() or 1
        # spawn: the pool must not inherit the parent's database connections, and its processes
        # must be the worker's own children to die with it (a fork server's outlive the worker).
        return ProcessPoolExecutor(
            max_workers=processes,
            mp_context=get_context("spawn"),
            initializer=packaging.die_with_worker,
            initargs=(os.getpid(),),
        )

    def _idle_until_horizon(self) -> bool:
        assert self.config is not None
        now = self.clock()
        horizon = now + timedelta(seconds=self.config.once_horizon_seconds)
        if self.quota.blocked_until is not None and self.quota.blocked_until > horizon:
            return True
        if print_batch.waiting(self.engine) or import_queue.waiting(self.engine):
            return False
        due = next_due(self.engine)
        return due is None or due > horizon

    # --- packaging -------------------------------------------------------------------------------

    async def _packager(self, pool: Executor) -> None:
        """Keep every encryption process busy, and the packaged backlog under ``lookahead``."""
        assert self.config is not None
        slots = 2 * (self.config.processes or os.cpu_count() or 1)
        running: set[asyncio.Task[_Packaged | None]] = set()
        try:
            while not self._stop.is_set():
                # no look at the database while every encryption slot is busy
                limit = slots - len(running)
                if limit > 0:
                    backlog = await self._db(ledger.packaged_backlog, self.engine)
                    limit = min(self.config.lookahead - backlog - len(running), limit)
                claims = (
                    await self._db(ledger.claim_for_packaging, self.engine, self.worker_id, limit)
                    if limit > 0
                    else []
                )
                for claim in claims:
                    running.add(asyncio.create_task(self._package(pool, claim)))
                self._packaging = len(running)
                if not running:
                    await self._pause()
                    continue
                finished, running = await asyncio.wait(
                    running, timeout=self.config.poll_seconds, return_when=asyncio.FIRST_COMPLETED
                )
                # an unexpected error stops the worker rather than vanishing
                await self._db(self._record_packages, [task.result() for task in finished])
        finally:
            if running:
                await asyncio.wait(running)
                done = [t.result() for t in running if not t.cancelled() and t.exception() is None]
                with contextlib.suppress(DatabaseUnavailable):  # recovery repackages them
                    self._record_packages(done)
            self._packaging = 0

    def _record_packages(self, packaged: list[_Packaged | None]) -> None:
        """Record the packages made since the last look, in one transaction; a package whose
        claim went to another worker meanwhile is nobody's and is deleted."""
        made = [p for p in packaged if p is not None]
        if not made:
            return
        recorded = ledger.mark_packaged(self.engine, self.worker_id, [p.package for p in made])
        if recorded:
            self._more_work()
        for p in made:
            item_id = p.package.claim.item_id
            if item_id in recorded:
                self.tally.packaged += 1
                log.info("item %s packaged: %s", item_id, ", ".join(p.ssids))
            else:
                shutil.rmtree(p.package.package_dir, ignore_errors=True)

    def _family_reports(self, claim: ledger.PackagingClaim) -> list[Any]:
        with Session(self.engine) as session:
            if claim.batch_id not in self._report_queries:
                batch = session.get(DeliveryBatch, claim.batch_id)
                assert batch is not None  # a batch's items are never without it
                self._report_queries[claim.batch_id] = (batch, batches.family_reports_query(batch))
            batch, query = self._report_queries[claim.batch_id]
            return batches.family_reports(session, batch, claim.guardian_id, query)

    async def _package(self, pool: Executor, claim: ledger.PackagingClaim) -> _Packaged | None:
        """Make and verify the family's package (recorded by the packager with the others
        finished at the same time); None when there is none to make."""
        item_id = claim.item_id
        reports = await self._db(self._family_reports, claim)
        if not reports:
            reason = "no SSR is on record for this family"
            await self._db(self._fail_claim, item_id, reason)
            return None
        folder = await asyncio.to_thread(self._new_folder, claim)
        password = packaging.passphrase()
        output = folder / packaging.attachment_name(
            [r.program for r in reports], [r.admin_year for r in reports]
        )
        loop = asyncio.get_running_loop()
        try:
            sources = [self.store.path(r.file_path) for r in reports]
            made = await loop.run_in_executor(pool, packaging.package, sources, output, password)
        except (packaging.PackagingError, OSError) as error:
            log.warning("item %s could not be packaged: %s", item_id, error)
            await self._db(self._fail_claim, item_id, str(error))
            return None
        package = ledger.Package(
            claim, str(folder), made.sha256, self.vault.seal(password), len(reports)
        )
        return _Packaged(package, sorted({r.ssid for r in reports}))

    def _new_folder(self, claim: ledger.PackagingClaim) -> Path:
        """An empty folder for the claim's package, in a thread (folders wait on the disk).

        Each claim packages into a folder of its own, so nothing another claim writes (a second
        worker, or the encryption process of a killed one) can replace this claim's file."""
        family = self.outbox / str(claim.batch_id) / str(claim.item_id)
        shutil.rmtree(family, ignore_errors=True)  # what the claims of killed workers left
        return private_files.make_dirs(family / uuid.uuid4().hex)

    def _fail_claim(self, item_id: int, reason: str) -> None:
        ledger.mark_failed(self.engine, item_id, [ItemState.PENDING], reason, self.worker_id)
        self.tally.failed += 1

    # --- printing --------------------------------------------------------------------------------

    async def _printer(self) -> None:
        """Print queued print batches in a thread, one at a time; each resumes where it stopped."""
        while not self._stop.is_set():
            self._printing = True
            try:
                printed = await self._db(
                    asyncio.to_thread,
                    print_batch.print_queued,
                    self.engine,
                    self.settings,
                    self.worker_id,
                )
            finally:
                self._printing = False
            if not printed:
                await self._pause(self._queue_poll())

    async def _importer(self) -> None:
        """Run queued imports in a thread, one at a time (each uses its own check processes)."""
        while not self._stop.is_set():
            self._importing = True
            try:
                ran = await self._db(
                    asyncio.to_thread, import_queue.run_queued, self.engine, self.settings
                )
            finally:
                self._importing = False
            if not ran:
                await self._pause(self._queue_poll())

    # --- sending ---------------------------------------------------------------------------------

    async def _sender(self, connection: SmtpConnection) -> None:
        assert self.mail is not None
        while not self._stop.is_set():
            work = self._work
            if await self._idle(work):
                continue
            claim = await self._db(
                ledger.claim_send,
                self.engine,
                self.worker_id,
                self.clock(),
                self.quota,
                new_message_id(self.mail),
            )
            if claim is None:
                self._empty = (work, time.monotonic())
                continue
            self._busy += 1
            try:
                result = await self._send(connection, claim)
                pause = await self._db(self._record, claim, result) if result else 0
            finally:
                self._busy -= 1
            if pause:
                await self._pause(pause)

    async def _idle(self, work: asyncio.Event) -> bool:
        """Wait, and say so, while another sender's claim found nothing under ``work`` less than
        a poll ago: until something may be due (``_more_work``) or that poll is over.

        Each idle sender used to ask the database every poll; with four connections those empty
        claims cost the worker about 1.4 ms of CPU per message sent (bench/send.py)."""
        assert self.config is not None
        if self._empty is None or self._empty[0] is not work:
            return False
        left = self._empty[1] + self.config.poll_seconds - time.monotonic()
        if left <= 0:
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(work.wait(), timeout=left)
        return True

    def _queue_poll(self) -> float:
        assert self.config is not None
        return max(self.config.poll_seconds, QUEUE_POLL_SECONDS)

    async def _pause(self, seconds: float | None = None) -> None:
        assert self.config is not None
        delay = self.config.poll_seconds if seconds is None else seconds
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=delay)

    def _batch(self, batch_id: int) -> _BatchInfo:
        if batch_id not in self._batches:
            with Session(self.engine) as session:
                batch = session.get(DeliveryBatch, batch_id)
                assert batch is not None
                self._batches[batch_id] = _BatchInfo(
                    batches._lea_name(session, batch.lea_id),
                    batch.password_channel,
                    timedelta(seconds=batch.password_delay_seconds),
                    batch.source == Source.CORRECTIONS,
                    batches.season(session, batch.lea_id, batch.program, batch.admin_year),
                )
        return self._batches[batch_id]

    async def _send(self, connection: SmtpConnection, claim: Claim) -> SendResult | None:
        """Send the claimed message; None when its package cannot be used (nothing was sent)."""
        assert self.mail is not None
        info = await self._db(self._batch, claim.batch_id)
        name = claim.guardian_name
        reference = f"{claim.item_id}; {claim.step.value}"
        if claim.step is Step.NOTICE:  # one message, no attachment, no password
            notice = messages.notice_message(
                claim.language,
                guardian_name=name,
                lea_name=info.lea_name,
                sender=self.mail.from_address,
                password_channel=info.channel,
                season=info.season,
            )
            return await connection.send(
                build_message(
                    self.mail,
                    to=claim.address,
                    subject=notice.subject,
                    body=notice.body,
                    reference=reference,
                    now=self.clock(),
                    message_id=claim.message_id,
                    language=notice.content_language,
                    direction=messages.direction(notice.language),
                ),
                self._return_path(claim),
            )
        # The document goes out only if its password can follow (the vault opens it) and the
        # bytes handed to the relay are the file verified with that password (its digest).
        try:
            password = self.vault.open(claim.sealed_password or "")
            if claim.step is Step.DOCUMENT:
                text = messages.document_message(
                    claim.language,
                    guardian_name=name,
                    lea_name=info.lea_name,
                    count=claim.ssr_count,
                    season=info.season,
                    correction=info.correction,
                )
                message = self._document(claim, text)
        except ConsoleError as error:
            log.warning("item %s %s: %s", claim.item_id, claim.step.value, error)
            await self._db(ledger.record_package_unusable, self.engine, claim, str(error))
            if claim.step is Step.PASSWORD:
                self.tally.failed += 1
            return None
        if claim.step is Step.DOCUMENT:
            return await connection.send(message, self._return_path(claim))
        if info.channel == "sms":
            if self._sms is None:
                return SendResult(
                    Outcome.FAILED, "the batch sends passwords by SMS but [sms] is not configured"
                )
            if not claim.phone:
                return SendResult(
                    Outcome.FAILED, "no mobile phone number on file for the password SMS"
                )
            sms = messages.password_sms(claim.language, lea_name=info.lea_name, password=password)
            return await self._sms.send(claim.phone, sms)
        text = messages.password_message(
            claim.language,
            guardian_name=name,
            lea_name=info.lea_name,
            password=password,
            season=info.season,
        )
        message = build_message(
            self.mail,
            to=claim.address,
            subject=text.subject,
            body=text.body,
            reference=reference,
            now=self.clock(),
            message_id=claim.message_id,
            language=text.content_language,
            direction=messages.direction(text.language),
        )
        return await connection.send(message, self._return_path(claim))

    def _return_path(self, claim: Claim) -> str:
        """The envelope sender of the claim's message: its own VERP address when configured."""
        assert self.mail is not None
        return self.return_path.for_message(claim.item_id, claim.message_id, self.mail.from_address)

    def _document(self, claim: Claim, text: messages.Rendered) -> Outgoing:
        """The document message with the claim's package attached, the very bytes ``verify``
        opened with the family's password at packaging: the attachment read for sending must have
        the SHA-256 recorded then, so a file replaced or altered on disk since (unencrypted, or
        under another password) is never sent. Hashing it costs microseconds; opening it again
        with its password cost an AES-256 R=6 key derivation (about 15 ms of CPU) per family."""
        assert self.mail is not None
        files = sorted(Path(claim.package_dir).glob("*.pdf")) if claim.package_dir else []
        if not files:
            raise ConsoleError("the encrypted package is missing")
        try:
            message = build_message(
                self.mail,
                to=claim.address,
                subject=text.subject,
                body=text.body,
                reference=f"{claim.item_id}; {claim.step.value}",
                attachments=files,
                now=self.clock(),
                message_id=claim.message_id,
                language=text.content_language,
                direction=messages.direction(text.language),
            )
        except OSError as error:
            raise ConsoleError(f"the encrypted package cannot be read ({error.strerror})") from None
        attached = [hashlib.sha256(data).hexdigest() for _, data in message.attachments]
        if attached != [claim.package_sha256]:
            raise packaging.PackagingError("the encrypted package is not the one verified")
        return message

    def _record(self, claim: Claim, result: SendResult) -> float:
        """Write the outcome; returns how long this connection should rest before the next claim."""
        assert self.mail is not None
        now = self.clock()
        info = self._batch(claim.batch_id)
        log.info("item %s %s: %s", claim.item_id, claim.step.value, result.outcome.value)
        self._relay(now, result)
        if result.outcome is Outcome.ACCEPTED:
            ledger.record_accepted(
                self.engine,
                claim,
                (result.message_id or result.detail)[:200],
                now=now,
                password_delay=info.delay,
            )
            if claim.step is Step.NOTICE:
                self.tally.notices += 1
            elif claim.step is Step.DOCUMENT:
                self.tally.documents += 1
                self._more_work()  # its password may be due already
            else:
                self.tally.passwords += 1
            return 0
        if result.outcome is Outcome.RETRY:
            if not result.connection_error and claim.attempts >= self.mail.max_attempts:
                ledger.record_failed(
                    self.engine, claim, f"gave up after {claim.attempts} attempts: {result.detail}"
                )
                self.tally.failed += 1
                return 0
            # An unreachable relay waits as long as it has been down (relay_backoff), so an
            # outage of hours is retried ever more sparsely and one of a minute costs a minute.
            wait = (
                relay_backoff(self.mail, now - (self._relay_down_since or now))
                if result.connection_error
                else backoff(self.mail, claim.attempts)
            )
            ledger.record_retry(
                self.engine,
                claim,
                now + wait,
                result.detail,
                count_attempt=not result.connection_error,
            )
            self.tally.retried += 1
            # This connection rests while the relay is down (5 s at the default poll), then
            # takes the next message that is due: one probe per rest, not one per family.
            rest = 10 * self.config.poll_seconds if self.config else 5.0
            return min(wait.total_seconds(), rest) if result.connection_error else 0
        if result.outcome is Outcome.FAILED:
            ledger.record_failed(self.engine, claim, result.detail)
            self.tally.failed += 1
            return 0
        ledger.record_uncertain(self.engine, claim, result.detail)
        self.tally.uncertain += 1
        return 0

    def _relay(self, now: datetime, result: SendResult) -> None:
        """Write the relay's state to the database when it changes (the progress screen shows
        an outage, since when, and when the next try is)."""
        if result.connection_error and self._relay_down_since is None:
            self._relay_down_since = now
            ledger.relay_state(self.engine, self.worker_id, now, result.detail)
        elif not result.connection_error and self._relay_down_since is not None:
            self._relay_down_since = None
            ledger.relay_state(self.engine, self.worker_id, None)

    def _finish_sent(self) -> None:
        """Delete the packages of families whose password went out (and of cancelled and
        bounced items). Run in a thread: removing a family's file and folders waits on the disk
        (about 6 ms a family on a busy machine, little of it CPU), which on the event loop held
        up every connection."""
        with Session(self.engine) as session:
            rows = session.exec(
                select(DeliveryItem.id, DeliveryItem.state, DeliveryItem.package_dir)
                .where(
                    or_(
                        col(DeliveryItem.state) == ItemState.PASSWORD_SENT,
                        col(DeliveryItem.state).in_([ItemState.CANCELLED, ItemState.BOUNCED])
                        & col(DeliveryItem.package_dir).is_not(None),
                    )
                )
                .limit(500)
            ).all()
        for _, _, folder in rows:
            if folder:
                shutil.rmtree(folder, ignore_errors=True)
                with contextlib.suppress(OSError):  # the family's folder, once it is empty
                    Path(folder).parent.rmdir()
        if rows:
            ledger.clear_packages(self.engine, [item_id for item_id, _, _ in rows if item_id])


def _reason(error: DatabaseUnavailable) -> str:
    """The driver's first line (no credentials in it), for the log."""
    lines = str(error.__cause__ or error).strip().splitlines()
    return lines[0] if lines else "no reason given"


def next_due(engine: Engine) -> datetime | None:
    """When the earliest open item can next move (now for work in hand): items of running batches,
    and the passwords still owed to families of cancelled batches."""
    running, finishing = ledger.batch_ids(), ledger.batch_ids(ledger.FINISHING)
    state, batch = col(DeliveryItem.state), col(DeliveryItem.batch_id)
    now = utcnow()
    with Session(engine) as session:
        in_hand = session.exec(
            select(func.count())
            .select_from(DeliveryItem)
            .where(
                or_(
                    state.in_([ItemState.PENDING, ItemState.SENDING_DOCUMENT]) & batch.in_(running),
                    state.in_([ItemState.SENDING_PASSWORD, ItemState.PASSWORD_SENT])
                    & batch.in_(finishing),
                )
            )
        ).one()
        if in_hand:
            return now
        packaged = session.exec(
            select(func.min(DeliveryItem.next_attempt_at)).where(
                batch.in_(running), state == ItemState.PACKAGED
            )
        ).one()
        waiting = session.exec(
            select(
                func.min(
                    case(
                        (
                            col(DeliveryItem.password_due_at) > DeliveryItem.next_attempt_at,
                            DeliveryItem.password_due_at,
                        ),
                        else_=DeliveryItem.next_attempt_at,
                    )
                )
            ).where(batch.in_(finishing), state == ItemState.DOCUMENT_SENT)
        ).one()
    times = [t for t in (packaged, waiting) if t is not None]
    return min(times) if times else None


def run(
    engine: Engine,
    settings: Settings,
    *,
    once: bool = False,
    companions: Sequence[Callable[[asyncio.Event], Awaitable[None]]] = (),
) -> Tally:
    """Run a worker until SIGTERM or SIGINT (or, with ``once``, until nothing is due)."""

    async def main() -> Tally:
        worker = Worker(engine, settings, companions=companions)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, worker.stop)
        return await worker.run(once=once)

    return asyncio.run(main())
