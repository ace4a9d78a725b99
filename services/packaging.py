"""Packaging: a family's SSRs in one PDF, encrypted with AES-256 (R=6), verified by reopening it.

The user password is a passphrase of common English words a parent can type on
any keyboard: six words from a 2048-word list, at most 32 characters in all, because Poppler-based
readers (Evince, Okular, many phone viewers) silently cut longer passwords even for AES-256. Drawing
uniformly among the six-word phrases that fit leaves 61.8 bits (``passphrase_bits``). Each package
gets its own random owner password, which is never stored. A package is written to a temporary name and
renamed only after PDFium (a second, independent PDF implementation) opened it with the user
password, so nothing unverified can be attached.

``package`` is a plain function of paths and strings so a process pool can run it on every core.
"""

from __future__ import annotations

import math
import os
import secrets
from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pikepdf
import pypdfium2 as pdfium

from services.errors import ConsoleError

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
    """
    vocabulary = word_list()
    while True:
        phrase = "-".join(secrets.choice(vocabulary) for _ in range(words))
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


@dataclass(frozen=True)
class PackagedFile:
    sources: tuple[str, ...]
    output: str
    pages: int
    size_bytes: int


def package(sources: Sequence[Path | str], output: Path, user_password: str) -> PackagedFile:
    """A family's SSRs merged into one PDF, encrypted (AES-256, R=6) and verified, all or nothing.

    One file per family means one password prompt for the parent and one (deliberately slow) R=6
    key derivation per family instead of one per SSR. The output takes its final name only after
    ``verify``; on any failure nothing is left behind.
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
            for source in sources[1:]:
                current = Path(source)
                merged.pages.extend(stack.enter_context(pikepdf.open(current)).pages)
            current = output
            merged.save(
                temp,
                encryption=pikepdf.Encryption(
                    user=user_password, owner=owner_password(), R=6, aes=True
                ),
            )
        pages = verify(temp, user_password)
    except (pikepdf.PdfError, OSError) as error:
        temp.unlink(missing_ok=True)
        raise PackagingError(f"{current.name} could not be packaged: {error}") from None
    except PackagingError:
        temp.unlink(missing_ok=True)
        raise
    os.replace(temp, output)
    return PackagedFile(tuple(str(s) for s in sources), str(output), pages, output.stat().st_size)


def verify(path: Path, user_password: str) -> int:
    """Reopen an encrypted PDF with its password in PDFium, an implementation independent of the
    qpdf that wrote it: it must open, use the AES-256 security handler (R=6) and have pages.

    An unencrypted file reports revision -1 and is refused. Each R=6 password check is deliberately
    slow (Algorithm 2.B), so one reopen is the whole check; ``package`` never writes an empty
    user password, and the tests show with qpdf and pdftotext that the files refuse to open without it.
    """
    try:
        document = pdfium.PdfDocument(str(path), password=user_password)
    except pdfium.PdfiumError as error:
        raise PackagingError(f"{path.name} does not open with its password ({error})") from None
    try:
        revision = pdfium.raw.FPDF_GetSecurityHandlerRevision(document.raw)
        pages = len(document)
    finally:
        document.close()
    if revision < 0:
        raise PackagingError(f"{path.name} opens without a password")
    if revision < 6:
        raise PackagingError(f"{path.name} is not AES-256 encrypted (revision {revision})")
    if pages == 0:
        raise PackagingError(f"{path.name} has no pages")
    return pages
