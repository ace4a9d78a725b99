"""Sending mail through the district relay (aiosmtplib), with caps that survive restarts.

Each connection sends one message at a time in three phases, and the phase an error happens in says
what it means for the family:

- connecting, EHLO, STARTTLS, AUTH, MAIL, RCPT: nothing was handed over, so any temporary error
  (refused connection, timeout, 4xx) is retried later and a 5xx on MAIL/RCPT fails the item with the
  server's words;
- DATA answered with a code: 2xx accepted, 4xx retried, 5xx failed;
- DATA without an answer (disconnect, timeout): the message may have been accepted, so the item is
  *uncertain* and waits for an operator, never resent blindly.

Caps: ``per_minute`` and ``per_day`` messages (0 = none). Each send reserves a slot in ``send_quota``
in the same transaction that claims the item, so the count is right after a crash and across
several workers; a slot reserved for a message that then fails is not given back (erring low).
"""

from __future__ import annotations

import base64
import enum
import functools
import html
import random
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.header import Header
from email.utils import encode_rfc2231, format_datetime, formataddr, make_msgid, parseaddr
from pathlib import Path

import aiosmtplib
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col

from services.core.settings import Settings, SmtpSection, section_of
from services.delivery.ledger import SendQuota


class MailConfig(SmtpSection):
    """The ``[smtp]`` section, typed and checked by the settings model
    (``services.core.settings.SmtpSection``), which the console also checks at start."""

    @classmethod
    def from_settings(cls, settings: Settings) -> MailConfig:
        return section_of(cls, settings.extra.get("smtp"), "smtp")


class Outcome(enum.StrEnum):
    ACCEPTED = "accepted"
    RETRY = "retry"  # temporary: nothing was handed over, or the server said 4xx
    FAILED = "failed"  # permanent: the server said 5xx
    UNCERTAIN = "uncertain"  # the message data went out but no answer came back


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    detail: str
    connection_error: bool = False  # the relay itself is unreachable; not this family's fault
    message_id: str = ""  # the Message-ID of an accepted email, for tracing it in the relay's log


def _said(error: aiosmtplib.SMTPResponseException) -> str:
    return f"{error.code} {error.message}".strip()


class SmtpConnection:
    """One connection to the relay, opened on first use and reopened after a failure."""

    def __init__(self, config: MailConfig) -> None:
        self.config = config
        self._client: aiosmtplib.SMTP | None = None

    async def _connected(self) -> aiosmtplib.SMTP:
        if self._client is not None and self._client.is_connected:
            return self._client
        config = self.config
        client = aiosmtplib.SMTP(
            hostname=config.host,
            port=config.port,
            use_tls=config.implicit_tls,
            start_tls=config.starttls if not config.implicit_tls else False,
            username=config.username,
            password=config.password,
            timeout=config.timeout,
            validate_certs=config.validate_certs,
        )
        await client.connect()
        self._client = client
        return client

    async def send(self, message: Outgoing, return_path: str = "") -> SendResult:
        """Hand ``message`` to the relay; ``return_path`` is the envelope sender bounces go to
        (``services.delivery.return_path``), the From address when empty."""
        try:
            client = await self._connected()
        except aiosmtplib.SMTPResponseException as error:
            await self.close()
            return SendResult(Outcome.RETRY, f"relay refused the connection: {_said(error)}", True)
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as error:
            await self.close()
            return SendResult(Outcome.RETRY, f"relay unreachable: {error}", True)
        try:
            await client.mail(return_path or message.sender)
            await client.rcpt(message.recipient)
        except aiosmtplib.SMTPResponseException as error:
            await self._reset(error)
            if 500 <= error.code < 600:
                return SendResult(Outcome.FAILED, _said(error))
            return SendResult(Outcome.RETRY, _said(error), error.code == 421)
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as error:
            await self.close()
            return SendResult(Outcome.RETRY, f"connection lost before the message: {error}", True)
        try:
            response = await client.data(message.data)
        except aiosmtplib.SMTPResponseException as error:
            await self._reset(error)
            if 500 <= error.code < 600:
                return SendResult(Outcome.FAILED, _said(error))
            return SendResult(Outcome.RETRY, _said(error), error.code == 421)
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as error:
            await self.close()
            return SendResult(Outcome.UNCERTAIN, f"no answer after the message data: {error}")
        return SendResult(
            Outcome.ACCEPTED,
            f"{response.code} {response.message}".strip(),
            message_id=message.message_id,
        )

    async def _reset(self, error: aiosmtplib.SMTPResponseException) -> None:
        if error.code == 421 or self._client is None or not self._client.is_connected:
            await self.close()
            return
        try:
            await self._client.rset()
        except (TimeoutError, aiosmtplib.SMTPException, OSError):
            await self.close()

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None and client.is_connected:
            try:
                await client.quit()
            except (TimeoutError, aiosmtplib.SMTPException, OSError):
                client.close()


def new_message_id(config: MailConfig) -> str:
    """A Message-ID in the sender's domain, to find a message in the relay's log."""
    return make_msgid("ssr", domain=config.from_address.rpartition("@")[2] or "localhost")


@dataclass(frozen=True)
class Outgoing:
    """A message as handed to the relay: its envelope, its Message-ID and the bytes of its DATA;
    ``attachments`` are the very files encoded in it (name and bytes), for a last check."""

    sender: str
    recipient: str
    message_id: str
    data: bytes
    attachments: tuple[tuple[str, bytes], ...] = ()


def build_message(
    config: MailConfig,
    *,
    to: str,
    subject: str,
    body: str,
    reference: str,
    attachments: Sequence[Path] = (),
    now: datetime | None = None,
    message_id: str = "",
    language: str = "en",
    direction: str | None = None,
) -> Outgoing:
    """A plain-text message; ``reference`` (item and step) goes in a header for tracing, and
    ``message_id`` (``new_message_id``, already in the ledger) as its Message-ID.

    ``language`` (a BCP 47 tag) goes in ``Content-Language`` (RFC 3282). With a ``direction``
    ("ltr" or "rtl") the text also gets an HTML alternative with ``lang`` and ``dir`` on its root,
    so a mail client lays Arabic out right to left; the plain part stays the one tests and
    text-only clients read.

    Written out directly as MIME (RFC 2045-2047, 2183): the worker sends two a family, and the
    standard library's ``EmailMessage`` spent about 5 ms of Python on each (parsing every header
    it was given, then folding it again), a third of the worker's time per message."""
    message_id = message_id or new_message_id(config)
    files = tuple((path.name, path.read_bytes()) for path in attachments)
    text = _text_part("plain", body)
    if direction is not None:
        html = _text_part("html", html_body(body, language, direction))
        text = _multipart("alternative", [text, html])
    content = _multipart("mixed", [text, *map(_attachment_part, files)]) if files else text
    headers = [
        ("From", formataddr((config.from_name, config.from_address))),
        ("To", to if to.isascii() else Header(to, "utf-8").encode()),
        ("Subject", _subject(subject)),
        ("Date", format_datetime(now or datetime.now().astimezone())),
        ("Message-ID", message_id),
        ("X-SSR-Delivery", reference),
        ("Content-Language", language),
        ("MIME-Version", "1.0"),
    ]
    head = "".join(f"{name}: {value}\r\n" for name, value in headers).encode("ascii")
    return Outgoing(config.from_address, parseaddr(to)[1], message_id, head + content, files)


@functools.lru_cache(maxsize=256)
def _subject(subject: str) -> str:
    """The Subject folded by ``email.header.Header``, which keeps the space between two words
    inside the encoded text: the standard library's header folder puts it at a fold between two
    encoded-words, where RFC 2047 readers drop it ("con em quý vị" arrived as "con emquý vị").

    Cached: a batch's subjects are a few (one per language and count form), and ``Header``
    spends 0.1-0.3 ms of Python on each non-ASCII one, measuring candidate folds byte by byte."""
    charset = "us-ascii" if subject.isascii() else "utf-8"
    return Header(subject, charset, header_name="Subject").encode(linesep="\r\n")


def _text_part(subtype: str, text: str) -> bytes:
    """A text part: as it is when it is ASCII (in lines SMTP carries: RFC 5321, section
    4.5.3.1.6), else UTF-8 in base64."""
    lines = text.splitlines()
    if text.isascii() and all(len(line) <= 998 for line in lines):
        encoding, payload = "7bit", "".join(f"{line}\r\n" for line in lines).encode("ascii")
    else:
        encoding, payload = "base64", _base64(text.encode("utf-8"))
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
        f"Content-Transfer-Encoding: {encoding}\r\n\r\n"
    ).encode("ascii") + payload


def _attachment_part(file: tuple[str, bytes]) -> bytes:
    name, data = file
    filename = (
        f'filename="{name}"' if name.isascii() else f"filename*={encode_rfc2231(name, 'utf-8')}"
    )
    return (
        "Content-Type: application/pdf\r\n"
        "Content-Transfer-Encoding: base64\r\n"
        f"Content-Disposition: attachment; {filename}\r\n\r\n"
    ).encode("ascii") + _base64(data)


def _multipart(subtype: str, parts: list[bytes]) -> bytes:
    boundary = f"=_ssr_{secrets.token_hex(16)}"  # random: no part can contain it
    delimiter = f"--{boundary}\r\n".encode("ascii")
    return (
        f'Content-Type: multipart/{subtype}; boundary="{boundary}"\r\n\r\n'.encode("ascii")
        + b"".join(delimiter + part + b"\r\n" for part in parts)  # CRLF: the delimiter's own
        + f"--{boundary}--\r\n".encode("ascii")
    )


def _base64(data: bytes) -> bytes:
    """Base64 in lines of 76 characters ending in CRLF (RFC 2045, section 6.8): encoded at once,
    then cut (``base64.encodebytes`` encodes each line apart, then the LFs are replaced)."""
    encoded = base64.b64encode(data)
    return b"".join([encoded[i : i + 76] + b"\r\n" for i in range(0, len(encoded), 76)])


def html_body(body: str, language: str, direction: str) -> str:
    """The plain text as an HTML page: escaped (names and addresses are untrusted), line breaks
    kept, in its language and direction."""
    return (
        f'<!DOCTYPE html>\n<html lang="{language}" dir="{direction}">\n'
        '<head><meta charset="utf-8"></head>\n'
        f'<body><div style="white-space: pre-wrap">{html.escape(body)}</div></body>\n</html>\n'
    )


def backoff(config: MailConfig, attempts: int) -> timedelta:
    """Exponential backoff with jitter, capped: 1x, 2x, 4x ... the base delay."""
    base = config.backoff_seconds * (2 ** max(0, attempts - 1))
    delay = min(config.backoff_max_seconds, base) * random.uniform(0.8, 1.2)
    return timedelta(seconds=delay)


def relay_backoff(config: MailConfig, down_for: timedelta) -> timedelta:
    """When to try an unreachable relay again: after as long as it has been down so far (at
    least the base delay, at most ``backoff_max_seconds``), with jitter. A one-minute outage
    costs about a minute, an outage of hours is tried ever more sparsely; counting failed tries
    instead pushed a 15-family batch back by the full hour after one minute."""
    seconds = min(config.backoff_max_seconds, max(config.backoff_seconds, down_for.total_seconds()))
    return timedelta(seconds=seconds * random.uniform(0.8, 1.2))


class Quota:
    """Reserves a send slot under the per-minute and per-day caps (UTC windows)."""

    def __init__(self, per_minute: int, per_day: int) -> None:
        self.per_minute = per_minute
        self.per_day = per_day
        self.blocked_until: datetime | None = None

    def __call__(self, session: Session, now: datetime) -> bool:
        self.blocked_until = None
        for window, cap, reopens in (
            (f"m:{now:%Y%m%d%H%M}", self.per_minute, _next_minute(now)),
            (f"d:{now:%Y%m%d}", self.per_day, _next_day(now)),
        ):
            if cap and _increment(session, window) > cap:
                self.blocked_until = reopens
                return False
        return True

    def used(self, session: Session, now: datetime) -> tuple[int, int]:
        """Messages counted in the current minute and day."""
        minute = session.get(SendQuota, f"m:{now:%Y%m%d%H%M}")
        day = session.get(SendQuota, f"d:{now:%Y%m%d}")
        return (minute.count if minute else 0, day.count if day else 0)


def _increment(session: Session, window: str) -> int:
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(SendQuota)
        .values(window=window, count=1)
        .on_conflict_do_update(index_elements=["window"], set_={"count": SendQuota.count + 1})
        .returning(col(SendQuota.count))
    )
    return int(session.execute(statement).scalar_one())


def _next_minute(now: datetime) -> datetime:
    return now.replace(second=0, microsecond=0) + timedelta(minutes=1)


def _next_day(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)


def prune_quota(session: Session, now: datetime) -> None:
    """Forget minute windows older than an hour and day windows older than a week."""
    table = SendQuota.__table__  # type: ignore[attr-defined]
    session.execute(
        table.delete().where(
            table.c.window.like("m:%"),
            table.c.window < f"m:{now - timedelta(hours=1):%Y%m%d%H%M}",
        )
    )
    session.execute(
        table.delete().where(
            table.c.window.like("d:%"), table.c.window < f"d:{now - timedelta(days=7):%Y%m%d}"
        )
    )
