"""Finding the roster files an SIS export is made of: OneRoster 1.1 CSV (a zip or a folder holding
``orgs.csv``, ``users.csv`` and optionally ``demographics.csv``) and the SIS contacts CSV.

A zip is read with the intake's zip-safety rules (``services.intake.zip_safety``: no paths out of
the archive, no links, size and compression-ratio limits): each needed member is streamed into a
private scratch folder while its real size is counted, and read from there, as often as the import
needs. Other OneRoster files (classes, enrollments...) are not read.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from services.core import private_files
from services.core.errors import InvalidInput
from services.intake import zip_safety

ONEROSTER = ("orgs.csv", "users.csv", "demographics.csv")
ZIP_LIMITS = zip_safety.ZipLimits(max_entry_bytes=4 * 1024 * zip_safety.MiB, max_depth=1)
"""A district's users.csv is a few hundred MB at most; CSV compresses well under the 100x bomb
ratio (about 5-10x)."""


@dataclass
class RosterFiles:
    """Where each file of one import is, and the name to say in messages."""

    orgs: Path | None = None
    users: Path | None = None
    demographics: Path | None = None
    contacts: Path | None = None
    names: dict[Path, str] = field(default_factory=dict)

    def name(self, path: Path) -> str:
        return self.names.get(path, path.name)


def locate(paths: list[Path], scratch: Path) -> RosterFiles:
    """The roster files among ``paths`` (zips, folders, CSV files); zips unpacked into ``scratch``.

    A CSV file not named like a OneRoster file is the SIS contacts CSV. Refuses a set without
    ``orgs.csv`` and ``users.csv``, and two files of the same kind, with a sentence.
    """
    found = RosterFiles()
    for path in paths:
        if path.is_dir():
            for child in sorted(path.iterdir()):
                if child.name.lower() in ONEROSTER and child.is_file():
                    _put(found, child.name.lower(), child, str(child))
        elif path.suffix.lower() == ".zip":
            _unzip(found, path, scratch)
        elif path.suffix.lower() == ".csv" and path.is_file():
            kind = path.name.lower() if path.name.lower() in ONEROSTER else "contacts"
            _put(found, kind, path, str(path))
        else:
            raise InvalidInput(f"{path} is not a zip, a folder or a CSV file")
    if found.orgs is None or found.users is None:
        raise InvalidInput(
            "A roster import needs OneRoster orgs.csv and users.csv (in a zip or a folder)"
        )
    return found


def _put(found: RosterFiles, kind: str, path: Path, name: str) -> None:
    attribute = kind.removesuffix(".csv")
    if getattr(found, attribute) is not None:
        raise InvalidInput(
            f"Two {kind} files given: {found.name(getattr(found, attribute))} and {name}"
        )
    setattr(found, attribute, path)
    found.names[path] = name


def _unzip(found: RosterFiles, archive: Path, scratch: Path) -> None:
    def spool(size: int):  # type: ignore[no-untyped-def]
        return tempfile.SpooledTemporaryFile(size, dir=str(scratch))

    for entry in zip_safety.read_zip(str(archive), archive.name, spool, ZIP_LIMITS):
        if isinstance(entry, zip_safety.Refusal):
            if (
                entry.source.lower().rsplit("/", 1)[-1].endswith(ONEROSTER)
                or entry.source == archive.name
            ):
                raise InvalidInput(f"{entry.source} was refused: {entry.detail}")
            continue
        base = entry.source.rsplit("!", 1)[-1].replace("\\", "/").rsplit("/", 1)[-1].lower()
        if base not in ONEROSTER:
            continue
        target = scratch / f"{len(found.names)}-{base}"
        with open(target, "wb", opener=private_files.opener) as out:
            entry.stream.seek(0)
            shutil.copyfileobj(entry.stream, out)
        _put(found, base, target, entry.source)
