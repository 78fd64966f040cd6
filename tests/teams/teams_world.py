"""The pieces of a Teams story: the whole service with Teams on, a fake Bot Connector, helpers.

Cards reach Teams the way they do in production: a signed webhook post is stored, the outbox row
is delivered by the real worker (`run_once()`, with the test's clock), and the real
`TeamsNotifier` calls the fake Bot Connector. Clicks are invokes posted to the same service's
`/api/messages` and handled by the real `HandoffService` over the test's database.
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from bot.app import Service, build_service, create_app
from bot.cards import Card, CardStatus
from bot.config import Settings
from bot.console import ConsoleNotifier
from bot.teams import TeamsNotifier
from connectors.generic import sign
from engine.assessment import HandoffSummary, SummaryMessage
from engine.events import Role
from storage import escalations, teams_channels
from storage.db import Database
from storage.escalations import EscalationRecord
from tests.bot.conftest import SECRET, T0, Clock, angry_conversation
from tests.teams.teams_activities import (
    ESCALATIONS_CHANNEL,
    LEAD,
    TeamsUser,
    card_click,
    installed_in_team,
    mention_in_channel,
)
from tests.teams.teams_fake_connector import FakeBotConnector, card_errors

REPO = Path(__file__).resolve().parents[2]
OPENED_AT = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
MESSAGE = "application/vnd.microsoft.activity.message"


def write_rules(path: Path, *, channel: str = ESCALATIONS_CHANNEL, **levels: str) -> Path:
    """The repository's rules.yaml with the support team's cards going to a Teams channel.

    `levels` sets a level's mention, e.g. `urgent="@here"`.
    """
    rules: dict[str, Any] = yaml.safe_load((REPO / "rules.yaml").read_text(encoding="utf-8"))
    support = rules["teams"]["support"]
    support["teams"] = {"channel": channel}
    support["admins"] = [LEAD.aad_object_id]
    for level in rules["levels"]:
        if level["name"] in levels:
            level["mention"] = levels[level["name"]]
    path.write_text(yaml.safe_dump(rules, sort_keys=False), encoding="utf-8")
    return path


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


def card_text(card: dict[str, Any]) -> str:
    """All the text a reader sees on a card, in one string."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key in ("text", "title", "value"):
                if isinstance(node.get(key), str):
                    found.append(node[key])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(card)
    return "\n".join(found)


def buttons(card: dict[str, Any]) -> list[str]:
    """The card's actions: the verb of each Action.Execute, the title of the others."""
    return [action.get("verb") or action["title"] for action in card.get("actions", [])]


@dataclass
class TeamsWorld:
    """Everything a story needs: Teams' side, the service, its database and its clock."""

    service: Service
    client: TestClient[web.Request, web.Application]
    connector: FakeBotConnector
    service_url: str
    clock: Clock

    @property
    def database(self) -> Database:
        """The service's database."""
        return self.service.database

    @property
    def notifier(self) -> TeamsNotifier:
        """The Teams notifier the delivery worker uses."""
        notifier = self.service.notifiers["teams"]
        assert isinstance(notifier, TeamsNotifier)
        return notifier

    async def send(self, activity: dict[str, Any]) -> ClientResponse:
        """Post an activity to /api/messages as Teams would (local-testing mode: no token)."""
        return await self.client.post("/api/messages", json=activity)

    async def install(self) -> None:
        """Add the bot to the team and @mention it in the escalations channel."""
        assert (await self.send(installed_in_team(self.service_url))).status in {200, 201}
        mention = mention_in_channel(self.service_url, ESCALATIONS_CHANNEL, "Escalations", "hi")
        assert (await self.send(mention)).status in {200, 201}

    async def webhook(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Post conversation events to the generic webhook, signed like the platform signs."""
        body = json.dumps(payload).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Escalations-Signature": sign(SECRET, body),
        }
        response = await self.client.post("/webhooks/generic", data=body, headers=headers)
        assert response.status == 200, await response.text()
        answer: dict[str, Any] = await response.json()
        return answer

    async def escalate(self, conversation_id: str = "c-angry") -> int:
        """An angry customer: the service opens one escalation; its id."""
        answer = await self.webhook(angry_conversation(conversation_id))
        [escalation_id] = answer["escalations_opened"]
        return int(escalation_id)

    async def deliver(self) -> int:
        """One round of the delivery worker at the test clock's time."""
        return await self.service.delivery.run_once()

    def card_message_id(self, escalation_id: int) -> str:
        """The Teams activity id of the escalation's card, as the service recorded it."""
        with self.database.session() as session:
            rows = escalations.card_messages(session=session, escalation_id=escalation_id)
        [row] = [row for row in rows if row.surface == "teams"]
        assert row.channel == ESCALATIONS_CHANNEL
        return row.message_id

    def everyone_sees(self, message_id: str) -> dict[str, Any]:
        """The card in the channel as it stands in Teams, checked against the schema."""
        [attachment] = self.connector.messages[message_id]["attachments"]
        assert attachment["contentType"] == ADAPTIVE_CARD
        card: dict[str, Any] = attachment["content"]
        assert card_errors(card) == []
        return card

    def escalation(self, escalation_id: int) -> EscalationRecord:
        """The escalation as it stands in the database."""
        with self.database.session() as session:
            record = escalations.get_escalation(session=session, escalation_id=escalation_id)
        assert record is not None
        return record

    def channels_in_database(self) -> dict[str, dict[str, Any]]:
        """The Teams channel references the service stored."""
        with self.database.session() as session:
            return teams_channels.teams_channels(session=session)

    async def click(
        self,
        user: TeamsUser,
        verb: str,
        escalation_id: int,
        inputs: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """`user` clicks a button on the escalation's card; the invoke's answer."""
        message_id = self.card_message_id(escalation_id)
        activity = card_click(
            self.service_url, user, verb, escalation_id, message_id, inputs=inputs
        )
        response = await self.send(activity)
        assert response.status == 200
        body: dict[str, Any] = await response.json()
        if body["type"] == ADAPTIVE_CARD:
            assert card_errors(body["value"]) == []
        return body


@asynccontextmanager
async def open_world(
    database: Database,
    tmp_path: Path,
    *,
    rules: Path | None = None,
    environ: dict[str, str] | None = None,
) -> AsyncIterator[TeamsWorld]:
    """The service (Teams in local-testing mode unless `environ` says otherwise) and fake Teams."""
    connector = FakeBotConnector()
    connector_server = TestServer(connector.app())
    await connector_server.start_server()
    # Teams' service URLs end in a slash ("https://smba.trafficmanager.net/emea/").
    service_url = str(connector_server.make_url("/"))
    env = {
        "ESCALATIONS_WEBHOOK_SECRET": SECRET,
        "ESCALATIONS_TEAMS_LOCAL_TESTING": "1",
        **(environ or {}),
    }
    settings = Settings(
        rules_path=rules or write_rules(tmp_path / "rules.yaml"),
        data_dir=tmp_path / "data",
        public_url="https://escalations.example.com",
        environ=env,
    )
    clock = Clock(T0.replace(minute=1))
    service = build_service(
        settings,
        clock=clock,
        database=database,
        extra_notifiers={"console": ConsoleNotifier(io.StringIO())},
    )
    app = create_app(service, watch_rules_every=None, run_delivery=False)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield TeamsWorld(service, client, connector, service_url, clock)
    finally:
        await client.close()
        await connector_server.close()
