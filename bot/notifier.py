"""The port every chat surface implements, and the errors it may raise.

Vendor errors are mapped to these few types in each surface's module, so that retry, backoff
and throttling live in one place (the delivery worker).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from bot.cards import Card


class DeliveryError(Exception):
    """Base of every delivery failure."""


class RateLimited(DeliveryError):
    """The surface asked us to slow down; try again after `retry_after` seconds."""

    def __init__(self, retry_after: float, message: str = "rate limited") -> None:
        super().__init__(f"{message}; retry after {retry_after:g}s")
        self.retry_after = retry_after


class Unavailable(DeliveryError):
    """A transient failure (5xx, timeout, connection refused): retry with backoff."""


class NotFound(DeliveryError):
    """The channel or message does not exist (deleted, or the bot was removed): do not retry."""


class Forbidden(DeliveryError):
    """The bot may not post there (not in channel, bad token, missing scope): do not retry."""


@dataclass(frozen=True, slots=True)
class MessageRef:
    """Where a posted card lives, so that it can be updated in place and replied to."""

    surface: str
    channel: str
    message_id: str


class Notifier(Protocol):
    """A chat surface that shows escalation cards."""

    surface: str

    async def post(self, card: Card, channel: str) -> MessageRef:
        """Post a new card; raises RateLimited, Unavailable, NotFound or Forbidden."""
        ...

    async def update(self, ref: MessageRef, card: Card) -> None:
        """Replace the card in place for everyone; raises as `post`."""
        ...

    async def reply(self, ref: MessageRef, text: str, *, mention: str | None = None) -> None:
        """Add a message in the card's thread, calling `mention` first; raises as `post`.

        `text` is shown as written (never as markup that could ping anyone); `mention` is a
        rules-file mention ("@here", a group or user id) rendered the surface's own way.
        """
        ...


@runtime_checkable
class FindsPostedCards(Protocol):
    """Optional beside `Notifier`: a surface that can tell whether a card already reached it.

    The delivery worker asks before repeating a post whose earlier attempt may have reached the
    surface without its answer being recorded (the process died in between). A surface that
    cannot search its messages (Teams, the console) does not implement it and may show a second
    card in that case.
    """

    async def find_posted(self, card: Card, channel: str, since: datetime) -> MessageRef | None:
        """The card's message in `channel` posted at or after `since`, or None if there is none.

        Raises RateLimited or Unavailable when it cannot tell now (ask again later), and
        Forbidden or NotFound when it can never tell there (missing scope, bot not in channel).
        """
        ...
