"""Benchmark of the reminder scan: every LEA's credential and every pending SSR, in one pass.

Builds a fresh SQLite database (or uses --database-url) with LEAs that each have both coordinators
and a live credential (expiries spread from 10 days ago to 50 days ahead, so many notices fall
due), and SSRs received over the last four weeks, none delivered. Then times one scan that plans
and "sends" everything due (to a sender that only counts, so SMTP latency is not measured), and a
second scan at the same moment: the steady-state cost the scheduler pays every few minutes.
Default: 50 LEAs, 5,000 SSRs; ``--full``: 2,000 LEAs, 300,000 SSRs. ``--seeded FILE`` keeps
a copy of the seeded SQLite database there and starts from it on later runs (seeding ``--full``
takes minutes). ``cpu_ms`` is this process's CPU time for the scans (less noisy than wall time on
a loaded machine; on PostgreSQL the server's share is not in it).
"""

from __future__ import annotations

import argparse
import gc
import resource
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

from services.access.tables import Operator, Role
from services.core import db
from services.core.programs import Program
from services.credential.tables import Credential
from services.intake.score_reports import ScoreReport
from services.reminders import scan as reminders
from services.reminders.ledger import Notice
from services.roster.tables import LEA, School, Student

NOW = datetime(2026, 6, 1, 16, 0, tzinfo=UTC)


class CountingSender:
    """Accepts every notice; the benchmark measures planning and the ledger, not an SMTP server."""

    def __init__(self) -> None:
        self.sent = 0

    def message_id(self) -> str:
        return f"<bench-{self.sent}@bench.example>"

    def backoff(self, attempts: int) -> timedelta:
        return timedelta(minutes=attempts)

    def send(self, notice: Notice, lea_name: str) -> None:
        self.sent += 1


def populate(engine, leas: int, ssrs: int) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as connection:
        connection.execute(
            insert(LEA),
            [
                {"id": i, "cds_code": f"{i:07d}", "name": f"LEA {i}", "county": ""}
                for i in range(1, leas + 1)
            ],
        )
        connection.execute(
            insert(School),
            [
                {"id": i, "lea_id": i, "cds_code": f"{i:07d}0000001", "name": f"School {i}"}
                for i in range(1, leas + 1)
            ],
        )
        connection.execute(
            insert(Operator),
            [
                {
                    "username": f"{role.value}-{i}",
                    "display_name": f"{role.label} {i}",
                    "role": role,
                    "lea_id": i,
                    "email": f"{role.value}@lea{i}.example",
                    "language": ("en", "es", "zh_Hans", "vi", "fil")[i % 5],
                    "active": True,
                }
                for i in range(1, leas + 1)
                for role in (Role.LEA_CAASPP, Role.LEA_ELPAC)
            ],
        )
        connection.execute(
            insert(Credential),
            [
                {
                    "lea_id": i,
                    "username": f"lea{i}-sis",
                    "origin": "toms",
                    "secret_sealed": "sealed-by-the-vault",
                    "created_at": NOW - timedelta(days=365),
                    "verified_at": NOW - timedelta(days=365),
                    "created_by": "bench",
                    "expires_at": NOW + timedelta(days=i % 60 - 10),
                    "emergency": False,
                }
                for i in range(1, leas + 1)
            ],
        )
    batch = 20_000
    for start in range(0, ssrs, batch):
        ids = range(start + 1, min(start + batch, ssrs) + 1)
        with engine.begin() as connection:
            connection.execute(
                insert(Student),
                [
                    {
                        "id": n,
                        "ssid": f"{n:010d}",
                        "lea_id": n % leas + 1,
                        "school_id": n % leas + 1,
                        "first_name": "S",
                        "last_name": str(n),
                        "name_key": f"{n} s",
                        "grade": 5,
                        "primary_language": "en",
                        "english_learner": False,
                    }
                    for n in ids
                ],
            )
            connection.execute(
                insert(ScoreReport),
                [
                    {
                        "student_id": n,
                        "program": Program.ELPAC if n % 4 == 0 else Program.CAASPP,
                        "admin_year": 2026,
                        "test": "ELA",
                        "language": "en",
                        "version": 1,
                        "file_path": f"/bench/{n}.pdf",
                        "sha256": f"{n:064d}",
                        "size_bytes": 0,
                        "received_at": NOW - timedelta(days=n % 4 * 7, hours=n % 3),
                    }
                    for n in ids
                ],
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--full", action="store_true", help="2,000 LEAs and 300,000 SSRs")
    parser.add_argument("--leas", type=int, help="number of LEAs (overrides --full)")
    parser.add_argument("--ssrs", type=int, help="number of pending SSRs (overrides --full)")
    parser.add_argument(
        "--database-url", help="use this (empty) database instead of a temporary one"
    )
    parser.add_argument(
        "--seeded", type=Path, help="SQLite file: start from this copy, or seed and keep one here"
    )
    args = parser.parse_args()
    leas = args.leas or (2_000 if args.full else 50)
    ssrs = args.ssrs or (300_000 if args.full else 5_000)

    with tempfile.TemporaryDirectory(prefix="ssr-bench-") as scratch:
        url = args.database_url or f"sqlite:///{Path(scratch) / 'bench.db'}"
        path = Path(scratch) / "bench.db"
        if args.seeded and args.seeded.exists() and not args.database_url:
            shutil.copyfile(args.seeded, path)  # the caller keeps it matched to --leas/--ssrs
            engine = db.make_engine(url)
            print(f"copied the seeded database from {args.seeded}")
        else:
            engine = db.make_engine(url)
            db.upgrade(engine)
            started = time.perf_counter()
            populate(engine, leas, ssrs)
            print(f"populated {leas} LEAs, {ssrs} SSRs in {time.perf_counter() - started:.1f} s")
            if engine.dialect.name == "postgresql":
                # autovacuum analyses a bulk load within a minute or so; without statistics the
                # planner takes 300,000 SSRs for 83 and sorts the count on disk
                with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                    c.exec_driver_sql("ANALYZE")
            if args.seeded and not args.database_url:
                engine.dispose()  # the last connection closed folds the WAL into the file
                shutil.copyfile(path, args.seeded)
        sender = CountingSender()
        keeper = engine.connect()  # as the scheduler process does: see console.scheduler
        gc.freeze()  # so does this: its full collections leave what it holds since it started
        cpu = time.process_time()
        first = reminders.scan(engine, NOW, sender)
        first_cpu = int((time.process_time() - cpu) * 1000)
        print(f"first scan:  {first.summary()} in {first.ms} ms ({first_cpu} ms CPU)")
        cpu = time.process_time()
        steady = reminders.scan(engine, NOW + timedelta(minutes=5), sender)
        steady_cpu = int((time.process_time() - cpu) * 1000)
        print(f"steady scan: {steady.summary()} in {steady.ms} ms ({steady_cpu} ms CPU)")
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        keeper.close()
        engine.dispose()
    print(
        f"result: leas={leas} ssrs={ssrs} scan_ms={first.ms} steady_scan_ms={steady.ms} "
        f"scan_cpu_ms={first_cpu} steady_cpu_ms={steady_cpu} "
        f"planned={first.planned} sent={first.sent} ssr_groups={first.ssr_groups} rss_mb={rss:.0f}"
    )


if __name__ == "__main__":
    main()
