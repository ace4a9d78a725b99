"""``ssr-console report coverage | status | at-risk | cost``: the Coverage and Reports screens' figures.

- ``coverage``: students with SSRs on exactly one channel, on several, on none, per channel
  (``services.plan.coverage``); ``--csv`` lists the uncovered students with their family and why.
- ``status``: delivery by school, grade, language, program or channel (``--by``), worked out afresh
  (``services.reports.aggregates``): delivered, to mail, sending, failed, in no batch.
- ``at-risk``: students whose SSRs may miss the 5 CCR 863 / 11518.15 deadline (within a week of
  working days, or past), by SSID.
- ``cost``: money spent so far per channel, in batches not cancelled.

The scope is the operator's (a site coordinator's school, anyone else's LEA), with the screens'
permissions. ``--csv FILE`` writes what is shown (0600, cells that start like a formula quoted:
``services.core.csv_export``); ``--json`` prints it for scripts. Exit 0 done, 1 refused, 2 bad usage.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from datetime import date
from decimal import Decimal
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

from console.output import say, say_json

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from services.access.tables import Operator
    from services.core.settings import Settings

DIMENSIONS = ("school", "grade", "language", "program", "channel")
"""``--by``: the Reports screen's breakdowns (keys 1-5), as ``services.reports.aggregates.Dimension``."""
SHOWN = 20
"""Students listed on the terminal; ``--csv`` and ``--json`` have them all."""
PAGE = 1000


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from console.commands import add_group, add_json

    summary = "coverage, delivery status, students at risk, cost (CSV or JSON)"
    actions = add_group(commands, "report", summary, __doc__, run)
    for name, text in (
        ("coverage", "students on one channel, several, none; --csv: the uncovered"),
        ("status", "delivery by school, grade, language, program or channel"),
        ("at-risk", "students whose SSRs may miss their deadline"),
        ("cost", "money spent so far per channel"),
    ):
        report = actions.add_parser(name, help=text)
        if name == "status":
            report.add_argument("--by", choices=DIMENSIONS, default="school")
        report.add_argument("--csv", type=Path, metavar="FILE", help="write it to this .csv file")
        add_json(report)


def run(args: argparse.Namespace, engine: Engine, settings: Settings) -> int:
    from console.commands import as_operator

    act = ACTIONS[args.report_command]
    return as_operator(
        engine,
        settings,
        f"report {args.report_command}",
        lambda operator: act(args, engine, settings, operator),
    )


def _coverage(
    args: argparse.Namespace, engine: Engine, settings: Settings, operator: Operator
) -> int:
    from services.access.permissions import Permission, allowed
    from services.plan import coverage

    found = coverage.summary(engine, operator)
    figures = {
        "students": found.students,
        "once": found.once,
        "several": found.several,
        "uncovered": found.uncovered,
        "by_channel": {o.value: n for o, n in found.by_channel.items()},
        "corrected": found.corrected,
        "families": found.families,  # households, as the advisor and the batches count them
        "guardians": found.guardians,  # entitled to the records (several may share a household)
        "translated": found.translated,  # families sent an SSR in their own language
        "english_fallback": found.english_fallback,  # families written to in English for want of texts
        "complete": found.complete,
    }
    header = ("ssid", "school", "grade", "family", "why")

    def students() -> Iterator[Sequence[object]]:
        for page in _pages(
            lambda offset: coverage.uncovered(engine, operator, limit=PAGE, offset=offset)
        ):
            yield from ((u.ssid, u.school, u.grade, u.guardian, u.why.value) for u in page)

    if args.csv:  # the uncovered students, for whoever may see students (refused otherwise)
        _write_csv(args.csv, header, students())
    if args.json:
        say_json(figures)
        return 0
    say(found.text())
    if allowed(operator, Permission.VIEW_STUDENTS) and found.uncovered and not args.csv:
        say("Uncovered (SSID, school, grade, family, why):")
        for row in islice(students(), SHOWN):
            say("  " + ", ".join(str(cell) for cell in row))
        if found.uncovered > SHOWN:
            say(f"  ... {found.uncovered - SHOWN:,} more: --csv FILE lists them all")
    return 0


def _status(
    args: argparse.Namespace, engine: Engine, settings: Settings, operator: Operator
) -> int:
    from services.reports import aggregates as reports

    reports.refresh(engine, operator)  # a script wants the figures as they are now
    rows = reports.coverage(engine, operator, reports.Dimension(args.by))
    whole = reports.total(rows)
    at_risk = reports.at_risk_count(engine, operator, date.today(), settings.calendar)
    corrected = reports.corrected_count(engine, operator)
    if args.csv:
        _write_csv(args.csv, reports.COLUMNS, (reports.as_cells(r) for r in [*rows, whole]))
    if args.json:
        say_json(
            {
                "by": args.by,
                "as_of": reports.refreshed_at(engine, operator),
                "rows": [asdict(r) for r in rows],
                "total": asdict(whole),
                "at_risk": at_risk,
                "corrected": corrected,
            }
        )
        return 0
    _table(reports.COLUMNS, [reports.as_cells(r) for r in [*rows, whole]])
    say(f"At risk: {at_risk:,} (report at-risk lists them)")
    if corrected:
        say(f"Corrected, not yet sent: {corrected:,} (batch scope corrections)")
    return 0


def _at_risk(
    args: argparse.Namespace, engine: Engine, settings: Settings, operator: Operator
) -> int:
    from services.access.permissions import Permission, require
    from services.reports import aggregates as reports

    require(operator, Permission.VIEW_STUDENTS)  # it names students, as on the screen
    reports.refresh(engine, operator)
    today, calendar = date.today(), settings.calendar
    found = [
        unit
        for page in _pages(
            lambda offset: reports.at_risk(
                engine, operator, today, calendar, limit=PAGE, offset=offset
            )
        )
        for unit in page
    ]
    header = ("ssid", "school", "grade", "program", "received", "deadline", "state")
    cells = [(r.ssid, r.school, r.grade, r.program, r.received, r.deadline, r.state) for r in found]
    if args.csv:
        _write_csv(args.csv, header, cells)
    if args.json:
        say_json([asdict(r) for r in found])
        return 0
    if not found:
        say("No student's SSRs are at risk of missing their deadline.")
        return 0
    say(f"{len(found):,} at risk, oldest receipt first:")
    _table(header, [tuple(str(c) for c in row) for row in cells[:SHOWN]])
    if len(found) > SHOWN:
        say(f"... {len(found) - SHOWN:,} more: --csv FILE lists them all")
    return 0


def _cost(args: argparse.Namespace, engine: Engine, settings: Settings, operator: Operator) -> int:
    from services.plan.advisor import money
    from services.reports import aggregates as reports

    costs = reports.cost_by_channel(engine, operator)
    header = ("channel", "batches", "families", "cost")
    cells = [(f"{c.option.value} {c.option.caption}", c.batches, c.families, c.cost) for c in costs]
    if args.csv:
        _write_csv(args.csv, header, cells)
    if args.json:
        say_json(
            [
                {
                    "channel": c.option.value,
                    "batches": c.batches,
                    "families": c.families,
                    "cost": str(c.cost),
                }
                for c in costs
            ]
        )
        return 0
    locale = operator.language  # money as every screen shows it (services.plan.advisor.money)
    _table(header, [(name, f"{n:,}", f"{f:,}", money(cost, locale)) for name, n, f, cost in cells])
    say(f"Total: {money(sum((c.cost for c in costs), Decimal(0)), locale)}")
    return 0


def _pages(fetch: Callable[[int], list[Any]]) -> Iterator[list[Any]]:
    """Every page of a paged service listing, until one comes back empty."""
    offset = 0
    while page := fetch(offset):
        yield page
        offset += len(page)


def _write_csv(path: Path, header: Sequence[object], rows: Any) -> None:
    from sys import stderr

    from services.core import csv_export

    count = csv_export.export(path.expanduser().absolute(), header, rows)
    say(f"{count:,} rows written to {path}", file=stderr)


def _table(header: Sequence[str], rows: list[Sequence[str]]) -> None:
    """Columns padded to their widest cell; the first left-aligned, the figures right-aligned."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = [
            str(cell).ljust(width) if i == 0 else str(cell).rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        say("  ".join(cells).rstrip())


ACTIONS = {"coverage": _coverage, "status": _status, "at-risk": _at_risk, "cost": _cost}
