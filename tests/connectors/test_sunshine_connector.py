"""Zendesk Sunshine Conversations: v2 webhooks with several events per post."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from connectors.base import BadPayload, BadSignature
from connectors.registry import get_connector
from connectors.sunshine import SunshineConnector
from engine.events import ConversationEvent, Customer, EventType, Role
from tests.connectors.webhooks import FIXTURES, Webhook

CONVERSATION = "f52b01137aa6c250bc7251fa"
WEBHOOK = Webhook("sunshine")
post, fixture = WEBHOOK.post, WEBHOOK.fixture


def test_a_customer_message_from_telegram_becomes_a_customer_message() -> None:
    [batch] = SunshineConnector().parse(fixture("sunshine_conversationMessageEvent.json"))

    assert batch.conversation_id == CONVERSATION
    assert batch.meta.platform == "sunshine"
    assert batch.meta.customer == Customer(id="912382197", name="Steve Rogers")
    assert batch.events == (
        ConversationEvent(
            event_id="5f74c7d84a146f3abd72af1d",
            type=EventType.MESSAGE,
            timestamp=datetime(2020, 9, 30, 18, 0, 56, 820000, tzinfo=UTC),
            role=Role.CUSTOMER,
            text="hello",
        ),
    )


def test_a_pressed_button_is_the_customer_speaking() -> None:
    [batch] = SunshineConnector().parse(fixture("sunshine_conversationPostbackEvent.json"))

    assert batch.meta.customer.id == "912382197"
    assert batch.events == (
        ConversationEvent(
            event_id="5f74a0d52b5315fc007e798a",
            type=EventType.MESSAGE,
            timestamp=datetime(2020, 9, 30, 15, 14, 29, 834000, tzinfo=UTC),
            role=Role.CUSTOMER,
            text="Greet",
            extra={"postback": True},
        ),
    )


@pytest.mark.parametrize(
    ("name", "extra"),
    [
        ("sunshine_switchboardPassControlEvent.json", {"action": "passControl", "active": "bot"}),
        (
            "sunshine_switchboardOfferControlEvent.json",
            {"action": "offerControl", "active": "bot", "pending": "human"},
        ),
    ],
)
def test_the_switchboards_own_hand_off_is_recorded_as_a_handoff(
    name: str, extra: dict[str, str]
) -> None:
    [batch] = SunshineConnector().parse(fixture(name))

    assert batch.events == (
        ConversationEvent(
            event_id="5f74a0d52b5315fc007e798a",
            type=EventType.HANDOFF,
            timestamp=datetime(2020, 9, 30, 15, 14, 29, 834000, tzinfo=UTC),
            extra=extra,
        ),
    )


def test_every_documented_webhook_example_parses_and_only_the_used_types_yield_events() -> None:
    examples = json.loads(
        (FIXTURES / "sunshine_conversations_all_webhook_examples.json").read_text()
    )

    produced = {
        trigger: [
            event.type
            for batch in SunshineConnector().parse(post(json.dumps(body).encode()))
            for event in batch.events
        ]
        for trigger, body in examples.items()
    }

    assert {trigger: types for trigger, types in produced.items() if types} == {
        "conversation:create": [EventType.SESSION_START],
        "conversation:message": [EventType.MESSAGE],
        "conversation:postback": [EventType.MESSAGE],
        "switchboard:offerControl": [EventType.HANDOFF],
        "switchboard:passControl": [EventType.HANDOFF],
    }
    assert len(produced) == 25


def test_a_mixed_post_splits_by_conversation_with_bot_fallback_agent_and_hand_off() -> None:
    first, second = SunshineConnector().parse(fixture("sunshine_mixed_post.handwritten.json"))

    assert first.conversation_id == "c0ffee137aa6c250bc7251fa"
    assert first.meta.customer == Customer(
        id="crm-4411", name="Ana Lima", tier="enterprise", email="ana@example.com"
    )
    assert first.meta.language == "en-gb"
    # The post's app id is kept: the switchboard hand-off call names the app.
    assert first.meta.metadata == {
        "lang": "en-gb",
        "tier": "enterprise",
        "sunshine_app_id": "5ebee0975ac5304b664a12fa",
    }
    assert [(e.type, e.role, e.text) for e in first.events] == [
        (EventType.MESSAGE, Role.CUSTOMER, "where is my refund??"),
        (EventType.MESSAGE, Role.BOT, "Sorry, I didn't get that."),
        (EventType.HANDOFF, None, None),
        (EventType.MESSAGE, Role.AGENT, "Hi Ana, I'm looking at your refund now."),
    ]
    fallback = first.events[1]
    assert (fallback.intent, fallback.confidence, fallback.fallback) == ("fallback", 0.18, True)
    assert first.events[2].extra == {"action": "passControl", "active": "zd-agentWorkspace"}

    assert second.conversation_id == "d00d0137aa6c250bc7251fb"
    assert second.meta.customer == Customer(id="8b508c10541a4b0ff472e5e3")
    [image] = second.events
    assert (image.role, image.text, image.extra) == (
        Role.CUSTOMER,
        "[image]",
        {"content_type": "image"},
    )


def test_a_retried_post_yields_the_same_event_ids() -> None:
    request = fixture("sunshine_mixed_post.handwritten.json")

    first = [e.event_id for b in SunshineConnector().parse(request) for e in b.events]
    again = [e.event_id for b in SunshineConnector().parse(request) for e in b.events]

    assert first == again


def with_first_event(change: Any) -> bytes:
    body = json.loads((FIXTURES / "sunshine_conversationMessageEvent.json").read_text())
    change(body["events"][0])
    return json.dumps(body).encode()


BAD: list[tuple[str, bytes, str]] = [
    ("not json", b"<xml/>", "body is not valid JSON: Expecting value (line 1, column 1)"),
    ("an array", b"[]", "body: expected a JSON object, got array"),
    ("no events", b"{}", "events: missing"),
    ("event not object", b'{"events": [1]}', "events[0]: expected an object, got number"),
    ("no type", with_first_event(lambda e: e.pop("type")), "events[0].type: missing"),
    ("no payload", with_first_event(lambda e: e.pop("payload")), "events[0].payload: missing"),
    (
        "no conversation id",
        with_first_event(lambda e: e["payload"]["conversation"].pop("id")),
        "events[0].payload.conversation.id: missing",
    ),
    (
        "bad time",
        with_first_event(lambda e: e.update(createdAt="soon")),
        "events[0].createdAt: not an ISO 8601 time: 'soon'",
    ),
    (
        "no author",
        with_first_event(lambda e: e["payload"]["message"].pop("author")),
        "events[0].payload.message.author: missing",
    ),
    (
        "no message id",
        with_first_event(lambda e: e["payload"]["message"].pop("id")),
        "events[0].payload.message.id: missing",
    ),
]


@pytest.mark.parametrize(("body", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_post_the_connector_cannot_read_is_refused_naming_what_is_missing(
    body: bytes, message: str
) -> None:
    with pytest.raises(BadPayload) as caught:
        SunshineConnector().parse(post(body))

    assert str(caught.value) == message


def test_the_webhook_secret_in_x_api_key_is_required() -> None:
    connector = get_connector("sunshine")
    assert connector is not None
    connector.verify(post(b"{}", {"x-api-key": "whsec"}), "whsec")

    with pytest.raises(BadSignature) as missing:
        connector.verify(post(b"{}"), "whsec")
    assert str(missing.value) == "missing X-API-Key header"
    with pytest.raises(BadSignature) as wrong:
        connector.verify(post(b"{}", {"X-API-Key": "whsec2"}), "whsec")
    assert str(wrong.value) == "X-API-Key does not match the secret"
