"""Twilio Conversations: form-encoded webhooks, signed over the URL and sorted parameters."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from connectors.base import BadPayload, BadSignature, InboundRequest
from connectors.registry import get_connector
from connectors.twilio import TwilioConversationsConnector, twilio_signature
from engine.events import ConversationEvent, Customer, EventType, Role

FIXTURES = Path(__file__).parents[1] / "fixtures" / "platforms"
VECTORS: dict[str, Any] = json.loads(
    (FIXTURES / "twilio_signature_test_vectors.twilio-python.json").read_text()
)
FORM = "application/x-www-form-urlencoded"


def post(
    body: bytes, headers: dict[str, str] | None = None, url: str = VECTORS["url"], form: bool = True
) -> InboundRequest:
    return InboundRequest(
        url=url,
        headers=headers or {},
        body=body,
        content_type=FORM if form else "application/json",
    )


def fixture(name: str) -> InboundRequest:
    params = json.loads((FIXTURES / name).read_text())["params"]
    return post(urlencode([(key, value) for key, value in params]).encode())


def signed(signature: str) -> dict[str, str]:
    return {"X-Twilio-Signature": signature}


# --- Twilio's published vectors -----------------------------------------------------------------


def test_the_published_form_vector_verifies() -> None:
    body = urlencode(VECTORS["form_params"]).encode()

    TwilioConversationsConnector().verify(
        post(body, signed(VECTORS["expected_X-Twilio-Signature"])), VECTORS["auth_token"]
    )


def test_the_published_signature_is_computed_from_url_and_sorted_params() -> None:
    params = list(VECTORS["form_params"].items())

    assert (
        twilio_signature(VECTORS["auth_token"], VECTORS["url"], params)
        == (VECTORS["expected_X-Twilio-Signature"])
    )


def test_the_published_vector_with_repeated_parameters_verifies() -> None:
    case = VECTORS["duplicate_params_case"]
    body = urlencode([tuple(pair) for pair in case["params"]]).encode()

    TwilioConversationsConnector().verify(post(body, signed(case["expected"])), "12345")


def test_the_published_json_body_vector_verifies_with_its_body_hash() -> None:
    request = post(
        VECTORS["json_body"].encode(),
        signed(VECTORS["expected_signature_for_json_body_url"]),
        url=VECTORS["url_with_bodySHA256"],
        form=False,
    )

    TwilioConversationsConnector().verify(request, "12345")


def test_a_json_body_that_does_not_match_its_hash_is_refused() -> None:
    request = post(
        b'{"property": "tampered"}',
        signed(VECTORS["expected_signature_for_json_body_url"]),
        url=VECTORS["url_with_bodySHA256"],
        form=False,
    )

    with pytest.raises(BadSignature) as caught:
        TwilioConversationsConnector().verify(request, "12345")

    assert str(caught.value) == "bodySHA256 does not match the body"


@pytest.mark.parametrize(
    ("url", "signature"),
    [
        ("https://mycompany.com:1234/myapp.php?foo=1&bar=2", "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
        ("http://mycompany.com:1234/myapp.php?foo=1&bar=2", "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="),
        ("https://mycompany.com/myapp.php?foo=1&bar=2", "kvajT1Ptam85bY51eRf/AJRuM3w="),
        ("http://mycompany.com/myapp.php?foo=1&bar=2", "0ZXoZLH/DfblKGATFgpif+LLRf4="),
    ],
    ids=["https-port-stripped", "http-port-kept", "https-443-added", "http-80-added"],
)
def test_the_published_port_vectors_verify(url: str, signature: str) -> None:
    body = urlencode(VECTORS["form_params"]).encode()

    TwilioConversationsConnector().verify(post(body, signed(signature), url=url), "12345")


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing X-Twilio-Signature header"),
        (signed("RSOYDt4T1cUTdK1PDd93/VVr8B8="), "signature does not match the URL and parameters"),
    ],
)
def test_a_request_with_a_missing_or_wrong_signature_is_refused(
    headers: dict[str, str], message: str
) -> None:
    tampered = urlencode({**VECTORS["form_params"], "Digits": "9999"}).encode()

    with pytest.raises(BadSignature) as caught:
        TwilioConversationsConnector().verify(post(tampered, headers), "12345")

    assert str(caught.value) == message


# --- events -------------------------------------------------------------------------------------


def test_an_sms_from_the_customer_is_the_customer_speaking() -> None:
    [batch] = TwilioConversationsConnector().parse(
        fixture("twilio_onMessageAdded_sms_customer.handwritten.json")
    )

    assert batch.conversation_id == "CH00000000000000000000000000000001"
    assert batch.meta.platform == "twilio"
    assert batch.meta.customer == Customer(id="+15555550100")
    assert batch.meta.metadata == {"source": "SMS"}
    assert batch.events == (
        ConversationEvent(
            event_id="IM00000000000000000000000000000001",
            type=EventType.MESSAGE,
            timestamp=datetime(2026, 11, 24, 10, 0, 0, 123000, tzinfo=UTC),
            role=Role.CUSTOMER,
            text="where is my refund??",
        ),
    )


def test_a_bots_api_reply_carries_its_fallback_signal_from_attributes() -> None:
    [batch] = TwilioConversationsConnector().parse(
        fixture("twilio_onMessageAdded_api_bot_fallback.handwritten.json")
    )

    [reply] = batch.events
    assert (reply.role, reply.intent, reply.confidence, reply.fallback) == (
        Role.BOT,
        "fallback",
        0.21,
        True,
    )
    assert batch.meta.customer == Customer()


def test_a_closed_conversation_ends_the_session() -> None:
    [batch] = TwilioConversationsConnector().parse(
        fixture("twilio_onConversationStateUpdated_closed.handwritten.json")
    )

    assert batch.events == (
        ConversationEvent(
            event_id="CH00000000000000000000000000000001:state:closed:2026-11-24T11:00:00.000Z",
            type=EventType.SESSION_END,
            timestamp=datetime(2026, 11, 24, 11, 0, tzinfo=UTC),
            outcome="closed",
            extra={"reason": "TIMER"},
        ),
    )


@pytest.mark.parametrize(
    "params",
    [
        {"EventType": "onParticipantAdded", "ConversationSid": "CH1"},
        {"EventType": "onConversationStateUpdated", "ConversationSid": "CH1", "StateTo": "active"},
    ],
)
def test_events_we_do_not_use_yield_nothing(params: dict[str, str]) -> None:
    assert TwilioConversationsConnector().parse(post(urlencode(params).encode())) == []


def test_attributes_can_name_an_agent_and_the_customers_tier() -> None:
    agent = {
        "EventType": "onMessageAdded",
        "ConversationSid": "CH1",
        "MessageSid": "IM1",
        "Author": "marta",
        "Body": "Hi, I'm Marta.",
        "Source": "SDK",
        "Attributes": '{"role": "agent"}',
        "DateCreated": "2026-11-24T10:05:00Z",
    }
    customer = {**agent, "MessageSid": "IM2", "Author": "ana", "Attributes": '{"tier": "gold"}'}

    [first] = TwilioConversationsConnector().parse(post(urlencode(agent).encode()))
    [second] = TwilioConversationsConnector().parse(post(urlencode(customer).encode()))

    assert first.events[0].role == Role.AGENT
    assert second.events[0].role == Role.CUSTOMER
    assert second.meta.customer == Customer(id="ana", tier="gold")


MESSAGE = {
    "EventType": "onMessageAdded",
    "ConversationSid": "CH1",
    "MessageSid": "IM1",
    "DateCreated": "2026-11-24T10:05:00Z",
}
BAD: list[tuple[str, dict[str, str], str]] = [
    ("no event type", {}, "EventType: missing"),
    ("no conversation", {"EventType": "onMessageAdded"}, "ConversationSid: missing"),
    ("no message sid", {**MESSAGE, "MessageSid": ""}, "MessageSid: empty"),
    ("no date", {**MESSAGE, "DateCreated": ""}, "DateCreated: empty"),
    ("bad date", {**MESSAGE, "DateCreated": "today"}, "DateCreated: not an ISO 8601 time: 'today'"),
    (
        "bad attributes",
        {**MESSAGE, "Attributes": "{"},
        "Attributes: not valid JSON: Expecting property name enclosed in double quotes",
    ),
    (
        "confidence as text",
        {**MESSAGE, "Attributes": '{"confidence": "low"}'},
        "Attributes.confidence: expected a number, got string",
    ),
    (
        "no new state",
        {"EventType": "onConversationStateUpdated", "ConversationSid": "CH1"},
        "StateTo: missing",
    ),
]


@pytest.mark.parametrize(("params", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_webhook_the_connector_cannot_read_is_refused(
    params: dict[str, str], message: str
) -> None:
    with pytest.raises(BadPayload) as caught:
        TwilioConversationsConnector().parse(post(urlencode(params).encode()))

    assert str(caught.value) == message


def test_the_registry_lists_twilio_with_its_auth_token_variable() -> None:
    connector = get_connector("twilio")
    assert connector is not None
    assert connector.secret_env == "ESCALATIONS_TWILIO_SECRET"
    assert connector.respond([]) == ("application/json", b"{}")
