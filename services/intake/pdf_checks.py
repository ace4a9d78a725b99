"""The checks every SSR PDF passes before it is stored, as pure functions a worker process can run.

A PDF must open with pikepdf without recovery (a truncated or damaged file fails here rather than
being silently repaired), must not be encrypted, must have pages (but not more than a report or
a merged file can hold), must carry no active content, no page may decode to more than
``MAX_PAGE_DECODED``, and a single SSR must carry the expected SSID on page 1. ``check_single``
takes and returns plain values so intake can run it in a process pool: parsing is the costly part
of an import and parallelises across cores.

Active content is refused because an SSR is a printed page and nothing more, and the console
mails it inside an encrypted package no mail gateway can scan: JavaScript, launch and form-submit
actions, embedded files, XFA forms and multimedia have no place in it. What a page decodes is
measured before PDFium reads its text, in bounded chunks, because a 1 MB file can inflate to
gigabytes (PDFium took 2.1 GB of memory on such a file).
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import re
import resource
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, BinaryIO, cast

import pikepdf

from services.intake.records import Reason
from services.intake.ssid_extract import UnreadablePdf, page_ssids

MiB = 1024 * 1024
MAX_PAGE_DECODED = 64 * MiB
"""What reading one page's text may decode; an SSR page's streams (text, fonts, a logo) add up to
well under 1 MiB."""
MAX_SINGLE_PAGES = 50
"""Pages of one student's SSR; TOMS SSRs have two to four."""
MAX_MERGED_PAGES = 200_000
"""Pages of a merged per-grade file, far above the largest grade of the largest LEA."""

MAX_CHECK_MEMORY = 1024 * MiB
"""Address space of a process that checks PDFs (one holds about 100 MiB): should a PDF get past
the limits above, the check fails with MemoryError instead of taking the server's memory."""

RISKY_ACTIONS = frozenset(
    "/" + name
    for name in (
        "JavaScript",
        "Launch",
        "SubmitForm",
        "ImportData",
        "GoToR",
        "GoToE",
        "RichMediaExecute",
        "Rendition",
        "Movie",
        "Sound",
    )
)
"""Action types (ISO 32000-1 section 12.6.4) that run code, open other files or send data."""
RISKY_ANNOTATIONS = frozenset(
    f"/{name}" for name in ("FileAttachment", "RichMedia", "Screen", "Movie", "Sound", "3D")
)
RISKY_KEYS = {
    "/JS": "JavaScript",
    "/JavaScript": "a JavaScript name tree",
    "/AA": "additional actions (AA)",
    "/EmbeddedFiles": "embedded files",
    "/EF": "an embedded file",
    "/XFA": "an XFA form",
    "/RichMediaContent": "rich media",
}
RISKY_NAME = re.compile(
    rb"/(?:"
    + b"|".join(
        re.escape(name[1:].encode())
        for name in (*RISKY_ACTIONS, *RISKY_ANNOTATIONS, *RISKY_KEYS, "/EmbeddedFile", "/URI")
    )
    + rb")(?![^\s/<>\[\]()%{}])"
)
"""Any of the names above in an object as qpdf writes it (names unescaped); it can also match
inside a string, so a match is confirmed by reading the object."""
SAFE_URI = re.compile(r"(?i)^(https?|mailto):")
"""Plain web and mail links are what printed reports carry; ``file:``, ``javascript:`` and the
like are refused."""

MAX_RATIO = {
    "/FlateDecode": 1032,  # zlib's documented maximum compression factor (zlib.net technical FAQ)
    "/LZWDecode": 3641,  # a code of at least 9 bits yields at most 4096 bytes
    "/RunLengthDecode": 64,  # two bytes yield at most 128
    "/ASCII85Decode": 4,  # "z" yields four bytes
    "/ASCIIHexDecode": 1,
}
"""How much each filter can multiply a stream's size, so most streams need no measuring. Image
codecs (DCT, JPX, JBIG2, CCITT) are not listed: reading text never decodes an image."""
CHUNK = 1 << 16


@dataclass(frozen=True)
class Verdict:
    """None as ``reason`` means the PDF passed; ``ssid`` is the SSID found, when one was read."""

    reason: Reason | None
    detail: str = ""
    ssid: str | None = None


PASSED = Verdict(None)


def open_checked(
    stream: IO[bytes], max_pages: int = MAX_MERGED_PAGES
) -> tuple[pikepdf.Pdf | None, Verdict]:
    """The opened PDF, or None with the reason it cannot be used."""
    try:
        pdf = pikepdf.open(cast(BinaryIO, stream), attempt_recovery=False)
    except pikepdf.PasswordError:
        return None, Verdict(Reason.ENCRYPTED_PDF, "the PDF needs a password to open")
    except (pikepdf.PdfError, ValueError, OSError) as error:
        return None, Verdict(Reason.CORRUPT_PDF, _first_line(error))
    try:
        verdict = _content_verdict(pdf, max_pages)
    except (pikepdf.PdfError, ValueError, OSError) as error:
        verdict = Verdict(Reason.CORRUPT_PDF, _first_line(error))
    if verdict.reason is not None:
        pdf.close()
        return None, verdict
    return pdf, PASSED


def _content_verdict(pdf: pikepdf.Pdf, max_pages: int) -> Verdict:
    if pdf.is_encrypted:
        return Verdict(Reason.ENCRYPTED_PDF, "the PDF is already encrypted")
    pages = len(pdf.pages)
    if pages == 0:
        return Verdict(Reason.CORRUPT_PDF, "the PDF has no pages")
    if pages > max_pages:
        return Verdict(Reason.PDF_TOO_LARGE, f"{pages} pages; the limit is {max_pages}")
    if found := active_content(pdf):
        return Verdict(Reason.ACTIVE_CONTENT, f"the PDF holds {found}")
    if oversized := oversized_page(pdf, MAX_PAGE_DECODED):
        return Verdict(Reason.PDF_TOO_LARGE, oversized)
    return PASSED


def limit_memory(limit: int = MAX_CHECK_MEMORY) -> None:
    """Cap this process's address space; the initializer of intake's PDF-checking processes."""
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    unlimited = hard == resource.RLIM_INFINITY
    resource.setrlimit(resource.RLIMIT_AS, (limit if unlimited else min(limit, hard), hard))


def check_single(data: bytes, expected_ssid: str) -> Verdict:
    """Whether ``data`` is a usable SSR of the student ``expected_ssid``."""
    pdf, verdict = open_checked(io.BytesIO(data), MAX_SINGLE_PAGES)
    if pdf is None:
        return verdict
    pdf.close()
    try:
        found = page_ssids(data, first_only=True)[0]
    except (UnreadablePdf, IndexError) as error:
        return Verdict(Reason.CORRUPT_PDF, f"text cannot be read: {error}")
    if found is None:
        return Verdict(Reason.NO_SSID, "no 'SSID: ' followed by ten digits on page 1")
    if found != expected_ssid:
        return Verdict(
            Reason.SSID_MISMATCH, f"file name has {expected_ssid}, PDF has {found}", found
        )
    return Verdict(None, ssid=found)


def active_content(pdf: pikepdf.Pdf) -> str | None:
    """What active content the PDF holds, in words, or None. Every object is read, referenced or
    not, so an action cannot hide in an annotation, a name tree or a form field's widget."""
    for obj in pdf.objects:
        text = (obj.stream_dict if isinstance(obj, pikepdf.Stream) else obj).unparse(resolved=True)
        if not RISKY_NAME.search(text):  # a cheap look first: walking objects costs ten times more
            continue
        for item in _direct_parts(obj):
            if found := _risky(item):
                return found
    return None


def _direct_parts(obj: pikepdf.Object) -> Iterator[pikepdf.Dictionary]:
    """``obj`` and the dictionaries nested in it directly (indirect ones are visited on their
    own by ``active_content``)."""
    todo = [obj]
    while todo:
        item = todo.pop()
        if isinstance(item, pikepdf.Stream):
            item = item.stream_dict
        if isinstance(item, pikepdf.Dictionary):
            yield item
            children: Iterable[pikepdf.Object] = item.values()
        elif isinstance(item, pikepdf.Array):
            children = item
        else:
            continue
        todo.extend(
            c
            for c in children
            if isinstance(c, pikepdf.Dictionary | pikepdf.Array | pikepdf.Stream)
            and not c.is_indirect
        )


def _risky(item: pikepdf.Dictionary) -> str | None:
    for key, words in RISKY_KEYS.items():
        if key in item:
            return words
    kind = item.get("/S")
    if isinstance(kind, pikepdf.Name) and str(kind) in RISKY_ACTIONS:
        return f"a {str(kind)[1:]} action"
    if kind == pikepdf.Name.URI and not SAFE_URI.match(str(item.get("/URI", ""))):
        return "a link that is not a web or mail address"
    subtype = item.get("/Subtype")
    if isinstance(subtype, pikepdf.Name) and str(subtype) in RISKY_ANNOTATIONS:
        return f"a {str(subtype)[1:]} annotation"
    if item.get("/Type") == pikepdf.Name.EmbeddedFile:
        return "an embedded file"
    return None


def oversized_page(pdf: pikepdf.Pdf, limit: int) -> str | None:
    """Why reading a page's text would decode more than ``limit`` bytes, or None.

    What PDFium decodes for a page is its content streams and the streams its resources reach
    (fonts, form XObjects, nested). Each stream counts once per page, at the worst its filters
    allow; only a stream whose worst case matters is decoded, in chunks, stopping past the limit.
    """
    sizes: dict[tuple[int, int], int] = {}
    for number, page in enumerate(pdf.pages, start=1):
        total = 0
        for stream in _page_streams(page.obj):
            key = stream.objgen
            if key not in sizes or key == (0, 0):
                sizes[key] = _stream_size(stream, limit)
            total += sizes[key]
            if total > limit:
                return f"page {number} decodes to more than {limit} bytes (the limit)"
    return None


def _page_streams(page: pikepdf.Dictionary) -> Iterator[pikepdf.Stream]:
    """The streams a page's contents and resources reach, each once."""
    seen: set[tuple[int, int]] = set()
    todo = [page.get("/Contents"), page.get("/Resources")]
    while todo:
        item = todo.pop()
        if not isinstance(item, pikepdf.Dictionary | pikepdf.Array | pikepdf.Stream):
            continue
        if item.is_indirect:
            if item.objgen in seen:
                continue
            seen.add(item.objgen)
        if isinstance(item, pikepdf.Stream):
            yield item
            todo.append(item.get("/Resources"))
            todo.extend(item.get(key) for key in ("/FontFile", "/FontFile2", "/FontFile3"))
        elif isinstance(item, pikepdf.Dictionary):
            todo.extend(value for key, value in item.items() if key not in ("/Parent", "/P"))
        elif isinstance(item, pikepdf.Array):
            todo.extend(item)


def _stream_size(stream: pikepdf.Stream, limit: int) -> int:
    """The stream's decoded size when it may matter, else its filters' worst case; past
    ``limit`` when it cannot be bounded."""
    filters = stream.get("/Filter")
    names = [str(f) for f in (filters if isinstance(filters, pikepdf.Array) else [filters])]
    names = [n for n in names if n != "None"]
    raw = stream.read_raw_bytes()
    worst = len(raw) * math.prod(MAX_RATIO.get(n, 1) for n in names)
    if worst <= MiB:
        return worst
    if any(n not in _DECODERS for n in names):
        return limit + 1
    return decoded_size(raw, names, limit)


def decoded_size(raw: bytes, filters: list[str], limit: int) -> int:
    """The decoded size of ``raw`` through ``filters``, counted up to just past ``limit``; a
    damaged stream counts what decodes before the damage."""
    chunks: Iterator[bytes] = (raw[i : i + CHUNK] for i in range(0, len(raw), CHUNK))
    for name in filters:
        chunks = _DECODERS[name](chunks)
    total = 0
    try:
        for chunk in chunks:
            total += len(chunk)
            if total > limit:
                break
    except (zlib.error, ValueError, binascii.Error):
        pass
    return total


def _inflate(chunks: Iterator[bytes]) -> Iterator[bytes]:
    inflater = zlib.decompressobj()
    for chunk in chunks:
        while chunk and not inflater.eof:
            yield inflater.decompress(chunk, CHUNK)
            chunk = inflater.unconsumed_tail
    if not inflater.eof:
        yield inflater.flush()


def _ascii85(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """ASCII85 in whole groups: a ``z`` stands for a group of its own, five characters for any
    other."""
    rest = b""
    for chunk in chunks:
        text = rest + re.sub(rb"\s+", b"", chunk)
        end = text.find(b"~>")
        if end >= 0:
            yield base64.a85decode(text[:end])
            return
        tail = text.rsplit(b"z", 1)[-1]
        cut = len(text) - len(tail) % 5
        rest = text[cut:]
        yield base64.a85decode(text[:cut])
    yield base64.a85decode(rest)


def _ascii_hex(chunks: Iterator[bytes]) -> Iterator[bytes]:
    rest = b""
    for chunk in chunks:
        text = rest + re.sub(rb"\s+", b"", chunk)
        end = text.find(b">")
        if end >= 0:
            yield binascii.unhexlify(text[:end] + b"0" * (end % 2))
            return
        cut = len(text) - len(text) % 2
        rest = text[cut:]
        yield binascii.unhexlify(text[:cut])
    yield binascii.unhexlify(rest + b"0" * (len(rest) % 2))


_DECODERS = {"/FlateDecode": _inflate, "/ASCII85Decode": _ascii85, "/ASCIIHexDecode": _ascii_hex}


def _first_line(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return re.sub(r"<_io\.\w+ object at 0x[0-9a-f]+>", "stream", text)[:300]
