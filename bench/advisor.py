"""Benchmark of the advisor's roster facts: the SQL aggregates behind the recommendation.

Seeds the demo LEA (rows only) into a fresh SQLite database, then times ``roster_facts`` for the
whole LEA and for one school, and ``recommend`` on the result. Default: 5,000 students;
``--full``: 300,000. Peak RSS after the queries shows that no rows are loaded into memory.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from sqlalchemy import select

from services.core import db
from services.core.settings import Settings
from services.demo import district as demo
from services.plan.advisor import Answers, recommend
from services.roster import facts as roster_facts
from services.roster.tables import LEA


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--full", action="store_true", help="300,000 students")
    parser.add_argument("--students", type=int, help="number of students (overrides --full)")
    parser.add_argument("--database-url", help="use this database instead of a temporary one")
    args = parser.parse_args()
    students = args.students or (300_000 if args.full else 5_000)

    with tempfile.TemporaryDirectory(prefix="ssr-bench-") as scratch:
        url = args.database_url or f"sqlite:///{Path(scratch) / 'bench.db'}"
        engine = db.make_engine(url)
        db.upgrade(engine)
        demo.seed(engine, Settings(url, Path(scratch)), students=students, pdfs=False)
        rss_seeded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        with engine.connect() as connection:
            lea_id = connection.scalar(select(LEA.id).where(LEA.cds_code == demo.LEA_CDS))
        started = time.perf_counter()
        facts = roster_facts.roster_facts(engine, lea_id)
        lea_seconds = time.perf_counter() - started
        school_id = roster_facts.schools(engine, lea_id)[0][0]
        started = time.perf_counter()
        roster_facts.roster_facts(engine, lea_id, school_id)
        school_seconds = time.perf_counter() - started
        started = time.perf_counter()
        rec = recommend(Answers(True, True, False, facts.portal_share or 0.0), facts)
        recommend_ms = (time.perf_counter() - started) * 1000
        engine.dispose()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{facts.students} students, {facts.families} families, {facts.ssrs} SSRs")
    print(f"recommendation: {rec.label} ({rec.approach.value})")
    print(
        f"result: students={students} lea_facts_s={lea_seconds:.3f} "
        f"school_facts_s={school_seconds:.3f} recommend_ms={recommend_ms:.2f} "
        f"rss_after_seed_mb={rss_seeded:.0f} rss_after_facts_mb={rss:.0f}"
    )


if __name__ == "__main__":
    main()
