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

from sqlalchemy.engine import Engine

from services.core import db
from services.core.errors import ConsoleError


def register_all(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Let every module of this package add its subcommands, in name order."""
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda found: found.name):
        importlib.import_module(f"{__name__}.{info.name}").register(commands)


def require_current_schema(engine: Engine) -> None:
    """Refuse to work on a database whose schema is behind the code."""
    if db.needs_upgrade(engine):
        raise ConsoleError("The database schema is not current; run `ssr-console db upgrade`")
