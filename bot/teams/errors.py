"""Map Bot Connector failures to the notifier's few error types, in one place."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import aiohttp
from msrest.exceptions import ClientRequestError, HttpOperationError

from bot.notifier import DeliveryError, Forbidden, NotFound, RateLimited, Unavailable

DEFAULT_RETRY_AFTER = 1.0
_TRANSIENT = {412, 500, 502, 503, 504}


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return DEFAULT_RETRY_AFTER
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


def delivery_error(status: int, retry_after: str | None, detail: str) -> DeliveryError:
    """The typed error for one HTTP status the Bot Connector answered."""
    if status == 429:
        return RateLimited(retry_after_seconds(retry_after), f"Teams: {detail}")
    if status == 404:
        return NotFound(f"Teams: {detail}")
    if status in {401, 403}:
        return Forbidden(f"Teams: {detail}")
    if status in _TRANSIENT or status >= 500:
        return Unavailable(f"Teams: {detail}")
    # Anything else (400, 413...) is a request Teams will refuse however often it is sent.
    return Forbidden(f"Teams refused the request: {detail}")


@asynccontextmanager
async def teams_errors(operation: str) -> AsyncIterator[None]:
    """Turn whatever the SDK raises during `operation` into a DeliveryError."""
    try:
        yield
    except DeliveryError:
        raise
    except HttpOperationError as error:
        response = error.response
        status = int(getattr(response, "status_code", 0) or 0)
        headers = getattr(response, "headers", None) or {}
        raise delivery_error(
            status, headers.get("Retry-After"), f"{operation} answered HTTP {status}"
        ) from error
    except (ClientRequestError, aiohttp.ClientError, TimeoutError) as error:
        raise Unavailable(f"Teams: {operation} failed: {type(error).__name__}") from error
