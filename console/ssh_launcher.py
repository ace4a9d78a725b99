"""Starting the console process of an SSH session: a plain exec, or a fork of a prepared process.

Starting Python and importing Textual, SQLAlchemy and the screens costs one to two seconds of CPU
per session; twenty people connecting at once on two cores waited 17 seconds for their first frame.
``PreparedLauncher`` keeps one helper process (run as ``python -m console.ssh_launcher``) that has
imported all of that once and never touched the database; for each session it forks a child that
makes the session's pty its controlling terminal, takes the session's environment and runs
``ssr-console --operator NAME open`` in-process. The children share the imported code with the
helper (copy-on-write), so they start in a fraction of the time and use less memory. Every child
still leads its own session and process group, exactly like an exec'd one.

Messages between the server and the helper are frames over a SOCK_SEQPACKET socket pair: a header
(the body's length and the request it belongs to), then a JSON body; the pty slave travels with the
spawn request as an SCM_RIGHTS file descriptor. A frame is read whole or refused: the sender will
not send a body over ``MAX_BODY`` and the receiver answers a truncated or malformed request with an
error for that request alone, so no message can end the helper and with it every session. A
helper that dies anyway is started again at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import io
import itertools
import json
import os
import random
import selectors
import signal
import socket
import struct
import sys
import termios
import traceback
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, Protocol, TypeGuard

from services.core.errors import ConsoleError, DatabaseUnavailable

HEADER = struct.Struct("!II")  # body length, request id (0 for the helper's own reports)
MAX_BODY = 1 << 16  # far above a session's request (its environment is bounded by the server)
PRELOAD = (
    "console.cli",
    "console.app",
    "sqlalchemy.dialects.sqlite",
    "sqlite3",  # the SQLite dialect imports it when an engine is made
    "concurrent.futures.thread",  # the pool of the screens' thread workers
    # imported by Textual while it starts an app and lays out its first screen
    "textual.drivers.linux_driver",  # App.run on Linux (App.get_driver_class)
    "textual.pilot",  # App.run_async, even when no pilot drives the app
    "textual.layouts.factory",
    "textual.scrollbar",
)
"""Imported by the helper before any fork; ``prepare`` adds every screen and more. A module a
session imports itself after the fork costs that session its import time and its own copy of the
module: list here what ``sys.modules`` gains in a session up to its first frame."""


class FrameError(ConsoleError):
    """A frame that cannot be sent or was not received whole; ``request`` says whose it was."""

    def __init__(self, message: str, request: int = 0) -> None:
        super().__init__(message)
        self.request = request


def encode_frame(message: Mapping[str, Any], request: int = 0) -> bytes:
    """The header and JSON body of ``message``; refused when the body is larger than ``MAX_BODY``."""
    body = json.dumps(message).encode()
    if len(body) > MAX_BODY:
        raise FrameError(f"a request of {len(body)} bytes (at most {MAX_BODY})", request)
    return HEADER.pack(len(body), request) + body


def decode_frame(data: bytes, flags: int) -> tuple[int, dict[str, Any]]:
    """The request id and body of one received frame, or ``FrameError`` if it is not whole."""
    if len(data) < HEADER.size:
        raise FrameError(f"a frame of {len(data)} bytes, shorter than its header")
    length, request = HEADER.unpack_from(data)
    if flags & socket.MSG_TRUNC or length != len(data) - HEADER.size:
        raise FrameError(f"a frame of {length} bytes not received whole", request)
    try:
        message = json.loads(data[HEADER.size :])
    except ValueError as error:
        raise FrameError(f"a frame that is not JSON ({error})", request) from None
    if not isinstance(message, dict):
        raise FrameError("a frame that is not a JSON object", request)
    return request, message


def receive_frame(sock: socket.socket, max_fds: int = 0) -> tuple[bytes, list[int], int]:
    """One frame's bytes, the file descriptors sent with it and the flags (``MSG_TRUNC``...)."""
    data, fds, flags, _addr = socket.recv_fds(sock, HEADER.size + MAX_BODY, max_fds)
    return data, fds, flags


class Spawned(Protocol):
    """A started console process: its pid (also its process group) and its exit code, awaited."""

    @property
    def pid(self) -> int: ...

    async def wait(self) -> int: ...


class Launcher(Protocol):
    async def start(self) -> None: ...

    async def spawn(self, operator: str, env: Mapping[str, str], tty: int) -> Spawned: ...

    async def close(self) -> None: ...


def take_terminal(tty: int) -> None:
    """In a new child: lead a new session whose controlling terminal is ``tty``, on fds 0-2."""
    if os.getsid(0) != os.getpid():
        os.setsid()
    fcntl.ioctl(tty, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        if tty != fd:
            os.dup2(tty, fd)
    if tty > 2:
        os.close(tty)


async def exec_on(argv: Sequence[str], env: Mapping[str, str], tty: int) -> Spawned:
    """Run ``argv`` as a new session led by a fresh exec, on ``tty``."""
    return await asyncio.create_subprocess_exec(
        *argv,
        stdin=tty,
        stdout=tty,
        stderr=tty,
        env=dict(env),
        start_new_session=True,
        preexec_fn=lambda: take_terminal(0),  # after setsid, before exec
    )


class ExecLauncher:
    """A fresh ``exec`` per session: simple, slow to start; used for arbitrary commands."""

    def __init__(self, argv: Callable[[str], Sequence[str]]) -> None:
        self._argv = argv

    async def start(self) -> None:
        return None

    async def spawn(self, operator: str, env: Mapping[str, str], tty: int) -> Spawned:
        return await exec_on(self._argv(operator), env, tty)

    async def close(self) -> None:
        return None


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _Child:
    def __init__(self, pid: int, exited: asyncio.Future[int]) -> None:
        self.pid = pid
        self._exited = exited

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)


class PreparedLauncher:
    """Forks session consoles from a helper process that has already imported the console."""

    def __init__(self, global_args: Sequence[str], env: Mapping[str, str]) -> None:
        self._global_args = list(global_args)
        self._env = dict(env)  # the helper's own: Textual reads some settings at import time
        self._sock: socket.socket | None = None
        self._helper: asyncio.subprocess.Process | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[_Child]] = {}
        self._children: dict[int, asyncio.Future[int]] = {}
        self._ready: asyncio.Future[int] | None = None
        self._lock = asyncio.Lock()
        self._restart: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self) -> None:
        """Start the helper and wait until it has imported the console."""
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._helper = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "console.ssh_launcher",
                str(theirs.fileno()),
                *self._global_args,
                pass_fds=[theirs.fileno()],
                stdin=asyncio.subprocess.DEVNULL,
                env=self._env,
            )
        finally:
            theirs.close()
        ours.setblocking(False)
        self._sock = ours
        self._ready = loop.create_future()
        loop.add_reader(ours.fileno(), self._receive)
        await self._ready

    async def spawn(self, operator: str, env: Mapping[str, str], tty: int) -> Spawned:
        async with self._lock:
            if self._sock is None:
                await self.start()
        request = next(self._ids)
        argv = [*self._global_args, "--operator", operator, "open"]
        frame = encode_frame({"argv": argv, "env": dict(env)}, request)
        answer: asyncio.Future[_Child] = asyncio.get_running_loop().create_future()
        self._pending[request] = answer
        try:
            await self._send(frame, tty)
        except OSError as error:
            self._pending.pop(request, None)
            raise ConsoleError(f"Cannot start a console: {error}") from None
        return await answer

    async def close(self) -> None:
        self._closing = True
        if self._restart is not None:
            await self._restart
        self._stop_reading()
        if self._helper is not None:
            await self._helper.wait()

    async def _send(self, frame: bytes, tty: int) -> None:
        """Send one frame whole; when the helper is behind, wait until the socket takes it."""
        loop = asyncio.get_running_loop()
        while True:
            if self._sock is None:
                raise ConsoleError("The console launcher stopped; try again")
            try:
                socket.send_fds(self._sock, [frame], [tty])
                return
            except BlockingIOError:
                writable: asyncio.Future[None] = loop.create_future()
                fd = self._sock.fileno()
                loop.add_writer(fd, _settle, writable)
                try:
                    await writable
                finally:
                    loop.remove_writer(fd)

    def _receive(self) -> None:
        assert self._sock is not None
        try:
            data, fds, flags = receive_frame(self._sock)
        except BlockingIOError:
            return
        except OSError:  # ECONNRESET: the helper has gone
            data, fds, flags = b"", [], 0
        for fd in fds:
            os.close(fd)
        if not data:
            self._helper_gone()
            return
        try:
            request, message = decode_frame(data, flags)
        except FrameError as error:
            request, message = error.request, {"error": str(error)}
            print(f"ssr-console: the console launcher sent {error}", file=sys.stderr)
        if "ready" in message and self._ready is not None and not self._ready.done():
            self._ready.set_result(message["ready"])
        elif request:
            answer = self._pending.pop(request, None)
            if answer is None:
                return
            if "pid" in message:  # registered now: its exit may be the very next message
                exited = asyncio.get_running_loop().create_future()
                self._children[message["pid"]] = exited
                answer.set_result(_Child(message["pid"], exited))
            else:
                answer.set_exception(ConsoleError(f"Cannot start a console: {message['error']}"))
        elif "exited" in message:
            gone = self._children.pop(message["exited"], None)
            if gone is not None and not gone.done():
                gone.set_result(message["code"])

    def _helper_gone(self) -> None:
        """The helper died: its children can no longer be waited for, so end them now; then start
        a new helper, so the next person does not wait for the imports."""
        ready = self._ready
        was_ready = (
            ready is not None and ready.done() and not ready.cancelled() and not ready.exception()
        )
        self._stop_reading()
        for pid, exited in self._children.items():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            exited.set_result(-signal.SIGKILL)
        self._children.clear()
        for answer in self._pending.values():
            if not answer.done():  # a session may have stopped waiting for its console
                answer.set_exception(ConsoleError("The console launcher stopped; try again"))
        self._pending.clear()
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(
                ConsoleError("The console could not be prepared: its error is printed above")
            )
        if was_ready and not self._closing:  # a helper that never got ready waits for a spawn
            print("ssr-console: the console launcher stopped; starting it again", file=sys.stderr)
            self._restart = asyncio.get_running_loop().create_task(self._start_again())

    async def _start_again(self) -> None:
        async with self._lock:
            if self._sock is None and not self._closing:
                try:
                    await self.start()
                except (OSError, ConsoleError) as error:  # the next spawn tries again
                    print(f"ssr-console: {error}", file=sys.stderr)

    def _stop_reading(self) -> None:
        if self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None


# --- the helper process ----------------------------------------------------------------------


def prepare(global_args: Sequence[str] = ()) -> None:
    """Do once, before any fork, what every session would otherwise do before its first frame:
    imports (the screens a session opens later too), the command line's parser, the migrations'
    heads its schema check compares with, the ORM's mappers, the modules of the dashboard's panels
    and the character width table Textual measures text with; given the server's global options
    (``--database-url``...), the SQL of a session's first reads too."""
    for module in PRELOAD:
        __import__(module)
    from rich.cells import cell_len
    from sqlalchemy.orm import configure_mappers

    from console import cli, navigation
    from screens.dashboard import PANELS
    from services.core import db

    navigation.preload()
    for panel in PANELS:
        __import__(panel.source.partition(":")[0])
    cli.build_parser()
    db.head_revisions()
    configure_mappers()
    cell_len("…")  # loads rich's Unicode width table (UNICODE_VERSION is the server's alone)
    if global_args:
        _compile_sessions_sql(global_args)


def _compile_sessions_sql(global_args: Sequence[str]) -> None:
    """Run, once for each kind of operator, the reads a session makes from its schema check to
    its dashboard's panels, on the engine the sessions take over (``cli.keep_engine``): the SQL
    they compile stays in that engine's compiled cache, which every forked session inherits.
    Compiling it again cost each session about 80 ms of CPU (SQLAlchemy compiles a statement
    once per engine). The pool is emptied afterwards, so no session inherits a connection.
    A database that cannot be read now only leaves the sessions to compile their own."""
    from console import cli
    from screens.dashboard import PANELS
    from services.access import operators
    from services.access.tables import Operator
    from services.audit import log as audit
    from services.core import db
    from services.core.context import ConsoleContext
    from services.reports import dashboard

    try:
        settings = cli.settings_for(cli.build_parser().parse_args([*global_args, "open"]))
        engine = cli.keep_engine("open", settings)
    except ConsoleError:
        return  # the session says why, on its own terminal
    try:
        if db.needs_upgrade(engine):
            return
        kinds: dict[tuple[object, ...], Operator] = {}
        for operator in operators.active(engine):  # their scope and roles shape the SQL
            kinds.setdefault((operator.roles, operator.school_id is None), operator)
        for operator in kinds.values():
            ctx = ConsoleContext(engine, settings, operator)
            reads: list[Callable[[], object]] = [
                partial(operators.resolve, engine, operator.username),
                partial(dashboard.lea_label, engine, operator),
                partial(audit.head, engine),
                partial(dashboard.summary, engine, operator),
                partial(dashboard.banners, engine, operator),
                *(partial(panel.read, ctx) for panel in PANELS),
            ]
            for read in reads:
                try:
                    read()
                except DatabaseUnavailable:
                    raise
                except ConsoleError:  # one this operator may not make
                    continue
    except DatabaseUnavailable:
        pass
    finally:
        engine.dispose()


def _helper_main(fd: int, global_args: Sequence[str]) -> None:
    """Prepare the console, then fork one child per request and report each child's exit."""
    prepare(global_args)
    gc.freeze()  # the children's collector then never writes to (and so copies) the shared objects
    sock = socket.socket(fileno=fd)
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server decides when we stop
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ)
    selector.register(wake_read, selectors.EVENT_READ)
    sock.send(encode_frame({"ready": os.getpid()}))
    while True:
        for key, _ in selector.select():
            if key.fileobj is sock:
                data, fds, flags = receive_frame(sock, max_fds=1)
                if not data:
                    return  # the server has gone; the sessions go with their ptys
                _serve(sock, data, fds, flags, (wake_read, wake_write, selector.fileno()))
            else:
                os.read(wake_read, 512)
                _report_exits(sock)


def _serve(
    sock: socket.socket, data: bytes, fds: list[int], flags: int, own: tuple[int, ...]
) -> None:
    """Start the console one frame asks for, or answer that request alone with why not."""
    try:
        request, message = decode_frame(data, flags)
        argv, env = message.get("argv"), message.get("env")
        if not (_strings(argv) and isinstance(env, dict) and _strings([*env, *env.values()])):
            raise FrameError("a request without a command line and environment", request)
        if len(fds) != 1:
            raise FrameError("no terminal received", request)
    except FrameError as error:
        for fd in fds:
            os.close(fd)
        sock.send(encode_frame({"error": str(error)}, error.request))
        return
    _spawn(sock, request, argv, env, fds[0], own)


def _strings(value: object) -> TypeGuard[list[str]]:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _spawn(
    sock: socket.socket,
    request: int,
    argv: list[str],
    env: dict[str, str],
    tty: int,
    own: tuple[int, ...],
) -> None:
    try:
        pid = os.fork()
    except OSError as error:
        os.close(tty)
        sock.send(encode_frame({"error": str(error)}, request))
        return
    if pid == 0:
        sock.close()
        for fd in own:
            os.close(fd)
        _run_console(tty, argv, env)
    os.close(tty)
    sock.send(encode_frame({"pid": pid}, request))


def _report_exits(sock: socket.socket) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        code = os.waitstatus_to_exitcode(status)
        sock.send(encode_frame({"exited": pid, "code": code}))


def _run_console(tty: int, argv: list[str], env: dict[str, str]) -> None:
    """In the forked child: become the session's terminal process and run the console; never returns."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGCHLD, signal.SIGHUP, signal.SIGTERM):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a fresh interpreter
        take_terminal(tty)
        os.environ.clear()
        os.environ.update(env)
        random.seed()  # never share the helper's random state between sessions
        # Textual's driver reads the original streams (sys.__stdin__, sys.__stdout__), which typeshed
        # declares Final: a forked child that takes a new terminal has to rebind them all the same.
        sys.stdin = sys.__stdin__ = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), "utf-8")  # type: ignore[misc]
        sys.stdout = sys.__stdout__ = _writer(1)  # type: ignore[misc]
        sys.stderr = sys.__stderr__ = _writer(2)  # type: ignore[misc]
        sys.argv = ["ssr-console", *argv]
        from console import cli

        code = cli.main(argv)
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _writer(fd: int) -> io.TextIOWrapper:
    return io.TextIOWrapper(
        io.FileIO(fd, "w", closefd=False), "utf-8", errors="replace", line_buffering=True
    )


if __name__ == "__main__":
    _helper_main(int(sys.argv[1]), sys.argv[2:])
