"""A real IMAP and POP3 server for the bounce tests: Debian's Dovecot with a throwaway configuration.

Own loopback ports (IMAP and POP3, both over TLS), own mail location, a passwd-file user, TLS only with a self-signed certificate
made here with the openssl CLI; run in the foreground by the test (never the system service).
Dovecot will not run its login processes or a mail user as root, so under root both are the
``dovenull`` user the package creates, and the mail folder is given to it.
"""

from __future__ import annotations

import grp
import imaplib
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

DOVECOT = Path("/usr/sbin/dovecot")
USER, PASSWORD = "bounces", "bounce-mailbox-secret"
ANVIL_WITHOUT_CHROOT = "service anvil {\n  chroot =\n}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (the client trusts it as its CA file)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )
    return cert, key


@dataclass
class Dovecot:
    folder: Path
    cert: Path
    key: Path
    port: int = field(default_factory=free_port)
    pop3_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    mail: Path | None = None
    run: Path | None = None

    def start(self) -> Dovecot:
        root = os.geteuid() == 0
        me = pwd.getpwuid(os.geteuid()).pw_name
        mail_user = "dovenull" if root else me
        # a folder the mail user can reach (a root test's tmp_path is not)
        self.mail = Path(tempfile.mkdtemp(prefix="ssr-dovecot-"))
        # its sockets live in base_dir, and a socket path holds at most 107 bytes (unix(7)): a
        # pytest tmp_path under xdist (/tmp/pytest-of-root/pytest-N/popen-gw0/test_.../) is longer
        self.run = Path(tempfile.mkdtemp(prefix="ssr-dv-"))
        if root:
            shutil.chown(self.mail, mail_user, mail_user)
        (self.folder / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
        conf = self.folder / "dovecot.conf"
        conf.write_text(
            f"""base_dir = {self.run}
state_dir = {self.folder}/state
log_path = {self.folder}/dovecot.log
protocols = imap pop3
listen = 127.0.0.1
ssl = required
ssl_cert = <{self.cert}
ssl_key = <{self.key}
ssl_dh = </usr/share/dovecot/dh.pem
auth_mechanisms = plain
first_valid_uid = 1
mail_location = maildir:{self.mail}/%u
default_login_user = {mail_user}
default_internal_user = {me}
default_internal_group = {grp.getgrgid(os.getegid()).gr_name}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.folder}/passwd
}}
userdb {{
  driver = static
  args = uid={mail_user} gid={mail_user} home={self.mail}/%u
}}
service imap-login {{
  {"" if root else "chroot ="}
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = {self.port}
    ssl = yes
  }}
}}
service pop3-login {{
  {"" if root else "chroot ="}
  inet_listener pop3 {{
    port = 0
  }}
  inet_listener pop3s {{
    port = {self.pop3_port}
    ssl = yes
  }}
}}
{"" if root else ANVIL_WITHOUT_CHROOT}
"""
        )
        self.process = subprocess.Popen(
            [str(DOVECOT), "-F", "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                self.client().logout()
                return self
            except (OSError, imaplib.IMAP4.error):
                if self.process.poll() is not None:
                    raise RuntimeError(self.log()) from None
                time.sleep(0.1)
        raise RuntimeError(f"dovecot did not answer on port {self.port}: {self.log()}")

    def log(self) -> str:
        path = self.folder / "dovecot.log"
        return path.read_text() if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        for folder in (self.mail, self.run):
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
        self.mail = self.run = None

    def client(self) -> imaplib.IMAP4_SSL:
        context = ssl.create_default_context(cafile=str(self.cert))
        client = imaplib.IMAP4_SSL("127.0.0.1", self.port, ssl_context=context, timeout=10)
        client.login(USER, PASSWORD)
        return client

    def append(self, *messages: bytes, folder: str = "INBOX") -> None:
        client = self.client()
        try:
            for raw in messages:
                status, said = client.append(folder, None, None, raw)
                assert status == "OK", said
        finally:
            client.logout()

    def empty(self) -> None:
        """Delete every message of every folder (between tests)."""
        client = self.client()
        try:
            _, folders = client.list()
            for line in folders:
                name = line.decode().rsplit(" ", 1)[-1] if isinstance(line, bytes) else ""
                status, exists = client.select(name)
                if status == "OK" and int(exists[0] or 0):
                    client.store("1:*", "+FLAGS", "(\\Deleted)")
                    client.expunge()
        finally:
            client.logout()

    def count(self, folder: str) -> int:
        client = self.client()
        try:
            status, data = client.select(f'"{folder}"', readonly=True)
            return int(data[0]) if status == "OK" else 0
        finally:
            client.logout()

    def settings(self, **overrides: object) -> dict[str, object]:
        """The ``[bounces]`` section for this server."""
        return {
            "host": "127.0.0.1",
            "port": self.port,
            "user": USER,
            "password": PASSWORD,
            "ca_file": str(self.cert),
            "interval_seconds": 1.0,
            "timeout": 10.0,
            "address": "bounces@district.org",
            **overrides,
        }
