"""Benchmark of seeding the demo LEA: students/s, PDFs/s and peak memory.

Default: 2,000 students with their SSR PDFs. ``--full``: 300,000 students, rows only unless
``--pdfs``. ``--students N`` sets any size. Peak RSS is the seeding process's maximum resident set
(PDF workers are forkserver children, bounded by their batch of PDF_BATCH reports); comparing it
at two sizes shows whether memory stays flat.
Runs on a fresh SQLite database in a temporary directory unless ``--database-url`` is given.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

from services.core import db
from services.core.settings import Settings
from services.demo import district as demo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--full", action="store_true", help="300,000 students")
    parser.add_argument("--students", type=int, help="number of students (overrides --full)")
    parser.add_argument("--pdfs", action="store_true", help="with --full: render PDFs too")
    parser.add_argument("--no-pdfs", action="store_true", help="rows only")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--database-url", help="seed this database instead of a temporary one")
    args = parser.parse_args()
    students = args.students or (300_000 if args.full else 2_000)
    pdfs = not args.no_pdfs and (args.pdfs or not args.full)

    with tempfile.TemporaryDirectory(prefix="ssr-bench-") as scratch:
        data_dir = Path(scratch)
        url = args.database_url or f"sqlite:///{data_dir / 'bench.db'}"
        engine = db.make_engine(url)
        db.upgrade(engine)
        started = time.perf_counter()
        summary = demo.seed(
            engine,
            Settings(database_url=url, data_dir=data_dir),
            students=students,
            seed=args.seed,
            pdfs=pdfs,
            progress=_progress,
        )
        seconds = time.perf_counter() - started
        engine.dispose()

    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\n{summary}")
    print(f"students/s: {students / seconds:.0f}")
    print(f"PDFs/s: {summary.reports / seconds:.1f}" if pdfs else "PDFs/s: - (rows only)")
    print(f"peak RSS: {own:.0f} MB")
    print(
        f"result: students={students} seconds={seconds:.1f} "
        f"students_per_s={students / seconds:.0f} "
        f"pdfs_per_s={summary.reports / seconds:.1f} peak_rss_mb={own:.0f}"
    )


def _progress(done: int, total: int) -> None:
    print(f"\r{done}/{total} students", end="", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
