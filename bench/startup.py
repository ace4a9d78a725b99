"""Console start-up and student-table speed.

Measures (a) a cold start: a fresh Python process that imports the console, opens the database,
signs the operator in and paints the dashboard headless, then exits on its first frame (wall
time of the whole process, imports included); (b) in-process with Textual's Pilot at 80x24, the
time to open the students screen, and from each filter keypress to the repainted table.

Default: 20,000 demo students seeded (rows only) into a temporary SQLite database. ``--full``:
300,000, using /work/notes/db300k.db when it exists (else seeding one, which takes minutes).
The last line printed is ``result: first_frame_ms=... open_students_ms=... filter_ms=...``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED_300K = Path("/work/notes/db300k.db")
OPERATOR = "caaspp"
TYPED = ["gar", "1", "12", "lee m"]  # name prefixes and SSID prefixes, one key at a time


def probe(url: str) -> None:
    """The child process of the cold start: paint the first frame, then exit."""
    from console.app import SSRConsoleApp
    from services import db, operators
    from services.context import ConsoleContext
    from services.settings import Settings

    engine = db.make_engine(url)
    settings = Settings(database_url=url, data_dir=Path(tempfile.gettempdir()))
    app = SSRConsoleApp(ConsoleContext(engine, settings, operators.resolve(engine, OPERATOR)))

    async def first_frame(pilot) -> None:  # type: ignore[no-untyped-def]
        await pilot.pause()  # the dashboard composed, mounted and painted
        pilot.app.exit()

    app.run(headless=True, size=(80, 24), auto_pilot=first_frame)


def cold_start_ms(url: str, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--probe", url], check=True)
        times.append((time.perf_counter() - started) * 1000)
    return times


async def table_timings(url: str) -> tuple[float, list[float]]:
    from console.app import SSRConsoleApp
    from services import db, operators
    from services.context import ConsoleContext
    from services.settings import Settings
    from widgets.paged_table import PagedTable

    engine = db.make_engine(url)
    settings = Settings(database_url=url, data_dir=Path(tempfile.gettempdir()))
    app = SSRConsoleApp(ConsoleContext(engine, settings, operators.resolve(engine, OPERATOR)))
    async with app.run_test(size=(80, 24)) as pilot:

        async def painted() -> None:
            await app.workers.wait_for_complete()
            await pilot.pause()

        await painted()
        started = time.perf_counter()
        await pilot.press("s")
        await painted()
        open_ms = (time.perf_counter() - started) * 1000
        table = app.screen.query_one(PagedTable)
        assert table.rows, "the students table is empty"
        keys: list[float] = []
        for text in TYPED:
            await pilot.press("slash")
            await painted()
            for char in text:
                started = time.perf_counter()
                await pilot.press("space" if char == " " else char)
                await painted()
                keys.append((time.perf_counter() - started) * 1000)
            print(f"  filter {text!r}: {table.status_text}")
            await pilot.press("escape")
            await painted()
    engine.dispose()
    return open_ms, keys


def prepare(full: bool, students: int | None, workdir: Path) -> tuple[str, int]:
    """A database URL with the demo LEA and how many students it holds."""
    from sqlalchemy import func, select

    from services import db, demo
    from services.models import Student
    from services.settings import Settings

    if full and students is None and SHARED_300K.exists():
        url = f"sqlite:///{SHARED_300K}"
    else:
        url = f"sqlite:///{workdir / 'bench.db'}"
        engine = db.make_engine(url)
        db.upgrade(engine)
        count = students or (300_000 if full else 20_000)
        started = time.perf_counter()
        demo.seed(engine, Settings(url, workdir), students=count, seed=2026, pdfs=False)
        print(f"seeded {count:,} students in {time.perf_counter() - started:.1f} s")
        engine.dispose()
    engine = db.make_engine(url)
    with engine.connect() as connection:
        total = int(connection.scalar(select(func.count()).select_from(Student)) or 0)
    engine.dispose()
    return url, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="300,000 students")
    parser.add_argument("--students", type=int, help="seed this many instead")
    parser.add_argument("--runs", type=int, default=5, help="cold starts to time")
    parser.add_argument("--probe", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        probe(args.probe)
        return
    with tempfile.TemporaryDirectory() as tmp:
        url, students = prepare(args.full, args.students, Path(tmp))
        print(f"database: {url} ({students:,} students)")
        starts = cold_start_ms(url, args.runs)
        print("cold start to first frame (ms): " + ", ".join(f"{t:.0f}" for t in starts))
        open_ms, keys = asyncio.run(table_timings(url))
    print(f"open students screen: {open_ms:.0f} ms")
    print(
        f"filter keypress to repaint (ms): median {statistics.median(keys):.0f}, "
        f"max {max(keys):.0f} over {len(keys)} keys"
    )
    print(
        f"result: first_frame_ms={statistics.median(starts):.0f} open_students_ms={open_ms:.0f} "
        f"filter_ms={statistics.median(keys):.0f} filter_max_ms={max(keys):.0f} students={students}"
    )


if __name__ == "__main__":
    main()
