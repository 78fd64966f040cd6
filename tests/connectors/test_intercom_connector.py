"""Intercom: conversation webhooks of both payload generations, signed with HMAC-SHA1."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest

from connectors.base import BadPayload, BadSignature
from connectors.html_text import html_to_text
from connectors.intercom import IntercomConnector
from connectors.registry import get_connector
from engine.events import ConversationEvent, Customer, EventType, Role
from tests.connectors.webhooks import FIXTURES, Webhook

CLIENT_SECRET = "intercom-client-secret"
WEBHOOK = Webhook("intercom")
post, fixture = WEBHOOK.post, WEBHOOK.fixture


def at(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def test_the_operator_bots_reply_time_notice_is_a_bot_message() -> None:
    [batch] = IntercomConnector().parse(
        fixture("intercom_conversation_operator_replied.zulip_fixture.json")
    )

    assert batch.conversation_id == "215472621202693"
    assert batch.meta.platform == "intercom"
    assert batch.meta.customer == Customer(
        id="5e68ece4-0ec8-4792-baac-02deba39e7fe", name=None, email=None
    )
    assert (
        batch.meta.link == "https://app.intercom.com/a/apps/abc123def/conversations/215472621202693"
    )
    assert batch.events == (
        ConversationEvent(
            event_id="37358121213",
            type=EventType.MESSAGE,
            timestamp=at(1768031793),
            role=Role.BOT,
            text="shetty will reply as soon as they can.",
            extra={"part_type": "channel_and_reply_time_expectation"},
        ),
    )


def test_an_older_generation_new_conversation_starts_a_session_with_the_customers_words() -> None:
    [batch] = IntercomConnector().parse(
        fixture("intercom_conversation_user_created.older.handwritten.json")
    )

    assert batch.meta.customer == Customer(id="crm-4411", name="Ana Lima", email="ana@example.com")
    assert batch.meta.link == "https://app.intercom.io/a/apps/q7xk2p1a/conversations/30011122233"
    assert batch.events == (
        ConversationEvent("410000001:start", EventType.SESSION_START, at(1764064800)),
        ConversationEvent(
            event_id="410000001",
            type=EventType.MESSAGE,
            timestamp=at(1764064800),
            role=Role.CUSTOMER,
            text="My refund still hasn't arrived & it's been 3 weeks.\nOrder #A-1009",
        ),
    )


def test_an_agent_taking_the_conversation_is_a_hand_off_and_internal_notes_are_left_out() -> None:
    [batch] = IntercomConnector().parse(
        fixture("intercom_conversation_admin_replied.older.handwritten.json")
    )

    assert batch.events == (
        ConversationEvent(
            event_id="5000000101",
            type=EventType.MESSAGE,
            timestamp=at(1764065100),
            role=Role.AGENT,
            text="Hi Ana,\nI'm taking this one. Checking the refund now.",
            extra={"part_type": "assignment"},
        ),
        ConversationEvent(
            event_id="5000000101:handoff",
            type=EventType.HANDOFF,
            timestamp=at(1764065100),
            extra={"to_type": "admin", "to_id": "7001", "to_name": "Marta"},
        ),
    )


def test_fin_routing_to_a_team_is_recorded_as_the_platforms_hand_off() -> None:
    [batch] = IntercomConnector().parse(
        fixture("intercom_conversation_user_replied.fin_routed.handwritten.json")
    )

    assert batch.meta.customer == Customer(
        id="crm-7788", name="Bo Chen", tier="premium", email="bo@example.com"
    )
    assert [(e.event_id, e.type, e.role, e.text) for e in batch.events] == [
        ("5000000201", EventType.MESSAGE, Role.CUSTOMER, "that didn't help, I want a person"),
        ("5000000202", EventType.MESSAGE, Role.BOT, "Sure, I'll pass you to the team."),
        ("5000000202:handoff", EventType.HANDOFF, None, None),
        ("30011199999:fin-routed-to-team", EventType.HANDOFF, None, None),
    ]
    assert batch.events[2].extra == {"to_type": "team", "to_id": "900", "to_name": "Billing"}


def test_a_ping_and_topics_we_do_not_use_yield_nothing() -> None:
    assert IntercomConnector().parse(fixture("intercom_ping.handwritten.json")) == []
    assert IntercomConnector().parse(post(b'{"topic": "contact.created", "data": {}}')) == []


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>one</p><p>two</p>", "one\ntwo"),
        ("a<br>b<br/>c", "a\nb\nc"),
        ("<p>5 &lt; 6 &amp;&nbsp;ok</p>", "5 < 6 &\xa0ok"),
        ('<p>see <a href="https://x.example">the   docs</a></p>', "see the docs"),
        ('<img src="x.png" alt="receipt"><script>alert(1)</script>', "[image: receipt]"),
        ("<ul><li>a</li><li>b</li></ul>", "a\nb"),
    ],
)
def test_html_bodies_become_the_text_a_reader_sees(html: str, text: str) -> None:
    assert html_to_text(html) == text


BAD: list[tuple[str, object, str]] = [
    ("no topic", {"data": {}}, "topic: missing"),
    ("no data", {"topic": "conversation.user.replied"}, "data: missing"),
    ("no item", {"topic": "conversation.user.replied", "data": {}}, "data.item: missing"),
    (
        "no conversation id",
        {"topic": "conversation.user.replied", "data": {"item": {"type": "conversation"}}},
        "data.item.id: missing",
    ),
    (
        "part without author",
        {
            "topic": "conversation.user.replied",
            "data": {
                "item": {
                    "id": "1",
                    "conversation_parts": {
                        "conversation_parts": [{"id": "p", "created_at": 1, "body": "<p>x</p>"}]
                    },
                }
            },
        },
        "data.item.conversation_parts.conversation_parts[0].author: missing",
    ),
    (
        "part with a date string",
        {
            "topic": "conversation.user.replied",
            "data": {
                "item": {
                    "id": "1",
                    "conversation_parts": {"conversation_parts": [{"id": "p", "created_at": "x"}]},
                }
            },
        },
        "data.item.conversation_parts.conversation_parts[0].created_at: expected a number,"
        " got string",
    ),
    (
        "created without opening message",
        {"topic": "conversation.user.created", "data": {"item": {"id": "1", "created_at": 1}}},
        "data.item.conversation_message: missing",
    ),
]


@pytest.mark.parametrize(("body", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_notification_the_connector_cannot_read_is_refused_naming_what_is_missing(
    body: object, message: str
) -> None:
    with pytest.raises(BadPayload) as caught:
        IntercomConnector().parse(post(json.dumps(body).encode()))

    assert str(caught.value) == message


def test_a_body_signed_with_the_client_secret_is_accepted() -> None:
    body = (FIXTURES / "intercom_conversation_operator_replied.zulip_fixture.json").read_bytes()
    signature = "sha1=" + hmac.new(CLIENT_SECRET.encode(), body, hashlib.sha1).hexdigest()
    connector = get_connector("intercom")
    assert connector is not None

    connector.verify(post(body, {"x-hub-signature": signature}), CLIENT_SECRET)


def test_the_signature_matches_a_known_vector() -> None:
    # printf 'hello' | openssl dgst -sha1 -hmac key
    request = post(b"hello", {"X-Hub-Signature": "sha1=b34ceac4516ff23a143e61d79d0fa7a4fbe5f266"})

    IntercomConnector().verify(request, "key")


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing X-Hub-Signature header"),
        ({"X-Hub-Signature": "sha256=" + "0" * 64}, "X-Hub-Signature must look like sha1=<hex>"),
        ({"X-Hub-Signature": "sha1=xyz"}, "X-Hub-Signature must look like sha1=<hex>"),
        ({"X-Hub-Signature": "sha1=" + "0" * 40}, "signature does not match the body"),
    ],
)
def test_an_unsigned_or_wrongly_signed_notification_is_refused(
    headers: dict[str, str], message: str
) -> None:
    with pytest.raises(BadSignature) as caught:
        IntercomConnector().verify(post(b"hello", headers), "key")

    assert str(caught.value) == message
