"""The built-in SSH server, driven by the real OpenSSH client on a pty we hold.

These tests run a small stand-in for the console (it prints its terminal, environment and the keys
it reads) so the plumbing is checked exactly; tests/test_ssh_console.py opens the real console.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from console.ssh_launcher import HEADER, MAX_BODY, ExecLauncher, PreparedLauncher
from console.ssh_server import (
    SESSIONS_PER_CONNECTION,
    ConsoleServer,
    SSHOptions,
    load_host_key,
)
from services.access.tables import Operator, Role
from services.audit.tables import AuditEvent
from services.core.errors import ConsoleError, InvalidInput
from services.roster.tables import LEA
from tests.ssh_harness import Terminal, known_hosts, make_key, run_ssh, ssh_argv

STAND_IN = r"""
import os, signal, subprocess, sys, tty
tty.setraw(0)
def size(*_):
    c, r = os.get_terminal_size(0)
    os.write(1, f"SIZE={c}x{r}\r\n".encode())
signal.signal(signal.SIGWINCH, size)
env = os.environ
os.write(1, (f"OP={sys.argv[1]} TERM={env.get('TERM')} NO_COLOR={env.get('NO_COLOR', '-')} "
             f"ANIM={env.get('TEXTUAL_ANIMATIONS')} SSR_OPERATOR={env.get('SSR_OPERATOR', '-')}\r\n").encode())
size()
helper = subprocess.Popen(["sleep", "300"])  # same process group: must end with the session
worker = subprocess.Popen(["sleep", "300"], start_new_session=True)  # a batch worker: must survive
os.write(1, f"PIDS console={os.getpid()} helper={helper.pid} worker={worker.pid}\r\n".encode())
while True:
    key = os.read(0, 1)
    if not key or key == b"q":
        break
    os.write(1, b"GOT:" + key + b"\r\n")
"""


@dataclass
class Lab:
    server: ConsoleServer
    engine: Engine
    tmp: Path
    keys: dict[str, Path]
    hosts: Path

    def argv(self, who: str, *extra: str, command: str = "") -> list[str]:
        return ssh_argv(self.server.port, self.keys[who], self.hosts, *extra, command=command)

    def client(self, who: str, **options: Any) -> Any:
        """asyncssh's client with ``who``'s key, for what the OpenSSH client cannot do."""
        return asyncssh.connect(
            "127.0.0.1",
            self.server.port,
            username="console",
            client_keys=[str(self.keys[who])],
            known_hosts=str(self.hosts),
            agent_path=None,
            config=None,
            **options,
        )

    def audit(self) -> list[AuditEvent]:
        with Session(self.engine) as session:
            return list(session.exec(select(AuditEvent).order_by(AuditEvent.seq)).all())

    async def flushed_audit(self, action: str, count: int = 1) -> list[AuditEvent]:
        """Audit events are written off the event loop; wait until ``count`` of ``action`` are in."""
        for _ in range(200):
            found = [e for e in self.audit() if e.action == action]
            if len(found) >= count:
                return found
            await asyncio.sleep(0.05)
        raise AssertionError(f"no {action} in the audit log: {[e.action for e in self.audit()]}")


def add_operators(engine: Engine) -> None:
    with Session(engine) as session:
        lea = LEA(cds_code="1964733", name="Demo Unified")
        session.add(lea)
        session.flush()
        assert lea.id is not None
        for username, role in [("caaspp", Role.LEA_CAASPP), ("helpdesk", Role.HELPDESK)]:
            session.add(
                Operator(username=username, display_name=username, role=role, lea_id=lea.id)
            )
        session.add(
            Operator(
                username="gone", display_name="gone", role=Role.SITE, lea_id=lea.id, active=False
            )
        )
        session.commit()


async def open_lab(
    engine: Engine,
    tmp: Path,
    command: Callable[[str], list[str]],
    idle: float = 0,
    **limits: float,
) -> Lab:
    keys = {who: make_key(tmp, who) for who in ("caaspp", "helpdesk", "stranger", "gone")}
    listed = [
        f'operator="caaspp",restrict {keys["caaspp"].with_suffix(".pub").read_text().strip()}',
        keys["helpdesk"].with_suffix(".pub").read_text().strip(),  # comment "helpdesk" names it
        keys["gone"].with_suffix(".pub").read_text().strip(),
    ]
    (tmp / "authorized_keys").write_text("# people who may sign in\n" + "\n".join(listed) + "\n")
    options = SSHOptions.in_data_dir(
        tmp / "data", port=0, authorized_keys=tmp / "authorized_keys", idle_timeout=idle, **limits
    )
    server = ConsoleServer(options, engine, ExecLauncher(command))
    await server.start()
    assert server.host_key is not None
    hosts = known_hosts(tmp / "known_hosts", server.host_key, server.port)
    return Lab(server, engine, tmp, keys, hosts)


def stand_in(operator: str) -> list[str]:
    return [sys.executable, "-c", STAND_IN, operator]


@pytest.fixture
async def lab(engine: Engine, tmp_path: Path) -> AsyncIterator[Lab]:
    add_operators(engine)
    lab = await open_lab(engine, tmp_path, stand_in)
    yield lab
    await lab.server.close()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie has ended too
        return stat.read().split(") ", 1)[1][0] != "Z"


async def gone(pid: int, timeout: float = 10) -> bool:
    for _ in range(int(timeout / 0.05)):
        if not alive(pid):
            return True
        await asyncio.sleep(0.05)
    return False


async def test_session_gets_the_clients_terminal_size_and_keys(lab: Lab) -> None:
    term = Terminal()
    # PuTTY announces TERM=xterm; NO_COLOR is honoured; SSR_OPERATOR from the client is not.
    argv = lab.argv("caaspp", "-tt", "-o", "SetEnv=NO_COLOR=1 SSR_OPERATOR=helpdesk")
    await term.start(argv, TERM="xterm")
    await term.expect(r"OP=caaspp TERM=xterm NO_COLOR=1 ANIM=none SSR_OPERATOR=-")
    await term.expect(r"SIZE=80x24")
    mark = len(term.output)
    term.press("x")
    await term.expect(r"GOT:x", since=mark)
    term.resize(100, 30)
    await term.expect(r"SIZE=100x30", since=mark)
    term.press("q")
    assert await term.wait() == 0

    actions = [e.action for e in await lab.flushed_audit("ssh.disconnect")]
    assert actions == ["ssh.disconnect"]
    events = lab.audit()
    assert [e.action for e in events] == [
        "ssh.login",
        "ssh.session_open",
        "ssh.session_close",
        "ssh.disconnect",
    ]
    login = events[0]
    assert (login.operator, login.role) == ("caaspp", "lea_caaspp")
    assert json.loads(login.detail)["key"].startswith("SHA256:")
    assert "AAAA" not in "".join(e.detail for e in events)  # fingerprints only, no key material
    assert json.loads(events[2].detail)["reason"] == "console exited"


async def test_hang_up_ends_the_console_group_but_not_a_batch_worker(lab: Lab) -> None:
    term = Terminal()
    await term.start(lab.argv("helpdesk", "-tt"), TERM="xterm-256color")  # Windows ssh's TERM
    await term.expect(r"PIDS console=\d+ helper=\d+ worker=\d+")
    pids = dict(part.split("=") for part in term.text.split("PIDS ", 1)[1].split("\r\n")[0].split())
    await term.hang_up()
    try:
        assert await gone(int(pids["console"]))
        assert await gone(int(pids["helper"]))
        assert alive(int(pids["worker"]))
    finally:
        os.kill(int(pids["worker"]), signal.SIGKILL)
    closed = await lab.flushed_audit("ssh.session_close")
    assert json.loads(closed[0].detail)["reason"] == "client left"
    assert closed[0].operator == "helpdesk"
    assert not lab.server.sessions


async def test_unknown_key_is_refused(lab: Lab) -> None:
    code, err = await run_ssh(lab.argv("stranger", "-tt"))
    assert code == 255 and "Permission denied (publickey)" in err
    refused = await lab.flushed_audit("ssh.refused")
    detail = json.loads(refused[0].detail)
    assert detail["reason"] == "unknown key"
    assert detail["keys_offered"] == [_fingerprint(lab.keys["stranger"])]
    assert refused[0].operator == "system"


async def test_key_of_a_disabled_operator_is_refused(lab: Lab) -> None:
    code, _ = await run_ssh(lab.argv("gone", "-tt"))
    assert code == 255
    refused = await lab.flushed_audit("ssh.refused")
    assert "unknown or disabled" in json.loads(refused[0].detail)["reason"]


async def test_password_and_keyboard_interactive_are_not_offered(lab: Lab) -> None:
    argv = lab.argv("caaspp", "-o", "PreferredAuthentications=password,keyboard-interactive")
    code, err = await run_ssh(argv)
    assert code == 255 and "Permission denied (publickey)" in err
    refused = await lab.flushed_audit("ssh.refused")
    assert json.loads(refused[0].detail)["reason"] == "no public key offered"


async def test_exec_request_is_refused_and_nothing_runs(lab: Lab) -> None:
    marker = lab.tmp / "ran"
    code, err = await run_ssh(lab.argv("caaspp", command=f"touch {marker}"))
    assert code == 1 and "commands are refused" in err
    assert not marker.exists()
    refused = await lab.flushed_audit("ssh.request_refused")
    assert json.loads(refused[0].detail)["request"] == "exec"


async def test_sftp_and_no_terminal_sessions_are_refused(lab: Lab) -> None:
    code, err = await run_ssh(lab.argv("caaspp", "-s", command="sftp"))
    assert code != 0 and "subsystem request failed" in err
    code, err = await run_ssh(lab.argv("caaspp", "-T"))
    assert code == 1 and "needs a terminal" in err
    refused = await lab.flushed_audit("ssh.request_refused", count=2)
    assert {json.loads(e.detail)["request"] for e in refused} == {
        "subsystem",
        "session without a terminal",
    }


async def test_remote_port_forwarding_is_refused(lab: Lab) -> None:
    argv = lab.argv("caaspp", "-N", "-o", "ExitOnForwardFailure=yes", "-R", "0:127.0.0.1:9")
    code, err = await run_ssh(argv)
    assert code == 255 and "forwarding failed" in err
    refused = await lab.flushed_audit("ssh.request_refused")
    assert json.loads(refused[0].detail)["request"] == "remote port forwarding"


async def test_local_port_forwarding_is_refused(lab: Lab) -> None:
    target = socket.create_server(("127.0.0.1", 0))  # what a tunnel would reach
    target.setblocking(False)
    local_port = _free_port()
    argv = lab.argv(
        "caaspp",
        "-N",
        "-o",
        "ExitOnForwardFailure=yes",
        "-L",
        f"{local_port}:127.0.0.1:{target.getsockname()[1]}",
    )
    client = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    try:
        reader, writer = await _connect_when_listening(local_port)
        assert await asyncio.wait_for(reader.read(), 10) == b""  # closed at once, nothing through
        writer.close()
        with pytest.raises(BlockingIOError):
            target.accept()
    finally:
        client.terminate()
        await client.wait()
        target.close()
    refused = await lab.flushed_audit("ssh.request_refused")
    assert json.loads(refused[0].detail)["request"] == "local port forwarding"


async def test_idle_session_is_closed(engine: Engine, tmp_path: Path) -> None:
    add_operators(engine)
    lab = await open_lab(engine, tmp_path, stand_in, idle=1.0)
    try:
        term = Terminal()
        await term.start(lab.argv("caaspp", "-tt"))
        await term.expect(r"PIDS console=(\d+)")
        pid = int(term.text.split("console=", 1)[1].split()[0])
        await term.expect(r"closed after 1 second without a key press")
        assert await term.wait() != 0
        assert await gone(pid)
        closed = await lab.flushed_audit("ssh.session_close")
        assert "without a key press" in json.loads(closed[0].detail)["reason"]
    finally:
        await lab.server.close()


def test_host_key_is_generated_private_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "data" / "host_key"
    first = load_host_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_host_key(path).get_fingerprint() == first.get_fingerprint()
    path.chmod(0o644)
    with pytest.raises(InvalidInput, match="chmod 600"):
        load_host_key(path)


async def test_server_refuses_to_start_without_a_valid_key_list(
    engine: Engine, tmp_path: Path
) -> None:
    options = SSHOptions.in_data_dir(tmp_path, port=0, authorized_keys=tmp_path / "listed")
    with pytest.raises(InvalidInput, match="does not exist"):
        await ConsoleServer(options, engine, ExecLauncher(stand_in)).start()
    (tmp_path / "listed").write_text("ssh-ed25519 not-base64!! caaspp\n")
    with pytest.raises(InvalidInput, match="line 1"):
        await ConsoleServer(options, engine, ExecLauncher(stand_in)).start()


def _fingerprint(private_key: Path) -> str:
    out = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", str(private_key.with_suffix(".pub"))],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.split()[1]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _connect_when_listening(
    port: int,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    for _ in range(200):
        try:
            return await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
    raise AssertionError(f"ssh never listened on {port}")


async def test_serve_ssh_command_starts_keeps_its_host_key_and_stops(
    engine: Engine, sqlite_url: str, tmp_path: Path
) -> None:
    add_operators(engine)
    keys = tmp_path / "authorized_keys"
    lines = [
        make_key(tmp_path, who).with_suffix(".pub").read_text() for who in ("caaspp", "nobody")
    ]
    keys.write_text("".join(lines))
    data = tmp_path / "data"
    argv = [sys.executable, "-m", "console.cli", "--database-url", sqlite_url, "--data-dir"]
    argv += [str(data), "serve-ssh", "--port", "0", "--authorized-keys", str(keys)]
    server = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE)
    assert server.stdout is not None
    try:
        banner = (await asyncio.wait_for(server.stdout.readline(), 30)).decode()
        warning = (await asyncio.wait_for(server.stdout.readline(), 30)).decode()
    finally:
        server.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(server.wait(), 30) == 0
    host_key = data / "ssh_host_ed25519_key"
    assert f"host key {load_host_key(host_key).get_fingerprint()}" in banner
    assert "127.0.0.1:" in banner and "2 authorized keys" in banner
    assert "cannot sign in: Unknown operator 'nobody'" in warning
    assert host_key.stat().st_mode & 0o777 == 0o600


async def test_one_connection_may_open_only_a_few_sessions(lab: Lab) -> None:
    async with lab.client("caaspp") as conn:
        opened = [
            await conn.create_session(asyncssh.SSHClientSession, term_type="xterm")
            for _ in range(SESSIONS_PER_CONNECTION)
        ]
        with pytest.raises(asyncssh.ChannelOpenError):
            await conn.create_session(asyncssh.SSHClientSession, term_type="xterm")
        for channel, _session in opened:
            channel.close()
    refused = await lab.flushed_audit("ssh.request_refused")
    assert "sessions on one connection" in json.loads(refused[0].detail)["request"]


COUNTER = r"""
import os, sys, time, tty
tty.setraw(0)
os.write(1, b"READY\r\n")
time.sleep(1)  # busy: the paste piles up in the server until the client is held back
total = 0
while total < int(sys.argv[2]):
    total += len(os.read(0, 65536))
os.write(1, f"COUNT={total}\r\n".encode())
"""


async def test_a_huge_paste_arrives_whole(engine: Engine, tmp_path: Path) -> None:
    """Input beyond the backlog holds the client back (SSH flow control) instead of piling up."""
    size = 3 * 1024 * 1024
    add_operators(engine)
    lab = await open_lab(
        engine, tmp_path, lambda op: [sys.executable, "-c", COUNTER, op, str(size)]
    )
    try:
        term = Terminal()
        await term.start(lab.argv("caaspp", "-tt"))
        await term.expect("READY")
        term.press(b"x" * size)
        await term.expect(f"COUNT={size}", timeout=60)
        assert await term.wait() == 0
    finally:
        await lab.server.close()


async def test_a_launcher_that_cannot_start_says_so() -> None:
    broken = PreparedLauncher([], {"PYTHONHOME": "/nonexistent"})  # Python itself cannot start
    with pytest.raises(ConsoleError, match="could not be prepared"):
        await broken.start()


async def test_launcher_refuses_what_it_cannot_read_whole_and_keeps_serving(
    engine: Engine, sqlite_url: str
) -> None:
    """An outsized request is refused before it is sent; a frame the helper gets truncated is
    answered with an error for that request alone; the same helper then starts a console."""
    add_operators(engine)
    launcher = PreparedLauncher(["--database-url", sqlite_url], dict(os.environ))
    await launcher.start()
    helper = launcher._helper
    master, slave = os.openpty()
    try:
        with pytest.raises(ConsoleError, match=f"at most {MAX_BODY}"):
            await launcher.spawn("caaspp", {"LC_ALL": "x" * (MAX_BODY + 1)}, slave)

        truncated: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        launcher._pending[999] = truncated  # type: ignore[assignment]
        body = b"{" * (2 * MAX_BODY)
        assert launcher._sock is not None
        socket.send_fds(launcher._sock, [HEADER.pack(len(body), 999) + body], [slave])
        with pytest.raises(ConsoleError, match="not received whole"):
            await asyncio.wait_for(truncated, 10)

        child = await launcher.spawn("nobody", {"TERM": "xterm"}, slave)
        assert await asyncio.wait_for(child.wait(), 30) == 2  # "unknown operator", as a sentence
        assert launcher._helper is helper and helper is not None and helper.returncode is None
    finally:
        os.close(master)
        os.close(slave)
        await launcher.close()
