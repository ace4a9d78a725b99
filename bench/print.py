"""Benchmark of printing locally (option C): a print batch of every family of the demo LEA.

Seeds the demo LEA with real SSR PDFs into a temporary folder, then times recording the batch
(one INSERT ... SELECT), the print run (cover sheets, merging, split files, manifest) and the
coverage summary after it. Default: 1,000 students; ``--full``: 300,000 (about 14 GB of SSR PDFs
and as much again of print files: run it on a machine with the disk for it). Peak RSS before and
after the run shows whether printing holds more than one split file's pages in memory.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from services.access import operators
from services.channels import print_batch
from services.channels.print_batch import PrintOptions
from services.core import db
from services.core.settings import Settings
from services.demo import district as demo
from services.plan import coverage


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--full", action="store_true", help="300,000 students")
    parser.add_argument("--students", type=int, help="number of students (overrides --full)")
    parser.add_argument("--split-mb", type=int, default=50, help="print file size limit")
    args = parser.parse_args()
    students = args.students or (300_000 if args.full else 1_000)

    with tempfile.TemporaryDirectory(prefix="ssr-bench-print-") as scratch:
        folder = Path(scratch)
        url = f"sqlite:///{folder / 'bench.db'}"
        engine = db.make_engine(url)
        db.upgrade(engine)
        demo.seed(engine, Settings(url, folder), students=students, pdfs=True)
        operator = operators.resolve(engine, "caaspp")
        rss_seeded = rss_mb()

        started = time.perf_counter()
        batch = print_batch.create(
            engine,
            operator,
            name="Bench",
            who=coverage.Who.ALL,
            options=PrintOptions(split_mb=args.split_mb),
        )
        create_s = time.perf_counter() - started
        assert batch.id is not None
        started = time.perf_counter()
        result = print_batch.run(engine, operator, batch.id, folder / "print")
        run_s = time.perf_counter() - started
        output_mb = sum(p.stat().st_size for p in result.files) / 2**20
        largest_mb = max(p.stat().st_size for p in result.files) / 2**20
        started = time.perf_counter()
        summary = coverage.summary(engine, operator)
        coverage_s = time.perf_counter() - started
        engine.dispose()
    print(
        f"{result.families} families: {result.printed} printed, {result.not_printed} listed; "
        f"{result.pages} pages in {len(result.files)} files ({output_mb:.0f} MB, largest "
        f"{largest_mb:.1f} MB), cost {result.cost}"
    )
    print(f"coverage: {summary.once} of {summary.students} students on one channel")
    print(
        f"result: students={students} families={result.families} pages={result.pages} "
        f"files={len(result.files)} create_s={create_s:.2f} print_s={run_s:.1f} "
        f"families_per_s={result.families / run_s:.0f} coverage_s={coverage_s:.2f} "
        f"rss_after_seed_mb={rss_seeded:.0f} rss_after_print_mb={rss_mb():.0f}"
    )


if __name__ == "__main__":
    main()
