"""The Chatwoot connector: agent bot webhooks become canonical events, with the ids calls need."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from connectors.base import BadPayload, BadSignature, InboundRequest
from connectors.chatwoot import ChatwootConnector
from engine.events import EventType, Role
from tests.handoff.test_platform_handoff import chatwoot_message, chatwoot_signature

RECEIVED = datetime(2026, 11, 24, 10, 5, tzinfo=UTC)


def request(body: Any, url: str = "https://esc.example.com/webhooks/chatwoot") -> InboundRequest:
    raw = json.dumps(body).encode()
    return InboundRequest(url, {}, raw, "application/json", RECEIVED)


def test_a_customer_message_names_the_account_conversation_and_customer() -> None:
    (batch,) = ChatwootConnector().parse(request(chatwoot_message(41, 500, True, "hi", 0)))

    assert batch.conversation_id == "3:41"
    assert batch.meta.platform == "chatwoot"
    assert batch.meta.metadata == {
        "chatwoot_account_id": "3",
        "chatwoot_conversation_id": "41",
        "chatwoot_inbox_id": "12",
    }
    assert (batch.meta.customer.id, batch.meta.customer.email) == ("77", "rui@example.com")
    (event,) = batch.events
    assert (event.event_id, event.role, event.text) == ("message:500", Role.CUSTOMER, "hi")


def test_the_agent_bot_speaks_as_the_bot_and_a_person_as_an_agent() -> None:
    bot = chatwoot_message(41, 501, False, "Sorry?", 1)
    person = {**chatwoot_message(41, 502, False, "Ana here", 2)}
    person["sender"] = {"id": 5, "name": "Ana", "type": "user"}

    roles = [ChatwootConnector().parse(request(b))[0].events[0].role for b in (bot, person)]
    assert roles == [Role.BOT, Role.AGENT]


def test_private_notes_and_activity_lines_are_not_part_of_the_conversation() -> None:
    note = {**chatwoot_message(41, 503, False, "internal", 3), "private": True}
    activity = chatwoot_message(41, 504, False, "Assigned to Ana", 4)
    activity["message_type"] = "activity"

    assert ChatwootConnector().parse(request(note)) == []
    assert ChatwootConnector().parse(request(activity)) == []


@pytest.mark.parametrize(
    ("event", "status", "expected"),
    [
        ("conversation_opened", "open", EventType.HANDOFF),
        ("conversation_status_changed", "open", EventType.HANDOFF),
        ("conversation_resolved", "resolved", EventType.SESSION_END),
        ("conversation_created", "pending", EventType.SESSION_START),
    ],
)
def test_conversation_events_mark_hand_offs_and_endings(
    event: str, status: str, expected: EventType
) -> None:
    body = {
        "event": event,
        "id": 41,
        "status": status,
        "timestamp": 1795946500,
        "messages": [{"id": 1, "account_id": 3}],
    }
    (batch,) = ChatwootConnector().parse(request(body))
    assert batch.conversation_id == "3:41"
    assert [e.type for e in batch.events] == [expected]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"event": "message_created", "id": 1}, "conversation: missing"),
        (
            {"event": "message_created", "id": 1, "conversation": {"id": 4}},
            "account.id: missing (no account in the event or its conversation)",
        ),
        ([], "body: expected a JSON object, got array"),
    ],
)
def test_a_malformed_post_says_what_is_wrong(body: Any, message: str) -> None:
    with pytest.raises(BadPayload, match=message.replace("(", r"\(").replace(")", r"\)")):
        ChatwootConnector().parse(request(body))


def test_an_unsigned_agent_bot_post_needs_the_token_in_its_url() -> None:
    connector = ChatwootConnector()
    body = chatwoot_message(41, 500, True, "hi", 0)
    connector.verify(request(body, "https://esc.example.com/webhooks/chatwoot?token=s3"), "s3")
    with pytest.raises(BadSignature, match="token does not match the secret"):
        connector.verify(request(body, "https://esc.example.com/webhooks/chatwoot?token=x"), "s3")
    with pytest.raises(BadSignature, match="missing X-Chatwoot-Signature header or token"):
        connector.verify(request(body), "s3")


def test_a_signed_post_is_checked_against_its_timestamp_and_body() -> None:
    raw = json.dumps(chatwoot_message(41, 500, True, "hi", 0)).encode()
    headers = {
        "X-Chatwoot-Timestamp": "1795946400",
        "X-Chatwoot-Signature": chatwoot_signature("s3", "1795946400", raw),
    }
    url = "https://esc.example.com/webhooks/chatwoot"
    ChatwootConnector().verify(InboundRequest(url, headers, raw, "application/json"), "s3")
    replayed = {**headers, "X-Chatwoot-Timestamp": "1795946401"}
    with pytest.raises(BadSignature, match="does not match the body and timestamp"):
        ChatwootConnector().verify(InboundRequest(url, replayed, raw, "application/json"), "s3")
