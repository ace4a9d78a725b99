"""``ssr-console roster import``: the roster from the SIS (``services.roster.sis_import``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from console.output import say


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    roster = commands.add_parser("roster", help="the roster from the SIS")
    actions = roster.add_subparsers(dest="roster_command", required=True)
    importing = actions.add_parser(
        "import",
        help="import OneRoster 1.1 CSV (zip or folder) and the SIS contacts CSV",
        description="Students are matched by SSID and guardians by sourcedId: importing again "
        "updates them. Files must be UTF-8 and lie in an intake folder. A student missing from "
        "a full import is withdrawn (kept, out of new batches and deadlines).",
    )
    importing.add_argument(
        "paths", nargs="+", metavar="PATH", help="OneRoster zip or folder, and the contacts CSV"
    )
    importing.add_argument(
        "--dry-run", action="store_true", help="show new, changed and missing; write nothing"
    )
    importing.add_argument(
        "--partial",
        action="store_true",
        help="the files hold part of the LEA (one school): withdraw nobody",
    )
    importing.set_defaults(run=_import)


def _import(args: argparse.Namespace, engine, settings) -> int:  # type: ignore[no-untyped-def]
    from console.commands import require_current_schema
    from services.access import operators
    from services.core.errors import InvalidInput
    from services.roster import sis_import

    require_current_schema(engine)
    if not settings.operator:
        raise InvalidInput("roster import needs an operator: --operator NAME or $SSR_OPERATOR")
    operator = operators.resolve(engine, settings.operator)
    options = sis_import.RosterOptions.from_settings(
        settings, full=not args.partial, dry_run=args.dry_run
    )
    result = sis_import.import_for(
        engine,
        settings,
        operator,
        [Path(p).absolute() for p in args.paths],  # relative to here, not to the inbox
        options,
        lambda phase, done: say(
            f"reading users.csv ({phase}): {done:,} lines", end="", file=sys.stderr, overwrite=True
        ),
    )
    say("", file=sys.stderr)
    for refused in result.refused:
        say(f"refused {refused}", file=sys.stderr)
    if result.refused_count > len(result.refused):
        say(f"... and {result.refused_count - len(result.refused):,} more", file=sys.stderr)
    say(result)
    return 0
