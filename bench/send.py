"""Benchmark of sending: messages/s to an aiosmtpd server on loopback, and a whole batch end to end.

1. SMTP alone: ``--messages`` messages (each with a 45 KB PDF attached) through the mailer's
   connections (``[smtp] connections``, default 4), as fast as the server takes them.
2. A batch end to end (ledger, encryption on every core, both messages per family): the demo LEA
   with real SSRs by default (300 students); ``--full`` makes it about 300,000 SSRs (252,000
   students, seeding rows only and pointing every report at a few rendered SSR files;
   ``--students`` for a smaller one built the same way), and prints the throughput, elapsed time
   and the worker's RSS at 10%, 50% and 100% of the families, to show memory stays flat.
   ``worker_cpu_ms_per_message`` is the worker process's own CPU time (encryption processes
   excluded) per message: unlike wall time it hardly moves with the machine's load, so it is
   the figure to compare before and after a change.
3. ``--workers 1,2,4 --smtp-delay 0.2``: instead of 1 and 2, the same batch on PostgreSQL
   (``--pg``, a fresh database per run copied from one seeded template) sent by that many worker
   processes at once, each with ``[smtp] connections`` connections, to a server that answers
   each message after the delay, as a busy relay does. The server counts every message by its
   ``X-SSR-Delivery`` reference (item and step), so a family served twice shows as a duplicate.
The server runs in its own process, counts messages and bytes and keeps nothing else, so neither
its memory nor its parsing weighs on the worker being measured.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from sqlalchemy import create_engine, insert, literal, text, true, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, func, select

from services.access import operators
from services.core import db
from services.core import vault as password_vault
from services.core.settings import Settings
from services.delivery import batches, mailer
from services.delivery.ledger import DeliveryItem, ItemState
from services.delivery.worker import Worker, WorkerConfig
from services.demo import district as demo
from services.intake.report_store import ReportStore
from services.intake.score_reports import ScoreReport
from services.roster.tables import Student


class CountingServer:
    """An SMTP server in its own process that accepts everything and remembers only how much.

    Its own process, so parsing each 45 KB message does not compete with the worker for the
    parent's interpreter lock: the figures measure the worker, as a real relay would see it.
    """

    def __init__(self, delay: float = 0.0) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        context = get_context("spawn")
        self._messages = context.Value("q", 0)
        self._bytes = context.Value("q", 0)
        self._duplicates = context.Value("q", 0)
        self._stop = context.Event()
        self._ready = context.Event()
        self._process = context.Process(
            target=_serve,
            args=(
                self.port,
                _Counter(self._messages, self._bytes, self._duplicates, delay),
                self._ready,
                self._stop,
            ),
            daemon=True,
        )

    @property
    def messages(self) -> int:
        return int(self._messages.value)

    @property
    def bytes(self) -> int:
        return int(self._bytes.value)

    @property
    def duplicates(self) -> int:
        """Messages whose item and step the server had received before."""
        return int(self._duplicates.value)

    def __enter__(self) -> CountingServer:
        self._process.start()
        if not self._ready.wait(120):  # a loaded machine starts a process slowly
            raise RuntimeError("the counting SMTP server did not start")
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._process.join(10)


class _Counter:
    def __init__(self, messages: Any, size: Any, duplicates: Any, delay: float) -> None:
        self.messages, self.size, self.duplicates, self.delay = messages, size, duplicates, delay
        self.seen: set[bytes] = set()

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        if self.delay:
            await asyncio.sleep(self.delay)
        content = bytes(envelope.content)
        start = content.find(b"X-SSR-Delivery: ")
        reference = content[start : content.find(b"\r\n", start)] if start >= 0 else b""
        if reference and reference in self.seen:
            with self.duplicates.get_lock():
                self.duplicates.value += 1
        self.seen.add(reference)
        with self.messages.get_lock():
            self.messages.value += 1
        with self.size.get_lock():
            self.size.value += len(envelope.content)
        return "250 OK"


def _serve(port: int, handler: _Counter, ready: Any, stop: Any) -> None:
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    stop.wait()
    controller.stop()


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def smtp_alone(config: mailer.MailConfig, attachment: Path, count: int) -> float:
    connections = [mailer.SmtpConnection(config) for _ in range(config.connections)]
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)

    async def drain(connection: mailer.SmtpConnection) -> None:
        while not queue.empty():
            i = queue.get_nowait()
            message = mailer.build_message(
                config,
                to=f"family{i}@example.org",
                subject="Sierra Vista USD: your child's Student Score Report",
                body="A report is attached.",
                reference=f"{i}; document",
                attachments=[attachment],
            )
            result = await connection.send(message)
            assert result.outcome is mailer.Outcome.ACCEPTED, result.detail

    started = time.perf_counter()
    await asyncio.gather(*(drain(c) for c in connections))
    seconds = time.perf_counter() - started
    for connection in connections:
        await connection.close()
    return count / seconds


def seed(folder: Path, students: int, full: bool) -> Settings:
    settings = Settings(database_url=f"sqlite:///{folder / 'bench.db'}", data_dir=folder / "data")
    engine = db.make_engine(settings.database_url)
    db.upgrade(engine)
    if not full:
        demo.seed(engine, settings, students=students, seed=2026, pdfs=True)
        engine.dispose()
        return settings
    # --full: rows only, then every report points at one of a few real rendered SSRs
    samples = Settings(  # stored in the batch's own report store, where the worker reads them
        database_url=f"sqlite:///{folder / 'samples.db'}",
        data_dir=folder / "s",
        store_dir=settings.report_store,
    )
    sample_engine = db.make_engine(samples.database_url)
    db.upgrade(sample_engine)
    demo.seed(sample_engine, samples, students=20, seed=1, pdfs=True)
    with Session(sample_engine) as session:
        files = list(session.exec(select(ScoreReport.file_path)).all())
    demo.seed(engine, settings, students=students, seed=2026, pdfs=False)
    # rows only has no reports: one CAASPP SSR per student, an ELPAC one per English learner
    now = datetime.now(UTC)
    with engine.begin() as connection:
        for program, test, where in (
            ("CAASPP", "SB", true()),
            ("ELPAC", "SUMMATIVE", col(Student.english_learner)),
        ):
            connection.execute(
                insert(ScoreReport).from_select(
                    [
                        "student_id",
                        "program",
                        "admin_year",
                        "test",
                        "language",
                        "version",
                        "file_path",
                        "sha256",
                        "size_bytes",
                        "received_at",
                    ],
                    sa_select(
                        col(Student.id),
                        literal(program),
                        literal(2026),
                        literal(test),
                        literal("en"),
                        literal(1),
                        literal(""),
                        literal(""),
                        literal(0),
                        literal(now, type_=ScoreReport.__table__.c.received_at.type),
                    ).where(where),
                )
            )
        for index, path in enumerate(files):
            connection.execute(
                update(ScoreReport)
                .where(ScoreReport.id % len(files) == index)  # type: ignore[operator]
                .values(file_path=path)
            )
    engine.dispose()
    return settings


async def batch_end_to_end(settings: Settings, port: int) -> dict[str, float]:
    engine = db.make_engine(settings.database_url)
    caaspp = operators.resolve(engine, "caaspp")
    batch_id = batches.create(
        engine, caaspp, batches.Selection(), name="bench", password_delay=timedelta(0)
    )
    with Session(engine) as session:
        families, ssrs = session.exec(
            select(func.count(), func.sum(DeliveryItem.ssr_count)).where(
                DeliveryItem.batch_id == batch_id
            )
        ).one()
    settings.extra["smtp"] = {"host": "127.0.0.1", "port": port, "connections": 4}
    worker = Worker(engine, settings, config=WorkerConfig(poll_seconds=0.05))
    samples: list[tuple[int, float]] = []
    marks = [10, 50, 100]  # percent of the families done, for the progress lines

    def mark(done: int, seconds: float) -> None:
        while marks and done * 100 >= marks[0] * families:
            print(
                f"  {marks.pop(0):3d}%: {done:,} families in {seconds:.1f} s "
                f"({done / max(seconds, 1e-9):.1f} families/s), worker RSS {rss_mb():.0f} MB",
                flush=True,
            )

    async def watch() -> None:
        while True:
            with Session(engine) as session:
                done = session.exec(
                    select(func.count()).where(
                        DeliveryItem.batch_id == batch_id, DeliveryItem.state == ItemState.DONE
                    )
                ).one()
            samples.append((done, rss_mb()))
            mark(done, time.perf_counter() - started)
            await asyncio.sleep(2)

    watcher = asyncio.create_task(watch())
    started = time.perf_counter()
    cpu = time.process_time()
    tally = await worker.run(once=True)
    cpu = time.process_time() - cpu
    seconds = time.perf_counter() - started
    watcher.cancel()
    mark(families, seconds)
    early = next((rss for done, rss in samples if done >= families / 10), rss_mb())
    engine.dispose()
    messages = tally.documents + tally.passwords
    return {
        "families": families,
        "ssrs": int(ssrs or 0),
        "messages": messages,
        "seconds": seconds,
        "messages_per_s": messages / seconds,
        "ssrs_per_s": (ssrs or 0) / seconds,
        "cpu_ms_per_message": 1000 * cpu / max(messages, 1),
        "rss_10pct_mb": early,
        "rss_end_mb": rss_mb(),
    }


@contextmanager
def pg_database(admin_url: str, template: str | None = None) -> Iterator[str]:
    """A new database on the server of ``admin_url`` (a copy of ``template``), dropped after."""
    name = f"bench_send_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    copy = f' TEMPLATE "{template}"' if template else ""
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"{copy}'))
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _one_worker(settings: Settings) -> None:
    """One worker process of the scaling run: works until nothing is left of the batch."""
    engine = db.make_engine(settings.database_url)
    asyncio.run(Worker(engine, settings, config=WorkerConfig(poll_seconds=0.05)).run(once=True))
    engine.dispose()


def workers_scaling(
    admin_url: str, folder: Path, students: int, counts: list[int], delay: float, connections: int
) -> list[dict[str, float]]:
    """The same batch sent by 1, 2, 4... worker processes on PostgreSQL, each run on a fresh copy
    of one seeded database, to a server that takes ``delay`` seconds per message."""
    rows = []
    with pg_database(admin_url) as template_url:
        seeded = Settings(database_url=template_url, data_dir=folder / "template")
        engine = db.make_engine(seeded.database_url)
        db.upgrade(engine)
        demo.seed(engine, seeded, students=students, seed=2026, pdfs=True)
        engine.dispose()
        template = template_url.rsplit("/", 1)[1]
        for count in counts:
            with pg_database(admin_url, template) as url, CountingServer(delay) as server:
                settings = Settings(
                    database_url=url, data_dir=folder / f"run{count}", store_dir=seeded.report_store
                )
                settings.extra["smtp"] = {
                    "host": "127.0.0.1",
                    "port": server.port,
                    "connections": connections,
                }
                engine = db.make_engine(url)
                caaspp = operators.resolve(engine, "caaspp")
                batch_id = batches.create(
                    engine, caaspp, batches.Selection(), name="bench", password_delay=timedelta(0)
                )
                with Session(engine) as session:
                    families = session.exec(
                        select(func.count()).where(DeliveryItem.batch_id == batch_id)
                    ).one()
                engine.dispose()
                password_vault.load(settings)  # one key, made before the workers race for it
                context = get_context("spawn")
                processes = [
                    context.Process(target=_one_worker, args=(settings,)) for _ in range(count)
                ]
                started = time.perf_counter()
                for process in processes:
                    process.start()
                for process in processes:
                    process.join()
                seconds = time.perf_counter() - started
                row = {
                    "workers": count,
                    "families": families,
                    "messages": server.messages,
                    "duplicates": server.duplicates,
                    "seconds": seconds,
                    "messages_per_s": server.messages / seconds,
                }
                print(
                    f"{count} worker(s) x {connections} connections: {server.messages:,} messages "
                    f"for {families:,} families in {seconds:.1f} s "
                    f"({row['messages_per_s']:.2f} messages/s), {server.duplicates} served twice",
                    flush=True,
                )
                rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--full", action="store_true", help="a 300,000-SSR batch")
    parser.add_argument("--students", type=int, help="demo students (default 300; full 252,000)")
    parser.add_argument("--messages", type=int, default=2000, help="messages for the SMTP-only run")
    parser.add_argument("--workers", help="worker processes to compare on PostgreSQL, e.g. 1,2,4")
    parser.add_argument("--smtp-delay", type=float, default=0.2, help="seconds per message")
    parser.add_argument("--connections", type=int, default=4, help="SMTP connections per worker")
    parser.add_argument(
        "--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres", help="admin URL"
    )
    args = parser.parse_args()
    if args.workers:
        counts = [int(n) for n in args.workers.split(",")]
        with tempfile.TemporaryDirectory(prefix="ssr-bench-") as scratch:
            rows = workers_scaling(
                args.pg,
                Path(scratch),
                args.students or 300,
                counts,
                args.smtp_delay,
                args.connections,
            )
        print(
            "result: "
            + " ".join(
                f"workers_{r['workers']:.0f}_messages_per_s={r['messages_per_s']:.2f}" for r in rows
            )
            + f" served_twice={sum(r['duplicates'] for r in rows):.0f}"
            + f" smtp_delay_s={args.smtp_delay} connections_per_worker={args.connections}"
        )
        return
    students = args.students or (252_000 if args.full else 300)
    with tempfile.TemporaryDirectory(prefix="ssr-bench-") as scratch, CountingServer() as server:
        folder = Path(scratch)
        settings = seed(folder, students, args.full)
        with Session(db.make_engine(settings.database_url)) as session:
            stored = session.exec(select(ScoreReport.file_path)).first() or ""
        attachment = ReportStore(settings.report_store).path(stored)
        config = mailer.MailConfig(port=server.port, connections=4)
        smtp_rate = asyncio.run(smtp_alone(config, attachment, args.messages))
        print(f"SMTP alone: {smtp_rate:.0f} messages/s over {config.connections} connections")
        figures = asyncio.run(batch_end_to_end(settings, server.port))
        print(
            f"batch: {figures['families']:,.0f} families, {figures['ssrs']:,.0f} SSRs, "
            f"{figures['messages']:,.0f} messages in {figures['seconds']:.1f} s "
            f"({figures['messages_per_s']:.1f} messages/s, {figures['ssrs_per_s']:.1f} SSRs/s)"
        )
        print(f"server received {server.messages:,} messages, {server.bytes / 1e6:.1f} MB")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"result: smtp_messages_per_s={smtp_rate:.0f} batch_families={figures['families']:.0f} "
        f"batch_ssrs={figures['ssrs']:.0f} batch_messages_per_s={figures['messages_per_s']:.1f} "
        f"batch_ssrs_per_s={figures['ssrs_per_s']:.1f} "
        f"worker_cpu_ms_per_message={figures['cpu_ms_per_message']:.1f} "
        f"rss_10pct_mb={figures['rss_10pct_mb']:.0f} "
        f"rss_end_mb={figures['rss_end_mb']:.0f} peak_rss_mb={peak:.0f}"
    )


if __name__ == "__main__":
    main()
