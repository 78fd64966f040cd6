"""The Slack test bench: the whole service (webhooks, real database, real delivery worker) with
Slack turned on from its environment, the real bolt app on /slack/events, the real slack_sdk
client pointed at a local fake Web API, and requests signed the way Slack signs them."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import io
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer

from bot.app import Service, build_service, create_app
from bot.cards import Card, CardStatus
from bot.config import Settings
from bot.console import ConsoleNotifier
from bot.slack import SlackNotifier, SlackSettings
from bot.slack.notifier import create_web_client
from connectors.generic import sign
from engine.assessment import HandoffSummary, SummaryMessage
from engine.events import Role
from storage import escalations, outbox
from storage.db import Database
from storage.escalations import EscalationRecord
from storage.outbox import OutboxItem
from tests.bot.conftest import T0, Clock, conversation, message
from tests.slack.slack_fake_api import FakeSlack

REPO = Path(__file__).resolve().parents[2]
TOKEN = "xoxb-test-token"
SIGNING_SECRET = "test-signing-secret"
WEBHOOK_SECRET = "test-webhook-secret"
PUBLIC_URL = "https://escalations.example.com"
NOW = datetime(2024, 5, 6, 10, 4, 10, tzinfo=UTC)
OPENED = datetime(2024, 5, 6, 10, 2, 0, tzinfo=UTC)
# The channels rules.yaml names, by the ids Slack answers with when a card is posted there.
CARD_CHANNEL = "C0SUPPORT"
CHANNEL_IDS = {
    "support-escalations": CARD_CHANNEL,
    "billing-escalations": "C0BILLING",
    "enterprise-escalations": "C0ENTERPRISE",
    "support-leads": "C0LEADS",
}


@dataclass(frozen=True)
class SlackUser:
    id: str
    name: str


ANA = SlackUser("U0ANA", "ana")
BEN = SlackUser("U0BEN", "ben")
LEAD = SlackUser("U0LEAD", "lead")  # an admin of the support team


def make_card(escalation_id: int = 42, **changes: Any) -> Card:
    """One escalation card, the way the hand-off service builds it (for rendering stories)."""
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


def angry_customer(cid: str, name: str = "Ana", tier: str = "standard") -> dict[str, Any]:
    """A generic-webhook post: a customer stuck in bot fallbacks who asks for a person."""
    fallback = {"fallback": True, "intent": "fallback", "confidence": 0.2}
    return conversation(
        cid,
        message("m1", "customer", "where is my refund for order #48213??", 0),
        message("m2", "bot", "Sorry, I didn't get that.", 2, **fallback),
        message("m3", "customer", "my refund for order 48213, where is it", 20),
        message("m4", "bot", "Sorry, I didn't get that.", 22, **fallback),
        message("m5", "customer", "this is useless. I want to talk to a real person now", 40),
        customer={"id": f"u-{cid}", "name": name, "tier": tier},
    )


def slack_signature(secret: str, timestamp: str, body: str) -> str:
    """Slack's v0 request signature: HMAC-SHA256 of "v0:{timestamp}:{body}"."""
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


@dataclass
class SlackBench:
    """A running service with Slack on: post conversations in, click as agents, read Slack."""

    fake: FakeSlack
    service: Service
    http: TestClient[Any, Any]
    clock: Clock

    # --- the chatbot platform and the delivery worker --------------------------------------

    async def post_conversation(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The chatbot platform posts conversation events to the generic webhook."""
        body = json.dumps(payload).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Escalations-Signature": sign(WEBHOOK_SECRET, body),
        }
        response = await self.http.post("/webhooks/generic", data=body, headers=headers)
        assert response.status == 200, await response.text()
        answer: dict[str, Any] = await response.json()
        return answer

    async def escalate(self, cid: str = "c-angry", name: str = "Ana") -> int:
        """An angry customer's conversation arrives; returns the escalation it opened."""
        answer = await self.post_conversation(angry_customer(cid, name))
        (escalation_id,) = answer["escalations_opened"]
        assert isinstance(escalation_id, int)
        return escalation_id

    async def deliver(self) -> int:
        """One round of the delivery worker at the driven clock's time."""
        return await self.service.delivery.run_once()

    async def escalate_and_deliver(self, cid: str = "c-angry", name: str = "Ana") -> int:
        """An escalation whose card is already in the channel."""
        escalation_id = await self.escalate(cid, name)
        await self.deliver()
        assert self.card_ts(escalation_id) is not None
        return escalation_id

    # --- what the database says -------------------------------------------------------------

    def escalation(self, escalation_id: int) -> EscalationRecord:
        """The escalation as stored."""
        with self.service.database.session() as session:
            record = escalations.get_escalation(session=session, escalation_id=escalation_id)
        assert record is not None
        return record

    def card_ts(self, escalation_id: int) -> str | None:
        """The Slack ts recorded for the escalation's card, or None when none is recorded."""
        with self.service.database.session() as session:
            rows = escalations.card_messages(session=session, escalation_id=escalation_id)
        found = [row.message_id for row in rows if row.surface == "slack"]
        assert len(found) <= 1
        return found[0] if found else None

    def pending(self, surface: str = "slack") -> list[OutboxItem]:
        """Deliveries still waiting for one surface."""
        with self.service.database.session() as session:
            return [item for item in outbox.pending(session=session) if item.surface == surface]

    def card(self, escalation_id: int) -> dict[str, Any]:
        """The escalation's card as the channel shows it now."""
        ts = self.card_ts(escalation_id)
        assert ts is not None
        return self.fake.message(CARD_CHANNEL, ts)

    # --- Slack posting to the service ---------------------------------------------------------

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
        message_ts: str = "1700000000.000001",
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
                "message_ts": message_ts,
                "channel_id": channel,
                "is_ephemeral": False,
            }
            payload["channel"] = {"id": channel, "name": "support-escalations"}
            payload["message"] = {"type": "message", "ts": message_ts, "text": "card"}
        return await self.interact(payload)

    async def click_on_card(self, action_id: str, escalation_id: int, user: SlackUser) -> None:
        """A user clicks a button on the escalation's card where it was posted."""
        ts = self.card_ts(escalation_id)
        assert ts is not None
        response = await self.click(action_id, str(escalation_id), user, message_ts=ts)
        assert response.status == 200, await response.text()

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
                "channel_name": "support-escalations",
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
                "event_time": int(self.clock().timestamp()),
                "authorizations": [{"team_id": "T0TEAM", "user_id": "U0BOT", "is_bot": True}],
            }
        )
        return await self.post_signed(body, "application/json")


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    """The fake Web API; every blocks/view payload sent to it must have been valid."""
    fake = FakeSlack(token=TOKEN, channels=dict(CHANNEL_IDS))
    await fake.start()
    yield fake
    await fake.close()
    assert fake.invalid_payloads == []


def slack_environ(fake: FakeSlack) -> dict[str, str]:
    """The environment that turns Slack on, pointed at the fake Web API."""
    return {
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake.api_url,
    }


@pytest.fixture
def settings(fake_slack: FakeSlack) -> SlackSettings:
    """Slack settings as the service reads them from the environment."""
    found = SlackSettings.from_env(slack_environ(fake_slack))
    assert found is not None
    return found


@pytest.fixture
def notifier(settings: SlackSettings) -> SlackNotifier:
    """The notifier the delivery worker posts cards with, on the fake Web API."""
    return SlackNotifier(create_web_client(settings))


@pytest.fixture
def rules_path(tmp_path: Path) -> Path:
    """The shipped rules.yaml, with one admin added to the support team."""
    text = (REPO / "rules.yaml").read_text(encoding="utf-8")
    with_admin = text.replace("\n  support:\n", f"\n  support:\n    admins: [{LEAD.id}]\n", 1)
    assert with_admin != text
    path = tmp_path / "rules.yaml"
    path.write_text(with_admin, encoding="utf-8")
    return path


async def start_bench(
    database: Database, fake: FakeSlack, rules_path: Path, data_dir: Path, clock: Clock
) -> AsyncIterator[SlackBench]:
    """Build the service from its environment and serve it on a local port."""
    fake.clock = clock  # Slack stamps messages with its own time; here that is the story's
    environ = {"ESCALATIONS_WEBHOOK_SECRET": WEBHOOK_SECRET, **slack_environ(fake)}
    settings = Settings(
        rules_path=rules_path, data_dir=data_dir, public_url=PUBLIC_URL, environ=environ
    )
    service = build_service(
        settings,
        clock=clock,
        database=database,
        extra_notifiers={"console": ConsoleNotifier(io.StringIO())},
    )
    assert "slack" in service.notifiers
    app = create_app(service, watch_rules_every=None, run_delivery=False)
    async with TestClient(TestServer(app)) as http:
        yield SlackBench(fake, service, http, clock)


@pytest.fixture
def clock() -> Clock:
    """The service's clock, a minute after the conversations start."""
    return Clock(T0 + timedelta(minutes=1))


@pytest.fixture
async def bench(
    database: Database, fake_slack: FakeSlack, rules_path: Path, tmp_path: Path, clock: Clock
) -> AsyncIterator[SlackBench]:
    """The service with Slack on, on SQLite and on PostgreSQL."""
    async for running in start_bench(database, fake_slack, rules_path, tmp_path / "data", clock):
        yield running


def filled_in(view: dict[str, Any], *, outcome: str, note: str | None = None) -> dict[str, Any]:
    """The Resolve modal as Slack sends it back on submit: the view plus the user's input."""
    selected = {"text": {"type": "plain_text", "text": outcome}, "value": outcome}
    return {
        **view,
        "id": "V0MODAL",
        "state": {
            "values": {
                "outcome": {"outcome": {"type": "static_select", "selected_option": selected}},
                "note": {"note": {"type": "plain_text_input", "value": note}},
            }
        },
    }
