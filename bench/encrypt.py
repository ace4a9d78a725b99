"""Benchmark of packaging: SSRs encrypted (AES-256, R=6) and verified per second on all cores, next
to a loop of ``qpdf --encrypt U O 256 -- in out`` over the same files, as a ratio.

Sources are the real SSRs of a small demo LEA, grouped by family as the worker groups them (one
encrypted PDF per guardian), used in turn so the figure measures packaging rather than rendering.
Ours runs ``services.delivery.packaging.package`` (encrypt, then verify) in a process pool with one process
per core, a bounded number of families in flight, outputs deleted once verified, pool start-up
included; the qpdf loop encrypts the same SSR files one process per file, one at a time, as a
shell script would, and checks nothing. The machine is shared, so the qpdf loop runs half before
and half after ours and its rate is over both halves: both sides see the same load on average.
Default: 2,000 SSRs (qpdf: 400). ``--full``: 50,000 SSRs (qpdf: 2,000), with the parent's RSS sampled
at 10% and at the end to show memory stays flat.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path

from sqlmodel import Session, col, select

from services.core import db
from services.core.settings import Settings
from services.delivery import packaging
from services.demo import district as demo
from services.intake.report_store import ReportStore
from services.intake.score_reports import ScoreReport
from services.roster.tables import StudentGuardian


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def families(folder: Path, students: int) -> list[list[str]]:
    """The SSR files of each guardian of a small demo LEA, as the worker packages them."""
    settings = Settings(database_url=f"sqlite:///{folder / 'bench.db'}", data_dir=folder)
    engine = db.make_engine(settings.database_url)
    db.upgrade(engine)
    demo.seed(engine, settings, students=students, seed=2026, pdfs=True)
    store = ReportStore(settings.report_store)
    grouped: dict[int, list[str]] = {}
    with Session(engine) as session:
        rows = session.exec(
            select(StudentGuardian.guardian_id, ScoreReport.file_path)
            .join(ScoreReport, col(ScoreReport.student_id) == StudentGuardian.student_id)
            .order_by(col(StudentGuardian.guardian_id), col(ScoreReport.id))
        ).all()
    for guardian, path in rows:
        grouped.setdefault(guardian, []).append(str(store.path(path)))
    engine.dispose()
    return list(grouped.values())


def package_family(sources: list[str], output: str, password: str) -> int:
    """Package one family, then delete the output (disk use stays flat); returns its SSRs."""
    packaging.package(sources, Path(output), password)
    os.unlink(output)
    return len(sources)


def ours(
    groups: list[list[str]], total: int, out: Path, processes: int
) -> tuple[float, int, float, float]:
    """SSRs per second over at least ``total`` SSRs, the SSRs done, and RSS at 10% and the end."""
    done = submitted = index = 0
    early = 0.0
    in_flight: set[Future[int]] = set()
    started = time.perf_counter()
    with ProcessPoolExecutor(processes, mp_context=get_context("forkserver")) as pool:
        while submitted < total:
            if len(in_flight) >= 4 * processes:
                finished, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                done += sum(f.result() for f in finished)
                if not early and done >= total / 10:
                    early = rss_mb()
            family = groups[index % len(groups)]
            output = str(out / f"{index % (8 * processes)}.pdf")
            in_flight.add(pool.submit(package_family, family, output, packaging.passphrase()))
            submitted += len(family)
            index += 1
        done += sum(f.result() for f in wait(in_flight).done)
    seconds = time.perf_counter() - started
    return done / seconds, done, early or rss_mb(), rss_mb()


def qpdf_loop(files: list[str], total: int, out: Path) -> float:
    """Seconds to encrypt ``total`` SSR files one ``qpdf`` process at a time."""
    started = time.perf_counter()
    for i in range(total):
        target = out / f"q{i}.pdf"
        subprocess.run(
            [
                "qpdf",
                "--encrypt",
                "user-words-here",
                "owner-secret",
                "256",
                "--",
                files[i % len(files)],
                str(target),
            ],
            check=True,
        )
        target.unlink()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--full", action="store_true", help="50,000 SSRs (qpdf loop: 2,000)")
    parser.add_argument("--ssrs", type=int, help="SSRs for our pool (overrides --full)")
    parser.add_argument("--qpdf", type=int, help="SSRs for the qpdf loop")
    parser.add_argument("--students", type=int, default=60, help="demo students for the sources")
    args = parser.parse_args()
    total = args.ssrs or (50_000 if args.full else 2_000)
    qpdf_total = args.qpdf or (2_000 if args.full else 400)
    processes = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="ssr-bench-") as scratch:
        folder = Path(scratch)
        groups = families(folder, args.students)
        files = [path for group in groups for path in group]
        out = folder / "out"
        out.mkdir()
        before = qpdf_loop(files, qpdf_total // 2, out)
        rate, done, rss_early, rss_end = ours(groups, total, out, processes)
        print(
            f"ours: {rate:.1f} SSRs/s encrypted+verified on {processes} processes ({done:,} SSRs, "
            f"{len(files) / len(groups):.2f} SSRs per family)"
        )
        after = qpdf_loop(files, qpdf_total - qpdf_total // 2, out)
        qpdf_rate = qpdf_total / (before + after)
        print(
            f"qpdf loop: {qpdf_rate:.1f} SSRs/s ({qpdf_total:,} SSRs, encrypt only; "
            f"{qpdf_total // 2 / before:.1f} before ours, {(qpdf_total - qpdf_total // 2) / after:.1f} after)"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"parent RSS: {rss_early:.0f} MB at 10%, {rss_end:.0f} MB at the end, peak {peak:.0f} MB")
    print(
        f"result: ssrs={done} processes={processes} ours_per_s={rate:.1f} "
        f"qpdf_loop_per_s={qpdf_rate:.1f} ratio={rate / qpdf_rate:.2f} "
        f"rss_10pct_mb={rss_early:.0f} rss_end_mb={rss_end:.0f} peak_rss_mb={peak:.0f}"
    )


if __name__ == "__main__":
    main()
