"""A token bucket per client address for connections that have not signed in yet.

Every new connection takes a token from its address's bucket; a connection that signs in gives
it back, so only unauthenticated connections count. An empty bucket refuses the connection before
the SSH handshake. Refusals are not audited one by one (300 rapid connections would write 300
rows): the first refusal for an address writes one summary row, and after that at most one row
per ``report_seconds`` says how many were refused since the last.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

MAX_ADDRESSES = 10_000  # buckets kept; full, quiet ones are forgotten first


@dataclass(frozen=True)
class ThrottleReport:
    """What to audit about one address: connections refused since the last report."""

    address: str
    refused: int
    starting: bool  # the first refusal after the address was admitted again


@dataclass(frozen=True)
class Verdict:
    admitted: bool
    report: ThrottleReport | None = None


@dataclass
class _Bucket:
    tokens: float
    at: float
    refused: int = 0  # refused and not yet reported
    throttling: bool = False
    reported_at: float = -math.inf


class Throttle:
    """Up to ``burst`` connections at once per address, then ``per_minute`` more each minute."""

    def __init__(
        self,
        burst: int,
        per_minute: float,
        report_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.burst = burst
        self.rate = per_minute / 60.0
        self.report_seconds = report_seconds
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def check(self, address: str) -> Verdict:
        """Take a token for a new connection from ``address``, or refuse it."""
        now = self._clock()
        bucket = self._bucket(address, now)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            bucket.throttling = False
            return Verdict(True)
        bucket.refused += 1
        report = None
        if now - bucket.reported_at >= self.report_seconds:
            report = ThrottleReport(address, bucket.refused, starting=not bucket.throttling)
            bucket.refused, bucket.reported_at = 0, now
        bucket.throttling = True
        return Verdict(False, report)

    def refund(self, address: str) -> None:
        """The connection signed in: its token does not count against the address."""
        now = self._clock()
        bucket = self._bucket(address, now)
        bucket.tokens = min(self.burst, bucket.tokens + 1)

    def _bucket(self, address: str, now: float) -> _Bucket:
        bucket = self._buckets.get(address)
        if bucket is None:
            if len(self._buckets) >= MAX_ADDRESSES:
                self._forget(now)
            bucket = self._buckets[address] = _Bucket(float(self.burst), now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        return bucket

    def _forget(self, now: float) -> None:
        """Drop addresses whose bucket has refilled (they lose nothing), else the oldest half."""
        full = [
            address
            for address, b in self._buckets.items()
            if not b.refused and b.tokens + (now - b.at) * self.rate >= self.burst
        ]
        if not full:
            by_age = sorted(self._buckets, key=lambda address: self._buckets[address].at)
            full = by_age[: len(by_age) // 2]
        for address in full:
            del self._buckets[address]
