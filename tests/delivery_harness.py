"""A real SMTP server (aiosmtpd on loopback) that records what it received and can misbehave, plus
the helpers the delivery tests use to check received mail with independent PDF readers.

``MailSink`` keeps every accepted message; ``faults`` are rules consulted at RCPT and DATA time that
answer with a chosen SMTP reply (421, 451, 550...) or delay, the way a district relay does.
"""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from services.delivery.ledger import DeliveryItem
from services.roster.tables import School
from tests.databases import copy_database as copy_database  # the delivery tests' import
from tests.databases import seeded_template as seeded_template

PASSWORD_LINE = re.compile(r"^\s{4}([a-z]+(?:-[a-z]+){5})\s*$", re.MULTILINE)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Received:
    index: int
    recipient: str
    message: EmailMessage
    sender: str = ""  # the envelope sender (MAIL FROM): where a bounce would go

    @property
    def item_id(self) -> int:
        return int(str(self.message["X-SSR-Delivery"]).split(";")[0])

    @property
    def step(self) -> str:
        return str(self.message["X-SSR-Delivery"]).split(";")[1].strip()

    @property
    def body(self) -> str:
        return self.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]

    def attachments(self) -> list[tuple[str, bytes]]:
        return [
            (part.get_filename() or "", part.get_payload(decode=True))
            for part in self.message.iter_attachments()
        ]

    def password(self) -> str:
        found = PASSWORD_LINE.search(self.body)
        assert found, f"no password line in message {self.index}"
        return found.group(1)


Rule = Callable[[str, int], str | None]
"""(recipient, number of DATA commands so far) -> an SMTP reply to give instead, or None."""


@dataclass
class MailSink:
    port: int = field(default_factory=free_port)
    received: list[Received] = field(default_factory=list)
    rcpt_rules: list[Rule] = field(default_factory=list)
    data_rules: list[Rule] = field(default_factory=list)
    delay: float = 0.0
    data_count: int = 0
    _controller: Controller | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        for rule in self.rcpt_rules:
            if reply := rule(address, self.data_count):
                return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        with self._lock:
            self.data_count += 1
            count = self.data_count
        if self.delay:
            await asyncio.sleep(self.delay)
        for rule in self.data_rules:
            if reply := rule(envelope.rcpt_tos[0], count):
                return reply
        message = message_from_bytes(envelope.content, policy=policy.default)
        with self._lock:
            self.received.append(
                Received(len(self.received), envelope.rcpt_tos[0], message, envelope.mail_from)  # type: ignore[arg-type]
            )
        return "250 2.0.0 queued"

    def start(self, **smtp_options: object) -> MailSink:
        """Listen on loopback; ``smtp_options`` go to aiosmtpd's SMTP (TLS, authentication)."""
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port, **smtp_options)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def by_item(self) -> dict[int, dict[str, list[Received]]]:
        items: dict[int, dict[str, list[Received]]] = {}
        for received in list(self.received):
            items.setdefault(received.item_id, {"document": [], "password": []})[
                received.step
            ].append(received)
        return items


def smtp_settings(sink: MailSink, **overrides: object) -> dict[str, object]:
    return {
        "host": "127.0.0.1",
        "port": sink.port,
        "connections": 3,
        "backoff_seconds": 0.05,
        "timeout": 10.0,
        **overrides,
    }


def check_family(tmp: Path, document: Received, password: Received | str) -> int:
    """Open every attachment of ``document`` with qpdf and pdftotext using the password taken from
    the separate ``password`` message (or SMS text); each must refuse to open without it, show
    a student's SSID once opened, and name none in its file name (relays log it in clear).
    Returns the number of files checked."""
    secret = password if isinstance(password, str) else password.password()
    assert secret not in document.body, "the password must not travel with the document"
    files = document.attachments()
    assert files, "the document message has no attachment"
    for name, data in files:
        path = tmp / f"{document.index}-{name}"
        path.write_bytes(data)
        assert not re.search(r"\d{10}", name), f"{name} names a student outside the encryption"
        locked = subprocess.run(
            ["qpdf", "--decrypt", str(path), str(path) + ".plain"], capture_output=True
        )
        assert locked.returncode != 0, f"{name} opened without a password"
        opened = subprocess.run(
            ["qpdf", f"--password={secret}", "--decrypt", str(path), str(path) + ".plain"],
            capture_output=True,
        )
        assert opened.returncode == 0, opened.stderr
        text = subprocess.run(
            ["pdftotext", "-upw", secret, str(path), "-"], capture_output=True, text=True
        )
        assert text.returncode == 0 and re.search(r"\b\d{10}\b", text.stdout), name
        assert subprocess.run(["pdftotext", str(path), "-"], capture_output=True).returncode != 0
    return len(files)


def check_every_document(tmp_path: Path, sink: MailSink) -> int:
    """Every document each family received opens with the password of that family's own (last)
    password message; returns the number of families checked."""
    received = sink.by_item()
    for item_id, parts in received.items():
        assert parts["document"] and parts["password"], f"item {item_id} is missing a message"
        for document in parts["document"]:
            check_family(tmp_path, document, parts["password"][-1])
    return len(received)


def first_school_batch(engine: Engine) -> tuple[int, DeliveryItem]:
    """A secure-email batch of the first school, as the LEA CAASPP coordinator makes it (no
    password delay), and its first family's item."""
    from services.access import operators
    from services.delivery import batches

    with Session(engine) as session:
        school_id = session.exec(select(School.id).order_by(col(School.id))).first()
    batch_id = batches.create(
        engine,
        operators.resolve(engine, "caaspp"),
        batches.Selection(source=batches.Source.SCHOOL, school_id=school_id),
        name="Spring SSRs",
        password_delay=timedelta(0),
    )
    with Session(engine) as session:
        item = session.exec(
            select(DeliveryItem)
            .where(DeliveryItem.batch_id == batch_id)
            .order_by(col(DeliveryItem.id))
        ).first()
    assert item is not None
    return batch_id, item


def write_config(tmp_path: Path, sink: MailSink, database_url: str | None = None) -> Path:
    """A config file for real ``ssr-console worker`` processes: the sink as relay, quick polls."""
    config = tmp_path / "config.toml"
    url = database_url or f"sqlite:///{tmp_path / 'ssr.db'}"
    config.write_text(
        f'database_url = "{url}"\n'
        f'data_dir = "{tmp_path / "data"}"\n'
        "[smtp]\n"
        f'host = "127.0.0.1"\nport = {sink.port}\nconnections = 3\nbackoff_seconds = 0.05\n'
        "[delivery]\n"
        "processes = 2\npoll_seconds = 0.05\nheartbeat_seconds = 1.0\nonce_horizon_seconds = 5\n"
    )
    return config


def worker(config: Path, *extra: str) -> list[str]:
    """The command line of a real worker process."""
    return [sys.executable, "-m", "console.cli", "--config", str(config), "worker", *extra]
