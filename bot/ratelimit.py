"""Per-source rate limit on the webhooks: one token bucket per (client address, connector).

`ESCALATIONS_RATE_LIMIT_PER_MINUTE` sets how many posts one address may make to one connector
per minute, with bursts of up to that many; unset or 0 turns the limit off. A post over the
limit gets 429 with `Retry-After` (whole seconds) and is not read, verified or stored, so a
flood costs the service almost nothing. Platforms retry on 429, so nothing is lost.

The address is the TCP peer. Behind a reverse proxy every post comes from the proxy: rate
limit at the proxy then, or leave this off.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from bot.config import SettingsError

RATE_LIMIT_ENV = "ESCALATIONS_RATE_LIMIT_PER_MINUTE"
WEBHOOK_PREFIX = "/webhooks/"
# Forget idle sources once this many are tracked (a scan of spoofed addresses must not grow
# memory without bound); a forgotten source simply starts with a full bucket again.
MAX_TRACKED_SOURCES = 10_000


def rate_limit_per_minute(environ: Mapping[str, str]) -> int:
    """The configured posts per minute per source and connector (0: no limit)."""
    raw = environ.get(RATE_LIMIT_ENV, "").strip()
    if not raw:
        return 0
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{RATE_LIMIT_ENV}: expected a whole number, got {raw!r}") from None
    if value < 0:
        raise SettingsError(f"{RATE_LIMIT_ENV}: must be 0 (off) or more, got {value}")
    return value


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets refilled continuously at `per_minute / 60` tokens a second."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._rate = per_minute / 60.0
        self._clock = clock
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    def take(self, source: str, connector: str) -> float | None:
        """Take one post's token; None when allowed, else the seconds until one is available."""
        now = self._clock()
        key = (source, connector)
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= MAX_TRACKED_SOURCES:
                self._forget_full(now)
            bucket = self._buckets[key] = _Bucket(float(self.per_minute), now)
        else:
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(float(self.per_minute), bucket.tokens + elapsed * self._rate)
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        return (1.0 - bucket.tokens) / self._rate

    def _forget_full(self, now: float) -> None:
        refill_seconds = self.per_minute / self._rate
        stale = [key for key, b in self._buckets.items() if now - b.updated >= refill_seconds]
        for key in stale:
            del self._buckets[key]
        if len(self._buckets) >= MAX_TRACKED_SOURCES:
            # Every source is busy: drop the oldest half rather than grow.
            by_age = sorted(self._buckets, key=lambda k: self._buckets[k].updated)
            for key in by_age[: len(by_age) // 2]:
                del self._buckets[key]


def webhook_rate_limit(
    environ: Mapping[str, str],
    *,
    on_limited: Callable[[str], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Middleware | None:
    """The middleware for the app; None when no limit is configured (nothing to check, and an
    idle middleware would still cost every request a call).

    `on_limited(connector)` is called for every refused post (for the rejection metric).
    """
    per_minute = rate_limit_per_minute(environ)
    if not per_minute:
        return None
    limiter = RateLimiter(per_minute, clock)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method != "POST":
            return await handler(request)
        if not request.path.startswith(WEBHOOK_PREFIX):
            return await handler(request)
        connector = request.path[len(WEBHOOK_PREFIX) :].split("/", 1)[0]
        wait = limiter.take(request.remote or "unknown", connector)
        if wait is None:
            return await handler(request)
        if on_limited is not None:
            on_limited(connector)
        retry_after = max(1, math.ceil(wait))
        return web.json_response(
            {
                "error": f"too many posts to /webhooks/{connector} from this address: the limit "
                f"is {per_minute} a minute; retry after {retry_after} s"
            },
            status=429,
            headers={"Retry-After": str(retry_after)},
        )

    return middleware
