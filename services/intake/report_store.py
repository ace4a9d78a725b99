"""The content-addressed store of SSR PDFs: a file's name is its SHA-256, so a copy is never kept twice.

Files are written 0600 and folders 0700 (student PII), each through a temporary file in the final
folder and an atomic rename, so a crash never leaves a half-written report under a real name.
``sync`` makes every file written so far durable in one flush; intake calls it before committing
the rows that point at them (one fsync per file cost 6 ms each, a third of an import's time).
Nothing from an import is written to disk anywhere else: zip entries too large to hold in memory
spool into the store's own ``.spool`` folder. A store may be told to keep some of its disk free
(``keep_free``): an import then stops with ``StoreFull`` before it fills the disk, so the database
beside it can still record what was stored.
"""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
from pathlib import Path
from typing import IO

from services.core.errors import ConsoleError

CONTENT_DIR = "sha256"
SPOOL_DIR = ".spool"


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class StoreFull(ConsoleError):
    """Writing a report would leave less than the store's ``keep_free`` bytes on its disk."""


class ReportStore:
    """PDFs under ``root/sha256/ab/cd/<sha>.pdf``; paths handed out are relative to ``root``."""

    def __init__(self, root: Path, keep_free: int = 0) -> None:
        self.root = Path(root)
        self.keep_free = keep_free
        _private_dir(self.root)
        self._folders: set[str] = set()  # "ab/cd" prefixes made: at most 65,536 short strings
        self._unsynced = 0

    def relative_path(self, sha: str) -> str:
        return f"{CONTENT_DIR}/{sha[:2]}/{sha[2:4]}/{sha}.pdf"

    def path(self, relative: str) -> Path:
        """The file of a stored report: every reader (packaging, printing) resolves rows here, so
        a report is found whatever directory the console or worker was started from. Only a path
        inside the store is accepted; an absolute one or one climbing out with ``..`` is refused."""
        parts = Path(relative).parts
        if not parts or Path(relative).is_absolute() or ".." in parts:
            raise OSError(errno.EINVAL, "not a path inside the report store", relative)
        return self.root / relative

    def put(self, data: bytes, sha: str | None = None) -> str:
        """Store ``data`` once and return its relative path; an existing copy is left untouched."""
        sha = sha or sha256_of(data)
        relative = self.relative_path(sha)
        target = self.root / relative
        if target.exists() and target.stat().st_size == len(data):
            return relative
        if self.keep_free:
            disk = os.statvfs(self.root)
            free = disk.f_bavail * disk.f_frsize
            if free - len(data) < self.keep_free:
                raise StoreFull(
                    f"the disk of the report store {self.root} is nearly full ({free >> 20} MB "
                    f"free; imports leave {self.keep_free >> 20} MB for the database and the "
                    "server)"
                )
        folder = target.parent
        if sha[:4] not in self._folders:
            path = self.root
            for part in Path(relative).parent.parts:
                path = path / part
                _private_dir(path)
            self._folders.add(sha[:4])
        fd, temp = tempfile.mkstemp(dir=folder, prefix=".incoming-")  # created 0600
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        self._unsynced += 1
        return relative

    def sync(self) -> None:
        """Flush the files written since the last call to disk (before rows that name them commit)."""
        if self._unsynced:
            os.sync()
            self._unsynced = 0

    def read(self, relative: str) -> bytes:
        return self.path(relative).read_bytes()

    def spool(self, memory_limit: int) -> IO[bytes]:
        """A scratch file for one zip entry: in memory while small, then an unnamed file in the store."""
        folder = self.root / SPOOL_DIR
        _private_dir(folder)
        return tempfile.SpooledTemporaryFile(max_size=memory_limit, mode="w+b", dir=str(folder))  # noqa: SIM115


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, exist_ok=True, parents=not path.parent.exists())
    if path.stat().st_mode & 0o777 != 0o700:
        path.chmod(0o700)
