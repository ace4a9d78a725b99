"""Console start-up and student-table speed.

Measures (a) a cold start: a fresh Python process that imports the console, opens the database,
signs the operator in and paints the dashboard headless; the clock runs from spawning the
process (interpreter start and imports included) to the line it prints on its first frame, and
the process's own CPU time at that moment is reported too (less sensitive to a busy machine); (b) in-process with Textual's Pilot at 80x24, the
time to open the students screen, and from each filter keypress to the refilled table (the
repaint follows in the same refresh cycle).

Default: 20,000 demo students seeded (rows only) into a temporary SQLite database. ``--full``:
300,000, using a copy of /work/notes/db300k.db (or of ``--copy-of PATH``) when it exists (else
seeding one, which takes minutes).
The last line printed is ``result: first_frame_ms=... open_students_ms=... filter_ms=...``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.pilot's settle

SHARED_300K = Path("/work/notes/db300k.db")
OPERATOR = "caaspp"
TYPED = ["gar", "1", "12", "ngu"]  # name prefixes and SSID prefixes, one key at a time


def probe(url: str) -> None:
    """The child process of the cold start: report the first frame, then exit."""
    from console.app import SSRConsoleApp
    from services.access import operators
    from services.core import db
    from services.core.context import ConsoleContext
    from services.core.settings import Settings

    class FirstFrame(SSRConsoleApp):
        def on_ready(self) -> None:  # Textual posts Ready once the first frame is on screen
            print(f"first frame cpu_ms={time.process_time() * 1000:.0f}", flush=True)
            self.exit()

    engine = db.make_engine(url)
    settings = Settings(database_url=url, data_dir=Path(tempfile.gettempdir()))
    FirstFrame(ConsoleContext(engine, settings, operators.resolve(engine, OPERATOR))).run(
        headless=True, size=(80, 24)
    )


def cold_start_ms(url: str, runs: int) -> tuple[list[float], list[float]]:
    """Wall and CPU milliseconds from spawn to first frame, per run, after one untimed start.

    The untimed start writes the console's bytecode caches, as installing it does (pip compiles
    what it installs); a shell that sets PYTHONDONTWRITEBYTECODE would otherwise have every
    timed start compile the console's own modules again, which no installed console does."""
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    walls, cpus = [], []
    for _ in range(runs + 1):
        started = time.perf_counter()
        child = subprocess.Popen(
            [sys.executable, __file__, "--probe", url],
            stdout=subprocess.PIPE,
            text=True,
            env=environment,
        )
        assert child.stdout is not None
        for line in child.stdout:
            if line.startswith("first frame"):
                walls.append((time.perf_counter() - started) * 1000)
                cpus.append(float(line.split("cpu_ms=")[1]))
                break
        if child.wait() != 0 or len(walls) != len(cpus) or not walls:
            raise SystemExit("the console did not reach its first frame")
    return walls[1:], cpus[1:]


async def table_timings(url: str) -> tuple[float, list[float]]:
    """Key sent to table refilled, timed by the PagedTable.Loaded message it posts when done.

    Pilot.press also sleeps until the process looks idle (at least two 20 ms naps), which is test
    harness time, not the console's; so each key's press runs as a task and the clock stops when
    the table has been refilled with the answer to that key.
    """
    from console.app import SSRConsoleApp
    from services.access import operators
    from services.core import db
    from services.core.context import ConsoleContext
    from services.core.settings import Settings
    from tests.pilot import settle  # waits past workers cancelled to make way for newer ones
    from widgets.paged_table import PagedTable

    engine = db.make_engine(url)
    settings = Settings(database_url=url, data_dir=Path(tempfile.gettempdir()))
    app = SSRConsoleApp(ConsoleContext(engine, settings, operators.resolve(engine, OPERATOR)))
    loaded = asyncio.Event()

    def hook(message: object) -> None:
        if isinstance(message, PagedTable.Loaded):
            loaded.set()

    async with app.run_test(size=(80, 24), message_hook=hook) as pilot:

        async def timed(key: str) -> float:
            loaded.clear()
            started = time.perf_counter()
            press = asyncio.create_task(pilot.press(key))
            await loaded.wait()
            elapsed = (time.perf_counter() - started) * 1000
            await press
            await settle(pilot)
            return elapsed

        await settle(pilot)
        open_ms = await timed("s")
        table = app.screen.query_one(PagedTable)
        assert table.rows, "the students table is empty"
        keys: list[float] = []
        for text in TYPED:
            await pilot.press("slash")
            for char in text:
                keys.append(await timed("space" if char == " " else char))
            print(f"  filter {text!r}: {table.status_text}")
            await timed("escape")
    engine.dispose()
    return open_ms, keys


def prepare(
    full: bool, students: int | None, workdir: Path, seeded: Path = SHARED_300K
) -> tuple[str, int]:
    """A database URL with the demo LEA and how many students it holds."""
    from sqlalchemy import func, select

    from services.core import db
    from services.core.settings import Settings
    from services.demo import district as demo
    from services.roster.tables import Student

    if full and students is None and seeded.exists():
        # A copy, brought to the current schema, so the shared file is never changed.
        copy = workdir / "db300k.db"
        with (
            closing(sqlite3.connect(f"file:{seeded}?mode=ro", uri=True)) as source,
            closing(sqlite3.connect(copy)) as target,
        ):
            source.backup(target)
        url = f"sqlite:///{copy}"
        engine = db.make_engine(url)
        db.upgrade(engine)
        engine.dispose()
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
    parser.add_argument(
        "--copy-of",
        type=Path,
        default=SHARED_300K,
        help="with --full: a seeded 300,000-student database to copy instead of seeding one",
    )
    parser.add_argument("--probe", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        probe(args.probe)
        return
    with tempfile.TemporaryDirectory() as tmp:
        url, students = prepare(args.full, args.students, Path(tmp), args.copy_of)
        print(f"database: {url} ({students:,} students)")
        starts, cpus = cold_start_ms(url, args.runs)
        print("cold start to first frame, wall ms: " + ", ".join(f"{t:.0f}" for t in starts))
        print("cold start to first frame, CPU ms:  " + ", ".join(f"{t:.0f}" for t in cpus))
        open_ms, keys = asyncio.run(table_timings(url))
    print(f"open students screen: {open_ms:.0f} ms")
    print(
        f"filter keypress to repaint (ms): median {statistics.median(keys):.0f}, "
        f"max {max(keys):.0f} over {len(keys)} keys"
    )
    print(
        f"result: first_frame_ms={statistics.median(starts):.0f} "
        f"first_frame_cpu_ms={statistics.median(cpus):.0f} open_students_ms={open_ms:.0f} "
        f"filter_ms={statistics.median(keys):.0f} filter_max_ms={max(keys):.0f} students={students}"
    )


if __name__ == "__main__":
    main()
