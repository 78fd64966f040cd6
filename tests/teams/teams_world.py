"""The pieces of a Teams story: a sample card and the world (fake Teams, real bot, domain)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient

from bot.cards import Card, CardStatus
from bot.notifier import MessageRef
from bot.teams import JsonFileChannelDirectory, TeamsIntegration
from engine.assessment import HandoffSummary, SummaryMessage
from engine.events import Role
from tests.teams.teams_activities import ESCALATIONS_CHANNEL, installed_in_team, mention_in_channel
from tests.teams.teams_fake_connector import FakeBotConnector
from tests.teams.teams_memory_handoff import MemoryHandoff

OPENED_AT = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def sample_card(escalation_id: int = 1, **changes: Any) -> Card:
    """An open escalation as the service would hand it to the notifier."""
    summary = HandoffSummary(
        wants=("My order #A-1042 never arrived and I was charged twice",),
        bot_tried=("order_status", "refund_policy"),
        recent=(
            SummaryMessage(Role.CUSTOMER, "Where is my order??", OPENED_AT, "e1"),
            SummaryMessage(Role.BOT, "Sorry, I didn't get that.", OPENED_AT, "e2"),
            SummaryMessage(Role.CUSTOMER, "I want to talk to a human", OPENED_AT, "e3"),
        ),
        sentiment_trend=(-0.2, -0.6),
        identifiers=("#A-1042",),
        turns=6,
        started_at=OPENED_AT,
        last_at=OPENED_AT,
    )
    fields: dict[str, Any] = {
        "escalation_id": escalation_id,
        "conversation_id": f"conv-{escalation_id}",
        "status": CardStatus.OPEN,
        "level": "critical",
        "score": 8.5,
        "mention": None,
        "team": "support",
        "platform": "generic",
        "customer_name": "Dana Cruz",
        "customer_tier": "gold",
        "opened_at": OPENED_AT,
        "reasons": ("Asked for a human", "3 bot fallbacks in a row (turns 4-6)"),
        "summary": summary,
        "transcript_url": f"https://escalations.example.com/t/{escalation_id}",
        "platform_url": f"https://platform.example.com/c/{escalation_id}",
    }
    fields.update(changes)
    return Card(**fields)


@dataclass
class TeamsWorld:
    """Everything a story needs: Teams' side, the bot's endpoint and the hand-off domain."""

    connector: FakeBotConnector
    service_url: str
    client: TestClient[web.Request, web.Application]
    integration: TeamsIntegration
    handoff: MemoryHandoff
    channels: JsonFileChannelDirectory

    async def send(self, activity: dict[str, Any]) -> ClientResponse:
        """Post an activity to /api/messages as Teams would (local-testing mode: no token)."""
        return await self.client.post("/api/messages", json=activity)

    async def install(self) -> None:
        """Add the bot to the team and @mention it in the escalations channel."""
        assert (await self.send(installed_in_team(self.service_url))).status in {200, 201}
        mention = mention_in_channel(self.service_url, ESCALATIONS_CHANNEL, "Escalations", "hi")
        assert (await self.send(mention)).status in {200, 201}

    async def deliver_updates(self, ref: MessageRef) -> None:
        """Do what the outbox does for each queued update_card: edit the message in place."""
        while self.handoff.pending_updates:
            escalation_id = self.handoff.pending_updates.pop(0)
            await self.integration.notifier.update(ref, self.handoff.cards[escalation_id])
