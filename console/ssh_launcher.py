"""Starting the console process of an SSH session: a plain exec, or a fork of a prepared process.

Starting Python and importing Textual, SQLAlchemy and the screens costs one to two seconds of CPU
per session; twenty people connecting at once on two cores waited 17 seconds for their first frame.
``PreparedLauncher`` keeps one helper process (run as ``python -m console.ssh_launcher``) that has
imported all of that once and never touched the database; for each session it forks a child that
makes the session's pty its controlling terminal, takes the session's environment and runs
``ssr-console --operator NAME open`` in-process. The children share the imported code with the
helper (copy-on-write), so they start in a fraction of the time and use less memory. Every child
still leads its own session and process group, exactly like an exec'd one.

Messages between the server and the helper are JSON over a SOCK_SEQPACKET socket pair; the pty
slave travels with the spawn request as an SCM_RIGHTS file descriptor.
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
import sys
import termios
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from services.errors import ConsoleError

MAX_MESSAGE = 1 << 16
PRELOAD = ("console.cli", "console.app", "sqlalchemy.dialects.sqlite")
"""Imported by the helper before any fork; ``console.navigation.preload`` adds every screen."""


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
        assert self._sock is not None
        request = next(self._ids)
        answer: asyncio.Future[_Child] = asyncio.get_running_loop().create_future()
        self._pending[request] = answer
        argv = [*self._global_args, "--operator", operator, "open"]
        message = json.dumps({"id": request, "argv": argv, "env": dict(env)}).encode()
        socket.send_fds(self._sock, [message], [tty])
        return await answer

    async def close(self) -> None:
        self._stop_reading()
        if self._helper is not None:
            await self._helper.wait()

    def _receive(self) -> None:
        assert self._sock is not None
        try:
            data = self._sock.recv(MAX_MESSAGE)
        except BlockingIOError:
            return
        if not data:
            self._helper_gone()
            return
        message: dict[str, Any] = json.loads(data)
        if "ready" in message and self._ready is not None:
            self._ready.set_result(message["ready"])
        elif "id" in message:
            answer = self._pending.pop(message["id"])
            if "pid" in message:  # registered now: its exit may be the very next message
                exited = asyncio.get_running_loop().create_future()
                self._children[message["pid"]] = exited
                answer.set_result(_Child(message["pid"], exited))
            else:
                answer.set_exception(ConsoleError(f"Cannot start a console: {message['error']}"))
        elif "exited" in message:
            exited = self._children.pop(message["exited"], None)
            if exited is not None and not exited.done():
                exited.set_result(message["code"])

    def _helper_gone(self) -> None:
        """The helper died: its children can no longer be waited for, so end them now."""
        self._stop_reading()
        for pid, exited in self._children.items():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            exited.set_result(-signal.SIGKILL)
        self._children.clear()
        for answer in self._pending.values():
            answer.set_exception(ConsoleError("The console launcher stopped; try again"))
        self._pending.clear()
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(
                ConsoleError("The console could not be prepared: its error is printed above")
            )

    def _stop_reading(self) -> None:
        if self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None


# --- the helper process ----------------------------------------------------------------------


def _helper_main(fd: int) -> None:
    """Import the console, then fork one child per request and report each child's exit."""
    for module in PRELOAD:
        __import__(module)
    from console import navigation

    navigation.preload()  # the screens a session opens later, shared instead of imported each time
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
    sock.send(json.dumps({"ready": os.getpid()}).encode())
    while True:
        for key, _ in selector.select():
            if key.fileobj is sock:
                data, fds, _flags, _addr = socket.recv_fds(sock, MAX_MESSAGE, 1)
                if not data:
                    return  # the server has gone; the sessions go with their ptys
                _spawn(sock, json.loads(data), fds, (wake_read, wake_write, selector.fileno()))
            else:
                os.read(wake_read, 512)
                _report_exits(sock)


def _spawn(
    sock: socket.socket, request: dict[str, Any], fds: list[int], own: tuple[int, int]
) -> None:
    if len(fds) != 1:
        for fd in fds:
            os.close(fd)
        sock.send(json.dumps({"id": request["id"], "error": "no terminal received"}).encode())
        return
    tty = fds[0]
    try:
        pid = os.fork()
    except OSError as error:
        os.close(tty)
        sock.send(json.dumps({"id": request["id"], "error": str(error)}).encode())
        return
    if pid == 0:
        sock.close()
        for fd in own:
            os.close(fd)
        _run_console(tty, request["argv"], request["env"])
    os.close(tty)
    sock.send(json.dumps({"id": request["id"], "pid": pid}).encode())


def _report_exits(sock: socket.socket) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        code = os.waitstatus_to_exitcode(status)
        sock.send(json.dumps({"exited": pid, "code": code}).encode())


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
        sys.stdin = sys.__stdin__ = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), "utf-8")
        sys.stdout = sys.__stdout__ = _writer(1)
        sys.stderr = sys.__stderr__ = _writer(2)
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
    _helper_main(int(sys.argv[1]))
