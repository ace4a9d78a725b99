"""Helpers for the reminder tests: an LEA with both coordinators, credentials, SSRs, and a real
SMTP server (aiosmtpd) on loopback that records every message it accepts."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from email import message_from_bytes, policy
from email.message import Message
from zoneinfo import ZoneInfo

from aiosmtpd.controller import Controller
from sqlalchemy import update
from sqlalchemy.engine import Engine

from services.access.tables import Operator, Role
from services.core.db import session_scope
from services.core.programs import Program
from services.credential.tables import Credential
from services.intake.score_reports import ScoreReport
from services.roster.tables import LEA, School, Student

PACIFIC = ZoneInfo("America/Los_Angeles")


def at(day: date, hour: int = 8) -> datetime:
    """``hour`` o'clock Pacific on ``day``, as aware UTC (the scheduler's clock)."""
    return datetime.combine(day, time(hour), PACIFIC).astimezone(UTC)


@dataclass
class Inbox:
    """What the loopback SMTP server received."""

    messages: list[Message] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    refuse: bool = False

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        if self.refuse:
            return "451 4.3.0 try again later"
        with self.lock:
            self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"

    def subjects(self) -> list[tuple[str, str]]:
        with self.lock:
            return [(str(m["To"]), str(m["Subject"])) for m in self.messages]


class SmtpServer:
    def __init__(self) -> None:
        self.inbox = Inbox()
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=free_port())

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

    @property
    def port(self) -> int:
        return self.controller.port


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class World:
    lea_id: int
    credential_id: int
    school_id: int


def build(engine: Engine, expires_on: date, languages: tuple[str, str] = ("en", "es")) -> World:
    """One LEA, its CAASPP coordinator (first language) and ELPAC coordinator (second), a help desk
    operator (never notified), and a live credential expiring at 23:59 Pacific on ``expires_on``."""
    with session_scope(engine) as session:
        lea = LEA(cds_code="1964733", name="Los Ranchos Unified", county="Los Angeles")
        session.add(lea)
        session.flush()
        assert lea.id is not None
        school = School(lea_id=lea.id, cds_code="19647336012345", name="Vista Elementary")
        session.add(school)
        session.add_all(
            [
                Operator(
                    username="caaspp",
                    display_name="Ana CAASPP",
                    role=Role.LEA_CAASPP,
                    lea_id=lea.id,
                    email="ana@ranchos.example",
                    language=languages[0],
                ),
                Operator(
                    username="elpac",
                    display_name="Eli ELPAC",
                    role=Role.LEA_ELPAC,
                    lea_id=lea.id,
                    email="eli@ranchos.example",
                    language=languages[1],
                ),
                Operator(
                    username="helpdesk",
                    display_name="Hal Help",
                    role=Role.HELPDESK,
                    lea_id=lea.id,
                    email="hal@ranchos.example",
                ),
            ]
        )
        session.flush()
        assert school.id is not None
        lea_id, school_id = lea.id, school.id
    credential_id = issue(engine, lea_id, expires_on)
    return World(lea_id, credential_id, school_id)


def issue(engine: Engine, lea_id: int, expires_on: date) -> int:
    """A new live credential, revoking the previous one (what a reset does to the tables)."""
    now = datetime.now(UTC)
    with session_scope(engine) as session:
        session.execute(
            update(Credential)
            .where(Credential.lea_id == lea_id, Credential.revoked_at.is_(None))  # type: ignore[union-attr]
            .values(revoked_at=now, revoked_by="caaspp")
        )
        credential = Credential(
            lea_id=lea_id,
            username="ranchos-sis",
            secret_sealed="sealed-by-the-vault",
            created_by="caaspp",
            verified_at=now,
            expires_at=datetime.combine(expires_on, time(23, 59), PACIFIC).astimezone(UTC),
        )
        session.add(credential)
        session.flush()
        assert credential.id is not None
        return credential.id


def add_reports(
    engine: Engine, world: World, program: Program, received: datetime, count: int, first: int = 0
) -> None:
    with session_scope(engine) as session:
        for n in range(first, first + count):
            student = Student(
                ssid=f"{9000000000 + n}",
                lea_id=world.lea_id,
                school_id=world.school_id,
                first_name="Test",
                last_name=f"Student{n}",
                name_key=f"student{n} test",
                grade=5,
            )
            session.add(student)
            session.flush()
            assert student.id is not None
            session.add(
                ScoreReport(
                    student_id=student.id,
                    program=program,
                    admin_year=2026,
                    test="ELA" if program is Program.CAASPP else "ELPAC",
                    file_path=f"/tmp/{n}.pdf",
                    sha256=f"{n:064d}",
                    received_at=received,
                )
            )


def days(start: date, stop: date) -> list[date]:
    return [start + timedelta(days=n) for n in range((stop - start).days + 1)]
