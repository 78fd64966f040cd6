"""The hand-off operations a button click or a command turns into: claim, release, resolve.

Chat surfaces call these and nothing else; each returns an `ActionResult` whose `message` is what
to tell the clicking user privately when the action was refused. Card updates for everyone go
through the delivery outbox, never from the click handler itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bot.cards import Card


@dataclass(frozen=True, slots=True)
class Actor:
    """Who clicked: the surface, its user id, and a name to show on the card."""

    surface: str  # "slack", "teams", "dashboard", "cli"
    user_id: str
    display_name: str


@dataclass(frozen=True, slots=True)
class ActionResult:
    ok: bool
    message: str  # for the user who acted: "Claimed." / "Ana claimed this 2m ago."
    card: Card | None  # the card as it stands after the action (None when the id is unknown)


@dataclass(frozen=True, slots=True)
class QueueStats:
    """Today's numbers for App Home, slash commands and personal chats."""

    opened: int
    claimed: int
    resolved: int
    open_unclaimed: int
    median_time_to_claim_seconds: float | None


class Handoff(Protocol):
    """The domain operations behind every button, command and personal-chat request."""

    async def claim(self, escalation_id: int, actor: Actor) -> ActionResult:
        """Take an open escalation; exactly one of two concurrent claims wins."""
        ...

    async def release(self, escalation_id: int, actor: Actor) -> ActionResult:
        """Give a claimed escalation back to the queue (claimer or team admin only)."""
        ...

    async def resolve(
        self, escalation_id: int, actor: Actor, outcome: str, note: str | None
    ) -> ActionResult:
        """Close a claimed escalation with an outcome and a note (claimer or team admin only)."""
        ...

    async def still_on_it(self, escalation_id: int, actor: Actor) -> ActionResult:
        """The claimer answers an idle reminder: restart the idle clock (claimer or admin)."""
        ...

    async def hand_back(self, escalation_id: int, actor: Actor) -> ActionResult:
        """Close a claimed escalation by giving the conversation back to the bot."""
        ...

    async def card(self, escalation_id: int) -> Card | None:
        """The card as it stands now, or None for an unknown id."""
        ...

    async def claimed_by(self, actor: Actor) -> list[Card]:
        """Escalations the actor holds, newest first."""
        ...

    async def teams_of(self, actor: Actor) -> list[str] | None:
        """The teams listing the actor as agent or admin; None when none does (show all)."""
        ...

    async def open_queue(self, teams: list[str] | None = None) -> list[Card]:
        """Open (unclaimed) escalations, oldest first; all teams when `teams` is None."""
        ...

    async def today(self) -> QueueStats:
        """Today's numbers (UTC day)."""
        ...
