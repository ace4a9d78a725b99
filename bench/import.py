"""Benchmark of SSR intake: SSRs/s and peak memory importing the demo LEA's SSR PDFs.

Default: 1,700 demo students (about 2,000 SSRs: every student has a CAASPP SSR, English learners
an ELPAC one too). ``--full``: 255,000 students, about 300,000 SSRs. ``--students N``: any size.
The demo (database and PDFs) is generated once into ``--workdir`` and reused; before each run its
``score_report`` rows and the content store are cleared so every PDF is imported afresh, through
the same code as ``ssr-console import``. The import runs in a child process, so its peak RSS is
the import's alone, and RSS is sampled at each quarter of the run to show it stays flat.
``--workers`` sets the PDF-checking processes (default: one per core).

Measured 2026-11-25 on the shared 2-core machine (load average 6-8 from other work), 2 workers:
2,090 SSRs 298/s, peak RSS 91 MB; 20,503 SSRs 295/s, 94 MB; 50,459 SSRs 258/s, 99 MB (RSS 92-95
MB from the first quarter to the end); 1.6-1.7 ms CPU per SSR in the importing process.
``--full`` (255,000 students, 306,898 SSRs; the demo took about 45 minutes to render): 814.7 s,
377 SSRs/s, RSS 96/100/100/98 MB at each quarter, peak 113 MB.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import shutil
import sys
import time
from pathlib import Path

from sqlalchemy import delete, func, select
from sqlmodel import Session

from services.core import db
from services.core.settings import Settings
from services.demo import district as demo
from services.intake import importer as intake
from services.intake.records import ImportException, ImportRun, ReportReceipt
from services.intake.report_store import CONTENT_DIR
from services.intake.score_reports import ScoreReport

PAGE = os.sysconf("SC_PAGE_SIZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--full", action="store_true", help="about 300,000 SSRs")
    parser.add_argument("--students", type=int, help="demo students (overrides --full)")
    parser.add_argument("--workdir", type=Path, help="where the demo is kept between runs")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="PDF checkers")
    args = parser.parse_args()
    students = args.students or (255_000 if args.full else 1_700)
    workdir = args.workdir or Path(f"/tmp/ssr-bench-import-{students}")
    settings = Settings(
        database_url=f"sqlite:///{workdir / 'bench.db'}",
        data_dir=workdir,
        extra={"intake": {"folders": [str(workdir / "reports")]}},  # the demo's PDFs, in place
    )
    engine = db.make_engine(settings.database_url)
    db.upgrade(engine)
    if not demo.exists(engine):
        started = time.perf_counter()
        summary = demo.seed(engine, settings, students=students, progress=_seed_progress)
        print(f"\ndemo generated in {time.perf_counter() - started:.0f}s: {summary.reports} SSRs")
    expected = _reset(engine, settings)
    engine.dispose()

    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    worker = context.Process(target=_import, args=(settings, args.workers, child))
    worker.start()
    child.close()  # so recv() ends with EOFError if the import process dies
    try:
        ssrs, seconds, peak, cpu, samples, stored = parent.recv()
    except EOFError:
        sys.exit(f"the import process failed (exit code {worker.join() or worker.exitcode})")
    worker.join()
    print()
    print(f"imported {stored} of {expected} demo SSRs ({ssrs} SSRs read) in {seconds:.1f}s")
    print("RSS by progress: " + ", ".join(f"{pct}%: {mb:.0f} MB" for pct, mb in samples))
    print(f"SSRs/s: {ssrs / seconds:.0f}")
    print(f"importing process CPU: {cpu:.1f}s ({1000 * cpu / max(ssrs, 1):.1f} ms per SSR)")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"peak RSS: {peak:.0f} MB (each of {args.workers} PDF-check workers holds one PDF)")
    print(
        f"result: ssrs={ssrs} seconds={seconds:.1f} ssrs_per_s={ssrs / seconds:.0f} "
        f"peak_rss_mb={peak:.0f}"
    )


def _reset(engine, settings: Settings) -> int:  # type: ignore[no-untyped-def]
    """Forget earlier imports so the demo's PDFs are all new to intake; returns how many there are."""
    with Session(engine) as session:
        count = session.scalar(select(func.count()).select_from(ScoreReport)) or 0
        if count:
            session.execute(delete(ReportReceipt))
            session.execute(delete(ImportException))
            session.execute(delete(ImportRun))
            session.execute(delete(ScoreReport))
            session.commit()
            (settings.data_dir / "expected").write_text(str(count))
    shutil.rmtree(settings.report_store / CONTENT_DIR, ignore_errors=True)
    return int((settings.data_dir / "expected").read_text())


def _import(settings: Settings, workers: int, pipe) -> None:  # type: ignore[no-untyped-def]
    """The child: import the demo folder, sampling RSS at each quarter of the expected SSRs."""
    engine = db.make_engine(settings.database_url)
    expected = int((settings.data_dir / "expected").read_text())
    marks = [expected * q // 4 for q in (1, 2, 3)]
    samples: list[tuple[int, float]] = []

    def progress(p: intake.Progress) -> None:
        while marks and p.reports >= marks[0]:
            samples.append((25 * (len(samples) + 1), _rss_mb()))
            marks.pop(0)
        print(
            f"\rimporting: {p.reports} SSRs, {p.reports_per_s:.0f}/s, {_rss_mb():.0f} MB",
            end="",
            file=sys.stderr,
            flush=True,
        )

    folder = settings.report_store / demo.LEA_CDS
    started = time.perf_counter()
    options = intake.IntakeOptions(workers=workers)
    summary = intake.import_paths(engine, settings, [folder], None, options, progress)
    seconds = time.perf_counter() - started
    samples.append((100, _rss_mb()))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime
    pipe.send((summary.progress.reports, seconds, peak, cpu, samples, summary.progress.stored))


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE / 1024 / 1024


def _seed_progress(done: int, total: int) -> None:
    print(f"\rgenerating demo: {done}/{total} students", end="", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
