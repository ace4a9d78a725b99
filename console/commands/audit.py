"""``ssr-console audit``: check the hash chain, and print or check an anchor kept outside it.

``audit verify`` walks the chain; with ``--anchor SEQ:HASH`` (one the scheduler mailed, or one
``audit anchor`` printed earlier) it also fails when the chain no longer holds that event with
that hash: the chain alone cannot show that its end was cut off, or that every row was rewritten
and every hash recomputed.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from console.output import say

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from services.core.settings import Settings


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """The ``audit`` command and its subcommands."""
    parser = commands.add_parser("audit", help="audit log")
    parser.set_defaults(run=run)
    sub = parser.add_subparsers(dest="audit_command")
    verify = sub.add_parser("verify", help="check the audit hash chain")
    verify.add_argument(
        "--anchor",
        metavar="SEQ:HASH",
        help="also check that the chain still holds this entry (from `audit anchor` or the "
        "daily anchor mail)",
    )
    sub.add_parser("anchor", help="print the chain head as SEQ:HASH, to keep outside the database")


def run(args: argparse.Namespace, engine: Engine, settings: Settings) -> int:
    from services.audit import log as audit

    if args.audit_command == "anchor":
        head = audit.current_anchor(engine)
        if head is None:
            say("ssr-console: the audit log is empty: nothing to anchor yet", file=sys.stderr)
            return 1
        say(str(head))
        return 0
    if args.audit_command != "verify":
        say("ssr-console: audit needs a subcommand: verify or anchor", file=sys.stderr)
        return 2
    anchor = audit.Anchor.parse(args.anchor) if args.anchor is not None else None
    result = audit.verify(engine, anchor=anchor)
    if result.ok:
        held = f"; it holds event {anchor}" if anchor else ""
        say(f"audit log intact: {result.events} events verified{held}")
        return 0
    say(f"audit log TAMPERED: {result.problem} ({result.events} events read)", file=sys.stderr)
    return 1
