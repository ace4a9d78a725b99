"""Driving the real OpenSSH client against the built-in server, for tests and bench/ssh.py.

The client runs on a pseudo-terminal we hold (the same ``PtyProcess`` the server uses for the
console), so keys can be typed into it and window-size changes reach it as SIGWINCH, exactly as
when a person resizes their terminal.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import asyncssh

from console.ssh_launcher import exec_on
from console.ssh_session import PtyProcess

SSH = "/usr/bin/ssh"
ANSI = re.compile(rb"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")


def make_key(directory: Path, name: str) -> Path:
    """A throwaway Ed25519 key made by ssh-keygen; returns the private key path."""
    path = directory / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)], check=True
    )
    return path


def known_hosts(path: Path, host_key: asyncssh.SSHKey, port: int) -> Path:
    public = host_key.export_public_key().decode().split()[:2]
    path.write_text(f"[127.0.0.1]:{port} {' '.join(public)}\n")
    return path


def ssh_argv(
    port: int, key: Path, hosts: Path, *extra: str, command: str = "", user: str = "console"
) -> list[str]:
    """OpenSSH options then ``extra``; a ``command`` makes it an exec request."""
    argv = [
        SSH,
        "-F",
        "/dev/null",
        "-p",
        str(port),
        "-i",
        str(key),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        f"UserKnownHostsFile={hosts}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "LogLevel=ERROR",
        *extra,
        f"{user}@127.0.0.1",
    ]
    return [*argv, command] if command else argv


@dataclass
class Terminal:
    """An OpenSSH client on a pty: what it printed so far, and its exit code once it has ended."""

    output: bytearray = field(default_factory=bytearray)
    exit_code: int | None = None
    started_at: float = 0.0
    first_output_at: float | None = None
    process: PtyProcess | None = None

    async def start(self, argv: list[str], columns: int = 80, rows: int = 24, **env: str) -> None:
        self.started_at = time.monotonic()
        self.process = PtyProcess(self._output, self._exited)
        environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TERM": "xterm-256color"}
        environment.update(env)
        await self.process.start(partial(exec_on, argv, environment), columns, rows)

    def _output(self, data: bytes) -> None:
        if self.first_output_at is None:
            self.first_output_at = time.monotonic()
        self.output += data

    def _exited(self, code: int) -> None:
        self.exit_code = code

    @property
    def text(self) -> str:
        """What was printed, escape sequences removed (enough to find words on the screen)."""
        return self.text_since(0)

    def text_since(self, mark: int) -> str:
        """The text printed after byte ``mark`` of the output."""
        return ANSI.sub(b"", bytes(self.output[mark:])).decode("utf-8", "replace")

    async def expect(self, pattern: str, timeout: float = 30.0, since: int = 0) -> float:
        """Wait until ``pattern`` (a regex) shows in the output after byte ``since``.

        Returns the ``time.monotonic()`` at which it was seen (to within 20 ms).
        """
        started = time.monotonic()
        while True:
            text = self.text_since(since)
            if re.search(pattern, text):
                return time.monotonic()
            if self.exit_code is not None or time.monotonic() - started > timeout:
                raise AssertionError(
                    f"{pattern!r} not seen (exit {self.exit_code}); output: {text[-1500:]!r}"
                )
            await asyncio.sleep(0.02)

    def press(self, keys: str | bytes) -> None:
        assert self.process is not None
        self.process.write(keys.encode() if isinstance(keys, str) else keys)

    def resize(self, columns: int, rows: int) -> None:
        assert self.process is not None
        self.process.resize(columns, rows)

    async def wait(self, timeout: float = 20.0) -> int:
        assert self.process is not None
        await asyncio.wait_for(self.process.wait_closed(), timeout)
        assert self.exit_code is not None
        return self.exit_code

    async def hang_up(self) -> None:
        """The person closes their terminal window."""
        assert self.process is not None
        await self.process.terminate(grace=5)


async def run_ssh(argv: list[str], timeout: float = 20.0) -> tuple[int, str]:
    """Run ssh without a terminal; its exit code and stderr."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    return int(process.returncode or 0), (out + err).decode("utf-8", "replace")
