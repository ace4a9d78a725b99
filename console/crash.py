"""What an unexpected error leaves behind: a reference for the person, the stack for the log.

Textual ends an app on an unhandled error by printing a rich traceback *with local variables*
to the terminal, and over SSH the terminal is a remote person's: a revealed secret or a family's
address in a local would be shown to them. The console and the SSH server show one sentence with
a short reference instead, and log where the error happened (files, lines, code, its type): no
local variables, and not the error's message, which can carry the same data.
"""

from __future__ import annotations

import traceback
import uuid
from datetime import UTC, datetime
from pathlib import Path

from services.core import private_files

LOG_NAME = "console-errors.log"


def stack_only(error: BaseException) -> str:
    """Where ``error`` happened and its type, without locals or its message."""
    frames = traceback.format_list(traceback.extract_tb(error.__traceback__))
    return "".join(frames) + f"{type(error).__module__}.{type(error).__qualname__}\n"


def reference() -> str:
    """A short reference that ties what the person saw to the log entry."""
    return uuid.uuid4().hex[:8]


def record(data_dir: Path, error: BaseException, where: str) -> str:
    """Append the error's stack to ``<data_dir>/console-errors.log`` (0600); its reference."""
    incident = reference()
    private_files.make_dirs(data_dir)
    with open(data_dir / LOG_NAME, "a", encoding="utf-8", opener=private_files.opener) as log:
        log.write(f"{datetime.now(UTC).isoformat()} {incident} {where}\n{stack_only(error)}\n")
    return incident
