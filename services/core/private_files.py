"""Files and folders only their owner can use: the console's files hold student PII.

SSRs, print files, manifests, exports, order lists and the database name students, with their
scores and home addresses; on a server with other accounts, a file created with the usual umask
(022, mode 0644) is readable by every one of them. The command line sets ``os.umask(0o077)`` at
start, and the functions here give the same modes whatever the umask of the process calling them
(a test, a service used as a library): folders 0700, files 0600.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from services.core.errors import InvalidInput

DIR_MODE = 0o700
FILE_MODE = 0o600
UMASK = 0o077
"""The process umask of every console command: nothing it creates is open to group or others."""


def opener(path: str, flags: int) -> int:
    """An ``opener`` for ``open()``: a new file is created 0600, an existing one is made 0600."""
    descriptor = os.open(path, flags, FILE_MODE)
    os.fchmod(descriptor, FILE_MODE)
    return descriptor


def tighten(path: Path) -> None:
    """Make an existing file 0600 when group or others may use it (one left by an older version)."""
    _restrict(path, FILE_MODE, "The file")


def make_dirs(path: Path) -> Path:
    """Create ``path`` and its missing parents, each 0700; folders that exist are left as they are
    (one may be the operator's own, such as a home directory)."""
    missing = [folder for folder in (path, *path.parents) if not folder.exists()]
    for folder in reversed(missing):
        folder.mkdir(mode=DIR_MODE, exist_ok=True)  # umask only removes bits: 0700 stays 0700
    return path


def secure_data_dir(path: Path) -> str | None:
    """Create the data directory 0700, or tighten an existing one others can reach.

    Returns a sentence saying what was tightened (None when nothing was); raises ``InvalidInput``
    with a sentence when the folder cannot be made private (not the owner, a read-only mount):
    the console does not run on student data other accounts can read. Files already inside keep
    their modes, but nobody else can reach them through a 0700 folder.
    """
    if not path.exists():
        make_dirs(path)
        return None
    if not path.is_dir():
        raise InvalidInput(f"The data directory {path} is not a folder")
    was = _restrict(path, DIR_MODE, "The data directory")
    if was is None:
        return None
    return (
        f"The data directory {path} was open to other accounts on this server (mode {was:o}); "
        "it is now 0700, for its owner only"
    )


def _restrict(path: Path, private: int, what: str) -> int | None:
    """Chmod ``path`` to ``private`` when group or others have any access; returns the mode it had
    then, None when it was private already or is absent."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return None
    if not mode & 0o077:
        return None
    try:
        path.chmod(private)
    except OSError as error:
        raise InvalidInput(
            f"{what} {path} is open to other accounts on this server (mode {mode:o}) and cannot "
            f"be made private ({error.strerror or error}): have its owner run "
            f"`chmod {private:o} {path}`"
        ) from None
    return mode
