"""Ask a token endpoint whether it accepts a username and secret key: TOMS itself when a
coordinator records the credential, or one vendor system's endpoint on the checklist.

The request is an OAuth2 client-credentials grant as TOMS-style ``/api/v1/token`` endpoints take it
(HTTP Basic username + secret key, ``grant_type=client_credentials``). Every outcome becomes a
sentence a coordinator can act on, and tells apart an endpoint that answered "no" (``reached``:
the credential is wrong) from one that could not be reached (the credential may be right). The
secret is never part of a result.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from ipaddress import ip_address
from urllib.parse import urlsplit

import httpx

from services.core.display import safe_text
from services.core.errors import InvalidInput

TIMEOUT_SECONDS = 10.0
MAX_ANSWER = 200
"""Characters of the endpoint's own explanation (``error``, ``error_description``) kept."""


@dataclass(frozen=True)
class ConnectionResult:
    ok: bool
    message: str
    status_code: int | None = None

    @property
    def reached(self) -> bool:
        """The endpoint answered (so a refusal is about the credential, not the network)."""
        return self.status_code is not None

    @property
    def refused(self) -> bool:
        """The endpoint said this username and secret key are not valid."""
        return self.status_code in (400, 401, 403)


def validate_token_url(url: str) -> str:
    """An HTTPS token endpoint; plain HTTP only on loopback, since the secret key travels in it."""
    text = url.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InvalidInput(f"Token URL must look like https://host/api/v1/token, got {text!r}")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise InvalidInput("Token URL must use https (plain http is allowed only on this machine)")
    return text


def request_token(
    url: str, username: str, secret: str, *, timeout: float = TIMEOUT_SECONDS
) -> ConnectionResult:
    """One token request; the secret is used for it and dropped."""
    url = validate_token_url(url)
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False) as client:
            response = client.post(
                url,
                auth=(username, secret),
                data={"grant_type": "client_credentials"},
                headers={"Accept": "application/json"},
            )
    except httpx.TimeoutException:
        return ConnectionResult(False, f"No answer within {timeout:g} s (timeout)")
    except httpx.ConnectError as error:
        if _tls_failure(error):
            return ConnectionResult(False, f"TLS handshake failed: {_reason(error)}")
        return ConnectionResult(False, f"Connection refused or host unreachable: {_reason(error)}")
    except httpx.HTTPError as error:
        return ConnectionResult(False, f"Request failed: {_reason(error)}")
    code = response.status_code
    answer = _answer(response)
    if code in (400, 401, 403):
        return ConnectionResult(
            False,
            f"Refused (HTTP {code}{answer}): it does not accept this username and secret key",
            code,
        )
    if code != 200:
        return ConnectionResult(False, f"Unexpected answer: HTTP {code}{answer}", code)
    try:
        token = response.json().get("access_token")
    except (ValueError, AttributeError):
        token = None
    if not token:
        return ConnectionResult(False, "HTTP 200 but no access token in the answer", code)
    return ConnectionResult(True, "Token issued: it accepts this credential", code)


def _answer(response: httpx.Response) -> str:
    """The endpoint's own words (OAuth2 ``error`` and ``error_description``), as plain text."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    words = [str(body[k]) for k in ("error", "error_description") if isinstance(body.get(k), str)]
    return f", {safe_text(': '.join(words))[:MAX_ANSWER]}" if words else ""


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def _tls_failure(error: BaseException) -> bool:
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            return True
        cause = cause.__cause__ or cause.__context__
    return "SSL" in str(error) or "CERTIFICATE" in str(error)


def _reason(error: BaseException) -> str:
    return str(error) or type(error).__name__
