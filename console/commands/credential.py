"""``ssr-console credential``: record the credential TOMS issued, verify it, show its status.

The secret key is never an argument (every account on the server could read it in ``ps``): it
comes from an owner-only file, standard input (``--secret-file -``), ``$SSR_TOMS_SECRET`` or a
prompt without echo.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from console.commands import as_operator, bad_usage
from console.output import say
from services.core.errors import InvalidInput

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from services.access.tables import Operator
    from services.core.settings import Settings

TOMS_SECRET_ENV = "SSR_TOMS_SECRET"  # noqa: S105 - the name of the variable holding it


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """The ``credential`` command and its subcommands."""
    parser = commands.add_parser("credential", help="the SIS-vendor credential TOMS issued")
    parser.set_defaults(run=run)
    sub = parser.add_subparsers(dest="credential_command")
    record = sub.add_parser(
        "record", help="record the username and secret key TOMS showed, verified with TOMS"
    )
    record.add_argument("--username", required=True, help="the username TOMS showed")
    add_secret_argument(record, "the secret key TOMS showed")
    record.add_argument(
        "--generated",
        type=date.fromisoformat,
        metavar="YYYY-MM-DD",
        help="the day it was generated in TOMS (default today); it expires a year later",
    )
    record.add_argument(
        "--reset", type=int, metavar="N", help="the coordinated reset request it completes"
    )
    sub.add_parser("verify", help="ask TOMS again whether the recorded credential is valid")
    sub.add_parser("status", help="the credential's status and expiry")


def add_secret_argument(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--secret-file",
        type=Path,
        help=f"{what}: a file (mode 0600), or - for standard input; default ${TOMS_SECRET_ENV}, "
        "else asked for without echo",
    )


def read_secret(secret_file: Path | None, prompt: str) -> str:
    """The secret from ``--secret-file`` (``-``: stdin), ``$SSR_TOMS_SECRET`` or a no-echo prompt."""
    from console import config

    if secret_file is not None and str(secret_file) == "-":
        return sys.stdin.readline().strip()
    if secret_file is not None:
        return config.read_secret_file(secret_file, "--secret-file")
    if os.environ.get(TOMS_SECRET_ENV):
        return os.environ[TOMS_SECRET_ENV]
    if sys.stdin.isatty():
        return getpass.getpass(prompt)
    raise InvalidInput(
        f"The secret key is needed: --secret-file, --secret-file -, ${TOMS_SECRET_ENV}, or a "
        "terminal"
    )


def run(args: argparse.Namespace, engine: Engine, settings: Settings) -> int:
    """A refusal (a wrong secret, a reset not asked for, a role that may not) exits 1 with its
    sentence on stderr, as every other command group does; no subcommand is bad usage, exit 2."""
    if args.credential_command is None:
        return bad_usage("credential", "needs a subcommand: record, verify or status")
    return as_operator(
        engine, settings, "credential", lambda operator: _act(args, engine, settings, operator)
    )


def _act(args: argparse.Namespace, engine: Engine, settings: Settings, operator: Operator) -> int:
    from services.core import toms, vault
    from services.credential import lifecycle as credentials

    if args.credential_command == "status":
        say(credentials.status(engine, operator.lea_id).summary)
        return 0
    token_url = toms.token_url(settings)
    if args.credential_command == "verify":
        result = credentials.verify(
            engine, operator, operator.lea_id, vault.load(settings), token_url
        )
        say(("Verified: " if result.ok else "NOT verified: ") + result.message)
        return 0 if result.ok else 1
    secret = read_secret(args.secret_file, f"Secret key TOMS showed for {args.username}: ")
    recorded = credentials.record(
        engine,
        operator,
        operator.lea_id,
        vault.load(settings),
        token_url,
        username=args.username,
        secret=secret,
        generated_on=args.generated,
        reset_id=args.reset,
    )
    say(f"{recorded.message}. Expires {recorded.expires_at:%Y-%m-%d}.")
    return 0
