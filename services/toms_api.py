"""A client for a TOMS-style SSR API: token, per-SSID report lists, PDF downloads.

The LEA credential (username and 20-character secret) is handed in by the caller for one session
and kept only in this object: never stored, logged or put in an error message. Requests share a
concurrency limit; 429 (honouring Retry-After), 5xx and dropped connections are retried with
exponential backoff and jitter; a download that ends short is retried whole. An expired token
(401) is renewed once per request.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from dataclasses import dataclass
from typing import Any

import httpx

from services.errors import ConsoleError
from services.models import Program
from services.validation import language as canonical_language

log = logging.getLogger(__name__)

TOKEN_PATH = "/api/v1/token"  # noqa: S105 (a URL path, not a password)
REPORTS_PATH = "/api/v1/students/{ssid}/reports"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class TomsApiError(ConsoleError):
    """The API refused or kept failing; the message never contains the credential."""


@dataclass(frozen=True)
class ListedReport:
    """One entry of an SSID's report list."""

    program: Program
    test: str
    admin_year: int
    language: str
    pdf_url: str


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    backoff: float = 0.5  # seconds before the 2nd attempt, doubling after
    max_delay: float = 30.0


class TomsClient:
    """Use as ``async with TomsClient(url, username, secret) as client:``."""

    def __init__(
        self,
        base_url: str,
        username: str,
        secret: str,
        *,
        concurrency: int = 4,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        max_pdf_bytes: int = 20 * 1024 * 1024,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._credential = (username, secret)
        self._retry = retry or RetryPolicy()
        self._timeout = timeout
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
            base_url=self._base_url,
            timeout=self._timeout,
            limits=httpx.Limits(max_connections=self._concurrency),
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._http is not None:
            await self._http.aclose()

    async def reports(self, ssid: str) -> list[ListedReport]:
        """The SSRs the API holds for one student (an unknown SSID has none)."""
        status, body = await self._get(REPORTS_PATH.format(ssid=ssid), limit=1024 * 1024)
        if status == 404:
            return []
        try:
            items = httpx.Response(200, content=body).json()
            items = items.get("reports", items) if isinstance(items, dict) else items
            return [_listed(item) for item in items]
        except (ValueError, KeyError, TypeError) as error:
            raise TomsApiError(
                f"The report list for SSID {ssid} is not understood: {error}"
            ) from None

    async def download(self, url: str) -> bytes:
        """A PDF's bytes, read in full (a connection dropped mid-way is retried)."""
        status, body = await self._get(url, limit=self._max_pdf_bytes)
        if status != 200:
            raise TomsApiError(f"Download of {url} answered HTTP {status}")
        return body

    async def _authorisation(self, renew: bool = False) -> dict[str, str]:
        async with self._token_lock:
            if self._token is None or renew:
                self._token = await self._fetch_token()
        return {"Authorization": f"Bearer {self._token}"}

    async def _fetch_token(self) -> str:
        status, body = await self._send(
            "POST", TOKEN_PATH, limit=64 * 1024, auth=self._credential,
            data={"grant_type": "client_credentials"},
        )  # fmt: skip
        if status in (400, 401, 403):
            raise TomsApiError("TOMS refused the LEA credential; check the username and secret")
        if status != 200:
            raise TomsApiError(f"The token request answered HTTP {status}")
        try:
            return str(httpx.Response(200, content=body).json()["access_token"])
        except (ValueError, KeyError, TypeError):
            raise TomsApiError("The token answer has no access_token") from None

    async def _get(self, url: str, *, limit: int) -> tuple[int, bytes]:
        headers = await self._authorisation()
        status, body = await self._send("GET", url, limit=limit, headers=headers)
        if status == 401:  # the token expired: renew once
            headers = await self._authorisation(renew=True)
            status, body = await self._send("GET", url, limit=limit, headers=headers)
        if status in (401, 403):
            raise TomsApiError(f"TOMS refused access to {url} (HTTP {status})")
        return status, body

    async def _send(self, method: str, url: str, *, limit: int, **kwargs: Any) -> tuple[int, bytes]:
        """One request with retries; returns the final status and the whole body."""
        assert self._http is not None, "use TomsClient in `async with`"
        policy = self._retry
        for attempt in range(1, policy.attempts + 1):
            wait: float | None = None
            try:
                async with self._slots:
                    status, headers, body = await self._exchange(method, url, limit, kwargs)
                if status not in RETRY_STATUSES:
                    return status, body
                wait = _retry_after(headers.get("retry-after"), policy.max_delay)
                problem = f"HTTP {status}"
            except (httpx.TransportError, _ShortBody) as error:
                problem = type(error).__name__
            if attempt == policy.attempts:
                raise TomsApiError(f"{method} {url} failed {attempt} times (last: {problem})")
            if wait is None:
                wait = min(policy.max_delay, policy.backoff * 2 ** (attempt - 1))
                wait *= random.uniform(0.5, 1.0)
            self.retries += 1
            log.info("retrying %s %s in %.2fs after %s", method, url, wait, problem)
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def _exchange(
        self, method: str, url: str, limit: int, kwargs: dict[str, Any]
    ) -> tuple[int, httpx.Headers, bytes]:
        assert self._http is not None
        async with self._http.stream(method, url, **kwargs) as response:
            if response.status_code in RETRY_STATUSES:
                return response.status_code, response.headers, b""
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    raise TomsApiError(f"{url} sent more than {limit} bytes")
                chunks.append(chunk)
            body = b"".join(chunks)
            expected = response.headers.get("content-length")
            if expected is not None and expected.isdigit() and int(expected) != len(body):
                raise _ShortBody(f"{len(body)} of {expected} bytes")
            return response.status_code, response.headers, body


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


def _listed(item: dict[str, Any]) -> ListedReport:
    report_type = str(item["report_type"]).strip()
    program = item.get("program") or (
        "ELPAC" if report_type.upper().startswith("ELPAC") else "CAASPP"
    )
    return ListedReport(
        program=Program(str(program).upper()),
        test=report_type[:40],
        admin_year=int(item["year"]),
        language=canonical_language(str(item.get("language", "en"))),
        pdf_url=str(item.get("pdf_url") or item["pdf"]),
    )
