"""An in-memory Handoff for the Slack handler tests, with the same rules as the real service.

Claim wins only on an open escalation; release and resolve only for the claimer or an admin.
It records each operation, so a test can await the one a click should cause.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime, timedelta

from bot.cards import Card, CardStatus, format_wait
from bot.handoff import ActionResult, Actor, QueueStats

WAIT_LIMIT_SECONDS = 10  # a guard against a hung test, never a timing assertion


class MemoryHandoff:
    """Escalations in a dict; the clock is a field the test sets."""

    def __init__(self, now: datetime, admins: frozenset[str] = frozenset()) -> None:
        self.now = now
        self.admins = admins
        self.cards: dict[int, Card] = {}
        self.holders: dict[int, Actor] = {}
        self.operations: list[tuple[str, int, Actor]] = []
        self._changed = asyncio.Condition()

    def add(self, card: Card) -> None:
        """Store an escalation as it stands."""
        self.cards[card.escalation_id] = card

    async def wait_for(self, operation: str, count: int = 1) -> None:
        """Wait until `operation` ran `count` times (bolt runs handlers after acking)."""

        def done() -> bool:
            return sum(1 for name, _, _ in self.operations if name == operation) >= count

        async with asyncio.timeout(WAIT_LIMIT_SECONDS), self._changed:
            await self._changed.wait_for(done)

    async def _record(self, operation: str, escalation_id: int, actor: Actor) -> None:
        async with self._changed:
            self.operations.append((operation, escalation_id, actor))
            self._changed.notify_all()

    def _may_act(self, escalation_id: int, actor: Actor) -> bool:
        holder = self.holders.get(escalation_id)
        return actor.user_id in self.admins or (
            holder is not None and holder.user_id == actor.user_id
        )

    async def claim(self, escalation_id: int, actor: Actor) -> ActionResult:
        """Take an open escalation."""
        await self._record("claim", escalation_id, actor)
        card = self.cards.get(escalation_id)
        if card is None:
            return ActionResult(False, "No such escalation.", None)
        if card.status is not CardStatus.OPEN:
            holder = self.holders.get(escalation_id)
            if holder is not None and card.claimed_at is not None:
                ago = format_wait((self.now - card.claimed_at).total_seconds())
                return ActionResult(False, f"{holder.display_name} claimed this {ago} ago.", card)
            return ActionResult(False, f"This escalation is {card.status}.", card)
        card = dataclasses.replace(
            card, status=CardStatus.CLAIMED, claimed_by=actor.display_name, claimed_at=self.now
        )
        self.cards[escalation_id] = card
        self.holders[escalation_id] = actor
        return ActionResult(True, "Claimed.", card)

    async def release(self, escalation_id: int, actor: Actor) -> ActionResult:
        """Give a claimed escalation back."""
        await self._record("release", escalation_id, actor)
        card = self.cards.get(escalation_id)
        if card is None:
            return ActionResult(False, "No such escalation.", None)
        if card.status is not CardStatus.CLAIMED or not self._may_act(escalation_id, actor):
            holder = self.holders.get(escalation_id)
            who = holder.display_name if holder else "nobody"
            return ActionResult(False, f"Only {who} or an admin can release this.", card)
        card = dataclasses.replace(card, status=CardStatus.OPEN, claimed_by=None, claimed_at=None)
        self.cards[escalation_id] = card
        del self.holders[escalation_id]
        return ActionResult(True, "Released.", card)

    async def resolve(
        self, escalation_id: int, actor: Actor, outcome: str, note: str | None
    ) -> ActionResult:
        """Close a claimed escalation."""
        await self._record("resolve", escalation_id, actor)
        card = self.cards.get(escalation_id)
        if card is None:
            return ActionResult(False, "No such escalation.", None)
        if card.status is not CardStatus.CLAIMED or not self._may_act(escalation_id, actor):
            holder = self.holders.get(escalation_id)
            who = holder.display_name if holder else "nobody"
            return ActionResult(False, f"Only {who} or an admin can resolve this.", card)
        card = dataclasses.replace(
            card,
            status=CardStatus.RESOLVED,
            closed_by=actor.display_name,
            closed_at=self.now,
            outcome=outcome,
            note=note,
        )
        self.cards[escalation_id] = card
        return ActionResult(True, "Resolved.", card)

    async def card(self, escalation_id: int) -> Card | None:
        """The card as it stands."""
        return self.cards.get(escalation_id)

    async def claimed_by(self, actor: Actor) -> list[Card]:
        """What the actor holds, newest first."""
        held = [
            self.cards[escalation_id]
            for escalation_id, holder in self.holders.items()
            if holder.user_id == actor.user_id
            and self.cards[escalation_id].status is CardStatus.CLAIMED
        ]
        return sorted(held, key=lambda card: card.opened_at, reverse=True)

    async def open_queue(self, teams: list[str] | None = None) -> list[Card]:
        """Open escalations, oldest first."""
        waiting = [
            card
            for card in self.cards.values()
            if card.status is CardStatus.OPEN and (teams is None or card.team in teams)
        ]
        return sorted(waiting, key=lambda card: card.opened_at)

    async def today(self) -> QueueStats:
        """Counts over every stored escalation."""
        cards = list(self.cards.values())
        waits = sorted(
            (card.claimed_at - card.opened_at).total_seconds()
            for card in cards
            if card.claimed_at is not None
        )
        return QueueStats(
            opened=len(cards),
            claimed=sum(1 for card in cards if card.claimed_at is not None),
            resolved=sum(1 for card in cards if card.status is CardStatus.RESOLVED),
            open_unclaimed=sum(1 for card in cards if card.status is CardStatus.OPEN),
            median_time_to_claim_seconds=waits[len(waits) // 2] if waits else None,
        )


def minutes(count: float) -> timedelta:
    """A readable duration for test clocks."""
    return timedelta(minutes=count)
