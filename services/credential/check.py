"""Test connection: ask a system's token endpoint for a token with the credential a coordinator types.

The request is an OAuth2 client-credentials grant as TOMS-style ``/api/v1/token`` endpoints take it
(HTTP Basic username + secret key, ``grant_type=client_credentials``). The typed secret is used for
this one request and dropped; the outcome (never the secret) is kept on the checklist and audited.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

import httpx
from sqlalchemy.engine import Engine

from services.access.tables import Operator
from services.credential import lifecycle as credentials

TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class ConnectionResult:
    ok: bool
    message: str
    status_code: int | None = None


def request_token(
    url: str, username: str, secret: str, *, timeout: float = TIMEOUT_SECONDS
) -> ConnectionResult:
    """One token request; every way it can fail becomes a sentence a coordinator can act on."""
    url = credentials.validate_token_url(url)
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
    if code in (401, 403):
        return ConnectionResult(
            False, f"Refused (HTTP {code}): the system rejected this username and secret key", code
        )
    if code != 200:
        return ConnectionResult(False, f"Unexpected answer: HTTP {code}", code)
    try:
        token = response.json().get("access_token")
    except (ValueError, AttributeError):
        token = None
    if not token:
        return ConnectionResult(False, "HTTP 200 but no access token in the answer", code)
    return ConnectionResult(True, "Token issued: the system accepts this credential", code)


def check_system(
    engine: Engine, operator: Operator, system_id: int, username: str, secret: str
) -> ConnectionResult:
    """Try a system's token endpoint and keep the outcome on the checklist."""
    system = credentials.system_for_test(engine, operator, system_id)
    assert system.token_url is not None
    result = request_token(system.token_url, username.strip(), secret.strip())
    credentials.record_test(engine, operator, system_id, ok=result.ok, message=result.message)
    return result


def _tls_failure(error: BaseException) -> bool:
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            return True
        cause = cause.__cause__ or cause.__context__
    return "SSL" in str(error) or "CERTIFICATE" in str(error)


def _reason(error: BaseException) -> str:
    return str(error) or type(error).__name__
