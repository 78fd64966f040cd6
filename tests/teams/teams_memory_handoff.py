"""A small in-memory `Handoff` for the Teams tests, with the service's rules.

One lock makes claim atomic, as the storage layer's conditional UPDATE does; release and resolve
are for the holder or an admin. Each successful change is queued in `pending_updates`, the way the
real service enqueues an `update_card` outbox row.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime

from bot.cards import Card, CardStatus, format_wait
from bot.handoff import ActionResult, Actor, QueueStats


class MemoryHandoff:
    """Escalations in a dict; `now` is set by the test."""

    def __init__(self, now: datetime, admins: frozenset[str] = frozenset()) -> None:
        self.now = now
        self.admins = admins
        self.cards: dict[int, Card] = {}
        self.holders: dict[int, str] = {}
        self.pending_updates: list[int] = []
        self._lock = asyncio.Lock()

    def add(self, card: Card) -> None:
        """Store an escalation as it stands."""
        self.cards[card.escalation_id] = card

    def _changed(self, card: Card) -> ActionResult:
        self.cards[card.escalation_id] = card
        self.pending_updates.append(card.escalation_id)
        return ActionResult(True, "Done.", card)

    def _refusal(self, card: Card, verb: str) -> ActionResult:
        if card.status is CardStatus.CLAIMED and card.claimed_by:
            return ActionResult(False, f"Only {card.claimed_by} or an admin can {verb} this.", card)
        return ActionResult(False, f"This escalation is {card.status}.", card)

    def _may_close(self, card: Card, actor: Actor) -> bool:
        holder = self.holders.get(card.escalation_id)
        return card.status is CardStatus.CLAIMED and (
            actor.user_id == holder or actor.user_id in self.admins
        )

    async def claim(self, escalation_id: int, actor: Actor) -> ActionResult:
        """Take an open escalation."""
        async with self._lock:
            card = self.cards.get(escalation_id)
            if card is None:
                return ActionResult(False, "No such escalation.", None)
            if card.status is not CardStatus.OPEN:
                if card.claimed_by and card.claimed_at:
                    ago = format_wait((self.now - card.claimed_at).total_seconds())
                    return ActionResult(False, f"{card.claimed_by} claimed this {ago} ago.", card)
                return ActionResult(False, f"This escalation is {card.status}.", card)
            self.holders[escalation_id] = actor.user_id
            return self._changed(
                dataclasses.replace(
                    card,
                    status=CardStatus.CLAIMED,
                    claimed_by=actor.display_name,
                    claimed_at=self.now,
                )
            )

    async def release(self, escalation_id: int, actor: Actor) -> ActionResult:
        """Give a claimed escalation back."""
        async with self._lock:
            card = self.cards.get(escalation_id)
            if card is None:
                return ActionResult(False, "No such escalation.", None)
            if not self._may_close(card, actor):
                return self._refusal(card, "release")
            del self.holders[escalation_id]
            return self._changed(
                dataclasses.replace(card, status=CardStatus.OPEN, claimed_by=None, claimed_at=None)
            )

    async def resolve(
        self, escalation_id: int, actor: Actor, outcome: str, note: str | None
    ) -> ActionResult:
        """Close a claimed escalation."""
        async with self._lock:
            card = self.cards.get(escalation_id)
            if card is None:
                return ActionResult(False, "No such escalation.", None)
            if not self._may_close(card, actor):
                return self._refusal(card, "resolve")
            return self._changed(
                dataclasses.replace(
                    card,
                    status=CardStatus.RESOLVED,
                    closed_by=actor.display_name,
                    closed_at=self.now,
                    outcome=outcome,
                    note=note,
                )
            )

    async def card(self, escalation_id: int) -> Card | None:
        """The card as it stands."""
        return self.cards.get(escalation_id)

    async def claimed_by(self, actor: Actor) -> list[Card]:
        """Escalations the actor holds, newest first."""
        held = [self.cards[i] for i, holder in self.holders.items() if holder == actor.user_id]
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
        """Numbers over everything held in memory."""
        statuses = [card.status for card in self.cards.values()]
        return QueueStats(
            opened=len(statuses),
            claimed=statuses.count(CardStatus.CLAIMED),
            resolved=statuses.count(CardStatus.RESOLVED),
            open_unclaimed=statuses.count(CardStatus.OPEN),
            median_time_to_claim_seconds=None,
        )
