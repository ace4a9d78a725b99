"""The password by SMS through an HTTP gateway (a real HTTP server on loopback), after the document
email was accepted; a 503 is retried, a family without a phone number fails with a reason."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from services.access import operators
from services.core import db
from services.core.db import session_scope
from services.core.settings import Settings
from services.delivery import batches
from services.delivery.ledger import DeliveryItem, ItemState
from services.delivery.worker import Worker, WorkerConfig
from tests.delivery_harness import (
    MailSink,
    check_family,
    copy_database,
    seeded_template,
    smtp_settings,
)

FAST = WorkerConfig(processes=1, poll_seconds=0.05, heartbeat_seconds=1.0, once_horizon_seconds=5)


class Gateway(BaseHTTPRequestHandler):
    received: list[dict[str, str]] = []
    authorizations: list[str] = []
    refuse_first = True

    def do_POST(self) -> None:  # noqa: N802 - the http.server hook name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Gateway.authorizations.append(self.headers.get("Authorization", ""))
        if Gateway.refuse_first:
            Gateway.refuse_first = False
            self.send_response(503)
            self.end_headers()
            self.wfile.write(b"busy, try later")
            return
        Gateway.received.append(body)
        self.send_response(202)
        self.end_headers()
        self.wfile.write(b'{"status": "queued"}')

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def gateway() -> Iterator[str]:
    Gateway.received, Gateway.authorizations, Gateway.refuse_first = [], [], True
    server = ThreadingHTTPServer(("127.0.0.1", 0), Gateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/sms"
    server.shutdown()


@pytest.fixture
def engine(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Iterator[Engine]:
    template = seeded_template(tmp_path_factory.getbasetemp(), students=40, seed=7)
    copy_database(template, tmp_path / "ssr.db")
    engine = db.make_engine(f"sqlite:///{tmp_path / 'ssr.db'}")
    yield engine
    engine.dispose()


async def test_password_by_sms_after_the_document(
    engine: Engine, tmp_path: Path, gateway: str
) -> None:
    sink = MailSink().start()
    try:
        caaspp = operators.resolve(engine, "caaspp")
        batch_id = batches.create(
            engine,
            caaspp,
            batches.Selection(batches.Source.GRADE, grade=3),
            name="sms",
            password_channel="sms",
            password_delay=timedelta(0),
        )
        with session_scope(engine) as session:
            items = session.exec(
                select(DeliveryItem).where(DeliveryItem.batch_id == batch_id)
            ).all()
            no_phone = items[0].id
            for item in items:  # unique numbers, so each SMS maps to its family
                phone = None if item.id == no_phone else f"+1951555{item.id:04d}"
                session.execute(
                    update(DeliveryItem).where(DeliveryItem.id == item.id).values(phone=phone)  # type: ignore[arg-type]
                )
        settings = Settings(
            database_url=str(engine.url),
            data_dir=tmp_path / "data",
            extra={"smtp": smtp_settings(sink), "sms": {"url": gateway, "token": "gw-token"}},
        )
        tally = await Worker(engine, settings, config=FAST).run(once=True)
        assert tally.retried >= 1  # the gateway's 503
        with Session(engine) as session:
            rows = {
                i.id: i
                for i in session.exec(
                    select(DeliveryItem).where(DeliveryItem.batch_id == batch_id)
                ).all()
            }
        assert rows[no_phone].state == ItemState.FAILED
        assert "no mobile phone" in (rows[no_phone].error or "")
        received = sink.by_item()
        by_phone = {sms["to"]: sms["text"] for sms in Gateway.received}
        assert set(Gateway.authorizations) == {"Bearer gw-token"}
        checked = 0
        for item_id, item in rows.items():
            assert received[item_id]["password"] == [], "the password went by email too"
            assert len(received[item_id]["document"]) == 1
            if item_id == no_phone:
                continue
            assert item.state == ItemState.DONE
            text = by_phone[f"+1951555{item_id:04d}"]
            password = re.search(r"([a-z]+(?:-[a-z]+){5})", text)
            assert password, text
            checked += check_family(tmp_path, received[item_id]["document"][0], password.group(1))
        assert checked > 0
    finally:
        sink.stop()
