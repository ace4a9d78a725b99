"""The built-in SSH server: one console per session, the operator decided by the public key.

Only public-key authentication is offered, against the keys stored with each operator
(``ssr-console operator add-key``, ``services.access.stored_keys``) and, as an option, an
authorized-keys file (``services.access.ssh_keys``); both are read on every connection, so adding a
person needs no restart. A disabled operator's open sessions end within seconds: the server re-reads
who is active every ``account_check`` seconds. A session
gets nothing but the console: exec and subsystem (SFTP) requests, port forwarding in both
directions, agent and X11 forwarding are all refused, and audited. Each session runs the console in a process of
its own on a pseudo-terminal (``console.ssh_session``), with the client's TERM and window size and
animations off to save bandwidth; the process is ended when the client leaves, and the session is
closed after a configurable time without a key press. Logins, refusals and disconnects go to the
audit log, naming keys by fingerprint only.

Under abuse: connections that have not signed in are rate-limited per client address
(``console.ssh_throttle``; a refused connection is dropped before the handshake and audited only
in a summary row); the server and each operator have a cap on open sessions, refused with a
sentence; an authorized-keys file others may write stops the server from starting; a session
whose start fails unexpectedly shows the person one sentence, and the server's log gets the stack
without local variables or the error's message.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh
from sqlalchemy.engine import Engine

from console import crash
from console.ssh_launcher import Launcher, PreparedLauncher
from console.ssh_session import PtyProcess
from console.ssh_throttle import Throttle
from services.access import operators, ssh_keys, stored_keys
from services.access.tables import Operator
from services.audit import log as audit
from services.audit.log import SYSTEM_ACTOR, Actor
from services.core import db
from services.core.errors import ConsoleError, InvalidInput

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 2222
DEFAULT_IDLE_MINUTES = 30.0
DEFAULT_ACCOUNT_CHECK = 2.0  # seconds between looks at who is still active
SESSIONS_PER_CONNECTION = 4  # one person, a few windows; not a way to start processes at will
DEFAULT_MAX_SESSIONS = 64  # consoles open at once on the server (each is a process)
DEFAULT_MAX_SESSIONS_PER_OPERATOR = 6
# Connections not yet signed in, per client address, at once: a school's coordinators share one
# NAT address and sign in together at the start of a testing window (issue 22: 20 at once), so the
# burst holds that many with room for retries; a flood still gets no more handshakes than this.
DEFAULT_CONNECTION_BURST = 32
DEFAULT_CONNECTIONS_PER_MINUTE = 10.0  # ...and then this many more a minute per address
THROTTLE_REPORT_SECONDS = 60.0  # at most one audit row per throttled address in this time
KEYS_RECORDED = 10  # fingerprints kept for the audit of a refused connection
HOST_KEY_NAME = "ssh_host_ed25519_key"
AUTHORIZED_KEYS_NAME = "ssh_authorized_keys"
# What the client may pass into the console's environment (OpenSSH SendEnv/SetEnv, PuTTY's
# "Environment variables"); anything else, SSR_OPERATOR above all, is ignored. Locale names, time
# zones and colour hints are short: a session whose accepted variables break these bounds is
# refused, so no client can hand the launcher (shared by every session) an outsized request.
CLIENT_ENV = ("LANG", "LANGUAGE", "NO_COLOR", "COLORTERM", "TZ")
CLIENT_ENV_PATTERN = re.compile(r"LC_[A-Z_]{1,29}")  # LC_ALL, LC_CTYPE, ..., LC_TERMINAL
CLIENT_ENV_MAX_VALUE = 256  # bytes of one value
CLIENT_ENV_MAX_COUNT = 24  # accepted variables; the C library knows 13 LC_ categories
TERM_MAX = 64
TERM_PATTERN = re.compile(rf"[A-Za-z0-9][A-Za-z0-9.+_-]{{0,{TERM_MAX - 1}}}")  # xterm-256color
# The server's own terminal and operator say nothing about a client's session.
SERVER_ONLY_ENV = {"TERM", "NO_COLOR", "COLORTERM", "COLUMNS", "LINES", "SSR_OPERATOR"}
# Leave the alternate screen, show the cursor, stop mouse reports and bracketed paste: what the
# console would have undone itself had it exited on its own (used when the server ends it).
TERMINAL_RESET = b"\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1006l\x1b[?2004l\x1b[?25h\x1b[?1049l"


@dataclass(frozen=True)
class SSHOptions:
    """Where and how the built-in server listens."""

    host: str
    port: int
    host_key: Path
    authorized_keys: Path | None  # None: the keys stored in the database only
    idle_timeout: float  # seconds without a key press before a session is closed; 0 = never
    account_check: float = DEFAULT_ACCOUNT_CHECK
    max_sessions: int = DEFAULT_MAX_SESSIONS
    max_sessions_per_operator: int = DEFAULT_MAX_SESSIONS_PER_OPERATOR
    connection_burst: int = DEFAULT_CONNECTION_BURST
    connections_per_minute: float = DEFAULT_CONNECTIONS_PER_MINUTE
    throttle_report_seconds: float = THROTTLE_REPORT_SECONDS

    @classmethod
    def in_data_dir(cls, data_dir: Path, **overrides: Any) -> SSHOptions:
        """Defaults in the data directory; its authorized-keys file is used when there is one."""
        keys_file = data_dir / AUTHORIZED_KEYS_NAME
        values: dict[str, Any] = {
            "host": DEFAULT_HOST,
            "port": DEFAULT_PORT,
            "host_key": data_dir / HOST_KEY_NAME,
            "authorized_keys": keys_file if keys_file.exists() else None,
            "idle_timeout": DEFAULT_IDLE_MINUTES * 60,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @staticmethod
    def limits(configured: Mapping[str, object]) -> dict[str, Any]:
        """The abuse limits of an ``[ssh]`` table, each a positive number, or a sentence naming it."""
        found: dict[str, Any] = {}
        for key, kind in (
            ("max_sessions", int),
            ("max_sessions_per_operator", int),
            ("connection_burst", int),
            ("connections_per_minute", float),
        ):
            if key not in configured:
                continue
            value = configured[key]
            if isinstance(value, bool) or not isinstance(value, kind | int) or value <= 0:
                raise InvalidInput(f"[ssh] {key} must be a number above 0, not {value!r}")
            found[key] = kind(value)
        return found


def client_environment(sent: Mapping[bytes, bytes], term: str) -> dict[str, str]:
    """The variables the console takes from the client, once TERM is checked; ``InvalidInput``
    names the first one out of bounds. Variables not accepted are ignored, whatever their size."""
    if not TERM_PATTERN.fullmatch(term):
        raise InvalidInput(
            f"the terminal type is not a name of at most {TERM_MAX} letters, digits and . + _ -"
        )
    taken: dict[str, str] = {}
    for raw_name, raw_value in sent.items():
        name = raw_name.decode("ascii", "replace")
        if name not in CLIENT_ENV and not CLIENT_ENV_PATTERN.fullmatch(name):
            continue
        if len(raw_value) > CLIENT_ENV_MAX_VALUE:
            raise InvalidInput(
                f"{name} is {len(raw_value)} bytes long (at most {CLIENT_ENV_MAX_VALUE})"
            )
        try:
            value = raw_value.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(f"{name} is not UTF-8") from None
        if not value.isprintable():
            raise InvalidInput(f"{name} holds control characters")
        taken[name] = value
        if len(taken) > CLIENT_ENV_MAX_COUNT:
            raise InvalidInput(f"more than {CLIENT_ENV_MAX_COUNT} locale and colour variables")
    return taken


def console_environment(client_env: Mapping[str, str], term: str) -> dict[str, str]:
    """The console's environment: the server's, the client's accepted variables (already checked
    by ``client_environment``), TERM, no animations."""
    env = {k: v for k, v in os.environ.items() if k not in SERVER_ONLY_ENV}
    env.update(client_env)
    env["TERM"] = term
    env["TEXTUAL_ANIMATIONS"] = "none"
    return env


def prepared_launcher(global_args: Sequence[str]) -> PreparedLauncher:
    """Sessions forked from a helper that runs ``ssr-console [global args] --operator NAME open``."""
    return PreparedLauncher(global_args, console_environment({}, "xterm-256color"))


def load_host_key(path: Path) -> asyncssh.SSHKey:
    """The server's Ed25519 host key, generated on first start and kept readable by its owner only."""
    if not path.exists():
        key = asyncssh.generate_private_key("ssh-ed25519", comment="ssr-console host key")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(key.export_private_key())
        return key
    if path.stat().st_mode & 0o077:
        raise InvalidInput(
            f"The SSH host key {path} can be read by other users; run `chmod 600 {path}`"
        )
    try:
        return asyncssh.read_private_key(path)
    except (OSError, asyncssh.KeyImportError) as error:
        raise InvalidInput(f"Cannot read the SSH host key {path}: {error}") from None


class AuditTrail:
    """Writes the server's audit events one after another, off the event loop."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._queue: asyncio.Queue[tuple[Actor, str, str, dict[str, Any]] | None] = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._run())

    def record(self, actor: Actor, action: str, target: str, **detail: Any) -> None:
        self._queue.put_nowait((actor, action, target, detail))

    async def close(self) -> None:
        self._queue.put_nowait(None)
        await self._task

    async def _run(self) -> None:
        while (event := await self._queue.get()) is not None:
            try:
                await asyncio.to_thread(self._write, *event)
            except Exception as error:  # a full disk must not take the server down
                print(f"ssr-console: audit write failed: {error}", file=sys.stderr)

    def _write(self, actor: Actor, action: str, target: str, detail: dict[str, Any]) -> None:
        with db.session_scope(self._engine) as session:
            audit.record(session, actor, action, target, detail)


class ConsoleServer:
    """The running server: shared state of every connection, and the listener."""

    def __init__(self, options: SSHOptions, engine: Engine, launcher: Launcher) -> None:
        self.options = options
        self.engine = engine
        self.launcher = launcher
        self.sessions: set[ConsoleSession] = set()  # started or starting
        self.trail: AuditTrail | None = None
        self.throttle = Throttle(
            options.connection_burst,
            options.connections_per_minute,
            options.throttle_report_seconds,
        )
        self._acceptor: asyncssh.SSHAcceptor | None = None
        self.host_key: asyncssh.SSHKey | None = None
        self._account_watch: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.keys_file()  # refuse to start on a broken list
        self.host_key = load_host_key(self.options.host_key)
        await self.launcher.start()
        self.trail = AuditTrail(self.engine)
        self._acceptor = await asyncssh.create_server(
            lambda: ConnectionHandler(self),
            self.options.host,
            self.options.port,
            server_host_keys=[self.host_key],
            encoding=None,
            line_editor=False,
            allow_pty=True,
            agent_forwarding=False,
            x11_forwarding=False,
            password_auth=False,
            kbdint_auth=False,
            host_based_auth=False,
            gss_host=None,
            sftp_factory=None,
            allow_scp=False,
            keepalive_interval=60,
        )
        self._account_watch = asyncio.get_running_loop().create_task(self._watch_accounts())

    def keys_file(self) -> ssh_keys.AuthorizedKeys:
        """The authorized-keys file's list, or an empty one when there is no file."""
        path = self.options.authorized_keys
        return ssh_keys.load(path) if path is not None else ssh_keys.AuthorizedKeys(())

    async def _watch_accounts(self) -> None:
        """End the sessions of operators disabled since they signed in."""
        while True:
            await asyncio.sleep(self.options.account_check)
            sessions = list(self.sessions)
            held = {
                s.connection.operator.id
                for s in sessions
                if s.connection.operator and s.connection.operator.id is not None
            }
            if not held:
                continue
            try:
                active = await asyncio.to_thread(operators.active_ids, self.engine, held)
            except ConsoleError as error:  # the database is away: keep serving, look again
                print(f"ssr-console: cannot check accounts: {error}", file=sys.stderr)
                continue
            for session in sessions:
                operator = session.connection.operator
                if operator is not None and operator.id not in active:
                    await session.end("this account was disabled")

    @property
    def port(self) -> int:
        assert self._acceptor is not None
        return int(self._acceptor.get_port())

    async def close(self) -> None:
        if self._account_watch is not None:
            self._account_watch.cancel()
        if self._acceptor is not None:
            self._acceptor.close()
            await self._acceptor.wait_closed()
        await asyncio.gather(*(s.end("server stopped") for s in list(self.sessions)))
        await self.launcher.close()
        if self.trail is not None:
            await self.trail.close()

    def record(self, actor: Actor, action: str, target: str, **detail: Any) -> None:
        assert self.trail is not None
        self.trail.record(actor, action, target, **detail)

    def session_refusal(self, operator: Operator) -> str:
        """Why one more console may not open now (the caps), or ""."""
        open_now = list(self.sessions)
        if len(open_now) >= self.options.max_sessions:
            return (
                f"the server already has {len(open_now)} consoles open, its most; "
                "try again in a few minutes"
            )
        mine = sum(
            1
            for s in open_now
            if s.connection.operator is not None
            and s.connection.operator.username == operator.username
        )
        if mine >= self.options.max_sessions_per_operator:
            return (
                f"{operator.username} already has {mine} consoles open, the most one operator "
                "may; close one first"
            )
        return ""


class ConnectionHandler(asyncssh.SSHServer):
    """One SSH connection: who it is (from the key), and what it may open (one console per session)."""

    def __init__(self, server: ConsoleServer) -> None:
        self.server = server
        self.peer = "?"
        self.login_name = ""
        self.keys = ssh_keys.AuthorizedKeys(())
        self.keys_problem = ""
        self.offered: list[str] = []
        self.refusal = ""
        self._candidates: dict[bytes, Operator] = {}
        self._last_valid: Operator | None = None
        self.operator: Operator | None = None
        self.fingerprint = ""
        self.sessions: set[ConsoleSession] = set()
        self.started = time.monotonic()
        self.address = "?"
        self.throttled = False

    @property
    def actor(self) -> Actor:
        return Actor.of(self.operator) if self.operator else SYSTEM_ACTOR

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        """Admit the connection if its address has a token left; else drop it before the
        handshake (asyncssh sends its version only after this returns)."""
        host, port = conn.get_extra_info("peername")[:2]
        self.peer = f"{host}:{port}"
        self.address = str(host)
        verdict = self.server.throttle.check(self.address)
        if verdict.admitted:
            return
        self.throttled = True
        if verdict.report is not None:
            self.server.record(
                SYSTEM_ACTOR,
                "ssh.throttled",
                self.address,
                refused=verdict.report.refused,
                starting=verdict.report.starting,
                burst=self.server.options.connection_burst,
                per_minute=self.server.options.connections_per_minute,
            )
        conn.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        seconds = round(time.monotonic() - self.started, 1)
        if self.throttled:
            return  # counted in the address's ssh.throttled summary
        if self.operator is None:
            reason = self.refusal or ("no public key offered" if not self.offered else "")
            self.server.record(
                SYSTEM_ACTOR,
                "ssh.refused",
                self.peer,
                reason=reason or "authentication not completed",
                login_name=self.login_name,
                keys_offered=self.offered,
            )
        else:
            self.server.record(
                self.actor,
                "ssh.disconnect",
                self.peer,
                seconds=seconds,
                error=str(exc) if exc else "",
            )

    def begin_auth(self, username: str) -> bool:
        self.login_name = username[:64]
        try:
            self.keys = self.server.keys_file()
        except InvalidInput as error:
            self.keys_problem = str(error)
            print(f"ssr-console: refusing logins: {error}", file=sys.stderr)
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    async def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        blob = key.public_data
        found = self._candidates.get(blob)
        if found is None:
            fingerprint = ssh_keys.fingerprint(blob)
            if fingerprint not in self.offered and len(self.offered) < KEYS_RECORDED:
                self.offered.append(fingerprint)
            name = self.keys.operator_for(blob)
            if name is None:
                try:
                    name = await asyncio.to_thread(
                        stored_keys.operator_for, self.server.engine, blob
                    )
                except ConsoleError as error:
                    self.refusal = str(error)
                    return False
            if name is None:
                self.refusal = self.keys_problem or "unknown key"
                return False
            try:
                found = await asyncio.to_thread(operators.resolve, self.server.engine, name)
            except ConsoleError:
                self.refusal = f"key names operator {name!r}, who is unknown or disabled"
                return False
            self._candidates[blob] = found
        self._last_valid = found
        self.fingerprint = ssh_keys.fingerprint(blob)
        return True

    def auth_completed(self) -> None:
        self.operator = self._last_valid
        self.server.throttle.refund(self.address)  # only connections that never sign in count
        self.server.record(
            self.actor, "ssh.login", self.peer, key=self.fingerprint, login_name=self.login_name
        )

    def session_requested(self) -> ConsoleSession | bool:
        assert self.operator is not None
        if len(self.sessions) >= SESSIONS_PER_CONNECTION:
            self.refuse(f"more than {SESSIONS_PER_CONNECTION} sessions on one connection")
            return False
        session = ConsoleSession(self.server, self)
        self.sessions.add(session)
        return session

    def connection_requested(self, dest_host: str, dest_port: int, *_: Any) -> bool:
        self.refuse("local port forwarding", f"{dest_host}:{dest_port}")
        return False

    def server_requested(self, listen_host: str, listen_port: int) -> bool:
        self.refuse("remote port forwarding", f"{listen_host}:{listen_port}")
        return False

    def unix_connection_requested(self, dest_path: str) -> bool:
        self.refuse("socket forwarding", dest_path)
        return False

    def unix_server_requested(self, listen_path: str) -> bool:
        self.refuse("socket forwarding", listen_path)
        return False

    def refuse(self, what: str, detail: str = "") -> None:
        """An authenticated request for something other than the console."""
        self.server.record(self.actor, "ssh.request_refused", self.peer, request=what, to=detail)


class ConsoleSession(asyncssh.SSHServerSession[bytes]):
    """One SSH session channel: the console process on its pty, and the bytes between them."""

    def __init__(self, server: ConsoleServer, connection: ConnectionHandler) -> None:
        self.server = server
        self.connection = connection
        self.chan: asyncssh.SSHServerChannel[bytes] | None = None
        self.process: PtyProcess | None = None
        self.term = ""
        self.size = (80, 24)
        self.refusal = ""
        self.last_input = time.monotonic()
        self.ended = ""
        self.client_gone = False
        self._idle_task: asyncio.Task[None] | None = None
        self.sent_env: dict[bytes, bytes] = {}  # the accepted names only (client_environment)

    def connection_made(self, chan: asyncssh.SSHServerChannel[bytes]) -> None:  # type: ignore[override]
        self.chan = chan
        # asyncssh (2.x) answers a session's channel requests with the channel's method
        # ``_process_<request>_request`` (channel.py, ``_service_next_request``) and offers the
        # session no callback for these: it keeps every "env" request, however many, and refuses
        # X11 and agent forwarding without a word to the application. These take their place on
        # this channel, so env is bounded and the refusals are audited like the others.
        setattr(chan, "_process_env_request", self._env_requested)  # noqa: B010
        setattr(chan, "_process_x11_req_request", self._x11_requested)  # noqa: B010
        setattr(  # noqa: B010
            chan, "_process_auth_agent_req_at_openssh_dot_com_request", self._agent_requested
        )

    def _env_requested(self, packet: Any) -> bool:
        """Keep a variable the console may take (at most one more than it accepts, so too many
        is still refused with a sentence); ignore the rest without storing them."""
        raw_name, raw_value = packet.get_string(), packet.get_string()
        packet.check_end()
        name = raw_name.decode("ascii", "replace")
        taken = name in CLIENT_ENV or CLIENT_ENV_PATTERN.fullmatch(name)
        room = raw_name in self.sent_env or len(self.sent_env) <= CLIENT_ENV_MAX_COUNT
        if taken and room:
            self.sent_env[raw_name] = raw_value
        return True

    def _x11_requested(self, packet: Any) -> bool:
        self.connection.refuse("X11 forwarding")
        return False

    def _agent_requested(self, packet: Any) -> bool:
        self.connection.refuse("agent forwarding")
        return False

    def pty_requested(self, term_type: str, term_size: tuple[int, int, int, int], _: Any) -> bool:
        self.term = term_type or "xterm-256color"
        self.size = (term_size[0] or 80, term_size[1] or 24)
        return True

    def shell_requested(self) -> bool:
        return True

    def exec_requested(self, command: str) -> bool:
        # Accepted only to tell the person why nothing ran; the command itself is never executed.
        self.refusal = "exec"
        return True

    def subsystem_requested(self, subsystem: str) -> bool:
        self.connection.refuse("subsystem", subsystem[:40])
        return False

    def session_started(self) -> None:
        asyncio.get_running_loop().create_task(self._start())

    async def _start(self) -> None:
        """Open the console, or tell the person in one sentence why not; never a traceback."""
        try:
            await self._open_console()
        except Exception as error:
            self.server.sessions.discard(self)
            incident = crash.reference()
            print(
                f"ssr-console: session {incident} for {self.connection.peer} failed to start:\n"
                + crash.stack_only(error),
                file=sys.stderr,
                flush=True,
            )
            self.server.record(
                self.connection.actor,
                "ssh.session_error",
                self.connection.peer,
                incident=incident,
                error=type(error).__name__,
            )
            with contextlib.suppress(OSError, asyncssh.Error):
                self._refuse_with(
                    "SSR Console hit an unexpected error and could not open this session "
                    f"(reference {incident}); the administrator's log has the details."
                )

    async def _open_console(self) -> None:
        assert self.chan is not None
        if self.refusal == "exec":
            self.connection.refuse("exec")
            self._refuse_with(
                "This server only opens SSR Console; commands are refused. "
                "Connect without a command: ssh -t -p PORT HOST"
            )
            return
        if not self.term:
            self.connection.refuse("session without a terminal")
            self._refuse_with("SSR Console needs a terminal: connect with ssh -t")
            return
        try:
            client_env = client_environment(self.sent_env, self.term)
        except InvalidInput as error:
            self.connection.refuse("environment", str(error))
            self._refuse_with(f"SSR Console refused this session: {error}.")
            return
        operator = self.connection.operator
        assert operator is not None
        if refusal := self.server.session_refusal(operator):
            self.connection.refuse("session limit", refusal)
            self._refuse_with(f"SSR Console refused this session: {refusal}.")
            return
        self.server.sessions.add(self)  # holds its place while the console starts
        self.process = PtyProcess(self._to_client, self._process_exited, self.chan.resume_reading)
        env = console_environment(client_env, self.term)
        try:
            await self.process.start(
                lambda tty: self.server.launcher.spawn(operator.username, env, tty), *self.size
            )
        except (OSError, ConsoleError) as error:
            self.server.sessions.discard(self)
            print(f"ssr-console: cannot start a console: {error}", file=sys.stderr)
            self._refuse_with("SSR Console could not start; the administrator has the details.")
            return
        self.server.record(
            self.connection.actor,
            "ssh.session_open",
            self.connection.peer,
            term=self.term,
            columns=self.size[0],
            rows=self.size[1],
            pid=self.process.pid,
        )
        if self.client_gone:  # they left while the console was starting
            await self.end("client left")
        elif self.server.options.idle_timeout > 0:
            self._idle_task = asyncio.get_running_loop().create_task(self._watch_idle())

    def _to_client(self, data: bytes) -> None:
        if self.chan is not None and not self.client_gone:
            self.chan.write(data)

    def _refuse_with(self, message: str) -> None:
        assert self.chan is not None
        self.chan.write_stderr(f"{message}\r\n".encode())
        self.chan.exit(1)

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        self.last_input = time.monotonic()
        if self.process is not None and not self.process.write(data):
            assert self.chan is not None
            self.chan.pause_reading()  # a huge paste: let SSH flow control hold the rest

    def terminal_size_changed(self, width: int, height: int, *_: int) -> None:
        self.size = (width or self.size[0], height or self.size[1])
        if self.process is not None:
            self.process.resize(*self.size)

    def pause_writing(self) -> None:
        if self.process is not None:
            self.process.pause_output()

    def resume_writing(self) -> None:
        if self.process is not None:
            self.process.resume_output()

    def eof_received(self) -> bool:
        return True  # keep the channel open: a terminal session ends when the console does

    def connection_lost(self, exc: Exception | None) -> None:
        self.connection.sessions.discard(self)
        self.client_gone = True
        if self.process is not None:
            self.process.pause_output()  # nobody to show it to; the pty buffers until the end
        asyncio.get_running_loop().create_task(self.end("client left"))

    async def end(self, reason: str) -> None:
        """End the console's process group (only it) and close the session, once."""
        if self.ended or self.process is None:
            return
        self.ended = reason
        if self._idle_task is not None:
            self._idle_task.cancel()
        await self.process.terminate()

    def _process_exited(self, code: int) -> None:
        self.server.sessions.discard(self)
        if self._idle_task is not None:
            self._idle_task.cancel()
        reason = self.ended or "console exited"
        self.server.record(
            self.connection.actor,
            "ssh.session_close",
            self.connection.peer,
            reason=reason,
            exit_code=code,
        )
        assert self.chan is not None
        if not self.client_gone:
            with contextlib.suppress(OSError, asyncssh.Error):
                if self.ended:
                    self.chan.write(TERMINAL_RESET + f"\r\nSSR Console: {reason}.\r\n".encode())
                self.chan.exit(code if code >= 0 else 128 - code)

    async def _watch_idle(self) -> None:
        timeout = self.server.options.idle_timeout
        while True:
            remaining = self.last_input + timeout - time.monotonic()
            if remaining <= 0:
                await self.end(f"closed after {_duration(timeout)} without a key press")
                return
            await asyncio.sleep(remaining)


def _duration(seconds: float) -> str:
    amount, unit = (seconds / 60, "minute") if seconds >= 60 else (seconds, "second")
    return f"{amount:g} {unit}{'' if amount == 1 else 's'}"


def serve(options: SSHOptions, engine: Engine, launcher: Launcher) -> None:
    """Run the server until SIGINT or SIGTERM, then end every session and stop."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        server = ConsoleServer(options, engine, launcher)
        await server.start()
        assert server.host_key is not None
        keys = server.keys_file()
        stored = stored_keys.count(engine)
        print(
            f"SSR Console SSH server on {options.host}:{server.port} "
            f"(host key {server.host_key.get_fingerprint()}, {len(keys) + stored} authorized keys)",
            flush=True,
        )
        for name in sorted(keys.operators):
            try:
                operators.resolve(engine, name)
            except ConsoleError as error:
                print(f"ssr-console: warning: a listed key cannot sign in: {error}", flush=True)
        await stop.wait()
        await server.close()

    asyncio.run(main())
