"""Amazon Lex V2: forwarded Lambda input events and conversation-log records."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from connectors.base import BadPayload, BadSignature
from connectors.lex import LexV2Connector
from connectors.registry import get_connector
from engine.events import Customer, EventType, Role
from tests.connectors.webhooks import Webhook

ARRIVED = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
WEBHOOK = Webhook("lex-v2", received_at=ARRIVED)
post, fixture = WEBHOOK.post, WEBHOOK.fixture


def test_a_fulfillment_hook_event_is_a_confident_turn_stamped_on_arrival() -> None:
    [batch] = LexV2Connector().parse(fixture("lexv2_lambda_event.aws-lambda-go.json"))

    assert batch.conversation_id == "123456789"
    assert batch.meta.platform == "lex-v2"
    assert batch.meta.customer == Customer(id="12345")
    assert batch.meta.language == "en-US"
    assert batch.meta.metadata == {"bot": "BankingBot", "alias": "Prod", "channel": "Twilio-SMS"}
    assert [
        (e.event_id, e.role, e.text, e.intent, e.confidence, e.fallback) for e in batch.events
    ] == [
        (
            "request-123:customer",
            Role.CUSTOMER,
            "I want to check my balance",
            "CheckBalance",
            0.95,
            None,
        ),
        ("request-123:bot", Role.BOT, "", "CheckBalance", 0.95, False),
    ]
    assert all(e.timestamp == ARRIVED for e in batch.events)


def test_the_lambda_answer_delegates_back_to_lex_without_touching_the_session() -> None:
    connector = LexV2Connector()
    batches = connector.parse(fixture("lexv2_lambda_event.aws-lambda-go.json"))

    content_type, body = connector.respond(batches)

    assert content_type == "application/json"
    assert json.loads(body) == {
        "sessionState": {
            "dialogAction": {"type": "Delegate"},
            "intent": {
                "confirmationState": "None",
                "name": "CheckBalance",
                "slots": {
                    "accountType": {
                        "value": {
                            "originalValue": "checking",
                            "interpretedValue": "checking",
                            "resolvedValues": ["CHECKING"],
                        }
                    }
                },
                "state": "ReadyForFulfillment",
            },
            "sessionAttributes": {"customerId": "12345"},
        }
    }


def test_a_missed_utterance_log_record_is_a_fallback_that_ends_the_conversation() -> None:
    [batch] = LexV2Connector().parse(
        fixture("lexv2_conversation_log_missed_utterance.thirdparty.json")
    )

    assert batch.conversation_id == "929e9aa7-155b-471b-b68d-45c8da484292"
    assert batch.meta.metadata == {
        "bot": "lexToRasaBot",
        "alias": "TestBotAlias",
        "channel": "CHAT",
    }
    customer, bot, end = batch.events
    assert customer.timestamp == datetime(2022, 9, 5, 3, 11, 42, 173000, tzinfo=UTC)
    assert (customer.role, customer.text) == (Role.CUSTOMER, "hello")
    assert (bot.intent, bot.confidence, bot.fallback, bot.extra) == (
        "FallbackIntent",
        None,
        True,
        {"missed_utterance": True},
    )
    assert (end.type, end.outcome) == (EventType.SESSION_END, "end_conversation")
    assert LexV2Connector().respond([batch]) == ("application/json", b"{}")


def test_the_fallback_intent_with_a_string_confidence_is_read() -> None:
    [batch] = LexV2Connector().parse(
        fixture("lexv2_lambda_event.fallback_string_confidence.handwritten.json")
    )

    assert batch.meta.customer == Customer(
        id="crm-4411", tier="enterprise", email="ana@example.com"
    )
    assert batch.meta.language == "en-GB"
    bot = batch.events[1]
    # Lex gives FallbackIntent no score of its own; the runner-up's "0.31" is not its confidence.
    assert (bot.intent, bot.confidence, bot.fallback) == ("FallbackIntent", None, True)


def test_an_array_of_log_records_keeps_the_turns_in_order_with_a_score_object() -> None:
    [batch] = LexV2Connector().parse(fixture("lexv2_conversation_logs.array.handwritten.json"))

    assert batch.meta.customer.tier == "premium"
    assert [(e.role, e.text, e.confidence, e.fallback) for e in batch.events] == [
        (Role.CUSTOMER, "check my order", 0.88, None),
        (Role.BOT, "Sure. What's the order number?", 0.88, False),
        (Role.CUSTOMER, "uh the one from last week", 0.41, None),
        (Role.BOT, "Sorry, can you please repeat the order number?", 0.41, True),
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0.5, 0.5), ({"score": 0.25}, 0.25), ("0.63", 0.63), ("high", None), (1.0000001, 1.0)],
)
def test_nlu_confidence_is_read_in_every_shape_lex_uses(value: object, expected: float) -> None:
    record = {
        "timestamp": "2026-11-24T10:00:00Z",
        "sessionId": "s",
        "requestId": "r",
        "inputTranscript": "hi",
        "interpretations": [{"intent": {"name": "Hello"}, "nluConfidence": value}],
        "sessionState": {"intent": {"name": "Hello"}},
    }

    [batch] = LexV2Connector().parse(post(json.dumps(record).encode()))

    assert batch.events[1].confidence == expected


BAD: list[tuple[str, object, str]] = [
    ("a string", "hi", "body: expected a JSON object or array, got string"),
    ("no session", {"timestamp": "2026-11-24T10:00:00Z"}, "sessionId: missing"),
    ("log without time", {"sessionId": "s"}, "timestamp: missing"),
    (
        "log with a naive time",
        {"sessionId": "s", "timestamp": "2026-11-24 10:00"},
        "timestamp: no time zone (add Z or an offset): '2026-11-24 10:00'",
    ),
    (
        "array item without session",
        [{"timestamp": "2026-11-24T10:00:00Z"}],
        "[0].sessionId: missing",
    ),
    (
        "missed flag as text",
        {"sessionId": "s", "invocationSource": "DialogCodeHook", "missedUtterance": "true"},
        "missedUtterance: expected a boolean, got string",
    ),
]


@pytest.mark.parametrize(("body", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_record_the_connector_cannot_read_is_refused(body: object, message: str) -> None:
    with pytest.raises(BadPayload) as caught:
        LexV2Connector().parse(post(json.dumps(body).encode()))

    assert str(caught.value) == message


def test_the_forwarders_header_secret_is_required() -> None:
    connector = get_connector("lex-v2")
    assert connector is not None
    connector.verify(post(b"{}", {"X-Escalations-Secret": "lex"}), "lex")

    with pytest.raises(BadSignature) as caught:
        connector.verify(post(b"{}", {"X-Escalations-Secret": "nope"}), "lex")

    assert str(caught.value) == "X-Escalations-Secret does not match the secret"
