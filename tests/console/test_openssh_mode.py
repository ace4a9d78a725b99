"""OpenSSH mode against a real sshd: the README's forced-command set-up, reached with /usr/bin/ssh.

sshd runs on a loopback port with its own configuration, host key and authorized-keys file (a
throwaway copy of what the README tells an installer to write). It needs root, as sshd does; the
account is root with ``PermitRootLogin forced-commands-only``, so only keys with a forced command
get in. Each key's ``command=`` names its operator; ``restrict`` must keep a client from running
anything else or forwarding ports, and ``pty`` must give the console its terminal.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from services.core import db
from services.core.settings import Settings
from tests.databases import Templates
from tests.ssh_harness import Terminal, make_key, run_ssh, ssh_argv

SSHD = Path("/usr/sbin/sshd")
pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.xdist_group("openssh_mode"),  # one worker: the module's sshd is started once
    pytest.mark.skipif(
        not SSHD.exists() or os.geteuid() != 0, reason="needs sshd (openssh-server) and root"
    ),
]


@dataclass
class Sshd:
    port: int
    keys: dict[str, Path]
    hosts: Path

    def argv(self, who: str, *extra: str, command: str = "") -> list[str]:
        return ssh_argv(self.port, self.keys[who], self.hosts, *extra, command=command, user="root")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sshd(
    tmp_path_factory: pytest.TempPathFactory, templates: Templates
) -> AsyncIterator[Sshd]:
    tmp = tmp_path_factory.mktemp("openssh-mode")
    url = f"sqlite:///{tmp / 'ssr.db'}"
    settings = Settings(database_url=url, data_dir=tmp / "data")
    engine = db.make_engine(url)
    templates.seed_demo(engine, settings, students=12, seed=7, pdfs=False)
    engine.dispose()
    ssr_console = Path(sys.executable).with_name("ssr-console")
    keys = {who: make_key(tmp, who) for who in ("caaspp", "helpdesk", "nobody")}
    lines = [
        f'command="env SSR_OPERATOR={who} SSR_CONSOLE_DATABASE_URL={url} '
        f'SSR_CONSOLE_DATA_DIR={settings.data_dir} TEXTUAL_ANIMATIONS=none {ssr_console} open",'
        f"restrict,pty {key.with_suffix('.pub').read_text().strip()}\n"
        for who, key in keys.items()
    ]
    (tmp / "authorized_keys").write_text("".join(lines))
    host_key = make_key(tmp, "host_key")
    port = free_port()
    config = tmp / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
        f"AuthorizedKeysFile {tmp / 'authorized_keys'}\nPidFile {tmp / 'sshd.pid'}\n"
        "PermitRootLogin forced-commands-only\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nAuthenticationMethods publickey\nUsePAM no\n"
        "StrictModes no\nPermitUserEnvironment no\nLogLevel ERROR\n"  # tmp dirs are 1777
    )
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    subprocess.run([str(SSHD), "-t", "-f", str(config)], check=True)
    server = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)])
    hosts = tmp / "known_hosts"
    public = host_key.with_suffix(".pub").read_text().split()[:2]
    hosts.write_text(f"[127.0.0.1]:{port} {' '.join(public)}\n")
    for _ in range(100):  # until it listens
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        await asyncio.sleep(0.05)
    yield Sshd(port, keys, hosts)
    server.terminate()
    server.wait(10)


async def test_each_key_opens_the_console_as_its_operator(sshd: Sshd) -> None:
    for who, role in (("caaspp", "LEA CAASPP coordinator"), ("helpdesk", "Help desk")):
        term = Terminal()
        await term.start(sshd.argv(who, "-tt"), TERM="xterm-256color")
        await term.expect(role)
        await term.expect(r"Students\s+12")
        term.press("q")
        assert await term.wait() == 0


async def test_an_unknown_operator_gets_one_sentence(sshd: Sshd) -> None:
    term = Terminal()
    await term.start(sshd.argv("nobody", "-tt"), TERM="xterm-256color")
    assert await term.wait() != 0
    assert "nobody" in term.text and "Traceback" not in term.text


async def test_restrict_runs_nothing_else_and_forwards_nothing(sshd: Sshd) -> None:
    """A client asking for a shell command still gets only the console, which without a terminal
    refuses with a sentence instead of drawing into a pipe and waiting; a forward (``-W``, as a
    jump host would use it) is refused by ``restrict``."""
    code, said = await run_ssh(sshd.argv("caaspp", "-T", command="cat /etc/passwd"))
    assert code == 2 and "needs a terminal" in said and "root:x:0:0" not in said
    code, said = await run_ssh(sshd.argv("caaspp", "-W", f"127.0.0.1:{sshd.port}"))
    assert code == 255 and "forwarding failed" in said and "SSH-2.0" not in said
