"""Command groups of ``ssr-console``, one module each (``setup``, ``operator``, ...).

A module here defines ``register(commands)``: it adds its parser to the ``ssr-console``
subparsers and sets ``run`` on it with ``parser.set_defaults(run=handler)``, where the handler is
``handler(args, engine, settings) -> int``. Modules are found by listing this package, so adding a
command group is adding a file: there is no list to edit (and no merge conflict over one). Keep
the imports at module level light (``argparse``, ``console.output``): import services inside the
handler, so ``ssr-console --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from console.output import say
from services.core import db
from services.core.errors import ConsoleError

if TYPE_CHECKING:
    from services.access.tables import Operator
    from services.core.settings import Settings


def register_all(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Let every module of this package add its subcommands, in name order."""
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda found: found.name):
        importlib.import_module(f"{__name__}.{info.name}").register(commands)


def require_current_schema(engine: Engine) -> None:
    """Refuse to work on a database whose schema is behind the code."""
    if db.needs_upgrade(engine):
        raise ConsoleError("The database schema is not current; run `ssr-console db upgrade`")


def as_operator(
    engine: Engine, settings: Settings, command: str, act: Callable[[Operator], int]
) -> int:
    """Run ``act`` as the operator named by ``--operator`` (or ``$SSR_OPERATOR``), whose role and
    scope the services check exactly as on the screens. A refusal (a permission, an unknown
    batch, school or group, a value that does not parse) is its sentence on stderr and exit 1;
    no operator named is bad usage, exit 2."""
    from services.access import operators

    require_current_schema(engine)
    if not settings.operator:
        say(f"ssr-console {command}: say who you are with --operator NAME", file=sys.stderr)
        return 2
    try:
        return act(operators.resolve(engine, settings.operator))
    except ConsoleError as refusal:
        say(f"ssr-console {command}: {refusal}", file=sys.stderr)
        return 1


def bad_usage(command: str, message: str) -> int:
    """An option given where it does not belong: said like argparse's errors, exit 2."""
    say(f"ssr-console {command}: {message}", file=sys.stderr)
    return 2


def add_group(
    commands: argparse._SubParsersAction,  # type: ignore[type-arg]
    name: str,
    summary: str,
    doc: str | None,
    run: Callable[[argparse.Namespace, Engine, Settings], int],
) -> argparse._SubParsersAction:  # type: ignore[type-arg]
    """A command group (``batch``, ``plan``...) whose module docstring is its ``--help``; its
    subcommands are added to what this returns and chosen in ``args.<name>_command``."""
    group = commands.add_parser(
        name,
        help=summary,
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    group.set_defaults(run=run)
    return group.add_subparsers(dest=f"{name}_command", required=True)


def add_json(parser: argparse.ArgumentParser) -> None:
    """``--json``: every listing can be read by a script."""
    parser.add_argument("--json", action="store_true", help="as JSON, for scripts")
