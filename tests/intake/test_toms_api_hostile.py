"""A hostile or careless TOMS-style API: links to other hosts, redirects, plain http, and answers
built to crash a JSON reader. Real HTTP servers on loopback: the API on 127.0.0.1, "another host"
on 127.0.0.2 (and 127.0.0.3) that records whether a bearer token reached it."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from console import config
from services.core import toms
from services.core.errors import InvalidInput
from services.core.settings import Settings
from services.intake.importer import import_from_api
from services.intake.records import ImportException
from services.intake.score_reports import ScoreReport
from services.intake.toms_api import RetryPolicy, TomsApiError, TomsClient
from tests.intake_fixtures import LEA_CDS, SSIDS, seed_roster, ssr

USERNAME, SECRET = "lea-1964733", "Q7mZ2xR9pL4vT8nB3kW6"
TOKEN = "token-for-the-api-only"  # noqa: S105 (a test value)
FAST = RetryPolicy(attempts=2, backoff=0.01, max_delay=0.1)


@dataclass
class Host:
    """One real HTTP server: the answers it gives per path and the requests it was sent."""

    name: str
    answers: dict[str, tuple[int, bytes, dict[str, str]]] = field(default_factory=dict)
    seen: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Authorization)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def serve(self, path: str, body: bytes, status: int = 200, **headers: str) -> str:
        """Answer ``path`` with ``body``; returns the absolute URL."""
        self.answers[path] = (status, body, headers)
        return self.url + path

    def authorised(self) -> list[str]:
        """Paths that arrived carrying an Authorization header."""
        with self.lock:
            return [path for path, auth in self.seen if auth is not None]


def handler_for(host: Host, api: bool) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_: object) -> None:
            pass

        def reply(
            self, status: int, body: bytes = b"", headers: dict[str, str] | None = None
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            expected = base64.b64encode(f"{USERNAME}:{SECRET}".encode()).decode()
            if not api or self.path != "/api/v1/token":
                return self.reply(404)
            if self.headers.get("Authorization") != f"Basic {expected}":
                return self.reply(401)
            self.reply(200, json.dumps({"access_token": TOKEN}).encode())

        def do_GET(self) -> None:  # noqa: N802
            with host.lock:
                host.seen.append((self.path, self.headers.get("Authorization")))
            if api and self.headers.get("Authorization") != f"Bearer {TOKEN}":
                return self.reply(401)
            status, body, headers = host.answers.get(self.path, (404, b"", {}))
            self.reply(status, body, headers)

    return Handler


def start(host: Host, address: str, api: bool = False) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((address, 0), handler_for(host, api))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host.url = f"http://{address}:{server.server_address[1]}"
    return server


@pytest.fixture
def hosts() -> Iterator[tuple[Host, Host, Host]]:
    """The API, a storage host, and a third host nobody allowed."""
    made = [(Host("api"), "127.0.0.1", True), (Host("storage"), "127.0.0.2", False)]
    made.append((Host("stranger"), "127.0.0.3", False))
    servers = [start(host, address, api) for host, address, api in made]
    try:
        yield made[0][0], made[1][0], made[2][0]
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def listing(api: Host, ssid: str, url: str, **fields: object) -> None:
    entry = {"report_type": "SB", "year": 2026, "language": "en", "pdf_url": url} | fields
    api.serve(f"/api/v1/students/{ssid}/reports", json.dumps([entry]).encode())


def refusals(engine: Engine) -> dict[str, str]:
    """SSID -> reason of every refusal recorded."""
    with Session(engine) as session:
        return {e.ssid or "": e.reason for e in session.exec(select(ImportException)).all()}


def stored(engine: Engine) -> set[int]:
    with Session(engine) as session:
        return {r.student_id for r in session.exec(select(ScoreReport)).all()}


async def test_token_never_leaves_the_api_origin(
    engine: Engine, settings: Settings, hosts: tuple[Host, Host, Host]
) -> None:
    """Links (and redirects) to another host, or to another port of the API's host, are refused
    without a request; the API's own links are fetched with the token."""
    api, storage, _ = hosts
    ids = seed_roster(engine)
    same_host_other_port = storage.url.replace("127.0.0.2", "127.0.0.1")
    listing(api, SSIDS[0], storage.serve("/a.pdf", ssr(SSIDS[0])))
    listing(api, SSIDS[1], api.serve("/go/b", b"", 302, Location=storage.serve("/b.pdf", b"")))
    listing(api, SSIDS[2], same_host_other_port + "/c.pdf")
    listing(api, SSIDS[3], "/pdf/d.pdf")
    api.serve("/pdf/d.pdf", ssr(SSIDS[3]))
    async with TomsClient(api.url, USERNAME, SECRET, retry=FAST) as client:
        summary = await import_from_api(
            engine, settings, client, None, SSIDS[:4], workers=2, lea_cds=LEA_CDS
        )
    assert storage.seen == []  # not even asked, with or without the token
    assert stored(engine) == {ids[SSIDS[3]]}
    assert refusals(engine) == {ssid: "foreign_link" for ssid in SSIDS[:3]}
    assert summary.progress.stored == 1
    assert ("/pdf/d.pdf", f"Bearer {TOKEN}") in api.seen


async def test_allowed_storage_host_is_fetched_without_credentials(
    engine: Engine, settings: Settings, hosts: tuple[Host, Host, Host]
) -> None:
    """A pre-signed link to an allow-listed host, given directly or as the API's redirect, is
    fetched with no Authorization header; a redirect from there to a third host is refused."""
    api, storage, stranger = hosts
    ids = seed_roster(engine)
    listing(api, SSIDS[0], storage.serve("/a.pdf?sig=1", ssr(SSIDS[0])))
    listing(api, SSIDS[1], api.serve("/go/b", b"", 307, Location=storage.url + "/b.pdf"))
    storage.serve("/b.pdf", ssr(SSIDS[1]))
    listing(api, SSIDS[2], storage.serve("/c.pdf", b"", 302, Location=stranger.url + "/c.pdf"))
    client = TomsClient(api.url, USERNAME, SECRET, retry=FAST, download_hosts=["127.0.0.2"])
    async with client:
        await import_from_api(engine, settings, client, None, SSIDS[:3], lea_cds=LEA_CDS)
    assert sorted(path for path, _ in storage.seen) == ["/a.pdf?sig=1", "/b.pdf", "/c.pdf"]
    assert storage.authorised() == [] and stranger.seen == []
    assert stored(engine) == {ids[SSIDS[0]], ids[SSIDS[1]]}
    assert refusals(engine) == {SSIDS[2]: "foreign_link"}


@pytest.mark.parametrize(
    "url",
    [
        "http://toms.example.org",
        "http://10.0.0.5:8080/toms",
        "http://[fe80::1]/",
        "ftp://127.0.0.1",
    ],
)
def test_plain_http_api_is_refused_off_loopback(url: str) -> None:
    with pytest.raises(TomsApiError, match="https"):
        TomsClient(url, USERNAME, SECRET)


@pytest.mark.parametrize(
    "url",
    ["https://toms.example.org", "http://localhost:8080", "http://127.9.0.1", "http://[::1]:80"],
)
def test_https_or_loopback_api_is_accepted(url: str) -> None:
    TomsClient(url, USERNAME, SECRET)


async def test_plain_http_link_to_an_allowed_host_is_refused() -> None:
    """An allow-listed host still needs https: a pre-signed link over plain http would hand the
    report (and the signature) to anyone on the path. Refused before any connection is tried."""
    client = TomsClient(
        "https://toms.invalid", USERNAME, SECRET, retry=FAST, download_hosts=["storage.invalid"]
    )
    async with client:
        with pytest.raises(TomsApiError, match="https"):
            await client.download("http://storage.invalid/x.pdf?sig=abc")
    assert client.retries == 0


NESTED = b"[" * 200_000 + b"]" * 200_000
DEEP_FIELD = b'[{"report_type": ' + b"[" * 5000 + b"]" * 5000 + b', "year": 2026, "pdf": "/p"}]'


def test_hostile_answers_refuse_one_student_and_the_cli_run_goes_on(
    engine: Engine, settings: Settings, hosts: tuple[Host, Host, Host], tmp_path: Path
) -> None:
    """`ssr-console import --api` (a real process) against an API whose answers for some students
    are deeply nested JSON, lone surrogates or oversized: those students are refused with a reason,
    the others are stored, the allow-listed storage host never sees a credential."""
    api, storage, _ = hosts
    ids = seed_roster(engine)
    hostile = {
        SSIDS[1]: NESTED,
        SSIDS[2]: DEEP_FIELD,
        SSIDS[3]: b'[{"report_type": "SB", "year": 2026, "language": "\\ud800", "pdf": "/p"}]',
        SSIDS[4]: b'[{"report_type": "SB\\udfff", "year": 2026, "language": "en", "pdf": "/p"}]',
    }
    for ssid, body in hostile.items():
        api.serve(f"/api/v1/students/{ssid}/reports", body)
    listing(api, SSIDS[0], "/pdf/a.pdf")
    api.serve("/pdf/a.pdf", ssr(SSIDS[0]))
    listing(api, SSIDS[5], storage.serve("/f.pdf?sig=2", ssr(SSIDS[5])))
    config = tmp_path / "config.toml"
    config.write_text('[toms]\ndownload_hosts = ["127.0.0.2"]\n')
    secret = tmp_path / "secret"
    secret.write_text(SECRET)
    secret.chmod(0o600)
    command = [sys.executable, "-m", "console.cli", "--config", str(config)]
    command += ["--database-url", settings.database_url, "--data-dir", str(settings.data_dir)]
    command += ["import", "--lea", LEA_CDS, "--api", api.url, "--username", USERNAME]
    command += ["--secret-file", str(secret)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSR_")}
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "2 stored" in done.stdout
    assert stored(engine) == {ids[SSIDS[0]], ids[SSIDS[5]]}
    assert refusals(engine) == {ssid: "bad_listing" for ssid in hostile}
    assert storage.authorised() == [] and [p for p, _ in storage.seen] == ["/f.pdf?sig=2"]


async def test_oversized_undecodable_or_out_of_range_answers_are_refused(
    engine: Engine, settings: Settings, hosts: tuple[Host, Host, Host]
) -> None:
    """A report list is read up to 1 MiB and holds at most 100 reports; a body whose
    Content-Encoding does not decode, or a year no column can hold, refuses that student only."""
    api, _, _ = hosts
    ids = seed_roster(engine)
    api.serve(f"/api/v1/students/{SSIDS[0]}/reports", b" " * (2 * 1024 * 1024) + b"[]")
    many = [{"report_type": "SB", "year": 2026, "pdf": f"/many/{n}"} for n in range(1000)]
    api.serve(f"/api/v1/students/{SSIDS[1]}/reports", json.dumps(many).encode())
    garbled = {"Content-Encoding": "gzip"}
    api.answers[f"/api/v1/students/{SSIDS[2]}/reports"] = (200, b"not gzip at all", garbled)
    listing(api, SSIDS[3], "/many/year", year=10**30)
    listing(api, SSIDS[4], "/pdf/e.pdf")
    api.answers["/pdf/e.pdf"] = (200, b"not gzip either", garbled)
    listing(api, SSIDS[5], "/pdf/f.pdf")
    api.serve("/pdf/f.pdf", ssr(SSIDS[5]))
    async with TomsClient(api.url, USERNAME, SECRET, retry=FAST) as client:
        await import_from_api(engine, settings, client, None, lea_cds=LEA_CDS)
    bad = {ssid: "bad_listing" for ssid in SSIDS[:4]}
    assert refusals(engine) == bad | {SSIDS[4]: "download_failed"}
    assert [p for p, _ in api.seen if p.startswith("/many/")] == []
    assert stored(engine) == {ids[SSIDS[5]]}


def test_download_hosts_setting_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    for bad in ('"a.example.org"', '["https://a.example.org/"]', '["a.example.org:443"]', "[1]"):
        path.write_text(f"[toms]\ndownload_hosts = {bad}\n")
        with pytest.raises(InvalidInput, match=r"\[toms\] download_hosts(\[0\])? must be"):
            toms.download_hosts(config.load(path))
    path.write_text('[toms]\ndownload_host = ["a.example.org"]\n')
    with pytest.raises(InvalidInput, match=r"\[toms\] download_host is not a setting"):
        toms.download_hosts(config.load(path))
    path.write_text('[toms]\ndownload_hosts = ["A.Example.org"]\n')
    assert toms.download_hosts(config.load(path)) == ("a.example.org",)
