"""Corrected SSRs of families first served by print, ETS paper or the portal (issue 19), on SQLite
and PostgreSQL: shown as "corrected, not yet sent" in coverage, the reports and the help desk,
and taken by the ``corrections`` scope on the family's own channel, not by email."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from services.access import operators
from services.channels import batches as channel_batches
from services.channels import by_scope, cover_sheet, paper_order, print_batch
from services.channels.batches import ChannelItem, ChannelItemState
from services.core import db
from services.core.channels import Option
from services.core.columns import utcnow
from services.core.programs import Program
from services.core.settings import Settings
from services.delivery import batches
from services.helpdesk import families as helpdesk
from services.intake.score_reports import ScoreReport
from services.plan import coverage
from services.reports import aggregates as reports
from services.roster.tables import Guardian, Student
from tests.channel_world import World, pdftotext, world
from tests.databases import SeedDemo

CORRECTIONS = batches.Selection(batches.Source.CORRECTIONS)


@pytest.fixture
def printed(any_url: str, tmp_path: Path, seed_demo: SeedDemo) -> Iterator[tuple[Engine, int]]:
    """The demo roster, a CAASPP SSR of 2026 for every student, all printed and mailed; then ETS
    re-issues one student's SSR (version 2). Yields the engine and that student's id."""
    engine = db.make_engine(any_url)
    seed_demo(engine, Settings(database_url=any_url, data_dir=tmp_path), students=12, pdfs=False)
    caaspp = operators.resolve(engine, "caaspp")

    def report(student_id: int, version: int) -> ScoreReport:
        return ScoreReport(
            student_id=student_id, program=Program.CAASPP, admin_year=2026, test="ELA",
            version=version, file_path=f"none/{student_id}-{version}.pdf", sha256="0" * 64,
            received_at=utcnow() - timedelta(days=2 - version),
        )  # fmt: skip

    with Session(engine) as session:
        for sid in session.exec(select(Student.id)).all():
            assert sid is not None
            session.add(report(sid, 1))
        session.commit()
    run = print_batch.create(engine, caaspp, name="Spring print", who=coverage.Who.ALL)
    assert run.id is not None
    with Session(engine) as session:
        session.execute(
            update(ChannelItem)
            .where(
                col(ChannelItem.batch_id) == run.id,
                col(ChannelItem.state) == ChannelItemState.PENDING,
            )
            .values(state=ChannelItemState.PRINTED)
        )  # what the worker leaves; the printing itself is tested in test_print_batch.py
        session.commit()
        assert channel_batches.confirm_delivered(engine, caaspp, run.id, utcnow().date()) > 0
        corrected = session.exec(
            select(ChannelItem.student_id).where(
                ChannelItem.batch_id == run.id, ChannelItem.state == ChannelItemState.DONE
            )
        ).first()
        assert corrected is not None
        session.add(report(corrected, 2))
        session.commit()
    yield engine, corrected
    engine.dispose()


def test_a_correction_owed_to_a_printed_family_goes_out_in_print(
    printed: tuple[Engine, int],
) -> None:
    engine, student_id = printed
    caaspp, desk = (operators.resolve(engine, who) for who in ("caaspp", "helpdesk"))
    summary = coverage.summary(engine, caaspp)
    assert summary.corrected == 1
    assert "Corrected, not yet sent 1: batch scope corrections" in summary.text()
    assert reports.corrected_count(engine, caaspp) == 1
    timeline = [e.text for e in helpdesk.family(engine, desk, student_id).events]
    assert any(t.startswith("Corrected, not yet sent: CAASPP 2026 ELA") for t in timeline)

    # by email: nobody (the family had its report on paper); on paper from ETS or the portal:
    # nobody either; in print: exactly that student
    assert batches.dry_run(engine, caaspp, CORRECTIONS).families == 0
    for channel in (Option.PAPER, Option.PORTAL):
        _, chosen = coverage.choose(engine, caaspp, channel, who=coverage.Who.CORRECTIONS)
        with Session(engine) as session:
            assert session.execute(chosen).all() == []
    scope, who = by_scope.channel_scope(Option.PRINT, CORRECTIONS)
    assert who is coverage.Who.CORRECTIONS
    seen = print_batch.preview(engine, caaspp, scope=scope, who=who)
    assert (seen.families, seen.students) == (1, 1)
    run = print_batch.create(engine, caaspp, name="Corrections", scope=scope, who=who)
    assert (run.source, run.students) == ("corrections", 1)
    with Session(engine) as session:
        [item] = session.exec(select(ChannelItem).where(ChannelItem.batch_id == run.id)).all()
    assert item.student_id == student_id
    # on its way: no second batch takes it; still owed (not yet delivered) until mailed
    assert print_batch.preview(engine, caaspp, scope=scope, who=who).students == 0
    assert coverage.summary(engine, caaspp).corrected == 1
    with Session(engine) as session:
        session.execute(
            update(ChannelItem)
            .where(col(ChannelItem.batch_id) == run.id)
            .values(state=ChannelItemState.PRINTED)
        )
        session.commit()
    assert run.id is not None
    channel_batches.confirm_delivered(engine, caaspp, run.id, utcnow().date())
    assert coverage.summary(engine, caaspp).corrected == 0
    assert reports.corrected_count(engine, caaspp) == 0
    timeline = [e.text for e in helpdesk.family(engine, desk, student_id).events]
    assert not any(t.startswith("Corrected") for t in timeline)


def test_an_ets_paper_order_of_corrections(printed: tuple[Engine, int]) -> None:
    """The same rule on ETS paper: a family whose report came on ETS paper gets the corrected
    one on ETS paper (an order by SSID of exactly those students)."""
    engine, student_id = printed
    caaspp = operators.resolve(engine, "caaspp")
    with Session(engine) as session:  # that family's earlier report came on ETS paper instead
        session.execute(update(channel_batches.ChannelBatch).values(channel=Option.PAPER.value))
        session.commit()
    assert print_batch.preview(engine, caaspp, who=coverage.Who.CORRECTIONS).students == 0
    order = paper_order.create(engine, caaspp, name="Corrections", who=coverage.Who.CORRECTIONS)
    assert (order.source, order.students) == ("corrections", 1)
    with Session(engine) as session:
        [item] = session.exec(select(ChannelItem).where(ChannelItem.batch_id == order.id)).all()
    assert item.student_id == student_id


def test_a_print_run_of_corrections_says_the_reports_replace_the_earlier_ones(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """Printed for real from the demo's PDFs: the corrections run's cover note, in the family's
    language, says the reports are corrected and replace the earlier ones; the first run's did
    not."""
    w = world(tmp_path_factory.getbasetemp(), tmp_path)
    caaspp = w.operator()
    first = print_batch.create(w.engine, caaspp, name="Spring", who=coverage.Who.ALL)
    assert first.id is not None
    print_batch.run(w.engine, caaspp, first.id, w.folder / "spring", w.store)
    channel_batches.confirm_delivered(w.engine, caaspp, first.id, utcnow().date())
    with Session(w.engine) as session:
        item = session.exec(
            select(ChannelItem).where(
                ChannelItem.batch_id == first.id, ChannelItem.state == ChannelItemState.DONE
            )
        ).first()
        assert item is not None
        earlier = session.exec(
            select(ScoreReport).where(ScoreReport.student_id == item.student_id)
        ).first()
        assert earlier is not None
        fields = earlier.model_dump(exclude={"id", "version", "received_at"})
        year = earlier.admin_year
        session.add(ScoreReport(**fields, version=2))  # ETS re-issued it (same file here)
        session.commit()
        language = cover_sheet.note_language(
            session.exec(
                select(Guardian.preferred_language).where(Guardian.id == item.guardian_id)
            ).one()
        )
    run = print_batch.create(w.engine, caaspp, name="Corrections", who=coverage.Who.CORRECTIONS)
    assert run.id is not None and run.students == 1
    result = print_batch.run(w.engine, caaspp, run.id, w.folder / "corrections", w.store)
    cover = "".join(unicodedata.normalize("NFKC", pdftotext(result.files[0], 1)).split())
    corrected = cover_sheet.note_text(language, year, corrected=True)
    assert "".join(corrected.split()) in cover, (language, cover)
    spring = "".join(pdftotext(print_batch_file(w, "spring"), 1).split())
    plain_note = cover_sheet.note_text(language, year)
    assert "".join(corrected.split()) not in spring and plain_note != corrected


def print_batch_file(w: World, folder: str) -> Path:
    return sorted((w.folder / folder).rglob("*.pdf"))[0]
