"""Stories: every platform's conversation, posted to a running service in the platform's own format.

For each connector a customer's conversation arrives at /webhooks/<name> as the platform sends
it (payloads and signatures in tests/connectors/platform_conversations.py): the bot answers once,
then fails twice, and the customer asks for a person. What the platform says of a failed reply
(its fallback flag, no-match, missed utterance, low confidence...) must raise the engine's
`fallbacks` signal on that reply; the conversation must open exactly one escalation; and the
platform retrying every request must change nothing.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import Service, build_service, create_app
from bot.config import Settings
from bot.console import ConsoleNotifier
from connectors.registry import CONNECTORS
from engine.events import ConversationEvent, EventType, Role
from engine.signals import is_bot_fallback
from storage import conversations, escalations
from storage.db import Database
from tests.bot.conftest import Clock
from tests.connectors.platform_conversations import (
    HUMAN_REQUEST,
    PUBLIC_URL,
    SECRETS,
    STORIES,
    T0,
    TURNS,
    Delivery,
    Story,
)

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Desk:
    """The service as a platform reaches it, and its database as the support team reads it."""

    service: Service
    http: TestClient[Any, Any]
    clock: Clock

    async def send(self, name: str, delivery: Delivery) -> tuple[int, Any]:
        """The platform's request, sent at its time: the service's status and JSON answer."""
        self.clock.now = delivery.at
        response = await self.http.post(
            f"/webhooks/{name}",
            data=delivery.body,
            headers=dict(delivery.headers),
            params=dict(delivery.query),
        )
        return response.status, await response.json()

    async def deliver(self, name: str, delivery: Delivery) -> Any:
        """The platform's request, which the service must accept; its answer."""
        status, answer = await self.send(name, delivery)
        assert status == 200, answer
        return answer

    def transcript(self, conversation_id: str) -> list[conversations.StoredEvent]:
        with self.service.database.session() as session:
            return conversations.transcript(session=session, conversation_id=conversation_id)

    def escalations(self, conversation_id: str) -> list[escalations.EscalationRecord]:
        with self.service.database.session() as session:
            return escalations.list_escalations(session=session, conversation_id=conversation_id)

    def conversation(self, conversation_id: str) -> conversations.ConversationRecord:
        with self.service.database.session() as session:
            record = conversations.get_conversation(
                session=session, conversation_id=conversation_id
            )
        assert record is not None, f"no conversation {conversation_id}"
        return record


@asynccontextmanager
async def running_service(database: Database, tmp_path: Path) -> AsyncIterator[Desk]:
    """The whole service on a local port, every platform's secret set, the clock in hand."""
    clock = Clock(T0)
    settings = Settings(
        rules_path=REPO / "rules.yaml",
        data_dir=tmp_path / "data",
        public_url=PUBLIC_URL,
        environ=dict(SECRETS),
    )
    service = build_service(
        settings,
        clock=clock,
        database=database,
        extra_notifiers={"console": ConsoleNotifier(io.StringIO())},
    )
    app = create_app(service, watch_rules_every=None, run_delivery=False)
    async with TestClient(TestServer(app)) as http:
        yield Desk(service, http, clock)


def signals(stored: conversations.StoredEvent) -> set[str]:
    return {reason.signal for reason in stored.reasons}


def verdicts(desk: Desk, conversation_id: str) -> list[tuple[Any, ...]]:
    """Every stored event with the engine's verdict on it, to compare before and after."""
    return [
        (s.event, s.score, s.level, s.reasons, s.decision) for s in desk.transcript(conversation_id)
    ]


async def replay(desk: Desk, story: Story) -> None:
    """The whole conversation arrives; every assertion the issue asks of a platform."""
    # Without the platform's signature or credentials, the same request is refused.
    opening = story.deliveries[0]
    bare = Delivery(opening.at, opening.body, {"Content-Type": opening.headers["Content-Type"]})
    status, refusal = await desk.send(story.connector, bare)
    assert status == 401, refusal
    assert desk.transcript(story.conversation_id) == []

    answers = [await desk.deliver(story.connector, d) for d in story.deliveries]

    stored = desk.transcript(story.conversation_id)
    assert desk.conversation(story.conversation_id).meta.platform == story.platform
    said = [s.event.text for s in stored if s.event.role is Role.CUSTOMER]
    assert said == [turn.customer for turn in TURNS]
    replies = [s for s in stored if s.event.role is Role.BOT]
    assert len(replies) == len(TURNS)

    # (a) The answered turn is no fallback; each reply the platform marked failed is one.
    for turn, reply in zip(TURNS, replies, strict=True):
        if not turn.failed:
            assert "fallbacks" not in signals(reply), reply.reasons
            continue
        assert story.marked(reply.event), f"not marked as the platform marks it: {reply.event}"
        (reason,) = [r for r in reply.reasons if r.signal == "fallbacks"]
        assert reply.event.event_id in reason.event_ids

    # (b) Two failures and a request for a person: exactly one escalation, opened by the request.
    (escalation,) = desk.escalations(story.conversation_id)
    assert escalation.active
    assert {"fallbacks", "human_request"} <= {r.signal for r in escalation.reasons}
    request = next(s for s in stored if s.event.text == HUMAN_REQUEST)
    assert escalation.opened_at_event_id == request.event.event_id

    # The platform retries every request later: the same answers, nothing new stored or opened.
    before = verdicts(desk, story.conversation_id), desk.escalations(story.conversation_id)
    record = desk.conversation(story.conversation_id)
    for delivery, first in zip(story.retried(), answers, strict=True):
        retry = Delivery(
            delivery.at.replace(hour=11), delivery.body, delivery.headers, delivery.query
        )
        again = await desk.deliver(story.connector, retry)
        if isinstance(first, dict) and "status" in first:
            assert again["status"] == first["status"]
            assert again.get("stored", 0) == 0
            assert again.get("escalations_opened", []) == []
        else:
            assert again == first  # Dialogflow and Lex get the very answer they got before
    assert (
        verdicts(desk, story.conversation_id),
        desk.escalations(story.conversation_id),
    ) == before
    after = desk.conversation(story.conversation_id)
    assert (after.state, after.score, after.level) == (record.state, record.score, record.level)


def test_every_registered_connector_has_a_story() -> None:
    told = {STORIES[name]().connector for name in STORIES}

    assert told == set(CONNECTORS)


@pytest.mark.parametrize("name", list(STORIES))
async def test_a_platform_conversation_with_fallbacks_and_a_request_for_a_person_escalates_once(
    sqlite_database: Database, tmp_path: Path, name: str
) -> None:
    async with running_service(sqlite_database, tmp_path) as desk:
        await replay(desk, STORIES[name]())


@pytest.mark.postgres
@pytest.mark.parametrize("name", ["sunshine", "dialogflow-cx", "twilio", "rasa"])
async def test_the_same_stories_on_postgresql(
    postgres_database: Database, tmp_path: Path, name: str
) -> None:
    async with running_service(postgres_database, tmp_path) as desk:
        await replay(desk, STORIES[name]())


def test_the_failed_replies_words_alone_would_not_be_a_fallback() -> None:
    """So the fallback signal above comes from the platform's marker, not from the bot's words."""
    for turn in TURNS:
        reply = turn.reply()
        plain = ConversationEvent("e", EventType.MESSAGE, T0, role=Role.BOT, text=reply)
        assert not is_bot_fallback(plain, reply.lower(), low_confidence=0.3), reply
