"""A small world for the credential tests: two LEAs with their operators, and a TOMS-style token
endpoint on loopback.

Built directly (not through the demo seeder) so the credential tests need no PDFs and stay fast.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

from cryptography.fernet import Fernet
from sqlalchemy.engine import Engine

from services.access.tables import Operator, Role
from services.core.db import session_scope
from services.core.vault import Vault
from services.credential.tables import Credential
from services.roster.tables import LEA, School


@dataclass
class World:
    lea_id: int
    other_lea_id: int
    ops: dict[str, Operator]  # caaspp, elpac, site, tech, helpdesk, other_caaspp

    def __getitem__(self, name: str) -> Operator:
        return self.ops[name]


def build(engine: Engine) -> World:
    with session_scope(engine) as session:
        lea = LEA(cds_code="1964733", name="Los Ranchos Unified", county="Los Angeles")
        other = LEA(cds_code="3467439", name="Sacramento County Office", county="Sacramento")
        session.add_all([lea, other])
        session.flush()
        assert lea.id is not None and other.id is not None
        school = School(lea_id=lea.id, cds_code="19647336012345", name="Vista Elementary")
        session.add(school)
        session.flush()
        people = {
            "caaspp": Operator(
                username="caaspp",
                display_name="Ana CAASPP",
                role=Role.LEA_CAASPP,
                lea_id=lea.id,
                email="ana@lrusd.example",
            ),
            "elpac": Operator(
                username="elpac",
                display_name="Eli ELPAC",
                role=Role.LEA_ELPAC,
                lea_id=lea.id,
                email="eli@lrusd.example",
            ),
            "site": Operator(
                username="site",
                display_name="Sam Site",
                role=Role.SITE,
                lea_id=lea.id,
                school_id=school.id,
            ),
            "tech": Operator(
                username="tech", display_name="Tia Tech", role=Role.TECH, lea_id=lea.id
            ),
            "helpdesk": Operator(
                username="helpdesk", display_name="Hal Help", role=Role.HELPDESK, lea_id=lea.id
            ),
            "other_caaspp": Operator(
                username="other_caaspp",
                display_name="Olga Other",
                role=Role.LEA_CAASPP,
                lea_id=other.id,
            ),
            "other_elpac": Operator(
                username="other_elpac",
                display_name="Omar Other",
                role=Role.LEA_ELPAC,
                lea_id=other.id,
            ),
        }
        session.add_all(people.values())
        session.flush()
        for operator in people.values():
            session.expunge(operator)
        return World(lea.id, other.id, people)


class TokenServer:
    """A TOMS-style token endpoint on loopback: POST /api/v1/token with HTTP Basic credentials.

    It accepts exactly the (username, secret) pair set in ``accepted``, as a vendor system holding
    the live credential would, and answers 401 to anything else.
    """

    def __init__(self, port: int = 0, accepted: tuple[str, str] | None = None) -> None:
        self.accepted = accepted
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                server.requests += 1
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                auth = self.headers.get("Authorization", "")
                pair = None
                if auth.startswith("Basic "):
                    user, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
                    pair = (user, secret)
                if self.path != "/api/v1/token":
                    self._answer(404, {"error": "not_found"})
                elif form.get("grant_type") != ["client_credentials"]:
                    self._answer(400, {"error": "unsupported_grant_type"})
                elif pair is None or pair != server.accepted:
                    self._answer(401, {"error": "invalid_client"})
                else:
                    self._answer(200, {"access_token": "tok-123", "token_type": "Bearer"})

            def _answer(self, code: int, body: dict[str, str]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/api/v1/token"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> TokenServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def free_port() -> int:
    """A loopback port nothing listens on (TOMS down), for a server started there later."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def token_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/api/v1/token"


def record_credential(
    engine: Engine, operator: Operator, *, generated_on: date | None = None
) -> None:
    """A TOMS credential recorded for the operator's LEA, as if TOMS had confirmed it then."""
    from services.credential import lifecycle

    moment = datetime.combine(generated_on, datetime.min.time(), UTC) if generated_on else None
    recorded = lifecycle.record(
        engine,
        operator,
        operator.lea_id,
        Vault(Fernet.generate_key()),
        None,
        username=f"lea-{operator.lea_id}-sis",
        secret="Zq4vN8wX2mR7tK3pL9sB",
        generated_on=generated_on,
        now=moment,
    )
    with session_scope(engine) as session:
        row = session.get(Credential, recorded.credential_id)
        assert row is not None
        row.verified_at, row.verified_by = row.created_at, "toms-test"
        session.add(row)
