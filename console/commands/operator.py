"""``ssr-console operator ...``: add, list, disable, enable and re-role operators, and their SSH keys.

Acts as ``--operator NAME`` (or ``$SSR_OPERATOR``), whose permissions apply exactly as on the
Operators screen. Exit 0 on success, 1 when refused (the sentence goes to stderr), 2 on bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sqlalchemy.engine import Engine

from console.output import say
from services.core.errors import ConsoleError
from services.core.settings import Settings

ROLES = ("lea_caaspp", "lea_elpac", "site", "tech", "helpdesk")


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    group = commands.add_parser(
        "operator", help="the people who sign in: add, list, disable, roles, SSH keys"
    )
    actions = group.add_subparsers(dest="operator_command", required=True)
    add = actions.add_parser("add", help="add an operator to your LEA")
    add.add_argument("username")
    add.add_argument("--name", required=True, help="full name")
    add.add_argument("--email")
    _roles_and_school(add)
    add.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="KEY",
        help="an SSH public key: a .pub file, the key text, or - for stdin (repeatable)",
    )
    listing = actions.add_parser("list", help="everyone in your LEA")
    listing.add_argument("--json", action="store_true", help="as JSON, for scripts")
    for name, text in (("disable", "stop them signing in"), ("enable", "let them sign in again")):
        actions.add_parser(name, help=text).add_argument("username")
    role = actions.add_parser("set-role", help="change someone else's role (and school)")
    role.add_argument("username")
    _roles_and_school(role)
    for name, text in (("add-key", "add an SSH public key"), ("remove-key", "remove one")):
        keyed = actions.add_parser(name, help=text)
        keyed.add_argument("username")
        keyed.add_argument(
            "key",
            help="a .pub file, the key text, - for stdin"
            + (", or its SHA256: fingerprint" if name == "remove-key" else ""),
        )
    group.set_defaults(run=run)


def _roles_and_school(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--role",
        action="append",
        required=True,
        choices=ROLES,
        help="the role; give it twice for a person holding both coordinator roles",
    )
    parser.add_argument("--school", help="a site coordinator's school (14-digit CDS code)")


def run(args: argparse.Namespace, engine: Engine, settings: Settings) -> int:
    from console.commands import require_current_schema
    from services.access import operators as signin

    require_current_schema(engine)
    if not settings.operator:
        say("ssr-console operator: say who you are with --operator NAME", file=sys.stderr)
        return 2
    try:
        actor = signin.resolve(engine, settings.operator)
        return _act(args, engine, actor)
    except ConsoleError as refusal:
        say(f"ssr-console operator {args.operator_command}: {refusal}", file=sys.stderr)
        return 1


def _act(args: argparse.Namespace, engine: Engine, actor) -> int:  # type: ignore[no-untyped-def]
    from services.accounts import keys, operators

    command = args.operator_command
    if command == "list":
        found = operators.list_operators(engine, actor)
        if args.json:
            say(json.dumps([o.as_json() for o in found], indent=2))
        for o in [] if args.json else found:
            state = "" if o.active else " (disabled)"
            school = f" at {o.school}" if o.school else ""
            say(
                f"{o.username}{state}: {o.display_name}, {o.roles_label}{school}, "
                f"{o.email or 'no email'}, {len(o.keys)} key(s)"
            )
        return 0
    if command == "add":
        new = operators.NewOperator(
            args.username,
            args.name,
            tuple(args.role),
            args.email,
            args.school,
            tuple(_key_text(k) for k in args.key),
        )
        added = operators.add(engine, actor, new)
        say(f"{added.username} added: {added.roles_label}, {len(added.keys)} key(s)")
    elif command in ("disable", "enable"):
        changed = operators.set_active(engine, actor, args.username, command == "enable")
        say(f"{args.username} {command}d" if changed else f"{args.username} already {command}d")
    elif command == "set-role":
        changed = operators.set_roles(engine, actor, args.username, args.role, args.school)
        say(f"{args.username}: role changed" if changed else f"{args.username}: unchanged")
    elif command == "add-key":
        say(
            f"{args.username} may sign in with {keys.add_key(engine, actor, args.username, _key_text(args.key))}"
        )
    else:
        key = args.key if args.key.startswith("SHA256:") else _key_text(args.key)
        say(f"{args.username}: key {keys.remove_key(engine, actor, args.username, key)} removed")
    return 0


def _key_text(value: str) -> str:
    """A key from stdin (-), from a .pub file, or given as text."""
    if value == "-":
        return sys.stdin.read()
    try:
        return Path(value).expanduser().read_text(encoding="utf-8", errors="replace")
    except OSError:  # not a file (a key's text is no file name, and may be too long for one)
        return value
