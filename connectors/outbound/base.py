"""What an outbound hand-off client is, the errors it raises, and the one HTTP call they share.

A client tells a chatbot platform that a human has a conversation (`pause`) or gives it back
(`resume`), each through the platform's own hand-off mechanism. Vendor answers are mapped here to
four errors; retry, backoff and `Retry-After` belong to whoever runs the calls (the delivery
worker), never to the clients.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

# A platform call is one small request; a slow platform must not hold the delivery worker.
TIMEOUT_SECONDS = 10.0
# When a 429 names no Retry-After: wait this long rather than hammer the platform.
DEFAULT_RETRY_AFTER = 30.0


class PlatformCallError(Exception):
    """Base of every failed platform call; the message names the platform and what it answered."""


class RateLimited(PlatformCallError):
    """The platform asked us to slow down (429): try again after `retry_after` seconds."""

    def __init__(self, retry_after: float, message: str) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(PlatformCallError):
    """A transient failure (5xx, timeout, connection refused): retry with backoff."""


class NotFound(PlatformCallError):
    """The conversation (or app, account) does not exist on the platform: do not retry."""


class Forbidden(PlatformCallError):
    """The credentials are wrong or lack a permission, or the platform refuses the request
    as malformed (other 4xx): retrying will not help, so do not retry."""


@dataclass(frozen=True, slots=True)
class HandoffTarget:
    """The conversation a call is about, as the inbound connector stored it."""

    conversation_id: str  # our id: the platform's own conversation or sender id
    customer_id: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    agent_name: str | None = None  # who claimed, for platforms that show a note


class PlatformClient(Protocol):
    """One platform's hand-off API."""

    platform: str  # the platform name connectors store on conversations ("sunshine")
    label: str  # how cards name it ("Sunshine")

    async def pause(self, target: HandoffTarget) -> str:
        """Tell the platform a human has the conversation; returns what was done, briefly.

        Raises RateLimited, Unavailable, NotFound or Forbidden.
        """
        ...

    async def resume(self, target: HandoffTarget) -> str:
        """Give the conversation back to the bot; returns and raises as `pause`."""
        ...


def required(environ: Mapping[str, str], *names: str) -> list[str] | None:
    """The values of `names`, or None when any is unset or empty (the client is then off)."""
    values = [environ.get(name, "").strip() for name in names]
    return values if all(values) else None


async def call(
    label: str,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
    json: Any = None,
) -> Any:
    """Make one request and return its decoded JSON body (None when empty or not JSON).

    Maps the answer: 429 -> RateLimited, 5xx / timeout / connection error -> Unavailable,
    404 -> NotFound, any other 4xx -> Forbidden. Messages say "<label> answered <status>" and
    never include credentials.
    """
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_SECONDS)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.request(method, url, headers=headers, params=params, json=json) as response,
        ):
            text = await response.text()
            status = response.status
            retry_after = response.headers.get("Retry-After")
            body: Any = None
            if text and "json" in response.content_type:
                try:
                    body = await response.json(content_type=None)
                except ValueError:
                    body = None
    except TimeoutError:
        raise Unavailable(f"{label} did not answer within {TIMEOUT_SECONDS:g}s") from None
    except aiohttp.ClientError as error:
        raise Unavailable(f"{label} unreachable ({type(error).__name__})") from None
    if status < 400:
        return body
    answered = f"{label} answered {status}"
    if status == 429:
        raise RateLimited(_seconds(retry_after), answered)
    if status >= 500:
        raise Unavailable(answered)
    if status == 404:
        raise NotFound(answered)
    raise Forbidden(answered)


def _seconds(value: str | None) -> float:
    try:
        seconds = float(value) if value is not None else DEFAULT_RETRY_AFTER
    except ValueError:
        seconds = DEFAULT_RETRY_AFTER  # an HTTP date: rare from these APIs; wait the default
    return max(0.0, seconds)
