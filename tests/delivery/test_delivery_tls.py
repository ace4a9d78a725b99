"""STARTTLS and SMTP AUTH, as district relays require: the worker upgrades the connection and logs
in; a wrong password is a relay problem (retried, the family's attempts untouched), not a 5xx."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy.engine import Engine

from services.access import operators
from services.core import db
from services.core.settings import Settings
from services.delivery import batches, ledger
from services.delivery.ledger import ItemState
from services.delivery.worker import Worker, WorkerConfig
from tests.delivery_harness import MailSink, copy_database, seeded_template, smtp_settings

FAST = WorkerConfig(processes=1, poll_seconds=0.05, heartbeat_seconds=1.0, once_horizon_seconds=2)


@pytest.fixture
def tls_context(tmp_path: Path) -> ssl.SSLContext:
    key, cert = tmp_path / "relay.key", tmp_path / "relay.crt"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


@pytest.fixture
def engine(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Iterator[Engine]:
    template = seeded_template(tmp_path_factory.getbasetemp(), students=40, seed=7)
    copy_database(template, tmp_path / "ssr.db")
    engine = db.make_engine(f"sqlite:///{tmp_path / 'ssr.db'}")
    yield engine
    engine.dispose()


def authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult:  # type: ignore[no-untyped-def]
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        b"ssr-relay",
        b"relay-secret",
    )
    return AuthResult(success=ok)


async def test_starttls_and_auth_then_a_wrong_password_is_retried(
    engine: Engine, tmp_path: Path, tls_context: ssl.SSLContext
) -> None:
    sink = MailSink().start(
        tls_context=tls_context,
        require_starttls=True,
        auth_required=True,
        authenticator=authenticator,
    )
    try:
        caaspp = operators.resolve(engine, "caaspp")
        selection = batches.Selection(batches.Source.GRADE, grade=3)
        batch_id = batches.create(
            engine, caaspp, selection, name="tls", password_delay=timedelta(0)
        )
        relay = {"starttls": True, "validate_certs": False, "username": "ssr-relay"}
        good = Settings(
            database_url=str(engine.url),
            data_dir=tmp_path / "data",
            extra={"smtp": smtp_settings(sink, password="relay-secret", **relay)},
        )
        await Worker(engine, good, config=FAST).run(once=True)
        assert set(ledger.state_counts(engine, batch_id)) == {ItemState.DONE}
        assert sink.received and all(r.step in ("document", "password") for r in sink.received)

        grade4 = batches.Selection(batches.Source.GRADE, grade=4)  # grade 3 has its SSRs
        second = batches.create(engine, caaspp, grade4, name="tls 2", password_delay=timedelta(0))
        wrong = Settings(
            database_url=str(engine.url),
            data_dir=tmp_path / "data",
            extra={
                "smtp": smtp_settings(sink, password="not-it", max_attempts=1, timeout=1.0, **relay)
            },
        )
        tally = await Worker(engine, wrong, config=FAST).run(once=True)
        counts = ledger.state_counts(engine, second)
        assert ItemState.FAILED not in counts and tally.retried > 0
        items = ledger.uncertain_items(engine, second)
        assert items == []
    finally:
        sink.stop()
