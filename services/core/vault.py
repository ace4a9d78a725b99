"""Seals the secrets the console must use again later: PDF passwords and the TOMS credential.

A PDF password must survive a worker restart (the document may already be out), and the TOMS secret
key is used by the console itself (API intake, test connections), so neither can be kept as a hash;
both are stored only as Fernet tokens (AES-128-CBC + HMAC-SHA256, from ``cryptography``). A PDF
password is erased once its message is accepted; the TOMS secret stays sealed while it is live. The
key comes from ``[delivery] vault_key`` in the settings (``vault_key_env`` names an environment
variable holding it) or from ``delivery-vault.key`` in the data directory, created with mode 0600;
a key file that others can read is refused rather than trusted.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from services.core.errors import ConsoleError, InvalidInput
from services.core.settings import Settings

KEY_FILE = "delivery-vault.key"


class Vault:
    """Seal and open secrets with one key."""

    def __init__(self, key: bytes) -> None:
        try:
            self._fernet = Fernet(key)
        except ValueError:
            raise InvalidInput("The delivery vault key is not a valid Fernet key") from None

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode("ascii")

    def open(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode()
        except InvalidToken:
            raise ConsoleError(
                "A sealed secret cannot be opened with this vault key (was the key replaced?)"
            ) from None


def key_path(settings: Settings) -> Path:
    return settings.data_dir / KEY_FILE


def load(settings: Settings) -> Vault:
    """The vault for these settings, creating the key file on first use."""
    if key := settings.delivery.vault_key:  # [delivery] vault_key_file / vault_key_env
        return Vault(key.encode())
    path = key_path(settings)
    if not path.exists():
        _create_key(path)
    return _read(path)


def _create_key(path: Path) -> None:
    """Write a new key where no process can read it half-written: into a private temporary file
    first, then published under its name by a hard link, which fails if another process published
    one first (then theirs is the key, and ours is dropped)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".vault-key-")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(Fernet.generate_key())
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # another worker published one first
            os.link(temporary, path)
    finally:
        os.unlink(temporary)


def _read(path: Path) -> Vault:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise InvalidInput(
            f"The delivery vault key {path} is readable by others (mode {mode:o}); "
            f"run `chmod 600 {path}`"
        )
    return Vault(path.read_bytes().strip())
