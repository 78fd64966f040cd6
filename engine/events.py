"""The canonical conversation event: what every connector produces and the engine consumes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any, NamedTuple


class EventType(StrEnum):
    """What happened in the conversation."""

    MESSAGE = "message"
    SESSION_START = "session_start"
    SESSION_END = "session_end"
    # The platform's own hand-off (e.g. Sunshine switchboard passControl): recorded, and it tells
    # the engine that a human is already involved.
    HANDOFF = "handoff"


class Role(StrEnum):
    """Who said a message."""

    CUSTOMER = "customer"
    BOT = "bot"
    AGENT = "agent"
    SYSTEM = "system"


@dataclass(frozen=True, slots=True)
class Customer:
    """The person the bot talks to, as far as the platform tells us."""

    id: str | None = None
    name: str | None = None
    tier: str | None = None
    email: str | None = None


@dataclass(frozen=True, slots=True)
class ConversationMeta:
    """Facts about a conversation that routing and cards use; the latest post wins per field."""

    platform: str = "generic"
    customer: Customer = field(default_factory=Customer)
    metadata: Mapping[str, str] = field(default_factory=dict)
    language: str | None = None
    # A deep link back into the platform's inbox, where the connector knows one.
    link: str | None = None


# No event carries extras unless its platform sent some: one shared, read-only empty mapping.
NO_EXTRA: Mapping[str, Any] = MappingProxyType({})


# A named tuple rather than a frozen dataclass, as Reason and Assessment: a connector builds one
# per event (a hundred in a batched post), and a frozen dataclass costs twice as much to build.
# It stays immutable and reads the same by attribute; copies with changes are `event._replace`.
class ConversationEvent(NamedTuple):
    """One event of one conversation, in the platform-neutral shape.

    `timestamp` is always timezone-aware (UTC). `fallback` is True when the platform marked the
    bot's reply as a fallback / no-match; None when the platform does not say.
    """

    event_id: str
    type: EventType
    timestamp: datetime
    role: Role | None = None
    text: str | None = None
    intent: str | None = None
    confidence: float | None = None
    fallback: bool | None = None
    outcome: str | None = None
    # Anything else the platform sent that someone may want to see later (kept small).
    extra: Mapping[str, Any] = NO_EXTRA


@dataclass(frozen=True, slots=True)
class InboundBatch:
    """Events of one conversation that arrived together; a webhook post yields one or more."""

    conversation_id: str
    meta: ConversationMeta
    events: tuple[ConversationEvent, ...]
