"""What a connector is: a request in, canonical events out, nothing else."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from engine.events import InboundBatch


class ConnectorError(Exception):
    """A request a connector refuses; `status` is the HTTP status to answer with."""

    status = 400


class BadSignature(ConnectorError):
    """The request is not signed with the configured secret (401)."""

    status = 401


class BadPayload(ConnectorError):
    """The body cannot be read; the message says what is wrong and where (400)."""

    status = 400


@dataclass(frozen=True, slots=True)
class InboundRequest:
    """The parts of an HTTP request a connector may look at."""

    url: str  # the full URL as the platform called it (Twilio signs it)
    headers: Mapping[str, str]  # case-insensitive in practice; keys as received
    body: bytes
    content_type: str
    # When the request arrived (aware). Platforms that send no time of their own (Dialogflow)
    # stamp events with it; None means "now", which is what the webhook route would pass anyway.
    received_at: datetime | None = None


def received_time(request: InboundRequest) -> datetime:
    """When the request arrived, in UTC: for events whose platform sends no time of its own."""
    if request.received_at is None:
        return datetime.now(UTC)
    return request.received_at.astimezone(UTC)


class Connector(Protocol):
    """One chatbot platform."""

    name: str  # the URL segment: POST /webhooks/<name>
    secret_env: str  # the environment variable holding its secret
    verification: str  # a short human description, listed by `escalations connectors`

    def verify(self, request: InboundRequest, secret: str | None) -> None:
        """Raise BadSignature unless the request is authentic (no-op when secret is None)."""
        ...

    def parse(self, request: InboundRequest) -> list[InboundBatch]:
        """Turn the body into canonical batches; raise BadPayload naming what is wrong.

        Event types the project does not use are skipped (an empty list is a valid answer).
        """
        ...

    def respond(self, batches: list[InboundBatch]) -> tuple[str, bytes]:
        """The (content type, body) of the 200 answer the platform expects after `parse`."""
        ...


class BaseConnector:
    """Defaults shared by connectors: most platforms only need a 200 with an empty JSON object."""

    name: str
    secret_env: str
    verification: str

    def respond(self, batches: list[InboundBatch]) -> tuple[str, bytes]:
        """Answer with `{}`: the platform reads nothing from our reply."""
        return "application/json", b"{}"


def header(headers: Mapping[str, str], name: str) -> str | None:
    """The value of header `name`, looked up case-insensitively; None when absent."""
    value = headers.get(name)
    if value is not None:
        return value
    # A plain dict (tests, replay tools) keeps the sender's spelling; aiohttp's proxy does not care.
    wanted = name.lower()
    for key, candidate in headers.items():
        if key.lower() == wanted:
            return candidate
    return None
