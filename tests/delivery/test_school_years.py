"""School years: a batch that names no year is for the current administration, on SQLite and
PostgreSQL. TOMS keeps three years of SSRs; a family sent this year's report again (a resend)
must not receive last year's with it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from services.access import operators
from services.core import db
from services.core.programs import Program
from services.core.settings import Settings
from services.delivery import batches
from services.delivery.ledger import DeliveryBatch, DeliveryItem
from services.intake.score_reports import ScoreReport
from services.roster.tables import Student
from tests.databases import SeedDemo


@pytest.fixture
def two_years(any_url: str, tmp_path: Path, seed_demo: SeedDemo) -> Iterator[Engine]:
    """The demo roster with a CAASPP SSR of 2025 and one of 2026 for every student (no files:
    a batch records its families and reports; only packaging reads them)."""
    engine = db.make_engine(any_url)
    seed_demo(engine, Settings(database_url=any_url, data_dir=tmp_path), students=12, pdfs=False)
    with Session(engine) as session:
        for sid in session.exec(select(Student.id)).all():
            for year in (2025, 2026):
                session.add(
                    ScoreReport(
                        student_id=sid,
                        program=Program.CAASPP,
                        admin_year=year,
                        test="ELA",
                        file_path=f"none/{sid}-{year}.pdf",
                        sha256="0" * 64,
                    )
                )
        session.commit()
    yield engine
    engine.dispose()


def test_batches_and_resends_take_only_the_current_years_reports(two_years: Engine) -> None:
    engine = two_years
    caaspp = operators.resolve(engine, "caaspp")
    first = batches.create(
        engine, caaspp, batches.Selection(), name="Spring", password_delay=timedelta(0)
    )
    again = batches.create(
        engine,
        caaspp,
        batches.Selection(),
        name="Again",
        password_delay=timedelta(0),
        resend_reason="the families lost the first email",
    )
    with Session(engine) as session:
        for batch_id in (first, again):
            batch = session.get(DeliveryBatch, batch_id)
            assert batch is not None and batch.admin_year == 2026
            items = session.exec(select(DeliveryItem).where(DeliveryItem.batch_id == batch_id))
            years = {
                r.admin_year
                for item in items
                for r in batches.family_reports(session, batch, item.guardian_id)
            }
            assert years == {2026}, (batch.name, years)
