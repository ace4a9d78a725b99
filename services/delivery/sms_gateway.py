"""The password by SMS through an HTTP gateway (httpx), as an alternative to the second email.

The gateway is configured in ``[sms]``: ``url`` (it receives ``POST {"to": ..., "text": ...}``),
``token`` (sent as a bearer token) and ``timeout``. Its answers map onto the same outcomes as SMTP:
2xx accepted, 429 and 5xx retried, other 4xx failed with the gateway's words, and a request that got
no answer after it was sent is uncertain.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from services.core.errors import InvalidInput
from services.core.settings import Settings
from services.delivery.mailer import Outcome, SendResult


@dataclass(frozen=True)
class SmsConfig:
    url: str
    token: str | None = None
    timeout: float = 30.0

    @classmethod
    def from_settings(cls, settings: Settings) -> SmsConfig | None:
        section = settings.extra.get("sms")
        if not section:
            return None
        if not isinstance(section, dict) or not section.get("url"):
            raise InvalidInput("The [sms] configuration needs a url")
        return cls(str(section["url"]), section.get("token"), float(section.get("timeout", 30.0)))


class SmsGateway:
    def __init__(self, config: SmsConfig) -> None:
        headers = {"Authorization": f"Bearer {config.token}"} if config.token else {}
        self._client = httpx.AsyncClient(timeout=config.timeout, headers=headers)
        self._url = config.url

    async def send(self, phone: str, text: str) -> SendResult:
        try:
            response = await self._client.post(self._url, json={"to": phone, "text": text})
        except (httpx.ConnectError, httpx.ConnectTimeout) as error:
            return SendResult(Outcome.RETRY, f"SMS gateway unreachable: {error}", True)
        except httpx.HTTPError as error:
            return SendResult(Outcome.UNCERTAIN, f"no answer from the SMS gateway: {error}")
        said = f"{response.status_code} {response.text[:200]}".strip()
        if response.is_success:
            return SendResult(Outcome.ACCEPTED, said)
        if response.status_code == 429 or response.status_code >= 500:
            return SendResult(Outcome.RETRY, said)
        return SendResult(Outcome.FAILED, said)

    async def close(self) -> None:
        await self._client.aclose()
