"""End to end: a batch of demo families through a real SMTP server on loopback.

Every attachment received is opened by qpdf and pdftotext with the password parsed from the
separate password message, and must refuse to open without it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from services.access import operators
from services.audit import log as audit
from services.audit.tables import AuditEvent
from services.core import db
from services.core.settings import Settings
from services.delivery import batches, ledger
from services.delivery.ledger import DeliveryItem, ItemState
from services.delivery.worker import Worker, WorkerConfig
from tests.delivery_harness import (
    MailSink,
    check_family,
    copy_database,
    seeded_template,
    smtp_settings,
)

FAST = WorkerConfig(processes=2, poll_seconds=0.05, heartbeat_seconds=1.0, once_horizon_seconds=5)


@pytest.fixture
def demo(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Iterator[tuple[Engine, Path]]:
    template = seeded_template(tmp_path_factory.getbasetemp(), students=40, seed=7)
    copy_database(template, tmp_path / "ssr.db")
    engine = db.make_engine(f"sqlite:///{tmp_path / 'ssr.db'}")
    yield engine, tmp_path
    engine.dispose()


def settings_for(tmp_path: Path, sink: MailSink, **smtp: object) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'ssr.db'}",
        data_dir=tmp_path / "data",
        extra={"smtp": smtp_settings(sink, **smtp)},
    )


def new_batch(engine: Engine, **selection: object) -> int:
    operator = operators.resolve(engine, "caaspp")
    return batches.create(
        engine,
        operator,
        batches.Selection(**selection),  # type: ignore[arg-type]
        name="Spring 2026 SSRs",
        password_delay=timedelta(0),
    )


async def test_batch_delivers_every_family_with_a_separate_password(
    demo: tuple[Engine, Path], sink: MailSink, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # everything the console side logs, at any level
    engine, tmp_path = demo
    batch_id = new_batch(engine)
    settings = settings_for(tmp_path, sink)
    tally = await Worker(engine, settings, config=FAST).run(once=True)

    counts = ledger.state_counts(engine, batch_id)
    assert set(counts) == {ItemState.DONE}, counts
    families = counts[ItemState.DONE]
    assert tally.documents == tally.passwords == families
    received = sink.by_item()
    assert len(received) == families
    opened = 0
    for messages in received.values():
        assert len(messages["document"]) == 1 and len(messages["password"]) == 1
        document, password = messages["document"][0], messages["password"][0]
        assert document.index < password.index, "a password went out before its document"
        assert not password.attachments()
        opened += check_family(tmp_path, document, password)
    with Session(engine) as session:
        items = session.exec(select(DeliveryItem).where(DeliveryItem.batch_id == batch_id)).all()
        assert opened == len(items), "one encrypted PDF per family"
        assert all(item.sealed_password is None and item.package_dir is None for item in items)
        details = " ".join(e.detail for e in session.exec(select(AuditEvent)).all())
    logged = "\n".join(
        r.getMessage() for r in caplog.records if not r.name.startswith("mail.log")
    )  # mail.log is the test's own SMTP server, which logs what it receives
    assert "packaged: " in logged  # the worker does log, by item id and SSID
    for messages in received.values():
        assert messages["password"][0].password() not in details
        assert messages["password"][0].password() not in logged
    assert not list((tmp_path / "data" / "outbox").rglob("*.pdf")), "packages left on disk"
    assert audit.verify(engine).ok


async def test_messages_are_in_the_guardians_language(
    demo: tuple[Engine, Path], sink: MailSink
) -> None:
    engine, tmp_path = demo
    batch_id = new_batch(engine)
    await Worker(engine, settings_for(tmp_path, sink), config=FAST).run(once=True)
    from services.delivery import batches, messages
    from services.delivery.ledger import DeliveryBatch
    from services.demo import district as demo

    with Session(engine) as session:
        items = {
            item_id: (language, count)
            for item_id, language, count in session.exec(
                select(DeliveryItem.id, DeliveryItem.language, DeliveryItem.ssr_count).where(
                    DeliveryItem.batch_id == batch_id
                )
            ).all()
        }
        batch = session.get(DeliveryBatch, batch_id)
        assert batch is not None
        season = batches.season(session, batch.lea_id, batch.program, batch.admin_year)
    assert "es" in {language for language, _ in items.values()}
    for item_id, parts in sink.by_item().items():
        language, count = items[item_id]
        expected = messages.document_message(
            language, guardian_name="x", lea_name=demo.LEA_NAME, count=count, season=season
        )
        received = parts["document"][0].message
        assert str(received["Subject"]) == expected.subject
        assert received["Content-Language"] == messages.CONTENT_LANGUAGE[language]
        html_part = received.get_body(("html",))
        assert html_part is not None
        direction = "rtl" if language == "ar" else "ltr"
        assert f'dir="{direction}"' in html_part.get_content()


async def test_nothing_outside_the_encryption_names_a_student(
    demo: tuple[Engine, Path], sink: MailSink
) -> None:
    """Relays and mailboxes log subjects and attachment names in clear: the MIME as received
    carries no SSID anywhere, and no student's name outside the encrypted PDF."""
    from services.roster.tables import Student

    engine, tmp_path = demo
    new_batch(engine)
    await Worker(engine, settings_for(tmp_path, sink), config=FAST).run(once=True)
    with Session(engine) as session:
        students = session.exec(select(Student)).all()
    assert sink.received
    for received in sink.received:
        raw = received.message.as_bytes()
        clear = [str(v) for _, v in received.message.items()] + [received.body]
        names = [name for name, _ in received.attachments()]
        for student in students:
            assert student.ssid.encode() not in raw, "an SSID travels outside the encryption"
            full = f"{student.first_name} {student.last_name}"
            assert not any(full in text for text in clear + names)
        for name in names:
            assert re.fullmatch(r"Score_Reports(_(CAASPP|ELPAC))+(_\d{4})+\.pdf", name), name
