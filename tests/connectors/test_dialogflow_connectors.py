"""Dialogflow CX and ES: one fulfillment webhook call per conversational turn."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from connectors.base import BadPayload, BadSignature, InboundRequest
from connectors.dialogflow_cx import DialogflowCXConnector
from connectors.dialogflow_es import DialogflowESConnector
from connectors.registry import get_connector
from engine.events import ConversationEvent, Customer, EventType, Role
from tests.connectors.webhooks import FIXTURES, Webhook

ARRIVED = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
SECRET = "dialogflow-secret"
WEBHOOK = Webhook("dialogflow-cx", received_at=ARRIVED)
post, fixture = WEBHOOK.post, WEBHOOK.fixture


# --- CX -------------------------------------------------------------------------------------------


def test_cx_the_welcome_turn_is_the_customers_hi_and_the_bots_matched_intent() -> None:
    [batch] = DialogflowCXConnector().parse(
        fixture("dialogflow_cx_webhook_request.python-docs-samples.json")
    )

    assert batch.conversation_id == "bd38c7-398-d25-963-7c23a0533"
    assert batch.meta.platform == "dialogflow-cx"
    assert batch.meta.language == "en"
    assert batch.meta.metadata == {"tag": "Default Welcome Intent"}
    assert batch.events == (
        ConversationEvent(
            event_id="0a190188-37e9-400a-89e3-f3e878c86916:customer",
            type=EventType.MESSAGE,
            timestamp=ARRIVED,
            role=Role.CUSTOMER,
            text="hi",
            intent="Default Welcome Intent",
            confidence=1.0,
        ),
        ConversationEvent(
            event_id="0a190188-37e9-400a-89e3-f3e878c86916:bot",
            type=EventType.MESSAGE,
            timestamp=ARRIVED,
            role=Role.BOT,
            text="",
            intent="Default Welcome Intent",
            confidence=1.0,
            fallback=False,
        ),
    )


def test_cx_a_no_match_handler_turn_is_a_bot_fallback_with_customer_facts() -> None:
    [batch] = DialogflowCXConnector().parse(fixture("dialogflow_cx_no_match.handwritten.json"))

    assert batch.conversation_id == "web-7f3a-2026"
    assert batch.meta.customer == Customer(
        id="crm-4411", tier="enterprise", email="ana@example.com"
    )
    assert batch.meta.metadata == {"page": "Refund status", "tag": "refund-no-match"}
    customer, bot = batch.events
    assert (customer.role, customer.text, customer.extra) == (
        Role.CUSTOMER,
        "the money never came back to my card",
        {"sentiment_score": -0.6},
    )
    assert (bot.role, bot.text, bot.intent, bot.fallback) == (
        Role.BOT,
        "Sorry, I didn't get that. Can you say it another way?",
        None,
        True,
    )


def test_cx_silence_from_the_customer_is_a_no_input_fallback_without_a_customer_message() -> None:
    [batch] = DialogflowCXConnector().parse(fixture("dialogflow_cx_no_input.handwritten.json"))

    [bot] = batch.events
    assert (bot.role, bot.text, bot.fallback, bot.extra) == (
        Role.BOT,
        "Are you still there?",
        True,
        {"trigger_event": "sys.no-input-default"},
    )


def test_cx_a_live_agent_handoff_message_is_the_platforms_hand_off() -> None:
    [batch] = DialogflowCXConnector().parse(
        fixture("dialogflow_cx_live_agent_handoff.handwritten.json")
    )

    assert batch.conversation_id == "web-7f3a-2026"
    assert [(e.event_id.split(":")[1], e.type, e.text) for e in batch.events] == [
        ("customer", EventType.MESSAGE, "I want to talk to an agent"),
        ("bot", EventType.MESSAGE, "Connecting you to a person now."),
        ("handoff", EventType.HANDOFF, None),
        ("end", EventType.SESSION_END, None),
    ]
    assert batch.events[1].confidence == 0.94
    assert batch.events[2].extra == {"metadata": {"queue": "billing"}}


CX_BAD: list[tuple[str, object, str]] = [
    ("an array", [], "body: expected a JSON object, got array"),
    ("no turn id", {"sessionInfo": {"session": "s"}}, "detectIntentResponseId: missing"),
    ("no session info", {"detectIntentResponseId": "r"}, "sessionInfo: missing"),
    (
        "no session",
        {"detectIntentResponseId": "r", "sessionInfo": {}},
        "sessionInfo.session: missing",
    ),
    (
        "empty session id",
        {"detectIntentResponseId": "r", "sessionInfo": {"session": "a/sessions/"}},
        "sessionInfo.session: empty",
    ),
]


@pytest.mark.parametrize(("body", "message"), [b[1:] for b in CX_BAD], ids=[b[0] for b in CX_BAD])
def test_cx_a_request_the_connector_cannot_read_is_refused(body: object, message: str) -> None:
    with pytest.raises(BadPayload) as caught:
        DialogflowCXConnector().parse(post(json.dumps(body).encode()))

    assert str(caught.value) == message


# --- ES -------------------------------------------------------------------------------------------


def test_es_a_google_assistant_turn_names_the_assistant_user() -> None:
    [batch] = DialogflowESConnector().parse(fixture("dialogflow_es_mockGoogleV2Request.json"))

    assert batch.conversation_id == "1515017715285"
    assert batch.meta.platform == "dialogflow-es"
    assert batch.meta.customer.id == (
        "ABwppHHixRyLmiAcc4IihWQOCUfSLS1Dw6OezP3e0_CqqJNkbXFCTxGNi_Zi_oc3r86CR0nyHwcDRqIEHQ"
    )
    assert batch.meta.metadata == {"source": "google"}
    assert batch.meta.language == "en-us"
    assert [(e.role, e.text, e.intent, e.confidence, e.fallback) for e in batch.events] == [
        (Role.CUSTOMER, "webhook", "webhook", 1.0, None),
        (Role.BOT, "", "webhook", 1.0, False),
    ]
    assert batch.events[0].event_id == "07424698-0149-430a-9b9c-157402568343:customer"


def test_es_a_slack_turn_carries_the_agents_reply_and_the_slack_user() -> None:
    [batch] = DialogflowESConnector().parse(fixture("dialogflow_es_mockSlackV2Request.json"))

    assert batch.conversation_id == "88d13aa8-2999-4f71-b233-39cbf3a824a0"
    assert batch.meta.customer.id == "U2URF86K1"
    assert batch.events[1].text == "webhook failure"


def test_es_the_fallback_intent_flag_makes_the_bot_reply_a_fallback() -> None:
    [batch] = DialogflowESConnector().parse(
        fixture("dialogflow_es_fallback_intent.handwritten.json")
    )

    assert batch.meta.customer == Customer(id="55501234", name="Ana Lima", tier="premium")
    customer, bot = batch.events
    assert customer.extra == {"sentiment_score": -0.3}
    assert bot == ConversationEvent(
        event_id="3f2e1d0c-9b8a-4765-b4c3-d2e1f0a9b8c7-2a3b4c5d:bot",
        type=EventType.MESSAGE,
        timestamp=ARRIVED,
        role=Role.BOT,
        text="I missed that, say that again?",
        intent="Default Fallback Intent",
        confidence=1.0,
        fallback=True,
    )


def test_es_a_live_agent_handoff_payload_is_the_platforms_hand_off() -> None:
    [batch] = DialogflowESConnector().parse(
        fixture("dialogflow_es_live_agent_handoff.handwritten.json")
    )

    assert batch.conversation_id == "web-7f3a-2026"
    assert [e.type for e in batch.events] == [
        EventType.MESSAGE,
        EventType.MESSAGE,
        EventType.HANDOFF,
        EventType.SESSION_END,
    ]
    assert batch.events[1].text == "Let me get someone for you."


ES_BAD: list[tuple[str, object, str]] = [
    ("no response id", {"session": "s", "queryResult": {}}, "responseId: missing"),
    ("no session", {"responseId": "r", "queryResult": {}}, "session: missing"),
    ("no query result", {"responseId": "r", "session": "s"}, "queryResult: missing"),
    (
        "fallback flag as text",
        {"responseId": "r", "session": "s", "queryResult": {"intent": {"isFallback": "yes"}}},
        "queryResult.intent.isFallback: expected a boolean, got string",
    ),
]


@pytest.mark.parametrize(("body", "message"), [b[1:] for b in ES_BAD], ids=[b[0] for b in ES_BAD])
def test_es_a_request_the_connector_cannot_read_is_refused(body: object, message: str) -> None:
    with pytest.raises(BadPayload) as caught:
        DialogflowESConnector().parse(post(json.dumps(body).encode()))

    assert str(caught.value) == message


# --- verification (the same for both) -----------------------------------------------------------


@pytest.mark.parametrize("name", ["dialogflow-cx", "dialogflow-es"])
def test_the_secret_header_or_basic_auth_is_accepted(name: str) -> None:
    connector = get_connector(name)
    assert connector is not None
    basic = base64.b64encode(b"escalations:dialogflow-secret").decode()

    connector.verify(post(b"{}", {"x-escalations-secret": SECRET}), SECRET)
    connector.verify(post(b"{}", {"Authorization": f"Basic {basic}"}), "escalations:" + SECRET)


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing X-Escalations-Secret header or Authorization: Basic credentials"),
        ({"X-Escalations-Secret": "guess"}, "X-Escalations-Secret does not match the secret"),
        ({"Authorization": "Bearer abc"}, "Authorization must use the Basic scheme"),
        ({"Authorization": "Basic ***"}, "Authorization Basic credentials are not base64"),
        (
            {"Authorization": "Basic " + base64.b64encode(b"user:guess").decode()},
            "Authorization credentials do not match the secret",
        ),
    ],
)
@pytest.mark.parametrize("name", ["dialogflow-cx", "dialogflow-es"])
def test_a_call_without_the_secret_is_refused(
    name: str, headers: dict[str, str], message: str
) -> None:
    connector = get_connector(name)
    assert connector is not None

    with pytest.raises(BadSignature) as caught:
        connector.verify(post(b"{}", headers), "user:" + SECRET)

    assert str(caught.value) == message


def test_without_an_arrival_time_events_are_stamped_now() -> None:
    body = (FIXTURES / "dialogflow_cx_webhook_request.python-docs-samples.json").read_bytes()
    before = datetime.now(UTC)

    [batch] = DialogflowCXConnector().parse(
        InboundRequest("https://x", {}, body, "application/json")
    )

    assert before <= batch.events[0].timestamp <= datetime.now(UTC)
