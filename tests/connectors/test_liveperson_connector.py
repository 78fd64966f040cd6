"""LivePerson: Connector API webhooks, signed with base64 HMAC-SHA1 of the body."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from connectors.base import BadPayload, BadSignature, InboundRequest
from connectors.liveperson import LivePersonConnector
from connectors.registry import get_connector
from engine.events import ConversationEvent, Customer, EventType, Role
from tests.connectors.webhooks import FIXTURES, Webhook

# The app secret published with the captured notifications' test.
APP_SECRET = "rl9hacst6kqilbofup64n11ga3"
post = Webhook("liveperson").post


def captured(name: str) -> tuple[dict[str, Any], InboundRequest]:
    """A capture with its headers; LivePerson signed the body as compact JSON."""
    capture = json.loads((FIXTURES / name).read_text())
    body = json.dumps(capture["body"], separators=(",", ":")).encode()
    return capture, post(body, capture["headers"])


def at(milliseconds: int) -> datetime:
    return datetime.fromtimestamp(milliseconds / 1000, UTC)


@pytest.mark.parametrize(
    "name",
    [
        "liveperson_webhook_ms_MessagingEventNotification.thirdparty_test.json",
        "liveperson_webhook_cqm_ExConversationChangeNotification.thirdparty_test.json",
    ],
)
def test_the_captured_signatures_verify_with_the_app_secret(name: str) -> None:
    _, request = captured(name)
    connector = get_connector("liveperson")
    assert connector is not None

    connector.verify(request, APP_SECRET)


def test_a_consumer_message_is_the_customer_speaking() -> None:
    body = (FIXTURES / "liveperson_webhook_ContentEvent.thirdparty_test.json").read_bytes()

    [batch] = LivePersonConnector().parse(post(body))

    assert batch.conversation_id == "69d7026e-67e7-47ab-8dcb-ec14dfcdd31d"
    assert batch.meta.platform == "liveperson"
    assert batch.meta.customer == Customer(
        id="5c40c7731ad3f3d49a4a7cdd90e01dd33ab95446a7451884a76ab3079a757a5c"
    )
    assert batch.events == (
        ConversationEvent(
            event_id="69d7026e-67e7-47ab-8dcb-ec14dfcdd31d:4",
            type=EventType.MESSAGE,
            timestamp=at(1544190529528),
            role=Role.CUSTOMER,
            text="ae",
        ),
    )


def test_a_chat_state_event_is_skipped() -> None:
    _, request = captured("liveperson_webhook_ms_MessagingEventNotification.thirdparty_test.json")

    assert LivePersonConnector().parse(request) == []


def test_a_closed_conversation_ends_the_session() -> None:
    _, request = captured(
        "liveperson_webhook_cqm_ExConversationChangeNotification.thirdparty_test.json"
    )

    [batch] = LivePersonConnector().parse(request)

    assert batch.conversation_id == "b8b83fe9-75f0-46f2-baaa-2930f7192cfb"
    assert batch.meta.customer.id == (
        "2969e404f3be1c8cdda63f0b72d205ab5afb3fe3e3d7d72ab58245f564fdfd91"
    )
    assert batch.events == (
        ConversationEvent(
            event_id="b8b83fe9-75f0-46f2-baaa-2930f7192cfb:closed",
            type=EventType.SESSION_END,
            timestamp=at(1545399379370),
            outcome="closed by consumer",
        ),
    )


def test_bot_replies_carry_their_bot_response_intent_and_humans_are_agents() -> None:
    body = (FIXTURES / "liveperson_ms_bot_and_agent.handwritten.json").read_bytes()

    [batch] = LivePersonConnector().parse(post(body))

    assert [
        (e.event_id.split(":")[1], e.role, e.text, e.intent, e.confidence) for e in batch.events
    ] == [
        ("7", Role.CUSTOMER, "I was charged twice", None, None),
        ("8", Role.BOT, "Sorry, I didn't understand. Could you rephrase?", "Fallback", 0.22),
        ("10", Role.AGENT, "Hi, this is Marta from billing. Let me check.", None, None),
        ("11", Role.AGENT, "Refund issued", None, None),
    ]
    assert batch.events[3].extra == {"content_type": "RichContentEvent"}


def test_other_notification_types_are_skipped() -> None:
    assert LivePersonConnector().parse(post(b'{"type": "routing.RoutingTaskNotification"}')) == []


BAD: list[tuple[str, object, str]] = [
    ("no type", {"body": {}}, "type: missing"),
    ("no changes", {"type": "ms.MessagingEventNotification", "body": {}}, "body.changes: missing"),
    (
        "change without event",
        {"type": "ms.MessagingEventNotification", "body": {"changes": [{}]}},
        "body.changes[0].event: missing",
    ),
    (
        "message without conversation",
        {
            "type": "ms.MessagingEventNotification",
            "body": {"changes": [{"event": {"type": "ContentEvent"}}]},
        },
        "body.changes[0].conversationId: missing",
    ),
    (
        "message without time",
        {
            "type": "ms.MessagingEventNotification",
            "body": {"changes": [{"conversationId": "c", "event": {"type": "ContentEvent"}}]},
        },
        "body.changes[0].serverTimestamp: missing",
    ),
    (
        "state without result",
        {"type": "cqm.ExConversationChangeNotification", "body": {"changes": [{}]}},
        "body.changes[0].result: missing",
    ),
    (
        "closed without end",
        {
            "type": "cqm.ExConversationChangeNotification",
            "body": {
                "changes": [{"result": {"convId": "c", "conversationDetails": {"state": "CLOSE"}}}]
            },
        },
        "body.changes[0].result.conversationDetails.endTs: missing",
    ),
]


@pytest.mark.parametrize(("body", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_notification_the_connector_cannot_read_is_refused(body: object, message: str) -> None:
    with pytest.raises(BadPayload) as caught:
        LivePersonConnector().parse(post(json.dumps(body).encode()))

    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing X-Liveperson-Signature header"),
        (
            {"X-Liveperson-Signature": "sha1=not base64!"},
            "X-Liveperson-Signature must look like sha1=<base64>",
        ),
        (
            {"X-Liveperson-Signature": "sha256=e/TfS0wv1HbvEsMqcBMmFLcMslI="},
            "X-Liveperson-Signature must look like sha1=<base64>",
        ),
        (
            {"X-Liveperson-Signature": "sha1=e/TfS0wv1HbvEsMqcBMmFLcMslI="},
            "signature does not match the body",
        ),
    ],
)
def test_an_unsigned_or_wrongly_signed_notification_is_refused(
    headers: dict[str, str], message: str
) -> None:
    with pytest.raises(BadSignature) as caught:
        LivePersonConnector().verify(post(b'{"tampered": true}', headers), APP_SECRET)

    assert str(caught.value) == message
