"""Benchmark of packaging: SSRs encrypted (AES-256, R=6) and verified per second on all cores, next
to a loop of ``qpdf --encrypt U O 256 -- in out`` over the same files, as a ratio.

Sources are real demo SSRs (a small set, rendered once, used in turn, so the figure measures
encryption rather than rendering). Ours runs ``services.packaging.package_files`` in a process pool
with one process per core, a bounded number of chunks in flight, outputs deleted as they are
verified; the qpdf loop runs one process per file, one at a time, as a shell script would.
Default: 400 SSRs (qpdf: 200). ``--full``: 50,000 SSRs (qpdf: 2,000), with the parent's RSS sampled
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

from sqlmodel import Session, select

from services import db, demo, packaging
from services.models import ScoreReport
from services.settings import Settings

CHUNK = 25


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def sources(folder: Path, count: int) -> list[str]:
    """``count`` real SSR PDFs from a small demo LEA."""
    settings = Settings(database_url=f"sqlite:///{folder / 'bench.db'}", data_dir=folder)
    engine = db.make_engine(settings.database_url)
    db.upgrade(engine)
    demo.seed(engine, settings, students=max(10, count), seed=2026, pdfs=True)
    with Session(engine) as session:
        paths = list(session.exec(select(ScoreReport.file_path).limit(count)).all())
    engine.dispose()
    return paths


def encrypt_chunk(jobs: list[tuple[str, str]], password: str) -> int:
    """Encrypt and verify a chunk, then delete the outputs (disk use stays flat)."""
    done = packaging.package_files(jobs, password)
    for packaged in done:
        os.unlink(packaged.output)
    return len(done)


def ours(files: list[str], total: int, out: Path, processes: int) -> tuple[float, float, float]:
    """SSRs per second, and the parent's RSS at 10% and at the end."""
    jobs = [(files[i % len(files)], str(out / f"{i}.pdf")) for i in range(total)]
    chunks = [jobs[i : i + CHUNK] for i in range(0, total, CHUNK)]
    done = 0
    early = 0.0
    in_flight: set[Future[int]] = set()
    started = time.perf_counter()
    with ProcessPoolExecutor(processes, mp_context=get_context("forkserver")) as pool:
        for chunk in chunks:
            if len(in_flight) >= 2 * processes:
                finished, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                done += sum(f.result() for f in finished)
                if not early and done >= total / 10:
                    early = rss_mb()
            in_flight.add(pool.submit(encrypt_chunk, chunk, packaging.passphrase()))
        done += sum(f.result() for f in wait(in_flight).done)
    seconds = time.perf_counter() - started
    assert done == total
    return total / seconds, early or rss_mb(), rss_mb()


def qpdf_loop(files: list[str], total: int, out: Path) -> float:
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
    return total / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--full", action="store_true", help="50,000 SSRs (qpdf loop: 2,000)")
    parser.add_argument("--ssrs", type=int, help="SSRs for our pool (overrides --full)")
    parser.add_argument("--qpdf", type=int, help="SSRs for the qpdf loop")
    parser.add_argument("--sources", type=int, default=40, help="distinct source PDFs")
    args = parser.parse_args()
    total = args.ssrs or (50_000 if args.full else 400)
    qpdf_total = args.qpdf or (2_000 if args.full else 200)
    processes = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="ssr-bench-") as scratch:
        folder = Path(scratch)
        files = sources(folder, args.sources)
        out = folder / "out"
        out.mkdir()
        rate, rss_early, rss_end = ours(files, total, out, processes)
        print(
            f"ours: {rate:.1f} SSRs/s encrypted+verified on {processes} processes ({total:,} SSRs)"
        )
        qpdf_rate = qpdf_loop(files, qpdf_total, out)
        print(f"qpdf loop: {qpdf_rate:.1f} SSRs/s ({qpdf_total:,} SSRs, encrypt only)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"parent RSS: {rss_early:.0f} MB at 10%, {rss_end:.0f} MB at the end, peak {peak:.0f} MB")
    print(
        f"result: ssrs={total} processes={processes} ours_per_s={rate:.1f} "
        f"qpdf_loop_per_s={qpdf_rate:.1f} ratio={rate / qpdf_rate:.2f} "
        f"rss_10pct_mb={rss_early:.0f} rss_end_mb={rss_end:.0f} peak_rss_mb={peak:.0f}"
    )


if __name__ == "__main__":
    main()
