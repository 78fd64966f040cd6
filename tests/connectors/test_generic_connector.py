"""The generic webhook format: what a bot team posts when no dedicated connector fits."""

from __future__ import annotations

import json
import unicodedata
from datetime import UTC, datetime
from typing import Any

import pytest

from connectors.base import BadPayload, BadSignature
from connectors.generic import GenericConnector, parse_generic_object, replay_label, sign
from connectors.payload import check_id
from connectors.registry import CONNECTORS, get_connector
from engine.events import ConversationEvent, Customer, EventType, Role
from tests.connectors.webhooks import Webhook

SECRET = "s3cret-for-tests"

EXAMPLE: dict[str, Any] = {
    "conversation_id": "c-123",
    "platform": "acme-bot",
    "customer": {"id": "u-9", "name": "Ana", "tier": "enterprise", "email": "ana@example.com"},
    "metadata": {"language": "en", "queue": "billing"},
    "link": "https://inbox.example.com/c-123",
    "events": [
        {
            "id": "m-1",
            "type": "message",
            "role": "customer",
            "text": "where is my refund??",
            "timestamp": "2026-11-24T10:00:00Z",
        },
        {
            "id": "m-2",
            "type": "message",
            "role": "bot",
            "text": "Sorry, I didn't get that.",
            "timestamp": "2026-11-24T10:00:02Z",
            "intent": "fallback",
            "confidence": 0.21,
            "fallback": True,
        },
        {
            "id": "e-3",
            "type": "session_end",
            "timestamp": "2026-11-24T10:09:00Z",
            "outcome": "abandoned",
        },
    ],
}

post = Webhook("generic").post


def with_event(**changes: Any) -> dict[str, Any]:
    """The example with its first event changed (a value of None removes the key)."""
    event = dict(EXAMPLE["events"][0])
    for key, value in changes.items():
        if value is None:
            event.pop(key, None)
        else:
            event[key] = value
    return {**EXAMPLE, "events": [event]}


def test_the_documented_example_becomes_one_batch_of_three_events() -> None:
    [batch] = GenericConnector().parse(post(json.dumps(EXAMPLE).encode()))

    assert batch.conversation_id == "c-123"
    assert batch.meta.platform == "acme-bot"
    assert batch.meta.customer == Customer(
        id="u-9", name="Ana", tier="enterprise", email="ana@example.com"
    )
    assert batch.meta.metadata == {"language": "en", "queue": "billing"}
    assert batch.meta.language == "en"
    assert batch.meta.link == "https://inbox.example.com/c-123"
    assert batch.events == (
        ConversationEvent(
            event_id="m-1",
            type=EventType.MESSAGE,
            timestamp=datetime(2026, 11, 24, 10, 0, 0, tzinfo=UTC),
            role=Role.CUSTOMER,
            text="where is my refund??",
        ),
        ConversationEvent(
            event_id="m-2",
            type=EventType.MESSAGE,
            timestamp=datetime(2026, 11, 24, 10, 0, 2, tzinfo=UTC),
            role=Role.BOT,
            text="Sorry, I didn't get that.",
            intent="fallback",
            confidence=0.21,
            fallback=True,
        ),
        ConversationEvent(
            event_id="e-3",
            type=EventType.SESSION_END,
            timestamp=datetime(2026, 11, 24, 10, 9, 0, tzinfo=UTC),
            outcome="abandoned",
        ),
    )


def test_a_minimal_post_with_a_single_event_is_enough() -> None:
    body = {
        "conversation_id": "c-1",
        "event": {"id": "s-1", "type": "session_start", "timestamp": "2026-11-24T12:00:00+02:00"},
    }

    [batch] = GenericConnector().parse(post(json.dumps(body).encode()))

    assert batch.meta.platform == "generic"
    assert batch.meta.customer == Customer()
    assert batch.events == (
        ConversationEvent(
            event_id="s-1",
            type=EventType.SESSION_START,
            timestamp=datetime(2026, 11, 24, 10, 0, 0, tzinfo=UTC),
        ),
    )


def test_offsets_are_converted_to_utc() -> None:
    [batch] = GenericConnector().parse(
        post(json.dumps(with_event(timestamp="2026-11-24T05:30:00-04:30")).encode())
    )

    assert batch.events[0].timestamp == datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    assert batch.events[0].timestamp.tzinfo is UTC


def test_language_may_come_from_the_top_level() -> None:
    body = {**EXAMPLE, "language": "pt", "metadata": {}}

    [batch] = GenericConnector().parse(post(json.dumps(body).encode()))

    assert batch.meta.language == "pt"


def test_metadata_numbers_and_booleans_become_strings_and_nulls_are_dropped() -> None:
    body = {**EXAMPLE, "metadata": {"seats": 40, "ratio": 0.5, "vip": True, "gone": None}}

    [batch] = GenericConnector().parse(post(json.dumps(body).encode()))

    assert batch.meta.metadata == {"seats": "40", "ratio": "0.5", "vip": "true"}
    assert batch.meta.language is None


def test_unknown_keys_are_ignored_so_senders_can_extend_the_format() -> None:
    body = {**with_event(sentiment=-0.8), "schema_version": 2}

    [batch] = GenericConnector().parse(post(json.dumps(body).encode()))

    assert batch.events[0].text == "where is my refund??"


def test_a_repeated_event_id_keeps_the_first_event() -> None:
    first = EXAMPLE["events"][0]
    body = {**EXAMPLE, "events": [first, {**first, "text": "a later copy"}]}

    [batch] = GenericConnector().parse(post(json.dumps(body).encode()))

    assert [event.text for event in batch.events] == ["where is my refund??"]


BAD_BODIES: list[tuple[str, object, str]] = [
    ("an array", [EXAMPLE], "body: expected a JSON object, got array"),
    ("no conversation", {"events": EXAMPLE["events"]}, "conversation_id: missing"),
    (
        "numeric conversation",
        {**EXAMPLE, "conversation_id": 7},
        "conversation_id: expected a string, got number",
    ),
    ("empty conversation", {**EXAMPLE, "conversation_id": ""}, "conversation_id: empty"),
    (
        "long conversation",
        {**EXAMPLE, "conversation_id": "c" * 201},
        "conversation_id: longer than 200 characters",
    ),
    ("no events", {"conversation_id": "c-1"}, "events: missing"),
    ("events not a list", {**EXAMPLE, "events": {}}, "events: expected an array, got object"),
    ("empty events", {**EXAMPLE, "events": []}, "events: empty"),
    (
        "both event and events",
        {**EXAMPLE, "event": EXAMPLE["events"][0]},
        "events: give either 'event' or 'events', not both",
    ),
    (
        "too many events",
        {**EXAMPLE, "events": [EXAMPLE["events"][0]] * 1001},
        "events: more than 1000 events (1001)",
    ),
    (
        "event not an object",
        {**EXAMPLE, "events": ["hi"]},
        "events[0]: expected an object, got string",
    ),
    (
        "single event not an object",
        {"conversation_id": "c", "event": 3},
        "event: expected an object, got number",
    ),
    ("no id", with_event(id=None), "events[0].id: missing"),
    ("long id", with_event(id="m" * 201), "events[0].id: longer than 200 characters"),
    (
        "control character in id",
        with_event(id="m-1\n"),
        "events[0].id: contains a control character",
    ),
    ("no type", with_event(type=None), "events[0].type: missing"),
    (
        "unknown type",
        with_event(type="typing"),
        "events[0].type: unknown event type 'typing';"
        " expected one of message, session_start, session_end, handoff",
    ),
    ("no timestamp", with_event(timestamp=None), "events[0].timestamp: missing"),
    (
        "words for a timestamp",
        with_event(timestamp="yesterday"),
        "events[0].timestamp: not an ISO 8601 time: 'yesterday'",
    ),
    (
        "epoch timestamp",
        with_event(timestamp=1764000000),
        "events[0].timestamp: expected a string, got number",
    ),
    (
        "naive timestamp",
        with_event(timestamp="2026-11-24T10:00:00"),
        "events[0].timestamp: no time zone (add Z or an offset): '2026-11-24T10:00:00'",
    ),
    ("message without role", with_event(role=None), "events[0].role: missing"),
    (
        "unknown role",
        with_event(role="robot"),
        "events[0].role: unknown role 'robot'; expected one of customer, bot, agent, system",
    ),
    ("message without text", with_event(text=None), "events[0].text: missing"),
    ("text not a string", with_event(text=["hi"]), "events[0].text: expected a string, got array"),
    (
        "text too long",
        with_event(text="x" * 20_001),
        "events[0].text: longer than 20000 characters",
    ),
    (
        "confidence as text",
        with_event(confidence="high"),
        "events[0].confidence: expected a number, got string",
    ),
    (
        "confidence above one",
        with_event(confidence=1.5),
        "events[0].confidence: must be between 0 and 1, got 1.5",
    ),
    (
        "fallback as text",
        with_event(fallback="yes"),
        "events[0].fallback: expected a boolean, got string",
    ),
    ("intent as number", with_event(intent=4), "events[0].intent: expected a string, got number"),
    (
        "customer as text",
        {**EXAMPLE, "customer": "Ana"},
        "customer: expected an object, got string",
    ),
    (
        "customer tier as number",
        {**EXAMPLE, "customer": {"tier": 1}},
        "customer.tier: expected a string, got number",
    ),
    (
        "nested metadata",
        {**EXAMPLE, "metadata": {"queue": {"name": "billing"}}},
        "metadata.queue: expected a string, number or boolean, got object",
    ),
    ("metadata list", {**EXAMPLE, "metadata": ["en"]}, "metadata: expected an object, got array"),
    (
        "script link",
        {**EXAMPLE, "link": "javascript:alert(1)"},
        "link: not an http(s) URL: 'javascript:alert(1)'",
    ),
]


@pytest.mark.parametrize(
    ("body", "message"), [(b, m) for _, b, m in BAD_BODIES], ids=[n for n, _, _ in BAD_BODIES]
)
def test_a_bad_body_is_refused_naming_what_is_wrong_and_where(body: object, message: str) -> None:
    with pytest.raises(BadPayload) as caught:
        GenericConnector().parse(post(json.dumps(body).encode()))

    assert str(caught.value) == message
    assert caught.value.status == 400


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            b'{"conversation_id": "c-1",',
            "body is not valid JSON:"
            " Expecting property name enclosed in double quotes (line 1, column 27)",
        ),
        (b'{"a": 1}\n{"b": 2}', "body is not valid JSON: Extra data (line 2, column 1)"),
        (b"", "body is not valid JSON: Expecting value (line 1, column 1)"),
        (b'{"a": "\xff"}', "body is not valid UTF-8: byte 7"),
        # After a byte order mark the offset still counts from the body's first byte.
        (b'\xef\xbb\xbf{"a": "\xff"}', "body is not valid UTF-8: byte 10"),
        # Only one mark is dropped: a second one is not JSON.
        (
            b"\xef\xbb\xbf\xef\xbb\xbf{}",
            "body is not valid JSON:"
            " Unexpected UTF-8 BOM (decode using utf-8-sig) (line 1, column 1)",
        ),
    ],
)
def test_a_body_that_is_not_json_is_refused_with_line_and_column(body: bytes, message: str) -> None:
    with pytest.raises(BadPayload) as caught:
        GenericConnector().parse(post(body))

    assert str(caught.value) == message


def test_a_body_with_a_byte_order_mark_is_read_as_without() -> None:
    body = json.dumps(EXAMPLE).encode()

    assert GenericConnector().parse(post(b"\xef\xbb\xbf" + body)) == GenericConnector().parse(
        post(body)
    )


def test_a_correctly_signed_post_is_accepted_whatever_the_header_case() -> None:
    body = json.dumps(EXAMPLE).encode()

    GenericConnector().verify(post(body, {"x-escalations-signature": sign(SECRET, body)}), SECRET)
    GenericConnector().verify(
        post(
            body,
            {"X-Escalations-Signature": sign(SECRET, body).upper().replace("SHA256", "sha256")},
        ),
        SECRET,
    )


def test_the_signature_is_the_documented_hmac_sha256() -> None:
    # Computed independently: printf '{"conversation_id": "c-1"}' | openssl dgst -sha256 -hmac key
    assert sign("key", b'{"conversation_id": "c-1"}') == (
        "sha256=e06760c3cb47edc1bc4f1eb23be84f8cbefdd9ebd8e9a97fcc4cb43b044508ab"
    )


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing X-Escalations-Signature header"),
        ({"X-Escalations-Signature": "abc"}, "X-Escalations-Signature must look like sha256=<hex>"),
        (
            {"X-Escalations-Signature": "sha1=" + "0" * 40},
            "X-Escalations-Signature must look like sha256=<hex>",
        ),
        ({"X-Escalations-Signature": "sha256=" + "0" * 64}, "signature does not match the body"),
        (
            {"X-Escalations-Signature": "sha256=" + "0" * 63 + "g"},
            "X-Escalations-Signature must look like sha256=<hex>",
        ),
        (
            {"X-Escalations-Signature": "sha256=" + "\u0660" * 64},  # Arabic-Indic zeros
            "X-Escalations-Signature must look like sha256=<hex>",
        ),
        (
            {"X-Escalations-Signature": sign("another secret", b"{}")},
            "signature does not match the body",
        ),
    ],
)
def test_an_unsigned_or_wrongly_signed_post_is_refused(
    headers: dict[str, str], message: str
) -> None:
    with pytest.raises(BadSignature) as caught:
        GenericConnector().verify(post(b"{}", headers), SECRET)

    assert str(caught.value) == message
    assert caught.value.status == 401


def test_without_a_secret_configured_nothing_is_checked() -> None:
    GenericConnector().verify(post(b"{}"), None)


def test_replay_lines_name_their_line_in_errors_and_keep_their_label() -> None:
    line = {**with_event(id=None), "label": "escalate"}

    with pytest.raises(BadPayload) as caught:
        parse_generic_object(line, where="line 12")

    assert str(caught.value) == "line 12: events[0].id: missing"
    assert replay_label(line) == "escalate"
    assert replay_label({"conversation_id": "c"}) is None
    with pytest.raises(BadPayload) as not_an_object:
        parse_generic_object([], where="line 3")
    assert str(not_an_object.value) == "line 3: expected a JSON object, got array"


def test_a_replay_line_with_a_label_parses_like_a_post() -> None:
    batch = parse_generic_object({**EXAMPLE, "label": {"escalate": True}}, where="line 1")

    assert len(batch.events) == 3


def test_the_registry_finds_the_generic_connector_by_its_url_name() -> None:
    assert get_connector("generic") is CONNECTORS["generic"]
    assert get_connector("nope") is None
    assert CONNECTORS["generic"].secret_env == "ESCALATIONS_WEBHOOK_SECRET"


def test_the_default_answer_is_an_empty_json_object() -> None:
    assert GenericConnector().respond([]) == ("application/json", b"{}")


def test_an_id_is_refused_for_exactly_the_unicode_control_characters() -> None:
    # check_id's pattern against Unicode's own list of category Cc, over every code point.
    refused = []
    for code in range(0x110000):
        try:
            check_id(f"m{chr(code)}1", "id")
        except BadPayload as error:
            refused.append((code, str(error)))
    controls = [code for code in range(0x110000) if unicodedata.category(chr(code)) == "Cc"]
    assert [code for code, _ in refused] == controls
    assert {message for _, message in refused} == {"id: contains a control character"}
