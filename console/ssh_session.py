"""One console process on its own pseudo-terminal, for one SSH session.

Textual's driver owns the whole process (stdin, signals, terminal modes), so every SSH session runs
the console as a child process whose stdin/stdout/stderr are the slave side of a fresh pty and whose
controlling terminal that pty is: resizes set the window size on the pty and the kernel sends the
child SIGWINCH. The child leads its own session and process group, so ending it (SIGHUP, then
SIGKILL) reaches only that group. Delivery batches run in worker processes of their own
(``ssr-console worker``), never in a session's group, so a dropped connection cannot stop one.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import signal
import struct
import termios
from collections.abc import Awaitable, Callable

from console.ssh_launcher import Spawned

READ_CHUNK = 65536
INPUT_BACKLOG = 1 << 20  # bytes of keystrokes/paste held for a busy console before the client waits
HANGUP_GRACE_SECONDS = 2.0


def set_window_size(fd: int, columns: int, rows: int) -> None:
    """TIOCSWINSZ on a pty: the kernel tells the foreground process group with SIGWINCH."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))


class PtyProcess:
    """A child process attached to a pty, pumping bytes through callbacks.

    ``on_output(data)`` receives what the process writes to its terminal; ``on_exit(code)`` is
    called once, after the last output, when the process has ended. ``pause_output`` and
    ``resume_output`` let a slow client apply back-pressure; in the other direction ``write``
    returns False once a large backlog of input waits, and ``on_input_drained`` says when the
    backlog is gone.
    """

    def __init__(
        self,
        on_output: Callable[[bytes], None],
        on_exit: Callable[[int], None],
        on_input_drained: Callable[[], None] = lambda: None,
    ) -> None:
        self._on_output = on_output
        self._on_exit = on_exit
        self._on_input_drained = on_input_drained
        self._loop = asyncio.get_running_loop()
        self._master = -1
        self._process: Spawned | None = None
        self._pending = bytearray()
        self._reading = False
        self._closed = asyncio.Event()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    async def start(
        self, spawn: Callable[[int], Awaitable[Spawned]], columns: int, rows: int
    ) -> None:
        """Open a pty of ``columns`` x ``rows`` and ``spawn`` the process on its slave side.

        ``spawn`` gets the slave's fd and must start a process that leads a new session with that
        pty as its controlling terminal (see ``console.ssh_launcher``).
        """
        master, slave = os.openpty()
        try:
            set_window_size(slave, columns or 80, rows or 24)
            self._process = await spawn(slave)
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        os.set_blocking(master, False)
        self._master = master
        self.resume_output()
        self._loop.create_task(self._wait())

    def write(self, data: bytes) -> bool:
        """Keystrokes from the client, queued when the pty's input buffer is full.

        Returns False when the backlog is so large that the caller should stop reading input
        until ``on_input_drained``.
        """
        if self._master < 0:
            return True
        self._pending += data
        self._flush()
        return len(self._pending) < INPUT_BACKLOG

    def resize(self, columns: int, rows: int) -> None:
        if self._master >= 0 and columns > 0 and rows > 0:
            set_window_size(self._master, columns, rows)

    def pause_output(self) -> None:
        if self._reading:
            self._loop.remove_reader(self._master)
            self._reading = False

    def resume_output(self) -> None:
        if not self._reading and self._master >= 0:
            self._loop.add_reader(self._master, self._read)
            self._reading = True

    async def terminate(self, grace: float = HANGUP_GRACE_SECONDS) -> None:
        """SIGHUP the session's process group, then SIGKILL it if it has not gone after ``grace``."""
        if self._process is None or self._closed.is_set():
            return
        self._signal_group(signal.SIGHUP)
        try:
            await asyncio.wait_for(asyncio.shield(self._closed.wait()), grace)
        except TimeoutError:
            self._signal_group(signal.SIGKILL)
            await self._closed.wait()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    def _signal_group(self, signum: signal.Signals) -> None:
        assert self._process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signum)  # pgid == pid: start_new_session

    def _read(self) -> None:
        try:
            data = os.read(self._master, READ_CHUNK)
        except BlockingIOError:
            return
        except OSError as error:  # EIO: every slave fd closed, the process has gone
            if error.errno != errno.EIO:
                raise
            data = b""
        if data:
            self._on_output(data)
        else:
            self.pause_output()

    def _flush(self) -> None:
        try:
            written = os.write(self._master, self._pending)
        except BlockingIOError:
            written = 0
        except OSError:  # the process has gone; drop the keystrokes
            self._pending.clear()
            return
        del self._pending[:written]
        self._loop.remove_writer(self._master)
        if self._pending:
            self._loop.add_writer(self._master, self._flush)
        elif written:
            self._on_input_drained()

    async def _wait(self) -> None:
        assert self._process is not None
        code = await self._process.wait()
        self._drain()
        self.pause_output()
        self._loop.remove_writer(self._master)
        os.close(self._master)
        self._master = -1
        self._closed.set()
        self._on_exit(code)

    def _drain(self) -> None:
        """Forward what the process wrote just before it ended (its last frame, an error)."""
        while True:
            try:
                data = os.read(self._master, READ_CHUNK)
            except OSError:
                return
            if not data:
                return
            self._on_output(data)
