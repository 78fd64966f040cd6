"""Rasa: broker events one by one or in arrays, and whole trackers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest

from connectors.base import BadPayload, BadSignature
from connectors.rasa import RasaConnector
from connectors.registry import get_connector
from engine.events import ConversationEvent, Customer, EventType, Role
from tests.connectors.webhooks import Webhook

SECRET = "rasa-shared-secret"
WEBHOOK = Webhook("rasa")
post, fixture = WEBHOOK.post, WEBHOOK.fixture
URL = WEBHOOK.url


def at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def test_a_whole_tracker_yields_the_customers_messages_with_intent_and_confidence() -> None:
    [batch] = RasaConnector().parse(fixture("rasa_tracker_moodbot.RasaHQ-rasa.json"))

    assert batch.conversation_id == "mysender"
    assert batch.meta.platform == "rasa"
    assert batch.meta.customer == Customer(id="mysender")
    assert [(e.role, e.text, e.intent, e.confidence, e.fallback) for e in batch.events] == [
        (Role.CUSTOMER, "/greet", "greet", 0.54, None),
        (Role.CUSTOMER, "/mood_great", "mood_great", 0.60, None),
    ]
    assert batch.events[0].timestamp == at(1517821726.200036)


def test_the_same_tracker_posted_twice_gives_the_same_event_ids() -> None:
    first = RasaConnector().parse(fixture("rasa_tracker_moodbot.RasaHQ-rasa.json"))
    again = RasaConnector().parse(fixture("rasa_tracker_moodbot.RasaHQ-rasa.json"))

    assert [e.event_id for e in first[0].events] == [e.event_id for e in again[0].events]
    assert len({e.event_id for e in first[0].events}) == 2


def test_one_broker_event_carries_the_customers_nlu_verdict_and_channel_facts() -> None:
    [batch] = RasaConnector().parse(fixture("rasa_broker_user_event.nlu_fallback.handwritten.json"))

    assert batch.meta.customer == Customer(
        id="web-7f3a", name="Ana Lima", tier="enterprise", email="ana@example.com"
    )
    assert batch.meta.language == "en"
    assert batch.meta.metadata == {"channel": "rest"}
    assert batch.events == (
        ConversationEvent(
            event_id="b2831e73bb8a4e5bbd0f17ea0b0d4ac5",
            type=EventType.MESSAGE,
            timestamp=at(1764064800.25),
            role=Role.CUSTOMER,
            text="my invoice is wrong for the third time",
            intent="nlu_fallback",
            confidence=0.3,
        ),
    )


def test_an_array_of_broker_events_splits_by_sender_with_fallbacks_and_hand_offs() -> None:
    web, app = RasaConnector().parse(fixture("rasa_broker_events.handwritten.json"))

    assert web.conversation_id == "web-7f3a"
    assert [(e.type, e.role, e.text, e.fallback) for e in web.events] == [
        (EventType.SESSION_START, None, None, None),
        (EventType.MESSAGE, Role.CUSTOMER, "my invoice is wrong", None),
        (EventType.MESSAGE, Role.BOT, "Sorry, I can't help you with that yet.", True),
        (EventType.MESSAGE, Role.CUSTOMER, "let me talk to a human", None),
        (EventType.HANDOFF, None, None, None),
        (EventType.MESSAGE, Role.BOT, "Connecting you to an agent.", False),
        (EventType.HANDOFF, None, None, None),
    ]
    fallback_reply = web.events[2]
    assert (fallback_reply.intent, fallback_reply.confidence) == ("billing_question", 0.42)
    assert web.events[4].extra == {"action": "action_handoff"}
    assert web.events[6].extra == {"rasa_event": "pause"}

    assert app.conversation_id == "app-51c0"
    assert [(e.type, e.role, e.intent, e.fallback, e.outcome) for e in app.events] == [
        (EventType.MESSAGE, Role.CUSTOMER, "nlu_fallback", None, None),
        (EventType.MESSAGE, Role.BOT, "nlu_fallback", True, None),
        (EventType.SESSION_END, None, None, None, "restarted"),
    ]
    assert app.events[1].extra == {"utter_action": "utter_default"}


BAD: list[tuple[str, object, str]] = [
    ("a number", 3, "body: expected a JSON object or array, got number"),
    (
        "neither",
        {"sender_id": "s"},
        "body: expected a Rasa event (with 'event') or a tracker (with 'events')",
    ),
    ("event without sender", {"event": "user", "timestamp": 1}, "sender_id: missing"),
    ("event without time", {"sender_id": "s", "event": "user"}, "timestamp: missing"),
    (
        "time as words",
        {"sender_id": "s", "event": "user", "timestamp": "noon"},
        "timestamp: expected a number, got string",
    ),
    ("array item without sender", [{"event": "user", "timestamp": 1}], "[0].sender_id: missing"),
    ("array item not an object", [[]], "[0]: expected an object, got array"),
    ("tracker without sender", {"events": []}, "sender_id: missing"),
    (
        "tracker events not a list",
        {"sender_id": "s", "events": {}},
        "events: expected an array, got object",
    ),
    (
        "tracker event without kind",
        {"sender_id": "s", "events": [{"timestamp": 1}]},
        "events[0].event: missing",
    ),
    (
        "long text",
        {"sender_id": "s", "event": "user", "timestamp": 1, "text": "x" * 20_001},
        "text: longer than 20000 characters",
    ),
]


@pytest.mark.parametrize(("body", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_body_the_connector_cannot_read_is_refused_naming_what_is_missing(
    body: object, message: str
) -> None:
    with pytest.raises(BadPayload) as caught:
        RasaConnector().parse(post(json.dumps(body).encode()))

    assert str(caught.value) == message


def test_the_token_may_come_as_a_query_parameter_or_a_bearer_token() -> None:
    connector = get_connector("rasa")
    assert connector is not None

    connector.verify(post(b"{}", url=f"{URL}?token={SECRET}"), SECRET)
    connector.verify(post(b"{}", {"authorization": f"Bearer {SECRET}"}), SECRET)


def hs256(claims: dict[str, object], secret: str) -> str:
    """A JWT as Rasa's HTTP API expects one, built by hand from RFC 7519."""

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    signed = b64(b'{"alg":"HS256","typ":"JWT"}') + "." + b64(json.dumps(claims).encode())
    signature = hmac.new(secret.encode(), signed.encode(), hashlib.sha256).digest()
    return f"{signed}.{b64(signature)}"


def test_a_jwt_signed_with_the_secret_is_accepted() -> None:
    token = hs256({"user": {"username": "forwarder", "role": "admin"}, "exp": 4102444800}, SECRET)

    RasaConnector().verify(post(b"{}", {"Authorization": f"Bearer {token}"}), SECRET)


def test_a_known_hs256_vector_is_accepted() -> None:
    # Header {"alg":"HS256","typ":"JWT"}, payload {"sub":"rasa"}, HMAC-SHA256 under "key".
    token = (
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJyYXNhIn0."
        "mgLycyaBILyW66MQ1u73ZCnVGmQGf3qk0gSx0ybTOAo"
    )

    RasaConnector().verify(post(b"{}", {"Authorization": f"Bearer {token}"}), "key")


@pytest.mark.parametrize(
    ("headers", "url", "message"),
    [
        ({}, URL, "missing Authorization header or token query parameter"),
        ({}, f"{URL}?token=guess", "token does not match the secret"),
        ({"Authorization": "Bearer guess"}, URL, "token does not match the secret"),
        ({"Authorization": "Bearer a.b.c"}, URL, "JWT not accepted: not a well-formed token"),
        (
            {"Authorization": f"Basic {SECRET}"},
            URL,
            "Authorization must be 'Bearer <token or JWT>'",
        ),
        (
            {"Authorization": "Bearer " + hs256({"sub": "x"}, "another secret")},
            URL,
            "JWT not accepted: signature does not match the secret",
        ),
        (
            {"Authorization": "Bearer " + hs256({"exp": 1}, SECRET)},
            URL,
            "JWT not accepted: expired",
        ),
        (
            {"Authorization": "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."},
            URL,
            "JWT not accepted: algorithm 'none' is not HS256",
        ),
    ],
)
def test_a_request_without_the_token_or_a_valid_jwt_is_refused(
    headers: dict[str, str], url: str, message: str
) -> None:
    with pytest.raises(BadSignature) as caught:
        RasaConnector().verify(post(b"{}", headers, url), SECRET)

    assert str(caught.value) == message
