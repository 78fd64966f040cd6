"""The console surface: cards printed as text, so escalations are visible with no chat app."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO

from bot.cards import Card, CardStatus, format_wait
from bot.notifier import MessageRef


def render_text(card: Card, now: datetime | None = None) -> str:
    """The card as plain text: the same content a chat card shows."""
    now = now or datetime.now(UTC)
    customer = card.customer_name or "unknown customer"
    if card.customer_tier:
        customer += f" ({card.customer_tier})"
    head = f"[{card.level.upper()} {card.score:.0f}] escalation #{card.escalation_id}"
    lines = [
        "=" * 72,
        f"{head} · team {card.team} · {card.platform}"
        + (f" · {card.mention}" if card.mention else ""),
        f"Customer: {customer} · conversation {card.conversation_id}",
        f"Status: {_status_line(card, now)}",
        "Why:",
        *(f"  - {reason}" for reason in card.reasons),
    ]
    if card.summary.wants:
        lines.append("Wants: " + " / ".join(card.summary.wants))
    if card.summary.bot_tried:
        lines.append("Bot tried: " + ", ".join(card.summary.bot_tried))
    if card.summary.identifiers:
        lines.append("Identifiers: " + ", ".join(card.summary.identifiers))
    if card.summary.recent:
        lines.append("Recent messages:")
        for message in card.summary.recent:
            lines.append(f"  {message.timestamp:%H:%M} {message.role.value:>8}: {message.text}")
    if card.transcript_url:
        lines.append(f"Transcript: {card.transcript_url}")
    if card.platform_url:
        lines.append(f"Open in {card.platform}: {card.platform_url}")
    lines.extend(f"Note: {notice}" for notice in card.notices)
    lines.append("=" * 72)
    return "\n".join(lines)


def _status_line(card: Card, now: datetime) -> str:
    if card.status is CardStatus.OPEN:
        return f"open, waiting {format_wait((now - card.opened_at).total_seconds())}"
    if card.status is CardStatus.CLAIMED and card.claimed_at is not None:
        waited = format_wait((card.claimed_at - card.opened_at).total_seconds())
        return f"claimed by {card.claimed_by} at {card.claimed_at:%H:%M} (waited {waited})"
    if card.status is CardStatus.RESOLVED:
        note = f" — {card.note}" if card.note else ""
        return f"resolved by {card.closed_by} ({card.outcome}){note}"
    if card.status is CardStatus.RECOVERED:
        return "closed: the bot recovered before anyone claimed"
    if card.status is CardStatus.EXPIRED:
        return "closed: the conversation ended before anyone claimed"
    return card.status.value


@dataclass
class ConsoleNotifier:
    """Prints cards and thread messages to a stream (standard output by default)."""

    stream: IO[str] = field(default_factory=lambda: sys.stdout)
    surface: str = "console"
    _count: int = 0

    async def post(self, card: Card, channel: str) -> MessageRef:
        """Print a new card."""
        self._count += 1
        self._write(f"\n[card for #{channel}]\n{render_text(card)}\n")
        return MessageRef(self.surface, channel, f"console-{card.escalation_id}")

    async def update(self, ref: MessageRef, card: Card) -> None:
        """Print the card again, marked as an update."""
        self._write(f"\n[card #{card.escalation_id} updated]\n{render_text(card)}\n")

    async def reply(self, ref: MessageRef, text: str, *, mention: str | None = None) -> None:
        """Print a thread message under the card's id."""
        called = f"{mention} " if mention else ""
        self._write(f"[thread of {ref.message_id}] {called}{text}\n")

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()
