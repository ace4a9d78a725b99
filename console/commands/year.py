"""``ssr-console year``: the LEA's school year, and starting the next one
(``services.plan.school_year``)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from console.output import say
from services.core.errors import InvalidInput

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from services.core.settings import Settings


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser("year", help="the school year: show it, start the next")
    actions = parser.add_subparsers(dest="year_command", required=True)
    show = actions.add_parser("show", help="the LEA's current school year")
    starting = actions.add_parser(
        "start",
        help="start the next school year: a fresh plan and coverage; the credential, "
        "operators and roster carry over",
        description="A year is named by its administration, the spring of the tests: 2027 is "
        "school year 2026-27. Last year's deliveries stay in the history and its reports.",
    )
    starting.add_argument(
        "year", nargs="?", type=int, help="its administration year (default: the next one)"
    )
    starting.add_argument(
        "--leave-owed",
        action="store_true",
        help="start even though students of the current year still wait for their SSRs",
    )
    for action in (show, starting):
        # also after the subcommand, as `year start 2027 --operator maria`
        action.add_argument("--operator", default=argparse.SUPPRESS, help="who you are")
        action.set_defaults(run=run)


def run(args: argparse.Namespace, engine: Engine, settings: Settings) -> int:
    from console.commands import require_current_schema
    from services.access import operators
    from services.plan import school_year

    require_current_schema(engine)
    if not settings.operator:  # --operator before or after `year start` lands in the same place
        raise InvalidInput("year needs an operator: --operator NAME or $SSR_OPERATOR")
    operator = operators.resolve(engine, settings.operator)
    if args.year_command == "show":
        say(school_year.current(engine, operator).text())
        return 0
    started = school_year.start(
        engine, operator, args.year, calendar=settings.calendar, leave_owed=args.leave_owed
    )
    say(started.text())
    return 0
