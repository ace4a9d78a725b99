"""Packaging: a family's SSRs in one PDF, encrypted with AES-256 (R=6), verified by reopening it.

The user password is a passphrase of common English words a parent can type on
any keyboard: six words from a 2048-word list, at most 32 characters in all, because Poppler-based
readers (Evince, Okular, many phone viewers) silently cut longer passwords even for AES-256. Drawing
uniformly among the six-word phrases that fit leaves 61.8 bits (``passphrase_bits``). Each package
gets its own random owner password, which is never stored. A package is written to a temporary name and
renamed only after ``verify`` reopened it with the user password, so nothing unverified can be attached;
its SHA-256 (``PackagedFile.sha256``, the very bytes verified) is what the worker checks the file
against before attaching it, so a file replaced or altered since is never sent.

``package`` is a plain function of paths and strings so a process pool can run it on every core;
``die_with_worker`` is that pool's initializer.
"""

from __future__ import annotations

import ctypes
import hashlib
import io
import math
import os
import secrets
import signal
import sys
import warnings
from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pikepdf
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from services.core import private_files
from services.core.errors import ConsoleError

WORDS_FILE = Path(__file__).with_name("passphrase_words.txt")
PASSPHRASE_WORDS = 6
MAX_PASSWORD_LENGTH = 32


class PackagingError(ConsoleError):
    """An SSR could not be encrypted or did not verify; the item fails with this message."""


@cache
def word_list() -> tuple[str, ...]:
    words = tuple(
        line.strip()
        for line in WORDS_FILE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    )
    if len(set(words)) < 2048:
        raise PackagingError(f"The passphrase word list {WORDS_FILE} has fewer than 2048 words")
    return words


def passphrase(words: int = PASSPHRASE_WORDS) -> str:
    """A random passphrase like ``maple-river-...`` of at most 32 characters (system randomness).

    Rejection sampling keeps every fitting phrase equally likely; about one draw in twenty fits.
    Each draw is one uniform number below ``len(vocabulary) ** words`` read as that many word
    indices: one call for system randomness per draw instead of one per word.
    """
    vocabulary = word_list()
    while True:
        draw = secrets.randbelow(len(vocabulary) ** words)
        chosen = []
        for _ in range(words):
            draw, index = divmod(draw, len(vocabulary))
            chosen.append(vocabulary[index])
        phrase = "-".join(chosen)
        if len(phrase) <= MAX_PASSWORD_LENGTH:
            return phrase


@cache
def passphrase_bits(words: int = PASSPHRASE_WORDS) -> float:
    """The entropy of ``passphrase``: log2 of how many phrases fit in 32 characters."""
    lengths = Counter(len(word) for word in word_list())
    letters = MAX_PASSWORD_LENGTH - (words - 1)
    ways = {0: 1}  # total letters so far -> number of word sequences
    for _ in range(words):
        step: dict[int, int] = {}
        for total, count in ways.items():
            for length, options in lengths.items():
                if total + length <= letters:
                    step[total + length] = step.get(total + length, 0) + count * options
        ways = step
    return math.log2(sum(ways.values()))


def owner_password() -> str:
    """128 random bits; short, because R=6 hashes the password with every key check."""
    return secrets.token_urlsafe(16)


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_worker(worker_pid: int) -> None:
    """Initializer of the worker's encryption processes: none outlives its worker, so a killed
    worker leaves nothing behind that could still write a package.

    They are the worker's own children (a "spawn" pool), and the kernel kills each the moment the
    worker dies (``PR_SET_PDEATHSIG``), even in the middle of encrypting; one whose worker died
    before the ``prctl`` took effect has been handed to another parent already and exits at once.
    """
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != worker_pid:
        os._exit(1)


@dataclass(frozen=True)
class PackagedFile:
    sources: tuple[str, ...]
    output: str
    pages: int
    size_bytes: int
    sha256: str  # of the bytes ``verify`` read: the file as it may be sent


def attachment_name(programs: Sequence[str], years: Sequence[int]) -> str:
    """The file name a family sees, e.g. ``Score_Reports_CAASPP_ELPAC_2026.pdf``.

    Relays and mailboxes log attachment names in clear, outside the encryption, so the name says
    which programs and years the reports are for, never the student's SSID or name.
    """
    parts = ["Score_Reports", *sorted(set(programs)), *(str(y) for y in sorted(set(years)))]
    return "_".join(parts) + ".pdf"


def package(sources: Sequence[Path | str], output: Path, user_password: str) -> PackagedFile:
    """A family's SSRs merged into one PDF, encrypted (AES-256, R=6) and verified, all or nothing.

    One file per family means one password prompt for the parent and one (deliberately slow) R=6
    key derivation per family instead of one per SSR. Streams are copied as the SSRs hold them
    (``compress_streams=False``: qpdf would otherwise decode and deflate again each content
    stream, a sixth of the cost, for a few bytes). The output takes its final name only after
    ``verify``; on any failure nothing is left behind. The file is read once: ``verify`` reads
    those bytes and the digest returned is of those bytes.
    """
    if not user_password:
        raise PackagingError("An SSR package needs a non-empty password")
    if not sources:
        raise PackagingError("An SSR package needs at least one SSR")
    temp = output.with_name(output.name + ".part")
    current = Path(sources[0])
    try:
        with ExitStack() as stack:
            merged = stack.enter_context(pikepdf.open(current))
            contents = [page_content(page) for page in merged.pages]
            for source in sources[1:]:
                current = Path(source)
                pages = stack.enter_context(pikepdf.open(current)).pages
                contents += [page_content(page) for page in pages]
                merged.pages.extend(pages)
            current = output
            merged.save(
                stack.enter_context(open(temp, "wb", opener=private_files.opener)),
                compress_streams=False,
                encryption=pikepdf.Encryption(
                    user=user_password, owner=owner_password(), R=6, aes=True
                ),
            )
        data = temp.read_bytes()
        pages_written = verify_bytes(output.name, data, user_password, contents)
    except (pikepdf.PdfError, OSError) as error:
        temp.unlink(missing_ok=True)
        raise PackagingError(f"{current.name} could not be packaged: {error}") from None
    except PackagingError:
        temp.unlink(missing_ok=True)
        raise
    os.replace(temp, output)
    return PackagedFile(
        tuple(str(s) for s in sources),
        str(output),
        pages_written,
        len(data),
        hashlib.sha256(data).hexdigest(),
    )


def page_content(page: pikepdf.Page) -> bytes:
    """What a page draws (its content streams, decoded): the SSID text and everything else on it."""
    contents = page.obj.get(pikepdf.Name.Contents)
    if contents is None:
        return b""
    if isinstance(contents, pikepdf.Array):
        return b"\n".join(stream.read_bytes() for stream in contents)
    return contents.read_bytes()


def verify(path: Path, user_password: str, contents: Sequence[bytes]) -> int:
    """``verify_bytes`` of the file at ``path``."""
    return verify_bytes(path.name, path.read_bytes(), user_password, contents)


def verify_bytes(file_name: str, data: bytes, user_password: str, contents: Sequence[bytes]) -> int:
    """Reopen an encrypted PDF (the bytes ``data`` of ``file_name``) with its password: the AES-256
    security handler (V=5, R=6, AESV3) must accept the password and yield the key the file was
    written with, and every page must decrypt to exactly what the SSRs drew (``contents``, one
    entry per page, in order).

    The password is checked by this module's own R=6 key derivation (``_hash_r6`` over OpenSSL),
    independent of the qpdf code that wrote the file: U must validate the password, the key
    unwrapped from UE must decrypt Perms to its "adb" marker and permissions, and only that key
    is handed to qpdf to read the pages. A wrong derivation on either side fails here instead of
    at the parent's reader. Returns the page count.
    """
    with warnings.catch_warnings():  # an unencrypted file would warn, then fail below
        warnings.simplefilter("ignore", UserWarning)
        # A placeholder key: qpdf checks no password, and the /Encrypt dictionary is plain text.
        pdf = pikepdf.open(io.BytesIO(data), password=bytes(32).hex(), hex_password=True)
    with pdf:
        handler = pdf.trailer.get(pikepdf.Name.Encrypt)
        if not isinstance(handler, pikepdf.Dictionary):
            raise PackagingError(f"{file_name} opens without a password")
        key = _file_key(file_name, handler, user_password)
    with pikepdf.open(io.BytesIO(data), password=key.hex(), hex_password=True) as pdf:
        if len(pdf.pages) != len(contents) or not contents:
            raise PackagingError(
                f"{file_name} has {len(pdf.pages)} pages instead of the SSRs' {len(contents)}"
            )
        for number, (page, expected) in enumerate(zip(pdf.pages, contents, strict=True), 1):
            if page_content(page) != expected:
                raise PackagingError(f"{file_name} page {number} does not read back as written")
        return len(contents)


def _file_key(file_name: str, handler: pikepdf.Dictionary, user_password: str) -> bytes:
    """The file key that ``user_password`` unlocks (ISO 32000-2, Algorithms 2.A and 13)."""
    filters = handler.get(pikepdf.Name.CF)
    standard = filters.get(pikepdf.Name.StdCF) if isinstance(filters, pikepdf.Dictionary) else None
    method = standard.get(pikepdf.Name.CFM) if isinstance(standard, pikepdf.Dictionary) else None
    revision = int(handler.get(pikepdf.Name.R, 0))
    if (
        handler.get(pikepdf.Name.Filter) != pikepdf.Name.Standard
        or int(handler.get(pikepdf.Name.V, 0)) != 5
        or revision != 6
        or method != pikepdf.Name.AESV3
        or handler.get(pikepdf.Name.StmF) != pikepdf.Name.StdCF
        or handler.get(pikepdf.Name.StrF) != pikepdf.Name.StdCF
    ):
        raise PackagingError(f"{file_name} is not AES-256 encrypted (revision {revision})")
    user, wrapped, sealed = (_string(handler, name, size) for name, size in _KEY_STRINGS)
    password = user_password.encode("utf-8")[:127]
    if _hash_r6(password, user[32:40]) != user[:32]:
        raise PackagingError(f"{file_name} does not open with its password")
    unwrap = Cipher(algorithms.AES(_hash_r6(password, user[40:48])), modes.CBC(bytes(16)))
    key = unwrap.decryptor().update(wrapped)
    # Perms is one AES-256 block; CBC with a zero IV decrypts it exactly as the ECB the standard names.
    perms = Cipher(algorithms.AES(key), modes.CBC(bytes(16))).decryptor().update(sealed)
    if perms[9:12] != b"adb" or int.from_bytes(perms[:4], "little", signed=True) != int(handler.P):
        raise PackagingError(f"{file_name}: the password does not yield the file's key")
    return key


_KEY_STRINGS = ((pikepdf.Name.U, 48), (pikepdf.Name.UE, 32), (pikepdf.Name.Perms, 16))


def _string(handler: pikepdf.Dictionary, name: pikepdf.Name, size: int) -> bytes:
    """The first ``size`` bytes of an /Encrypt string; a missing or short one is refused."""
    value = handler.get(name)
    data = bytes(value)[:size] if isinstance(value, pikepdf.String) else b""
    if len(data) != size:
        raise PackagingError(f"the /Encrypt {name} entry is missing or too short")
    return data


_R6_DIGESTS = (hashlib.sha256, hashlib.sha384, hashlib.sha512)


def _hash_r6(password: bytes, salt: bytes) -> bytes:
    """ISO 32000-2 Algorithm 2.B for a user password: at least 64 rounds of AES-128 and SHA-2.

    OpenSSL (hashlib, cryptography) does each round in microseconds with AES-NI and SHA
    extensions, two to three times faster than the portable code bundled in pikepdf and PDFium.
    """
    digest = hashlib.sha256(password + salt).digest()
    rounds = 0
    while True:
        block = (password + digest) * 64
        cipher = Cipher(algorithms.AES(digest[:16]), modes.CBC(digest[16:32])).encryptor()
        encrypted = cipher.update(block)
        digest = _R6_DIGESTS[sum(encrypted[:16]) % 3](encrypted).digest()
        rounds += 1
        if rounds >= 64 and encrypted[-1] <= rounds - 32:
            return digest[:32]
