"""An API download has an overall deadline, not only a per-read timeout: a loopback server that
trickles a PDF a few bytes at a time (never idle long enough for a read timeout) is cut off at
the deadline with a sentence, and nothing of that report is stored."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from services.core.settings import Settings
from services.intake.importer import import_from_api
from services.intake.records import ImportException
from services.intake.score_reports import ScoreReport
from services.intake.toms_api import RetryPolicy, TomsClient
from tests.intake_fixtures import LEA_CDS, SSIDS, seed_roster, ssr

USERNAME, SECRET = "lea-1964733", "Q7mZ2xR9pL4vT8nB3kW6"
TOKEN = "token-for-the-trickle-test"  # noqa: S105 (a test value)


class Trickle(BaseHTTPRequestHandler):
    """The token, one report list, and a PDF sent in 400 pieces 50 ms apart: a read timeout of
    seconds never fires, and the whole takes 20 s, twenty times the deadline."""

    protocol_version = "HTTP/1.1"
    stop = threading.Event()

    def log_message(self, *_: object) -> None:
        pass

    def _reply(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        expected = base64.b64encode(f"{USERNAME}:{SECRET}".encode()).decode()
        assert self.headers.get("Authorization") == f"Basic {expected}"
        self._reply(json.dumps({"access_token": TOKEN}).encode())

    def do_GET(self) -> None:  # noqa: N802
        if self.path.endswith("/reports"):
            entry = {"report_type": "SB", "year": 2026, "language": "en", "pdf_url": "/slow.pdf"}
            return self._reply(json.dumps([entry]).encode())
        body = ssr(SSIDS[0])
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        piece = max(1, len(body) // 400)
        for start in range(0, len(body), piece):
            if self.stop.is_set():
                return
            self.wfile.write(body[start : start + piece])
            self.wfile.flush()
            time.sleep(0.05)


@pytest.fixture
def trickle() -> Iterator[str]:
    Trickle.stop.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    Trickle.stop.set()
    server.shutdown()
    server.server_close()


async def test_a_trickling_download_is_cut_off_at_the_deadline_and_nothing_is_kept(
    engine: Engine, settings: Settings, trickle: str
) -> None:
    seed_roster(engine)
    retry = RetryPolicy(attempts=2, backoff=0.01, max_delay=0.1)
    async with TomsClient(trickle, USERNAME, SECRET, retry=retry, timeout=5, deadline=1) as client:
        summary = await import_from_api(engine, settings, client, None, SSIDS[:1], lea_cds=LEA_CDS)
    assert summary.reasons == {"download_failed": 1}
    assert summary.progress.stored == 0
    with Session(engine) as session:
        refusal = session.exec(select(ImportException)).one()
        assert session.exec(select(ScoreReport)).all() == []
    assert "did not finish within 1 seconds (the deadline for one request)" in refusal.detail
    assert "nothing of its answer was kept" in refusal.detail
    assert not [p for p in settings.report_store.rglob("*") if p.is_file()]  # nothing half-stored
