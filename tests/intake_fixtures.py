"""Test material for intake: a small roster and real SSR PDFs drawn by services.demo.ssr_pdf."""

from __future__ import annotations

import asyncio
import io
import os
from pathlib import Path

import pikepdf
from sqlalchemy.engine import Engine
from sqlmodel import Session
from textual.screen import Screen
from textual.widgets import Static

from services.core.settings import Settings
from services.demo.ssr_pdf import ScoreLine, SsrInput, render
from services.intake import queue as import_queue
from services.roster.tables import LEA, School, Student
from tests.pilot import until

LEA_CDS = "1964733"
SSIDS = [f"{1000000000 + n}" for n in range(1, 7)]  # students 0-2 grade 5 at A, 3-5 grade 8 at B
STRANGER = "9999999999"  # printed on a report, but no such student


def seed_roster(engine: Engine) -> dict[str, int]:
    """One LEA, two schools, six students; returns SSID -> student id."""
    with Session(engine) as session:
        lea = LEA(cds_code=LEA_CDS, name="Demo Unified", county="Los Angeles")
        session.add(lea)
        session.flush()
        schools = [
            School(lea_id=lea.id, cds_code=f"{LEA_CDS}000000{n}", name=name)
            for n, name in ((1, "Alder Elementary"), (2, "Birch Middle"))
        ]
        session.add_all(schools)
        session.flush()
        ids = {}
        for n, ssid in enumerate(SSIDS):
            student = Student(
                ssid=ssid,
                lea_id=lea.id,
                school_id=schools[n // 3].id,
                first_name=f"Ana{n}",
                last_name="Nguyễn",
                name_key=f"nguyen ana{n}",
                grade=5 if n < 3 else 8,
            )
            session.add(student)
            session.flush()
            ids[ssid] = student.id
        session.commit()
    return ids


def ssr(ssid: str, score: int = 2500, test: str = "SB", year: int = 2026) -> bytes:
    """A real one-page SSR with ``SSID: <ssid>`` printed on it."""
    return render(
        SsrInput(
            program="CAASPP",
            test=test,
            admin_year=year,
            language="en",
            report_title="Student Score Report",
            student_name="Ana Nguyễn",
            ssid=ssid,
            grade=5,
            school="Alder Elementary",
            lea="Demo Unified",
            lea_cds=LEA_CDS,
            scores=(ScoreLine("English Language Arts/Literacy", score, "Standard Met"),),
            address=("Ana's guardian", "1 Main St", "Los Angeles, CA 90001"),
        )
    )


def name(ssid: str, test: str = "SB", year: int = 2026) -> str:
    return f"{ssid}_CAASPP_{test}_{year}_en.pdf"


def merged(*reports: bytes) -> bytes:
    """Several SSRs in one PDF, as TOMS merges them per grade."""
    out = pikepdf.new()
    sources = [pikepdf.open(io.BytesIO(data)) for data in reports]
    for source in sources:
        out.pages.extend(source.pages)
    buffer = io.BytesIO()
    out.save(buffer)
    return buffer.getvalue()


def encrypted(data: bytes, user_password: str = "") -> bytes:
    buffer = io.BytesIO()
    with pikepdf.open(io.BytesIO(data)) as pdf:
        pdf.save(buffer, encryption=pikepdf.Encryption(user=user_password, owner="owner-secret"))
    return buffer.getvalue()


def files_under(root: Path) -> set[Path]:
    return {Path(folder) / f for folder, _, names in os.walk(root) for f in names}


def stats(screen: Screen) -> str:
    return str(screen.query_one("#stats", Static).render())


async def worker_runs(pilot, engine: Engine, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    """What ``ssr-console worker`` does with the queued import, while the console keeps going;
    then the screen's next look at the database shows the run done."""
    screen = pilot.app.screen
    await until(lambda: "queued" in stats(screen), pilot, what="the run queued")
    assert await asyncio.to_thread(import_queue.run_queued, engine, settings) == 1
    await until(
        lambda: not any(state in stats(screen) for state in ("queued", "running")),
        pilot,
        what="the run shown done",
    )
