"""A translated SSR goes to the family with the English one (ETS produces the SSR in English and,
for families whose language is one of its translations, in that language too): one PDF holds
both, the email counts both, and coverage counts the family as sent a translated SSR."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from io import BytesIO
from pathlib import Path

import pikepdf
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from services.access import operators
from services.core import db
from services.core.settings import Settings
from services.delivery import batches
from services.delivery.ledger import DeliveryItem
from services.delivery.worker import Worker, WorkerConfig
from services.intake.report_store import ReportStore
from services.intake.score_reports import ScoreReport
from services.plan import coverage
from services.roster.tables import Guardian, Student, StudentGuardian
from tests.delivery_harness import MailSink, copy_database, seeded_template, smtp_settings

FAST = WorkerConfig(processes=2, poll_seconds=0.05, heartbeat_seconds=1.0, once_horizon_seconds=5)


@pytest.fixture
def demo(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Iterator[tuple[Engine, Path]]:
    template = seeded_template(tmp_path_factory.getbasetemp(), students=40, seed=7)
    copy_database(template, tmp_path / "ssr.db")
    engine = db.make_engine(f"sqlite:///{tmp_path / 'ssr.db'}")
    yield engine, tmp_path
    engine.dispose()


async def test_the_family_gets_its_translated_ssr_with_the_english_one(
    demo: tuple[Engine, Path], sink: MailSink
) -> None:
    engine, tmp_path = demo
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'ssr.db'}",
        data_dir=tmp_path / "data",
        extra={"smtp": smtp_settings(sink)},
    )
    with Session(engine) as session:
        guardian, report = session.exec(
            select(Guardian, ScoreReport)
            .join(StudentGuardian, StudentGuardian.guardian_id == Guardian.id)
            .join(Student, Student.id == StudentGuardian.student_id)
            .join(ScoreReport, ScoreReport.student_id == Student.id)
            .where(Guardian.preferred_language == "es", Guardian.email.is_not(None))  # type: ignore[union-attr]
            .order_by(Guardian.id, ScoreReport.id)
        ).first()  # type: ignore[misc]
        gid = guardian.id
        english_pages = len(
            pikepdf.open(BytesIO(ReportStore(settings.report_store).read(report.file_path))).pages
        )
        spanish = ScoreReport.model_validate(report.model_dump(exclude={"id"}) | {"language": "es"})
        session.add(spanish)
        session.commit()
    operator = operators.resolve(engine, "caaspp")
    before = coverage.summary(engine, operator).translated
    batch_id = batches.create(
        engine,
        operator,
        batches.Selection(source=batches.Source.LIST, guardian_ids=(gid,)),  # type: ignore[arg-type]
        name="Spanish family",
        password_delay=timedelta(0),
    )
    await Worker(engine, settings, config=FAST).run(once=True)

    with Session(engine) as session:
        item = session.exec(select(DeliveryItem).where(DeliveryItem.batch_id == batch_id)).one()
        reports = session.exec(
            select(ScoreReport)
            .join(StudentGuardian, StudentGuardian.student_id == ScoreReport.student_id)
            .where(StudentGuardian.guardian_id == gid)
        ).all()
    assert {r.language for r in reports} == {"en", "es"}
    assert item.ssr_count == len(reports)
    parts = sink.by_item()[item.id]  # type: ignore[index]
    document, secret = parts["document"][0], parts["password"][0]
    assert f"{item.ssr_count} Informes de Calificaciones del Estudiante" in document.body
    ((_, data),) = document.attachments()
    with pikepdf.open(BytesIO(data), password=secret.password()) as pdf:
        assert len(pdf.pages) >= 2 * english_pages  # the English SSR and its Spanish translation
    assert coverage.summary(engine, operator).translated == before + 1
