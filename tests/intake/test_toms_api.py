"""API intake against a real HTTP server on loopback that throttles, fails and drops connections."""

from __future__ import annotations

import base64
import json
import logging
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from services.audit.tables import AuditEvent
from services.core.settings import Settings
from services.intake.importer import import_from_api
from services.intake.records import ImportRun
from services.intake.score_reports import ScoreReport
from services.intake.toms_api import RetryPolicy, TomsApiError, TomsClient, _retry_after
from tests.intake_fixtures import LEA_CDS, SSIDS, seed_roster, ssr

USERNAME, SECRET = "lea-1964733", "Q7mZ2xR9pL4vT8nB3kW6"
BROKEN = SSIDS[5]  # this student's PDF always answers 500


@dataclass
class Toms:
    """The fake TOMS's state: what it serves and what it has seen."""

    pdfs: dict[str, bytes]
    seen: Counter[str] = field(default_factory=Counter)
    times: dict[str, list[float]] = field(default_factory=dict)
    tokens_issued: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, key: str) -> int:
        with self.lock:
            self.seen[key] += 1
            self.times.setdefault(key, []).append(time.monotonic())
            return self.seen[key]


def handler_for(toms: Toms) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_: object) -> None:
            pass

        def reply(self, status: int, body: bytes = b"", **headers: str) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            for key, value in headers.items():
                self.send_header(key.replace("_", "-"), value)
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length", 0))
            self.rfile.read(length)
            if self.path != "/api/v1/token":
                return self.reply(404)
            if toms.count("token") == 1:
                return self.reply(503)  # the first token request meets a busy server
            expected = base64.b64encode(f"{USERNAME}:{SECRET}".encode()).decode()
            if self.headers.get("Authorization") != f"Basic {expected}":
                return self.reply(401)
            with toms.lock:
                toms.tokens_issued += 1
                token = f"token-{toms.tokens_issued}"
            self.reply(200, json.dumps({"access_token": token}).encode())

        def do_GET(self) -> None:  # noqa: N802
            token = self.headers.get("Authorization", "")
            if not token.startswith("Bearer token-"):
                return self.reply(401)
            if token == "Bearer token-1" and toms.seen["expire"] >= 3:
                return self.reply(401)  # the first token expires after three uses
            toms.count("expire")
            parts = self.path.strip("/").split("/")
            if parts[:3] == ["api", "v1", "students"] and parts[4:] == ["reports"]:
                ssid = parts[3]
                if toms.count(f"list:{ssid}") == 1 and ssid == SSIDS[0]:
                    return self.reply(429, Retry_After="1")
                if f"{ssid}.pdf" not in toms.pdfs:
                    return self.reply(404)
                listing = [
                    {
                        "report_type": "SB",
                        "year": 2026,
                        "language": "en",
                        "pdf": f"/pdf/{ssid}.pdf",
                        "available_at": "2026-07-20",
                    }
                ]
                return self.reply(200, json.dumps(listing).encode())
            if parts[0] == "pdf" and parts[1] in toms.pdfs:
                attempt = toms.count(f"pdf:{parts[1]}")
                data = toms.pdfs[parts[1]]
                if parts[1] == f"{BROKEN}.pdf":
                    return self.reply(500)
                if attempt == 1:  # drop the connection half-way through the body
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return None
                if attempt == 2:
                    return self.reply(503, Retry_After="0")
                return self.reply(200, data, Content_Type="application/pdf")
            return self.reply(404)

    return Handler


@pytest.fixture
def toms() -> Iterator[tuple[Toms, str]]:
    state = Toms({f"{ssid}.pdf": ssr(ssid) for ssid in SSIDS})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


FAST = RetryPolicy(attempts=4, backoff=0.01, max_delay=2.0)


async def test_api_intake_survives_429_503_and_dropped_connections(
    engine: Engine,
    settings: Settings,
    toms: tuple[Toms, str],
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    state, url = toms
    seed_roster(engine)
    caplog.set_level(logging.DEBUG)
    async with TomsClient(url, USERNAME, SECRET, concurrency=3, retry=FAST) as client:
        summary = await import_from_api(engine, settings, client, None, workers=3, lea_cds=LEA_CDS)
    assert summary.progress.stored == 5
    assert summary.reasons == {"download_failed": 1}
    assert client.retries >= 5 + 5 + 1 + 1  # drops, 503s, the 429, the token 503
    gap = state.times[f"list:{SSIDS[0]}"]
    assert gap[1] - gap[0] >= 0.9  # Retry-After: 1 was honoured
    assert state.tokens_issued >= 2  # an expired token was renewed
    with Session(engine) as session:
        stored = session.exec(select(ScoreReport)).all()
        assert {settings.report_store.joinpath(r.file_path).read_bytes() for r in stored} == {
            ssr(s) for s in SSIDS[:5]
        }
        texts = [e.detail for e in session.exec(select(AuditEvent)).all()]
        texts += [r.source for r in session.exec(select(ImportRun)).all()]
    assert all(SECRET not in text and USERNAME not in text for text in texts)
    assert SECRET not in caplog.text and SECRET not in repr(client)

    downloads = sum(n for key, n in state.seen.items() if key.startswith("pdf:"))
    async with TomsClient(url, USERNAME, SECRET, retry=FAST) as client:  # resumption
        again = await import_from_api(engine, settings, client, None, lea_cds=LEA_CDS)
    assert (again.progress.stored, again.progress.duplicates) == (0, 5)
    broken_only = sum(n for key, n in state.seen.items() if key.startswith("pdf:")) - downloads
    assert broken_only == FAST.attempts  # only the failing PDF was asked for again


async def test_wrong_secret_is_a_clear_error_without_the_secret(toms: tuple[Toms, str]) -> None:
    _, url = toms
    async with TomsClient(url, USERNAME, "wrong-secret-value-xx", retry=FAST) as client:
        with pytest.raises(TomsApiError, match="refused the LEA credential") as caught:
            await client.reports(SSIDS[0])
    assert "wrong-secret" not in str(caught.value)


async def test_unreachable_server_gives_up_after_the_attempts() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with TomsClient(f"http://127.0.0.1:{port}", USERNAME, SECRET, retry=FAST) as client:
        with pytest.raises(TomsApiError, match="failed 4 times"):
            await client.reports(SSIDS[0])
    assert client.retries == 3


def test_retry_after_forms() -> None:
    assert _retry_after("3", 30) == 3
    assert _retry_after("600", 30) == 30
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 30) == 0
    assert _retry_after("soon", 30) is None


def test_import_command_fetches_from_the_api_with_the_secret_kept_off_the_command_line(
    engine: Engine,
    settings: Settings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`ssr-console import --api URL --username NAME` reads the secret from an owner-only file or
    $SSR_TOMS_SECRET (never argv, which `ps` shows), and refuses a file others can read."""
    from console.cli import main

    seed_roster(engine)
    state = Toms({f"{ssid}.pdf": ssr(ssid) for ssid in SSIDS[:3]})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(state))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    base = ["--database-url", settings.database_url, "--data-dir", str(settings.data_dir)]
    command = [*base, "import", "--lea", LEA_CDS, "--api", url, "--username", USERNAME]
    secret = tmp_path / "toms-secret"
    secret.write_text(SECRET + "\n")
    try:
        secret.chmod(0o644)
        assert main([*command, "--secret-file", str(secret)]) == 2
        assert "readable by others (mode 644)" in capsys.readouterr().err
        secret.chmod(0o600)
        assert main([*command, "--secret-file", str(secret)]) == 0
        out, err = capsys.readouterr()
        assert "3 stored" in out and SECRET not in out + err
        monkeypatch.setenv("SSR_TOMS_SECRET", SECRET)  # again, from the environment: resumes
        assert main(command) == 0
        assert "0 stored (0 new versions), 3 already stored" in capsys.readouterr().out
        assert main([*base, "import", "--api", url]) == 2  # no username, nothing recorded
        assert "No TOMS credential is recorded" in capsys.readouterr().err
        assert main([*base, "import", str(tmp_path), "--api", url]) == 2
        assert "either PATHs or --api" in capsys.readouterr().err
    finally:
        server.shutdown()
        server.server_close()


class ReissuingToms(BaseHTTPRequestHandler):
    """A TOMS whose reports ETS re-issues: ``listing`` and ``pdfs`` change between imports."""

    listing: dict[str, dict[str, object]] = {}
    pdfs: dict[str, bytes] = {}
    downloads: Counter[str] = Counter()

    def log_message(self, *_: object) -> None:
        pass

    def reply(self, body: bytes, kind: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.reply(json.dumps({"access_token": "token-1", "expires_in": 3600}).encode(), "application/json")  # fmt: skip

    def do_GET(self) -> None:  # noqa: N802
        parts = self.path.strip("/").split("/")
        if parts[0] == "pdf":
            self.downloads[parts[1]] += 1
            return self.reply(self.pdfs[parts[1]], "application/pdf")
        ssid = parts[3]
        entry = {"report_type": "SB", "year": 2026, "pdf": f"/pdf/{ssid}"}
        return self.reply(json.dumps([entry | self.listing.get(ssid, {})]).encode(), "application/json")  # fmt: skip


async def test_api_intake_takes_a_reissued_ssr_as_a_new_version_received_when_the_api_says(
    migrated_url: str, tmp_path: Path
) -> None:
    """A corrected SSR is noticed by the API's ``available_at`` (a later date: fetched, stored as
    version 2, received that day) or, in a listing without a date, by its content; an unchanged
    report with the same date is not downloaded again."""
    from datetime import UTC, datetime

    from services.core import db
    from services.core.columns import as_utc

    engine = db.make_engine(migrated_url)
    settings = Settings(database_url=migrated_url, data_dir=tmp_path / "data")
    ids = seed_roster(engine)
    first, second, third = SSIDS[:3]
    ReissuingToms.pdfs = {ssid: ssr(ssid) for ssid in (first, second, third)}
    ReissuingToms.listing = {
        first: {"available_at": "2026-07-20"},
        second: {"available_at": "2026-07-20T16:30:00-07:00"},
    }
    ReissuingToms.downloads = Counter()
    server = ThreadingHTTPServer(("127.0.0.1", 0), ReissuingToms)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"

    async def run() -> tuple[int, int]:
        async with TomsClient(url, USERNAME, SECRET, retry=FAST) as client:
            summary = await import_from_api(
                engine, settings, client, None, [first, second, third], lea_cds=LEA_CDS
            )
        return summary.progress.stored, summary.progress.new_versions

    try:
        assert await run() == (3, 0)
        assert await run() == (0, 0)  # the same dates: nothing fetched; no date: fetched, same
        assert ReissuingToms.downloads == Counter({first: 1, second: 1, third: 2})
        ReissuingToms.listing[first] = {"available_at": "2026-08-03"}  # ETS corrected a score
        ReissuingToms.pdfs[first] = ssr(first, score=2555)
        ReissuingToms.pdfs[third] = ssr(third, score=2444)  # corrected, the listing has no date
        assert await run() == (2, 2)
    finally:
        server.shutdown()
        server.server_close()
    with Session(engine) as session:
        rows = session.exec(select(ScoreReport).order_by(ScoreReport.id)).all()
        found = {(r.student_id, r.version): as_utc(r.received_at) for r in rows}
    assert found[(ids[first], 1)] == datetime(2026, 7, 20, 12, tzinfo=UTC)  # a date: noon UTC
    assert found[(ids[first], 2)] == datetime(2026, 8, 3, 12, tzinfo=UTC)
    assert found[(ids[second], 1)] == datetime(2026, 7, 20, 23, 30, tzinfo=UTC)
    assert (ids[third], 2) in found and (ids[second], 2) not in found
    engine.dispose()
