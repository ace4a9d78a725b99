"""The demo LEA with real SSR PDFs for the print, paper-order, portal and coverage tests.

Seeded once per test session (shared with the delivery tests' template) and copied per test, so
each test changes its own database while the SSR files stay shared and read-only.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine

from services.access import operators
from services.access.tables import Operator
from services.core import db
from services.core.settings import Settings
from services.intake.report_store import ReportStore
from tests.delivery_harness import copy_database, seeded_template

STUDENTS = 40
SEED = 7


@dataclass
class World:
    engine: Engine
    settings: Settings
    folder: Path

    @property
    def store(self) -> ReportStore:
        return ReportStore(self.settings.report_store)

    def operator(self, username: str = "caaspp") -> Operator:
        return operators.resolve(self.engine, username)


def world(base: Path, folder: Path) -> World:
    """A private copy of the seeded demo LEA in ``folder``."""
    copy_database(seeded_template(base, students=STUDENTS, seed=SEED), folder / "ssr.db")
    url = f"sqlite:///{folder / 'ssr.db'}"
    engine = db.make_engine(url)
    return World(engine, Settings(database_url=url, data_dir=folder / "data"), folder)


def pdftotext(path: Path, first: int | None = None, last: int | None = None) -> str:
    """Text of a PDF (or of a page range) as poppler reads it."""
    pages = [] if first is None else ["-f", str(first), "-l", str(last or first)]
    done = subprocess.run(
        ["pdftotext", "-enc", "UTF-8", *pages, str(path), "-"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def pdf_pages(path: Path) -> int:
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True)
    line = next(x for x in info.stdout.splitlines() if x.startswith("Pages:"))
    return int(line.split()[1])
