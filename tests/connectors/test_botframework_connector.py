"""Bot Framework: Activities, .transcript files and a transcript logger's batches."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from connectors.base import BadPayload, BadSignature
from connectors.botframework import BotFrameworkConnector
from connectors.payload import stable_id
from connectors.registry import get_connector
from engine.events import ConversationEvent, Customer, EventType, Role
from tests.connectors.webhooks import FIXTURES, Webhook

WEBHOOK = Webhook("botframework")
post, fixture = WEBHOOK.post, WEBHOOK.fixture


def test_a_transcript_file_becomes_the_conversation_with_cards_as_text() -> None:
    [batch] = BotFrameworkConnector().parse(fixture("botframework_chatdown_sample.transcript"))

    assert batch.conversation_id == "RuMT/Z9TMNVd+f1BBAPdlPBAC2g="
    assert batch.meta.platform == "botframework"
    assert batch.meta.customer == Customer(id="iWYRSfG2L/R91ab+T5ecn1P2GbY=", name="Joe")
    assert batch.meta.metadata == {"channel": "chatdown"}
    assert [e.type for e in batch.events].count(EventType.SESSION_START) == 1
    messages = [(e.role, e.text) for e in batch.events if e.type is EventType.MESSAGE]
    assert messages[:3] == [
        (Role.CUSTOMER, "Hi!"),
        (Role.BOT, "Hello there!"),
        (
            Role.BOT,
            "Cheese gromit! - Hero Card - This is some text describing the card,"
            " it's cool because it's cool\n"
            "Cheese gromit! - Thumbnail Card - This is some text describing the card,"
            " it's cool because it's cool",
        ),
    ]
    assert len(messages) == 11
    assert batch.events[1] == ConversationEvent(
        event_id="10",
        type=EventType.MESSAGE,
        timestamp=datetime(2019, 4, 20, 19, 48, 49, 300000, tzinfo=UTC),
        role=Role.CUSTOMER,
        text="Hi!",
    )
    # The transcript says nothing about fallbacks, so neither do we.
    assert {e.fallback for e in batch.events if e.role is Role.BOT} == {None}


def test_a_logger_batch_carries_the_recognizers_no_match_to_the_bots_reply() -> None:
    [batch] = BotFrameworkConnector().parse(
        fixture("botframework_transcript_logger_batch.handwritten.json")
    )

    assert batch.meta.customer == Customer(id="dl_7f3a", name="Ana Lima")
    assert batch.meta.language == "en-GB"
    assert [(e.type, e.role, e.intent, e.confidence, e.fallback) for e in batch.events] == [
        (EventType.SESSION_START, None, None, None, None),
        (EventType.MESSAGE, Role.CUSTOMER, None, None, None),
        (EventType.MESSAGE, Role.BOT, "None", 0.71, True),
        (EventType.MESSAGE, Role.BOT, "RefundStatus", 0.35, True),
        (EventType.HANDOFF, None, None, None, None),
        (EventType.MESSAGE, Role.AGENT, None, None, None),
        (EventType.SESSION_END, None, None, None, None),
    ]
    assert batch.events[1].timestamp == datetime(2026, 11, 24, 10, 0, 1, 123456, tzinfo=UTC)
    assert batch.events[4].extra == {"name": "handoff.initiate"}
    assert batch.events[6].outcome == "completedSuccessfully"


def test_a_single_teams_activity_with_a_very_long_conversation_id_is_kept_stable() -> None:
    activity = json.loads(
        (FIXTURES / "botframework_teams_message_activity.handwritten.json").read_text()
    )

    [batch] = BotFrameworkConnector().parse(
        fixture("botframework_teams_message_activity.handwritten.json")
    )

    assert batch.conversation_id == stable_id(activity["conversation"]["id"])
    assert batch.meta.customer.name == "Bo Chen"
    assert batch.meta.metadata == {"channel": "msteams"}
    assert [(e.role, e.text) for e in batch.events] == [
        (Role.CUSTOMER, "I need to talk to someone about my invoice")
    ]


def test_a_transcript_store_page_is_read_like_an_array() -> None:
    activities = json.loads((FIXTURES / "botframework_chatdown_sample.transcript").read_text())
    page = json.dumps({"activities": activities, "continuationToken": None}).encode()

    [batch] = BotFrameworkConnector().parse(post(page))

    assert len(batch.events) == 12


def test_activities_we_do_not_use_yield_nothing() -> None:
    typing = {"type": "typing", "conversation": {"id": "c"}, "timestamp": "2026-11-24T10:00:00Z"}

    assert BotFrameworkConnector().parse(post(json.dumps(typing).encode())) == []


BAD: list[tuple[str, object, str]] = [
    ("a number", 7, "body: expected an Activity or an array of them, got number"),
    ("no type", {"conversation": {"id": "c"}}, "type: missing"),
    ("no conversation", {"type": "message"}, "conversation: missing"),
    ("no conversation id", {"type": "message", "conversation": {}}, "conversation.id: missing"),
    (
        "bad time",
        {"type": "message", "conversation": {"id": "c"}, "timestamp": "now"},
        "timestamp: not an ISO 8601 time: 'now'",
    ),
    ("array item not an object", ["x"], "[0]: expected an object, got string"),
    (
        "page item without type",
        {"activities": [{"conversation": {"id": "c"}}]},
        "activities[0].type: missing",
    ),
]


@pytest.mark.parametrize(("body", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_body_the_connector_cannot_read_is_refused(body: object, message: str) -> None:
    with pytest.raises(BadPayload) as caught:
        BotFrameworkConnector().parse(post(json.dumps(body).encode()))

    assert str(caught.value) == message


def test_the_loggers_shared_secret_is_required() -> None:
    connector = get_connector("botframework")
    assert connector is not None
    connector.verify(post(b"[]", {"x-escalations-secret": "bf"}), "bf")

    with pytest.raises(BadSignature) as caught:
        connector.verify(post(b"[]"), "bf")

    assert str(caught.value) == "missing X-Escalations-Secret header"
