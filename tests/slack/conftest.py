"""The Slack test bench: the real bolt app behind an aiohttp test server, the real slack_sdk
client pointed at a local fake Web API, and requests signed the way Slack signs them."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from bot.cards import Card, CardStatus
from bot.slack import SlackIntegration, SlackSettings, create_slack_app
from engine.assessment import HandoffSummary, SummaryMessage
from engine.events import Role
from tests.slack.slack_fake_api import FakeSlack
from tests.slack.slack_memory_handoff import MemoryHandoff

TOKEN = "xoxb-test-token"
SIGNING_SECRET = "test-signing-secret"
NOW = datetime(2024, 5, 6, 10, 4, 10, tzinfo=UTC)
OPENED = datetime(2024, 5, 6, 10, 2, 0, tzinfo=UTC)
CARD_CHANNEL = "C0SUPPORT"


@dataclass(frozen=True)
class SlackUser:
    id: str
    name: str


ANA = SlackUser("U0ANA", "ana")
BEN = SlackUser("U0BEN", "ben")
LEAD = SlackUser("U0LEAD", "lead")


def make_card(escalation_id: int = 42, **changes: Any) -> Card:
    """One escalation card, the way the engine and hand-off service would build it."""
    summary = HandoffSummary(
        wants=("Refund for order #1234, charged twice",),
        bot_tried=("refund_policy answer", "order_status lookup"),
        recent=(
            SummaryMessage(Role.CUSTOMER, "I was charged twice!", OPENED, "e4"),
            SummaryMessage(Role.BOT, "Sorry, I didn't get that.", OPENED, "e5"),
            SummaryMessage(Role.CUSTOMER, "Let me talk to a human", OPENED, "e6"),
        ),
        sentiment_trend=(0.4, -0.2, -0.7),
        identifiers=("#1234",),
        turns=6,
        started_at=OPENED,
        last_at=OPENED,
    )
    card = Card(
        escalation_id=escalation_id,
        conversation_id="conv-77",
        status=CardStatus.OPEN,
        level="urgent",
        score=8.5,
        mention="@here",
        team="billing",
        platform="botpress",
        customer_name="Dana Smith",
        customer_tier="gold",
        opened_at=OPENED,
        reasons=(
            "3 bot fallbacks in a row, turns 4-6",
            "asked for a human at 10:02",
            "sentiment fell from +0.4 to -0.7",
        ),
        summary=summary,
        transcript_url="https://escalations.example.com/conversations/conv-77",
        platform_url="https://botpress.example.com/inbox/conv-77",
    )
    return dataclasses.replace(card, **changes)


def slack_signature(secret: str, timestamp: str, body: str) -> str:
    """Slack's v0 request signature: HMAC-SHA256 of "v0:{timestamp}:{body}"."""
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


@dataclass
class SlackBench:
    """What a story needs: the fake Slack, the hand-off state, and a signed-request client."""

    fake: FakeSlack
    handoff: MemoryHandoff
    integration: SlackIntegration
    http: TestClient[web.Request, web.Application]

    async def post_signed(
        self,
        body: str,
        content_type: str,
        *,
        timestamp: int | None = None,
        secret: str = SIGNING_SECRET,
    ) -> ClientResponse:
        """POST to /slack/events exactly as Slack does, signature headers included."""
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": slack_signature(secret, stamp, body),
        }
        return await self.http.post("/slack/events", data=body.encode(), headers=headers)

    async def interact(self, payload: dict[str, Any]) -> ClientResponse:
        """An interactive payload (block_actions, view_submission), form-encoded like Slack's."""
        body = urlencode({"payload": json.dumps(payload)})
        return await self.post_signed(body, "application/x-www-form-urlencoded")

    async def click(
        self,
        action_id: str,
        value: str,
        user: SlackUser,
        *,
        channel: str = CARD_CHANNEL,
        from_home: bool = False,
    ) -> ClientResponse:
        """A user clicks a button on a card in `channel`, or on their App Home."""
        payload: dict[str, Any] = {
            "type": "block_actions",
            "team": {"id": "T0TEAM", "domain": "example"},
            "user": {"id": user.id, "username": user.name, "name": user.name, "team_id": "T0TEAM"},
            "api_app_id": "A0APP",
            "token": "legacy-verification-token",
            "trigger_id": "1111.2222.abcd",
            "response_url": "https://hooks.slack.com/actions/T0TEAM/1/abc",
            "actions": [
                {
                    "type": "button",
                    "action_id": action_id,
                    "block_id": "b1",
                    "value": value,
                    "text": {"type": "plain_text", "text": "Button"},
                    "action_ts": "1700000000.000001",
                }
            ],
        }
        if from_home:
            payload["container"] = {"type": "view", "view_id": "V0HOME"}
            payload["view"] = {"id": "V0HOME", "type": "home", "blocks": []}
        else:
            payload["container"] = {
                "type": "message",
                "message_ts": "1700000000.000001",
                "channel_id": channel,
                "is_ephemeral": False,
            }
            payload["channel"] = {"id": channel, "name": "support"}
            payload["message"] = {"type": "message", "ts": "1700000000.000001", "text": "card"}
        return await self.interact(payload)

    async def submit_view(self, view: dict[str, Any], user: SlackUser) -> ClientResponse:
        """A user presses the modal's submit button with the view's current state."""
        payload = {
            "type": "view_submission",
            "team": {"id": "T0TEAM", "domain": "example"},
            "user": {"id": user.id, "username": user.name, "name": user.name, "team_id": "T0TEAM"},
            "api_app_id": "A0APP",
            "token": "legacy-verification-token",
            "trigger_id": "3333.4444.abcd",
            "view": view,
        }
        return await self.interact(payload)

    async def command(self, text: str, user: SlackUser) -> ClientResponse:
        """A user types `/escalations <text>` in a channel."""
        body = urlencode(
            {
                "token": "legacy-verification-token",
                "team_id": "T0TEAM",
                "team_domain": "example",
                "channel_id": CARD_CHANNEL,
                "channel_name": "support",
                "user_id": user.id,
                "user_name": user.name,
                "command": "/escalations",
                "text": text,
                "api_app_id": "A0APP",
                "response_url": "https://hooks.slack.com/commands/T0TEAM/1/abc",
                "trigger_id": "5555.6666.abcd",
            }
        )
        return await self.post_signed(body, "application/x-www-form-urlencoded")

    async def event(self, event: dict[str, Any]) -> ClientResponse:
        """An Events API callback, JSON like Slack sends it."""
        body = json.dumps(
            {
                "token": "legacy-verification-token",
                "team_id": "T0TEAM",
                "api_app_id": "A0APP",
                "event": event,
                "type": "event_callback",
                "event_id": "Ev0001",
                "event_time": int(NOW.timestamp()),
                "authorizations": [{"team_id": "T0TEAM", "user_id": "U0BOT", "is_bot": True}],
            }
        )
        return await self.post_signed(body, "application/json")


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    """The fake Web API; every blocks/view payload sent to it must have been valid."""
    fake = FakeSlack(token=TOKEN)
    await fake.start()
    yield fake
    await fake.close()
    assert fake.invalid_payloads == []


@pytest.fixture
def settings(fake_slack: FakeSlack) -> SlackSettings:
    """Settings as the service reads them from the environment."""
    environ = {
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake_slack.api_url,
    }
    found = SlackSettings.from_env(environ)
    assert found is not None
    return found


@pytest.fixture
async def bench(fake_slack: FakeSlack, settings: SlackSettings) -> AsyncIterator[SlackBench]:
    """The service's Slack endpoint running for real on a local port."""
    handoff = MemoryHandoff(now=NOW, admins=frozenset({LEAD.id}))
    integration = create_slack_app(handoff, settings)
    app = web.Application()
    app.add_routes(integration.routes())
    async with TestClient(TestServer(app)) as http:
        yield SlackBench(fake_slack, handoff, integration, http)
