"""The bounce mailbox (``[bounces]``), read by ``ssr-console worker`` every few minutes.

IMAP over TLS (``protocol = "imap"``, the default) with the standard library's ``imaplib`` (kept
with Python itself; nothing on PyPI reads a mailbox more plainly). Each message is fetched with
``BODY.PEEK[]`` (reading does not mark it seen), recorded (``matching.read_message``), and only
then moved to the processed folder (``MOVE``, RFC 6851; or ``COPY`` and expunge where the server
lacks it) or, with ``processed_folder = ""``, flagged ``$SSRRead``. POP3 over TLS
(``protocol = "pop3"``, ``poplib``) has no folders or flags: a message is deleted once it is
recorded (``DELE``, committed by ``QUIT``; a session that breaks first deletes nothing, and the
record makes the next read of it change nothing). Nothing is deleted unread; a message whose item
is being sent right now stays for the next round. A mailbox that cannot be reached (down, wrong
password, bad certificate) is logged, written to ``bounce_mailbox`` for the screens, and tried
again at the next interval: the worker carries on sending.
"""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import logging
import poplib
import ssl
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from services.bounces import matching
from services.bounces.tables import MailboxState, Outcome
from services.core.columns import utcnow
from services.core.db import session_scope
from services.core.errors import DatabaseUnavailable, InvalidInput
from services.core.settings import Settings
from services.delivery.return_path import ReturnPath

log = logging.getLogger("ssr.bounces")
READ_FLAG = "$SSRRead"


@dataclass(frozen=True)
class BounceConfig:
    """The ``[bounces]`` section (``password_file``/``password_env`` are read by the console)."""

    protocol: str = "imap"  # or "pop3"
    host: str = ""
    port: int = 993  # IMAP over TLS; POP3 over TLS is 995
    user: str = ""
    password: str = ""
    folder: str = "INBOX"
    processed_folder: str = "Processed"  # "" = leave messages in place, flagged $SSRRead
    interval_seconds: float = 300.0
    timeout: float = 30.0
    ca_file: str = ""  # a private CA or self-signed certificate to trust
    validate_certs: bool = True
    address: str = ""  # the bounce mailbox's address: the envelope sender (return_path)
    verp: bool = False
    alert_rate: float = 0.05  # a batch whose bounce rate passes this is reported to coordinators
    alert_minimum: int = 5  # ... once it has at least this many bounced families

    @classmethod
    def from_settings(cls, settings: Settings) -> BounceConfig | None:
        """The mailbox to read; None when none is configured (no ``[bounces] host``)."""
        config = cls.read(settings)
        if not config.host:
            return None
        if not config.user or not config.password:
            raise InvalidInput("[bounces] needs user and password (password_file or password_env)")
        return config

    @classmethod
    def read(cls, settings: Settings) -> BounceConfig:
        """The whole ``[bounces]`` section, checked (the alert thresholds apply without a host)."""
        section = settings.extra.get("bounces") or {}
        if not isinstance(section, dict):
            raise InvalidInput("The [bounces] configuration must be a table of keys")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(section) - known)
        if unknown:
            raise InvalidInput(f"Unknown [bounces] setting(s): {', '.join(unknown)}")
        if str(section.get("protocol", "imap")).lower() not in ("imap", "pop3"):
            raise InvalidInput("[bounces] protocol must be imap or pop3 (both over TLS)")
        values: dict[str, Any] = {}
        for name in known:
            if name in section:
                values[name] = _typed(name, section[name], type(getattr(cls, name)))
        ReturnPath.from_settings(settings)  # address and verp checked in one place
        config = cls(**{**values, "protocol": str(values.get("protocol", "imap")).lower()})
        if config.interval_seconds <= 0 or not 0 < config.alert_rate <= 1:
            raise InvalidInput(
                "[bounces] interval_seconds must be more than 0, alert_rate between 0 and 1"
            )
        return config

    @property
    def mailbox(self) -> str:
        """How the mailbox is named in logs and on screens (never with its password)."""
        return f"{self.user}@{self.host}:{self.port}/{self.folder}"


def _typed(name: str, value: object, kind: type) -> object:
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise InvalidInput(f"[bounces] {name} must be true or false")
    try:
        return kind(value)
    except (TypeError, ValueError):
        words = {int: "a whole number", float: "a number"}.get(kind, "text")
        raise InvalidInput(f"[bounces] {name} must be {words}") from None


class MailboxError(Exception):
    """The mailbox cannot be read now; the reason is safe to log (no password in it)."""


def _quoted(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


class ImapMailbox:
    """One IMAP-over-TLS session on the bounce folder."""

    def __init__(self, config: BounceConfig) -> None:
        self.config = config
        self.imap = imaplib.IMAP4_SSL(
            config.host, config.port, ssl_context=_tls(config), timeout=config.timeout
        )
        try:
            self.imap.login(config.user, config.password)
            # the greeting's capabilities are those before login; ask again (MOVE, UIDPLUS)
            found = self._ok(self.imap.capability(), "capability")
            self.capabilities = set(b" ".join(found).decode().upper().split())
            self._ok(self.imap.select(_quoted(config.folder)), f"folder {config.folder}")
            if config.processed_folder:
                with contextlib.suppress(imaplib.IMAP4.error):  # it exists already
                    self.imap.create(_quoted(config.processed_folder))
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _ok(answer: tuple[str, Any], what: str) -> Any:
        status, data = answer
        if status != "OK":
            said = b" ".join(d for d in data if isinstance(d, bytes)).decode(errors="replace")
            raise MailboxError(f"{what}: {said or status}")
        return data

    def uids(self) -> list[str]:
        """The messages not yet processed, oldest first."""
        search = "ALL" if self.config.processed_folder else f"UNKEYWORD {READ_FLAG}"
        data = self._ok(self.imap.uid("SEARCH", search), "search")
        return data[0].decode().split() if data and data[0] else []

    def fetch(self, uid: str) -> bytes:
        data = self._ok(self.imap.uid("FETCH", uid, "(BODY.PEEK[])"), "fetch")
        for part in data:
            if isinstance(part, tuple) and len(part) == 2:
                return bytes(part[1])
        raise MailboxError(f"message {uid} came back without its content")

    def done(self, uid: str) -> None:
        """Move a processed message out of the way (or flag it)."""
        target = self.config.processed_folder
        if not target:
            self._ok(self.imap.uid("STORE", uid, "+FLAGS", f"({READ_FLAG})"), "flag")
        elif "MOVE" in self.capabilities:
            self._ok(self.imap.uid("MOVE", uid, _quoted(target)), f"move to {target}")
        else:
            self._ok(self.imap.uid("COPY", uid, _quoted(target)), f"copy to {target}")
            self._ok(self.imap.uid("STORE", uid, "+FLAGS", "(\\Deleted)"), "flag")
            if "UIDPLUS" in self.capabilities:
                self._ok(self.imap.uid("EXPUNGE", uid), "expunge")
            else:
                self._ok(self.imap.expunge(), "expunge")

    def close(self) -> None:
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            if self.imap.state == "SELECTED":
                self.imap.close()
            self.imap.logout()


def _tls(config: BounceConfig) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=config.ca_file or None)
    if not config.validate_certs:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class Pop3Mailbox:
    """One POP3-over-TLS session: messages by number, deleted once recorded."""

    def __init__(self, config: BounceConfig) -> None:
        self.pop = poplib.POP3_SSL(
            config.host, config.port, context=_tls(config), timeout=config.timeout
        )
        try:
            self.pop.user(config.user)
            self.pop.pass_(config.password)
        except BaseException:
            self.pop.close()
            raise

    def uids(self) -> list[str]:
        _, listing, _ = self.pop.list()
        return [line.split()[0].decode() for line in listing]

    def fetch(self, uid: str) -> bytes:
        _, lines, _ = self.pop.retr(int(uid))
        return b"\r\n".join(lines) + b"\r\n"

    def done(self, uid: str) -> None:
        self.pop.dele(int(uid))

    def close(self) -> None:
        with contextlib.suppress(poplib.error_proto, OSError):
            self.pop.quit()  # commits the deletions


@dataclass
class ReadTally:
    """What one read of the mailbox did, for the log and the tests."""

    read: int = 0
    outcomes: dict[Outcome, int] | None = None
    busy: int = 0  # left for the next round: their item was being sent
    error: str = ""

    def count(self, outcome: Outcome) -> int:
        return (self.outcomes or {}).get(outcome, 0)

    def __str__(self) -> str:
        if self.error:
            return f"mailbox unreachable: {self.error}"
        parts = [f"{o.value}={n}" for o, n in sorted((self.outcomes or {}).items())]
        return " ".join([f"read={self.read}", *parts, f"busy={self.busy}"])


Mailbox = ImapMailbox | Pop3Mailbox
MAILBOX_ERRORS = (OSError, imaplib.IMAP4.error, poplib.error_proto, MailboxError)
"""What a mailbox that cannot be read now raises (ssl errors are OSErrors)."""


def _messages(box: Mailbox) -> Iterator[tuple[str, bytes]]:
    for uid in box.uids():
        yield uid, box.fetch(uid)


def read_once(engine: Engine, config: BounceConfig, now: datetime | None = None) -> ReadTally:
    """Read every waiting message once; a mailbox that cannot be reached is reported, not raised
    (a database outage is: the worker waits it out)."""
    tally = ReadTally(outcomes={})
    return_path = ReturnPath(config.address, config.verp)
    try:
        box: Mailbox = Pop3Mailbox(config) if config.protocol == "pop3" else ImapMailbox(config)
    except MAILBOX_ERRORS as error:
        return _unreachable(engine, config, tally, error, now)
    try:
        for uid, raw in _messages(box):
            try:
                outcome = matching.read_message(engine, raw, return_path)
            except matching.ItemBusy:
                tally.busy += 1
                continue
            if outcome is not None:
                tally.read += 1
                assert tally.outcomes is not None
                tally.outcomes[outcome] = tally.outcomes.get(outcome, 0) + 1
            box.done(uid)
    except MAILBOX_ERRORS as error:
        return _unreachable(engine, config, tally, error, now)
    finally:
        box.close()
    _state(engine, config, now or utcnow(), None, "")
    if tally.read or tally.busy:
        log.info("bounce mailbox %s: %s", config.mailbox, tally)
    return tally


def _unreachable(
    engine: Engine,
    config: BounceConfig,
    tally: ReadTally,
    error: BaseException,
    now: datetime | None,
) -> ReadTally:
    reason = " ".join(str(error).split())[:300] or type(error).__name__
    tally.error = reason
    log.warning(
        "bounce mailbox %s cannot be read (%s); trying again in %.0f s",
        config.mailbox,
        reason,
        config.interval_seconds,
    )
    _state(engine, config, now or utcnow(), now or utcnow(), reason)
    return tally


def _state(
    engine: Engine, config: BounceConfig, now: datetime, down: datetime | None, error: str
) -> None:
    with session_scope(engine) as session:
        row = session.get(MailboxState, config.mailbox) or MailboxState(mailbox=config.mailbox)
        if down is None:
            row.last_read_at, row.down_since, row.error = now, None, None
        else:
            row.down_since = row.down_since or down
            row.error = error[:500]
        session.add(row)


def mailbox_state(engine: Engine) -> list[MailboxState]:
    """Each configured mailbox's last read and outage, for the screens."""
    with Session(engine) as session:
        return list(session.exec(select(MailboxState)).all())


Companion = Callable[[asyncio.Event], Awaitable[None]]


def companions(engine: Engine, settings: Settings) -> list[Companion]:
    """The bounce reader as a task of ``ssr-console worker`` (none without ``[bounces] host``)."""
    config = BounceConfig.from_settings(settings)
    if config is None:
        return []

    async def read_every_interval(stop: asyncio.Event) -> None:
        # at least one read, even by a ``--once`` worker that finds nothing else to do
        while True:
            try:
                await asyncio.to_thread(read_once, engine, config)
            except DatabaseUnavailable as error:
                log.warning("bounces not recorded, the database is unavailable: %s", error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=config.interval_seconds)
            if stop.is_set():
                return

    return [read_every_interval]
