"""Benchmark of the aggregate reports: coverage by each dimension, deadline risk, cost by channel.

Default: the demo LEA with 5,000 students (rows only) in a temporary database. ``--full``: a copy
of the 300,000-student database at /work/notes/db300k.db (``--source`` to use another), upgraded.
Either way synthetic SSR rows (CAASPP for everyone, ELPAC for English learners, received over
three weeks) and delivery rows (a secure-email batch for a third of the schools in mixed states,
a print run, a paper order and a portal hand-over for the rest) are added, as one INSERT ...
SELECT each, so the reports have something to count. Then times the refresh that works out each
student's state into report_unit (done in the background by the reports screen when the figures
are older than ten minutes), and each report read from it. A report screen shows one breakdown,
the risk count and the cost table: ``report_ms`` is their sum.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Engine

from services.access import operators
from services.core import db
from services.core.settings import Settings
from services.core.working_days import WorkingCalendar
from services.demo import district as demo
from services.helpdesk import families as helpdesk
from services.reports import aggregates as reports

DEFAULT_SOURCE = Path("/work/notes/db300k.db")
TODAY = date(2026, 6, 24)

SYNTHETIC = [
    """INSERT INTO score_report (student_id, program, admin_year, test, language, version,
           file_path, sha256, size_bytes, received_at)
       SELECT id, 'CAASPP', 2026, 'SB', 'en', 1, 'synthetic/' || ssid || '.pdf',
              printf('%064d', id), 0, datetime('2026-06-01', '+' || (id % 21) || ' days')
       FROM student""",
    """INSERT INTO score_report (student_id, program, admin_year, test, language, version,
           file_path, sha256, size_bytes, received_at)
       SELECT id, 'ELPAC', 2026, 'SUMMATIVE', 'en', 1, 'synthetic/e' || ssid || '.pdf',
              printf('%064d', -id), 0, datetime('2026-05-20', '+' || (id % 14) || ' days')
       FROM student WHERE english_learner""",
    """INSERT INTO delivery_batch (lea_id, name, source, status, password_channel,
           password_delay_seconds, total_items, created_by, created_at)
       SELECT id, 'bench secure email', 'lea', 'running', 'email', 0, 0, 'bench',
              '2026-06-05 08:00:00.000000' FROM lea""",
    """INSERT INTO delivery_item (batch_id, guardian_id, school_id, language, address, ssr_count,
           state, attempts, next_attempt_at, updated_at)
       SELECT (SELECT max(id) FROM delivery_batch), g.id, NULL, g.preferred_language, g.email, 1,
              CASE g.id % 20 WHEN 0 THEN 'failed' WHEN 1 THEN 'pending'
                   WHEN 2 THEN 'document_sent' WHEN 3 THEN 'uncertain' ELSE 'done' END,
              0, '2026-06-05 08:00:00.000000', '2026-06-05 08:00:00.000000'
       FROM guardian g
       WHERE g.email IS NOT NULL AND EXISTS (
           SELECT 1 FROM student_guardian sg JOIN student s ON s.id = sg.student_id
           WHERE sg.guardian_id = g.id AND sg.is_primary AND s.school_id % 3 = 0)""",
    """UPDATE delivery_batch SET total_items = (SELECT count(*) FROM delivery_item
       WHERE batch_id = delivery_batch.id) WHERE created_by = 'bench'""",
    """INSERT INTO channel_batch (lea_id, channel, name, source, status, families, students, ssrs,
           pages, cost_cents, detail, created_by, created_at)
       SELECT lea.id, c.channel, 'bench ' || c.channel, 'lea', 'running', 0, 0, 0, 0, c.cents,
              '{}', 'bench', '2026-06-06 08:00:00.000000'
       FROM lea, (SELECT 'C' AS channel, 1234500 AS cents UNION ALL SELECT 'D', 2960000
                  UNION ALL SELECT 'A', 0) AS c""",
    """INSERT INTO channel_item (batch_id, student_id, guardian_id, state, updated_at)
       SELECT (SELECT max(id) FROM channel_batch WHERE channel =
                 CASE s.school_id % 3 WHEN 1 THEN 'C' ELSE 'D' END),
              s.id, sg.guardian_id,
              CASE WHEN s.id % 10 = 0 THEN 'no_address' WHEN s.id % 2 = 0 THEN 'done'
                   ELSE 'pending' END,
              '2026-06-06 08:00:00.000000'
       FROM student s LEFT JOIN student_guardian sg ON sg.student_id = s.id AND sg.is_primary
       WHERE s.school_id % 3 != 0""",
    """INSERT INTO channel_item (batch_id, student_id, guardian_id, state, updated_at)
       SELECT (SELECT max(id) FROM channel_batch WHERE channel = 'A'), s.id, g.id, 'done',
              '2026-06-06 08:00:00.000000'
       FROM student s JOIN student_guardian sg ON sg.student_id = s.id AND sg.is_primary
       JOIN guardian g ON g.id = sg.guardian_id
       WHERE g.uses_portal AND s.id % 4 = 0""",
]


def add_synthetic_rows(engine: Engine) -> None:
    with engine.begin() as connection:
        if connection.scalar(text("SELECT count(*) FROM score_report")):
            return  # already has reports (a copy made by an earlier run)
        for statement in SYNTHETIC:
            connection.execute(text(statement))


def timed(what: str, call, figures: dict[str, float]):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    result = call()
    figures[what] = (time.perf_counter() - started) * 1000
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--full", action="store_true", help="a copy of the 300,000-student db")
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--keep", type=Path, help="keep the prepared database at this path")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ssr-bench-") as scratch:
        path = args.keep or Path(scratch) / "bench.db"
        url = f"sqlite:///{path}"
        if args.full and not path.exists():
            shutil.copyfile(args.source, path)
        engine = db.make_engine(url)
        db.upgrade(engine)
        if not args.full and not path.stat().st_size > 1_000_000:
            demo.seed(engine, Settings(url, Path(scratch)), students=5_000, pdfs=False)
        started = time.perf_counter()
        add_synthetic_rows(engine)
        prepare_s = time.perf_counter() - started
        coordinator = operators.resolve(engine, "caaspp")
        calendar = WorkingCalendar()
        figures: dict[str, float] = {}
        units = timed("refresh", lambda: reports.refresh(engine, coordinator), figures)
        print(f"refresh: {units:,} units worked out in {figures['refresh'] / 1000:.1f} s")
        for dimension in reports.Dimension:
            rows = timed(
                dimension.value,
                lambda d=dimension: reports.coverage(engine, coordinator, d),  # type: ignore[misc]
                figures,
            )
            whole = reports.total(rows)
            print(
                f"{dimension.value:9} {len(rows):4} rows  {figures[dimension.value]:7.1f} ms  "
                f"units={whole.units:,} delivered={whole.delivered:,} "
                f"under_way={whole.on_channel:,} failed={whole.failed:,} none={whole.uncovered:,}"
            )
        risk = timed(
            "risk", lambda: reports.at_risk_count(engine, coordinator, TODAY, calendar), figures
        )
        timed(
            "risk_page",
            lambda: reports.at_risk(engine, coordinator, TODAY, calendar),
            figures,
        )
        costs = timed("cost", lambda: reports.cost_by_channel(engine, coordinator), figures)
        print(f"at risk {risk:,} ({figures['risk']:.1f} ms; page {figures['risk_page']:.1f} ms)")
        print(
            " · ".join(f"{c.option.value} ${c.cost:,.2f}" for c in costs),
            f"({figures['cost']:.1f} ms)",
        )
        site = operators.resolve(engine, "site")
        timed("site", lambda: reports.coverage(engine, site, reports.Dimension.GRADE), figures)
        with engine.connect() as connection:
            students = connection.execute(text("SELECT count(*) FROM student")).scalar_one()
            ssid, phone = connection.execute(
                text(
                    "SELECT s.ssid, g.phone FROM student s JOIN student_guardian sg"
                    " ON sg.student_id = s.id JOIN guardian g ON g.id = sg.guardian_id"
                    " WHERE g.phone IS NOT NULL ORDER BY s.id DESC LIMIT 1"
                )
            ).one()
        desk = operators.resolve(engine, "helpdesk")
        lookups = {"ssid": ssid, "name": "smith", "phone": phone, "broad": phone[:5]}
        for what, typed in lookups.items():
            hits = timed(
                f"lookup_{what}", lambda t=typed: helpdesk.search(engine, desk, t), figures
            )  # type: ignore[misc]
            print(
                f"help desk lookup {what:5} {typed!r:18} {len(hits):3} hits "
                f"{figures[f'lookup_{what}']:6.1f} ms"
            )
        engine.dispose()
    # A screen shows one breakdown, the risk count and the cost table at once.
    screen_ms = max(figures[d.value] for d in reports.Dimension) + figures["risk"] + figures["cost"]
    print(
        f"result: students={students} report_ms={screen_ms:.0f} "
        f"worst_breakdown_ms={max(figures[d.value] for d in reports.Dimension):.0f} "
        f"risk_ms={figures['risk']:.0f} cost_ms={figures['cost']:.0f} "
        f"site_grade_ms={figures['site']:.0f} "
        f"lookup_ms={max(v for k, v in figures.items() if k.startswith('lookup_')):.0f} refresh_s={figures['refresh'] / 1000:.1f} "
        f"prepare_s={prepare_s:.1f}"
    )


if __name__ == "__main__":
    main()
