"""A client for a TOMS-style SSR API: token, per-SSID report lists, PDF downloads.

The LEA credential (username and 20-character secret) is handed in by the caller for one session
and kept only in this object: never stored, logged or put in an error message. Requests share a
concurrency limit; 429 (honouring Retry-After), 5xx and dropped connections are retried with
exponential backoff and jitter; a download that ends short is retried whole. An expired token
(401) is renewed once per request. Every request has an overall deadline besides httpx's
per-read timeout: a server that trickles a byte every few seconds never trips a read timeout,
but is cut off at the deadline, and nothing of that answer is kept.

The bearer token goes to the API's own origin (scheme, host, port) only. A report link, or a
redirect, to another host is refused unless that host is in ``download_hosts`` (storage that
serves pre-signed links), and then it is fetched without credentials. Plain ``http://`` is refused
except on loopback, where a test or a local proxy runs. An answer is read up to a size bound and
checked field by field, so a hostile one (nested past the parser's depth, a lone surrogate, a
thousand entries) refuses that student's reports and no more.
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import json
import logging
import random
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import httpx

from services.core.errors import ConsoleError
from services.core.programs import Program, test_code
from services.core.toms import DEADLINE_SECONDS, REPORTS_PATH, TOKEN_PATH
from services.core.validation import language as canonical_language
from services.core.working_days import receipt_moment

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
MAX_LIST_BYTES = 1024 * 1024
MAX_LISTED = 100
"""Reports one SSID's list may hold: TOMS keeps three years of SSRs (DESIGN.md), a handful a year."""
_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
"""RFC 6750 section 2.1 b64token: anything else cannot go in an Authorization header."""
_DEFAULT_PORTS = {"http": 80, "https": 443}
_YEAR = re.compile(r"\d{4}")
"""As in the intake file-name pattern; a number past a database integer fails the insert."""


class TomsApiError(ConsoleError):
    """The API refused or kept failing; the message never contains the credential."""


class BadListing(TomsApiError):
    """A report list this client will not use: too large, too deep, or fields it cannot read."""


class ForeignLink(TomsApiError):
    """A report link or redirect to a host the token may not go to and that is not allowed."""


@dataclass(frozen=True)
class ListedReport:
    """One entry of an SSID's report list."""

    program: Program
    test: str
    admin_year: int
    language: str
    pdf_url: str
    available_at: datetime | None = None
    """When this version of the report became available to the LEA (``available_at``, an ISO 8601
    date or date and time): the receipt the deadlines count from, and how a re-issued (corrected)
    SSR is told from the one already stored without downloading it again."""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    backoff: float = 0.5  # seconds before the 2nd attempt, doubling after
    max_delay: float = 30.0


class TomsClient:
    """Use as ``async with TomsClient(url, username, secret) as client:``.

    ``download_hosts`` names the hosts (exact names, any port) that report links may lead to
    besides the API itself; they are fetched over https without credentials.
    """

    def __init__(
        self,
        base_url: str,
        username: str,
        secret: str,
        *,
        concurrency: int = 4,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        deadline: float = DEADLINE_SECONDS,
        max_pdf_bytes: int = 20 * 1024 * 1024,
        download_hosts: Iterable[str] = (),
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._origin = _origin(_parsed(self._base_url, what="the API URL"))
        self._download_hosts = frozenset(host.strip().lower() for host in download_hosts)
        self._credential = (username, secret)
        self._retry = retry or RetryPolicy()
        self._timeout = timeout
        self._deadline = deadline  # seconds for one whole request, body and all
        self._max_pdf_bytes = max_pdf_bytes
        self._slots = asyncio.Semaphore(concurrency)
        self._concurrency = concurrency
        self._token: str | None = None
        self._token_lock = asyncio.Lock()
        self._http: httpx.AsyncClient | None = None
        self.retries = 0  # how many requests were repeated (shown in progress and tests)

    def __repr__(self) -> str:
        return f"TomsClient({self._base_url!r})"

    async def __aenter__(self) -> TomsClient:
        self._http = httpx.AsyncClient(
            timeout=self._timeout,
            limits=httpx.Limits(max_connections=self._concurrency),
            follow_redirects=False,  # download() follows them itself, checking each hop
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._http is not None:
            await self._http.aclose()

    async def reports(self, ssid: str) -> list[ListedReport]:
        """The SSRs the API holds for one student (an unknown SSID has none)."""
        url = self._resolve(REPORTS_PATH.format(ssid=ssid))
        try:
            status, _, body = await self._get(url, limit=MAX_LIST_BYTES)
        except _Unreadable as error:
            raise BadListing(f"The report list for SSID {ssid} is refused: {error}") from None
        if status == 404:
            return []
        if status != 200:
            raise TomsApiError(f"The report list for SSID {ssid} answered HTTP {status}")
        try:
            answer = json.loads(body)
            items = answer.get("reports", answer) if isinstance(answer, dict) else answer
            if not isinstance(items, list):
                raise TypeError("it is not a list of reports")
            if len(items) > MAX_LISTED:
                raise ValueError(f"it holds {len(items)} reports, more than {MAX_LISTED}")
            return [_listed(item) for item in items]
        except RecursionError:
            raise BadListing(f"The report list for SSID {ssid} is nested too deep") from None
        except (ValueError, KeyError, TypeError) as error:
            raise BadListing(
                f"The report list for SSID {ssid} is not understood: {error}"
            ) from None

    async def download(self, link: str) -> bytes:
        """A PDF's bytes, read in full (a connection dropped mid-way is retried). Redirects are
        followed here, each hop checked like a link, so the token never follows one off the API."""
        url = self._resolve(link)
        for _ in range(MAX_REDIRECTS + 1):
            if self._sends_token(url):
                status, headers, body = await self._get(url, limit=self._max_pdf_bytes)
            else:
                status, headers, body = await self._send("GET", url, limit=self._max_pdf_bytes)
            location = headers.get("location")
            if status not in REDIRECT_STATUSES or not location:
                if status != 200:
                    raise TomsApiError(f"Download of {shown(url)} answered HTTP {status}")
                return body
            url = _parsed(location, url)
        raise TomsApiError(f"Download of {shown(link)} redirected more than {MAX_REDIRECTS} times")

    def _resolve(self, link: str) -> httpx.URL:
        """An absolute URL: a path goes under the API's base URL (as httpx would put it), a link
        with a host stands as given."""
        url = _parsed(link)
        if url.is_relative_url:
            url = _parsed(f"{self._base_url}/{link.lstrip('/')}")
        return url

    def _sends_token(self, url: httpx.URL) -> bool:
        """True on the API's own origin; False on an allowed download host; refuses the rest."""
        origin = _origin(url)
        if origin == self._origin:
            return True
        if origin[1] in self._download_hosts:
            return False
        raise ForeignLink(
            f"{shown(url)} is outside the API's origin (scheme, host and port), and {origin[1]} "
            "is not an allowed download host ([toms] download_hosts)"
        )

    async def _authorisation(self, renew: bool = False) -> dict[str, str]:
        async with self._token_lock:
            if self._token is None or renew:
                self._token = await self._fetch_token()
        return {"Authorization": f"Bearer {self._token}"}

    async def _fetch_token(self) -> str:
        status, _, body = await self._send(
            "POST", self._resolve(TOKEN_PATH), limit=64 * 1024, auth=self._credential,
            data={"grant_type": "client_credentials"},
        )  # fmt: skip
        if status in (400, 401, 403):
            raise TomsApiError("TOMS refused the LEA credential; check the username and secret")
        if status != 200:
            raise TomsApiError(f"The token request answered HTTP {status}")
        try:
            token = json.loads(body)["access_token"]
        except (ValueError, KeyError, TypeError, RecursionError):
            raise TomsApiError("The token answer has no access_token") from None
        if not isinstance(token, str) or not _TOKEN.fullmatch(token):
            raise TomsApiError("The token answer's access_token is not a bearer token")
        return token

    async def _get(self, url: httpx.URL, *, limit: int) -> tuple[int, httpx.Headers, bytes]:
        """A GET on the API's origin, with the token."""
        headers = await self._authorisation()
        status, answer, body = await self._send("GET", url, limit=limit, headers=headers)
        if status == 401:  # the token expired: renew once
            headers = await self._authorisation(renew=True)
            status, answer, body = await self._send("GET", url, limit=limit, headers=headers)
        if status in (401, 403):
            raise TomsApiError(f"TOMS refused access to {shown(url)} (HTTP {status})")
        return status, answer, body

    async def _send(
        self, method: str, url: httpx.URL, *, limit: int, **kwargs: Any
    ) -> tuple[int, httpx.Headers, bytes]:
        """One request with retries; returns the final status, headers and the whole body."""
        assert self._http is not None, "use TomsClient in `async with`"
        policy = self._retry
        for attempt in range(1, policy.attempts + 1):
            wait: float | None = None
            try:
                async with self._slots:  # the deadline counts from the request, not the queue
                    status, headers, body = await asyncio.wait_for(
                        self._exchange(method, url, limit, kwargs), self._deadline
                    )
                if status not in RETRY_STATUSES:
                    return status, headers, body
                wait = _retry_after(headers.get("retry-after"), policy.max_delay)
                problem = f"HTTP {status}"
            except (httpx.TransportError, _ShortBody) as error:
                problem = type(error).__name__
            except TimeoutError:  # asyncio.wait_for: the whole request, not one read
                raise TomsApiError(
                    f"{method} {shown(url)} did not finish within {self._deadline:g} seconds "
                    "(the deadline for one request); nothing of its answer was kept"
                ) from None
            except httpx.DecodingError:
                raise _Unreadable(
                    f"{shown(url)} sent a body its Content-Encoding cannot decode"
                ) from None
            if attempt == policy.attempts:
                raise TomsApiError(
                    f"{method} {shown(url)} failed {attempt} times (last: {problem})"
                )
            if wait is None:
                wait = min(policy.max_delay, policy.backoff * 2 ** (attempt - 1))
                wait *= random.uniform(0.5, 1.0)
            self.retries += 1
            log.info("retrying %s %s in %.2fs after %s", method, shown(url), wait, problem)
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def _exchange(
        self, method: str, url: httpx.URL, limit: int, kwargs: dict[str, Any]
    ) -> tuple[int, httpx.Headers, bytes]:
        assert self._http is not None
        async with self._http.stream(method, url, **kwargs) as response:
            if response.status_code in RETRY_STATUSES:
                return response.status_code, response.headers, b""
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    raise _Unreadable(f"{shown(url)} sent more than {limit} bytes")
                chunks.append(chunk)
            body = b"".join(chunks)
            expected = response.headers.get("content-length")
            if expected is not None and expected.isdigit() and int(expected) != len(body):
                raise _ShortBody(f"{len(body)} of {expected} bytes")
            return response.status_code, response.headers, body


class _Unreadable(TomsApiError):
    """An answer past the bytes this client reads, or one its content coding cannot decode."""


class _ShortBody(Exception):
    """The connection ended before Content-Length bytes arrived."""


def _retry_after(value: str | None, cap: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    if value.strip().isdigit():
        return min(cap, float(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(cap, max(0.0, when.timestamp() - time.time()))


def _listed(item: object) -> ListedReport:
    """One entry of a report list, every field checked for its type before it is used."""
    if not isinstance(item, dict):
        raise TypeError("an entry is not an object")
    report_type = _text(item, "report_type").strip()
    program = _text(
        item, "program", "ELPAC" if report_type.upper().startswith("ELPAC") else "CAASPP"
    )
    year = item["year"]
    if isinstance(year, bool) or not isinstance(year, int | str) or not _YEAR.fullmatch(str(year)):
        raise ValueError("year is not a four-digit year")
    return ListedReport(
        program=(known := Program(program.upper())),
        test=test_code(known, report_type),
        admin_year=int(year),
        language=canonical_language(_text(item, "language", "en")),
        pdf_url=_text(item, "pdf_url" if item.get("pdf_url") else "pdf"),
        available_at=_moment(_text(item, "available_at")) if "available_at" in item else None,
    )


def _moment(text: str) -> datetime:
    """An ISO 8601 date (noon UTC, the same day in California) or date and time (UTC if no zone)."""
    if len(text) == 10:
        return receipt_moment(date.fromisoformat(text))
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _text(item: dict[str, Any], key: str, default: str | None = None) -> str:
    """A text field that can be stored and shown. A lone surrogate (``"\\ud800"``) is valid JSON
    but not valid Unicode: every encoder further on (database, terminal, URL) would fail on it."""
    value = item[key] if default is None else item.get(key) or default
    if not isinstance(value, str):
        raise TypeError(f"{key} is not text")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{key} is not valid Unicode text (a lone surrogate)") from None
    return value


def _parsed(link: str, base: httpx.URL | None = None, what: str = "a report link") -> httpx.URL:
    """A URL from a link in an answer (relative to ``base`` when given, as a redirect is)."""
    try:
        return base.join(link) if base is not None else httpx.URL(link)
    except (httpx.InvalidURL, UnicodeError):
        raise ForeignLink(f"{what} is not a valid URL") from None


def _origin(url: httpx.URL) -> tuple[str, str, int]:
    """(scheme, host, port) of an https URL, or of a plain http one on loopback; else refused."""
    host = url.host.lower()
    if url.scheme not in _DEFAULT_PORTS or not host:
        raise ForeignLink(f"{shown(url)} is not an https URL")
    if url.scheme == "http" and not _loopback(host):
        raise ForeignLink(
            f"{shown(url)} uses plain http, which anyone on the network can read: "
            "use https (plain http is accepted on loopback only)"
        )
    return url.scheme, host, url.port or _DEFAULT_PORTS[url.scheme]


def _loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost: traffic that never leaves this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def shown(link: str | httpx.URL) -> str:
    """A link as it may be logged or stored: without its query, which for a pre-signed storage
    link holds the signature that grants access."""
    try:
        url = httpx.URL(link)
    except (httpx.InvalidURL, UnicodeError):
        return "(a link that is not a valid URL)"
    return str(url.copy_with(query=None, fragment=None))
