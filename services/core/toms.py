"""Where the LEA's TOMS-style API answers: the ``[toms]`` settings and the paths both users share.

Intake (``services.intake.toms_api``) fetches SSRs from it; the credential service verifies the
recorded credential against its token endpoint. ``[toms] url`` is the API's base URL (the token
endpoint is ``<url>/api/v1/token``, DESIGN.md); ``download_hosts`` names the hosts besides the API
itself that report links may lead to (storage serving pre-signed links), fetched without the token.
"""

from __future__ import annotations

from services.core.errors import InvalidInput
from services.core.settings import Settings

TOKEN_PATH = "/api/v1/token"  # noqa: S105 (a URL path, not a password)
REPORTS_PATH = "/api/v1/students/{ssid}/reports"
KEYS = frozenset({"url", "download_hosts", "request_deadline_seconds"})
DEADLINE_SECONDS = 120.0


def _table(settings: Settings) -> dict[str, object]:
    table = settings.extra.get("toms") or {}
    if not isinstance(table, dict):
        raise InvalidInput("The [toms] configuration must be a table of keys")
    if unknown := sorted(set(table) - KEYS):
        raise InvalidInput(f"Unknown [toms] setting(s): {', '.join(unknown)}")
    return table


def download_hosts(settings: Settings) -> tuple[str, ...]:
    """``[toms] download_hosts``, lower-cased; refused unless a list of bare host names."""
    hosts = _table(settings).get("download_hosts", [])
    if not isinstance(hosts, list) or not all(_is_host_name(host) for host in hosts):
        raise InvalidInput(
            "[toms] download_hosts must be a list of host names without scheme, port or path, "
            'e.g. ["ssr-storage.example.org"]'
        )
    return tuple(host.lower() for host in hosts)


def api_url(settings: Settings) -> str | None:
    """``[toms] url``: the API's base URL, or None when it is not configured."""
    url = _table(settings).get("url")
    if url is None:
        return None
    if not isinstance(url, str) or not url.strip():
        raise InvalidInput(
            '[toms] url must be the API\'s base URL, e.g. "https://toms.example.org"'
        )
    return url.strip().rstrip("/")


def token_url(settings: Settings) -> str | None:
    """The token endpoint under ``[toms] url`` (None: not configured)."""
    base = api_url(settings)
    return base + TOKEN_PATH if base else None


def _is_host_name(value: object) -> bool:
    return isinstance(value, str) and bool(value) and not set(value) & set(":/@?# \t")


def request_deadline(settings: Settings) -> float:
    """``[toms] request_deadline_seconds``: the longest one API request may take, body and all
    (a server trickling bytes never trips a per-read timeout). Typed by the settings model."""
    value = _table(settings).get("request_deadline_seconds", DEADLINE_SECONDS)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise InvalidInput("[toms] request_deadline_seconds must be a number of seconds above 0")
    return float(value)
