"""The session's Dovecot (a real IMAP server on loopback) and a batch sent to the loopback SMTP
server (``sent``, on SQLite and PostgreSQL), for the bounce tests."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from services.access import operators
from services.core import db
from services.core.settings import Settings
from services.delivery import batches
from services.delivery.ledger import DeliveryItem, ItemState
from services.delivery.worker import Worker, WorkerConfig
from tests.bounces.dovecot import DOVECOT, Dovecot, make_certificate
from tests.databases import SeedDemo
from tests.delivery_harness import MailSink, Received

FAST = WorkerConfig(processes=2, poll_seconds=0.05, heartbeat_seconds=1.0, once_horizon_seconds=5)
BOUNCES = "bounces@district.org"


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def dovecot_server(
    tmp_path_factory: pytest.TempPathFactory, certificate: tuple[Path, Path]
) -> Iterator[Dovecot]:
    """One Dovecot for the session, with its throwaway configuration, stopped at the end."""
    if not DOVECOT.exists():
        pytest.fail("dovecot-imapd is not installed: run `make system-tools`")
    server = Dovecot(tmp_path_factory.mktemp("dovecot"), *certificate).start()
    yield server
    server.stop()


@pytest.fixture
def dovecot(dovecot_server: Dovecot) -> Dovecot:
    """The session's Dovecot with an empty mailbox."""
    dovecot_server.empty()
    return dovecot_server


@dataclass
class Sent:
    engine: Engine
    settings: Settings
    batch_id: int
    sink: MailSink

    def families(self) -> dict[int, dict[str, Received]]:
        """item id -> {step: the message received}."""
        found: dict[int, dict[str, Received]] = {}
        for received in self.sink.received:
            if not str(received.message["X-SSR-Delivery"] or "")[:1].isdigit():
                continue  # a coordinator's notice, not a family's message
            found.setdefault(received.item_id, {})[received.step] = received
        return found

    def states(self) -> dict[int, ItemState]:
        with Session(self.engine) as session:
            rows = session.exec(
                select(DeliveryItem.id, DeliveryItem.state).where(
                    DeliveryItem.batch_id == self.batch_id
                )
            ).all()
        return {item_id: state for item_id, state in rows if item_id is not None}


@pytest.fixture(params=["sqlite", "postgresql"])
def sent(
    request: pytest.FixtureRequest, tmp_path: Path, seed_demo: SeedDemo, dovecot: Dovecot
) -> Iterator[Sent]:
    """A delivery batch of 16 demo students' families, all sent to the loopback SMTP server
    with VERP return paths."""
    url = request.getfixturevalue("pg_url" if request.param == "postgresql" else "sqlite_url")
    engine = db.make_engine(url)
    sink = MailSink().start()
    settings = Settings(
        database_url=url,
        data_dir=tmp_path / "data",
        extra={
            "smtp": {"host": "127.0.0.1", "port": sink.port, "connections": 2},
            "bounces": dovecot.settings(verp=True),
        },
    )
    try:
        seed_demo(engine, settings, students=16, seed=11)
        batch_id = batches.create(
            engine,
            operators.resolve(engine, "caaspp"),
            batches.Selection(),
            name="Spring SSRs",
            password_delay=timedelta(0),
        )
        tally = asyncio.run(Worker(engine, settings, config=FAST).run(once=True))
        assert tally.passwords >= 11, tally
        yield Sent(engine, settings, batch_id, sink)
    finally:
        sink.stop()
        engine.dispose()
