"""What the engine says about a conversation after each event."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple

from engine.events import Role


class Decision(StrEnum):
    """What should happen to the conversation's escalation because of this event."""

    NONE = "none"  # nothing changes
    OPEN = "open"  # a notifying level was reached: open an escalation and post a card
    UPGRADE = "upgrade"  # the open escalation reached a higher notifying level: edit the card
    RECOVERED = "recovered"  # the bot recovered before anyone claimed: close it as such
    ENDED = "ended"  # the conversation ended while escalated: close it as expired


# Reason and Assessment are named tuples rather than frozen dataclasses: the engine makes one
# Assessment per event, and a frozen dataclass costs several times as much to build. Both stay
# immutable and hashable, and read the same by attribute.
class Reason(NamedTuple):
    """One signal's contribution, readable on a card: "3 bot fallbacks in a row (turns 4-6)"."""

    signal: str
    points: float
    text: str
    # The events that are the evidence, oldest first.
    event_ids: tuple[str, ...] = ()


class Assessment(NamedTuple):
    """The engine's verdict after one event."""

    event_id: str
    score: float
    level: str | None
    notify: bool
    reasons: tuple[Reason, ...]
    team: str | None
    decision: Decision
    # Who to mention on a card of this level ("@here"), from the level or the team.
    mention: str | None = None


@dataclass(frozen=True, slots=True)
class SummaryMessage:
    role: Role
    text: str
    timestamp: datetime
    event_id: str


@dataclass(frozen=True, slots=True)
class HandoffSummary:
    """Everything an agent needs to continue without asking the customer again (redacted)."""

    wants: tuple[str, ...]  # the customer's first substantive messages
    bot_tried: tuple[str, ...]  # intents / answers the bot tried
    recent: tuple[SummaryMessage, ...]  # the last few messages
    sentiment_trend: tuple[float, ...]  # rolling customer sentiment, oldest first
    identifiers: tuple[str, ...]  # order numbers, ticket ids, emails (redacted when configured)
    turns: int
    started_at: datetime | None
    last_at: datetime | None
