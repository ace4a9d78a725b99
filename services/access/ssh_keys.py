"""The SSH authorized-keys list: which public key signs in as which operator.

The file uses OpenSSH ``authorized_keys`` lines, so an administrator can paste a person's
``id_ed25519.pub`` and name the operator either with an option or as the key's comment::

    operator="caaspp" ssh-ed25519 AAAAC3Nza... maria@laptop
    ssh-ed25519 AAAAC3Nza... helpdesk

The ``operator="..."`` option wins over the comment. Other OpenSSH options (``restrict``,
``from=...``) are accepted and ignored: the built-in server never offers a shell, forwarding or exec
anyway. Keys are matched on their exact public blob; only the SHA256 fingerprint is ever shown or
logged. Plain Python, so the same parser checks the file at start-up and on every connection.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import stat
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from services.core.errors import InvalidInput

KEY_TYPES = frozenset(
    {
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    }
)
USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class AuthorizedKey:
    """One line of the list: the key's wire blob and the operator it signs in as."""

    key_type: str
    blob: bytes
    operator: str
    line: int

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.blob)


def fingerprint(blob: bytes) -> str:
    """OpenSSH's ``SHA256:...`` fingerprint of a public key blob (what ``ssh-keygen -l`` prints)."""
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


class AuthorizedKeys:
    """The parsed list, looked up by public key blob."""

    def __init__(self, keys: Iterable[AuthorizedKey]) -> None:
        self.keys = tuple(keys)
        self._by_blob = {key.blob: key for key in self.keys}

    def __len__(self) -> int:
        return len(self.keys)

    def operator_for(self, blob: bytes) -> str | None:
        """The operator this public key signs in as, or None for a key not on the list."""
        key = self._by_blob.get(blob)
        return key.operator if key else None

    @property
    def operators(self) -> set[str]:
        return {key.operator for key in self.keys}


def load(path: Path) -> AuthorizedKeys:
    """Read and check the file; a bad line is refused with its number, never skipped silently.

    A file (or a folder holding it) that other accounts may write is refused, as OpenSSH's
    StrictModes does: whoever can add a line there can sign in as any operator.
    """
    try:
        with path.open("rb") as handle:
            _refuse_if_writable_by_others(path, os.fstat(handle.fileno()).st_mode, "file")
            text = handle.read().decode("utf-8")
        _refuse_if_writable_by_others(path.parent, path.parent.stat().st_mode, "folder")
    except FileNotFoundError:
        raise InvalidInput(
            f"The SSH authorized-keys file {path} does not exist; create it with one "
            'line per person: operator="USERNAME" ssh-ed25519 AAAA...'
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInput(f"Cannot read the SSH authorized-keys file {path}: {error}") from None
    return parse(text, source=str(path))


def _refuse_if_writable_by_others(path: Path, mode: int, what: str) -> None:
    # a sticky folder (like /tmp) lets others add files but not replace or edit this one
    if mode & (stat.S_IWGRP | stat.S_IWOTH) and not (what == "folder" and mode & stat.S_ISVTX):
        raise InvalidInput(
            f"The SSH authorized-keys {what} {path} can be changed by other accounts "
            f"(mode {stat.S_IMODE(mode):04o}), and whoever can add a line to it can sign in as "
            f"any operator; run `chmod go-w {path}`"
        )


def parse(text: str, source: str = "authorized keys") -> AuthorizedKeys:
    keys: list[AuthorizedKey] = []
    seen: dict[bytes, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            key = parse_line(line, number)
        except InvalidInput as error:
            raise InvalidInput(f"{source}, line {number}: {error}") from None
        if key.blob in seen:
            raise InvalidInput(
                f"{source}, line {number}: this key is already listed on line {seen[key.blob]}; "
                "one key must name one operator"
            )
        seen[key.blob] = number
        keys.append(key)
    return AuthorizedKeys(keys)


def parse_line(line: str, number: int = 0) -> AuthorizedKey:
    """One ``[options] type base64 [comment]`` line."""
    options: dict[str, str | None] = {}
    rest = line
    if line.split(None, 1)[0] not in KEY_TYPES:
        option_text, rest = _split_options(line)
        options = _parse_options(option_text)
    key = parse_public_key(rest)
    operator = options.get("operator") or (key.comment.split(None, 1)[0] if key.comment else None)
    if not operator:
        raise InvalidInput('no operator named: add operator="USERNAME" or a comment')
    if not USERNAME.match(operator):
        raise InvalidInput(f"{operator!r} is not a valid operator username")
    return AuthorizedKey(key.key_type, key.blob, operator, number)


@dataclass(frozen=True)
class PublicKey:
    """A public key as in an ``id_ed25519.pub`` file: type, wire blob, comment."""

    key_type: str
    blob: bytes
    comment: str

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.blob)

    @property
    def encoded(self) -> str:
        return base64.b64encode(self.blob).decode()


def parse_public_key(text: str) -> PublicKey:
    """A ``type base64 [comment]`` key, checked: a known type whose data says the same type."""
    parts = text.strip().split(None, 2)
    if len(parts) < 2:
        raise InvalidInput("expected a key type and a base64 key, as in an id_ed25519.pub file")
    key_type, encoded = parts[0], parts[1]
    comment = parts[2].strip() if len(parts) > 2 else ""
    if key_type not in KEY_TYPES:
        raise InvalidInput(f"unsupported key type {key_type!r} (use ssh-ed25519, RSA or ECDSA)")
    return PublicKey(key_type, _decode_blob(encoded, key_type), comment)


def _split_options(line: str) -> tuple[str, str]:
    """Options end at the first space outside double quotes."""
    quoted = False
    for index, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif char in " \t" and not quoted:
            return line[:index], line[index + 1 :].lstrip()
    if quoted:
        raise InvalidInput("an option value has no closing double quote")
    raise InvalidInput("expected a key type and a base64 key after the options")


_OPTION = re.compile(r'([A-Za-z0-9_-]+)(?:="((?:[^"\\]|\\.)*)")?(?:,|$)')


def _parse_options(text: str) -> dict[str, str | None]:
    options: dict[str, str | None] = {}
    position = 0
    while position < len(text):
        match = _OPTION.match(text, position)
        if not match or match.end() == position:
            raise InvalidInput(f"cannot read the options {text!r}")
        value = match.group(2)
        options[match.group(1).lower()] = value.replace('\\"', '"') if value is not None else None
        position = match.end()
    return options


def _decode_blob(encoded: str, key_type: str) -> bytes:
    try:
        blob = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("the key is not valid base64 (was the line cut or wrapped?)") from None
    if len(blob) < 4:
        raise InvalidInput("the key is too short")
    (length,) = struct.unpack(">I", blob[:4])
    if blob[4 : 4 + length].decode("ascii", "replace") != key_type:
        raise InvalidInput(f"the key data does not match its type {key_type}")
    return blob
