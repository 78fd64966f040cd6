"""One short support conversation, as each chatbot platform would deliver it to /webhooks/<name>.

Every platform tells the same three turns: the bot answers the customer's question, then fails
twice (the platform's own fallback marker on its reply), and in between the customer asks for a
person. Payloads follow the shapes of the files under tests/fixtures/platforms/, with new ids,
words and times; each request is signed or authenticated the way the platform (or the forwarder
the docs describe) does it, computed here from the platform's rules rather than by our code.
"""

from __future__ import annotations

import base64
import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from engine.events import ConversationEvent

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
PUBLIC_URL = "https://escalations.example.com"

# The service's inbound secrets, one per connector, as an operator would set them.
SECRETS = {
    "ESCALATIONS_WEBHOOK_SECRET": "generic-webhook-secret",
    "ESCALATIONS_BOTPRESS_SECRET": "botpress-secret",
    "ESCALATIONS_SUNSHINE_SECRET": "sunshine-webhook-secret",
    "ESCALATIONS_INTERCOM_SECRET": "intercom-client-secret",
    "ESCALATIONS_RASA_SECRET": "rasa-jwt-secret",
    "ESCALATIONS_DIALOGFLOW_CX_SECRET": "dfcx-user:dfcx-password",
    "ESCALATIONS_DIALOGFLOW_ES_SECRET": "dialogflow-es-secret",
    "ESCALATIONS_LEX_SECRET": "lex-forwarder-secret",
    "ESCALATIONS_LIVEPERSON_SECRET": "liveperson-app-secret",
    "ESCALATIONS_TWILIO_SECRET": "twilio-auth-token",
    "ESCALATIONS_BOTFRAMEWORK_SECRET": "botframework-logger-secret",
    "ESCALATIONS_CHATWOOT_SECRET": "chatwoot-agent-bot-secret",
}


@dataclass(frozen=True)
class Turn:
    """The customer writes at `second` after T0; the bot replies two seconds later."""

    customer: str
    bot: str
    failed: bool  # the platform marks the bot's reply as a fallback
    second: int
    # The same failure worded the way bots word it, for platforms that cannot mark one.
    bot_phrased: str = ""

    def reply(self, *, phrased: bool = False) -> str:
        return self.bot_phrased if phrased and self.bot_phrased else self.bot


# The fallback replies' words are deliberately plain (no "sorry, I didn't get that"): what makes
# them fallbacks is the platform's marker, which is what these stories prove reaches the engine.
TURNS = (
    Turn(
        "Hi, where is my refund for order 48213?",
        "Refunds reach your card 5 to 7 days after we receive the parcel.",
        failed=False,
        second=0,
    ),
    Turn(
        "You received the parcel on Monday, order 48213",
        "I can help with refunds, deliveries and invoices. Which one is it?",
        failed=True,
        second=20,
        bot_phrased="Sorry, I didn't get that. Could you rephrase?",
    ),
    Turn(
        "I want to talk to a real person",
        "You can also find answers in our help centre.",
        failed=True,
        second=40,
        bot_phrased="Sorry, I didn't quite understand that.",
    ),
)
HUMAN_REQUEST = TURNS[2].customer


def at(second: float) -> datetime:
    return T0 + timedelta(seconds=second)


def iso(second: float) -> str:
    return at(second).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def epoch(second: float) -> float:
    return at(second).timestamp()


@dataclass(frozen=True)
class Delivery:
    """One HTTP request as the platform sends it, and when (the service's clock is set to it)."""

    at: datetime
    body: bytes
    headers: Mapping[str, str]
    query: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Story:
    """A platform's conversation: the requests, and how its fallback replies are marked."""

    connector: str  # the URL segment, /webhooks/<connector>
    platform: str  # what the stored conversation says it came from
    conversation_id: str
    deliveries: tuple[Delivery, ...]
    # What the connector stored on each failed bot reply: the platform's own fallback marker.
    marked: Callable[[ConversationEvent], bool]
    # The platform's retry of every request; the same requests unless the platform changes them.
    retries: tuple[Delivery, ...] = ()
    phrased: bool = False  # the platform cannot mark a fallback: the bot's words have to say it

    def retried(self) -> tuple[Delivery, ...]:
        return self.retries or self.deliveries


def _json(payload: object) -> bytes:
    return json.dumps(payload).encode()


def _hmac(secret: str, message: bytes, algorithm: str) -> bytes:
    return hmac.new(secret.encode(), message, algorithm).digest()


# --- generic and Botpress: our own format ---------------------------------------------------------


def _generic_posts(cid: str, *, platform: str | None) -> list[dict[str, Any]]:
    posts = []
    for index, turn in enumerate(TURNS):
        bot: dict[str, Any] = {
            "id": f"{cid}-bot-{index}",
            "type": "message",
            "role": "bot",
            "text": turn.reply(),
            "timestamp": iso(turn.second + 2),
            "intent": "refund.status",
            # A middling confidence: only the platform's flag says the reply failed.
            "confidence": 0.64 if turn.failed else 0.93,
        }
        if turn.failed:
            bot["fallback"] = True
        post: dict[str, Any] = {
            "conversation_id": cid,
            "customer": {"id": "u-4411", "name": "Ana Lima", "tier": "standard"},
            "events": [
                {
                    "id": f"{cid}-customer-{index}",
                    "type": "message",
                    "role": "customer",
                    "text": turn.customer,
                    "timestamp": iso(turn.second),
                },
                bot,
            ],
        }
        if platform is not None:
            post["platform"] = platform
        posts.append(post)
    return posts


def generic_story() -> Story:
    """Our own format, signed with X-Escalations-Signature (HMAC-SHA256 of the body)."""
    cid = "acme-7f3a"
    secret = SECRETS["ESCALATIONS_WEBHOOK_SECRET"]
    deliveries: list[Delivery] = []
    for post, turn in zip(_generic_posts(cid, platform="acme-bot"), TURNS, strict=True):
        body = _json(post)
        signature = "sha256=" + _hmac(secret, body, "sha256").hex()
        headers = {"Content-Type": "application/json", "X-Escalations-Signature": signature}
        deliveries.append(Delivery(at(turn.second + 2), body, headers))
    return Story("generic", "acme-bot", cid, tuple(deliveries), marked=lambda e: e.fallback is True)


def botpress_story() -> Story:
    """The generic format from a Botpress webhook: the shared secret in x-bp-secret."""
    cid = "bp-conv-7f3a"
    deliveries = tuple(
        Delivery(
            at(turn.second + 2),
            _json(post),
            {
                "Content-Type": "application/json",
                "x-bp-secret": SECRETS["ESCALATIONS_BOTPRESS_SECRET"],
            },
        )
        for post, turn in zip(_generic_posts(cid, platform=None), TURNS, strict=True)
    )
    return Story("botpress", "botpress", cid, deliveries, marked=lambda e: e.fallback is True)


# --- Zendesk Sunshine Conversations -----------------------------------------------------------


def sunshine_story() -> Story:
    """v2 webhook posts, one per turn: the customer's message and the bot's (Conversations API)
    reply, whose message metadata carries the bot's NLU verdict. Secret as is in X-API-Key."""
    cid = "5f1e0d9c8b7a6c250bc7251f"
    conversation = {"id": cid, "type": "personal", "metadata": {"lang": "en"}}
    customer = {
        "userId": "7a508c10541a4b0ff4720001",
        "displayName": "Ana Lima",
        "type": "user",
        "user": {
            "id": "7a508c10541a4b0ff4720001",
            "externalId": "crm-4411",
            "profile": {"givenName": "Ana", "surname": "Lima", "email": "ana@example.com"},
        },
    }
    deliveries: list[Delivery] = []
    for index, turn in enumerate(TURNS):
        events: list[dict[str, Any]] = []
        if index == 0:
            events.append(
                {
                    "id": f"6b01c0d52b5315fc007e79{index}0",
                    "createdAt": iso(turn.second - 1),
                    "type": "conversation:create",
                    "payload": {"conversation": conversation, "creationReason": "message"},
                }
            )
        verdict: dict[str, Any] = {"intent": "refund.status", "confidence": 0.64}
        if turn.failed:
            verdict["fallback"] = True
        else:
            verdict["confidence"] = 0.93
        for offset, author, text, extra in (
            (0, customer, turn.customer, {"source": {"type": "web"}}),
            (
                2,
                {"type": "business", "displayName": "Acme Bot"},
                turn.reply(),
                {"source": {"type": "api:conversations"}, "metadata": verdict},
            ),
        ):
            events.append(
                {
                    "id": f"6b01c0d52b5315fc007e79{index}{offset + 1}",
                    "createdAt": iso(turn.second + offset + 0.5),
                    "type": "conversation:message",
                    "payload": {
                        "conversation": conversation,
                        "message": {
                            "id": f"6b01c0d84a146f3abd72af{index}{offset + 1}",
                            "received": iso(turn.second + offset),
                            "author": author,
                            "content": {"type": "text", "text": text},
                            **extra,
                        },
                    },
                }
            )
        body = _json(
            {
                "app": {"id": "5ebee0975ac5304b664a12fa"},
                "webhook": {"id": "5f4eaef81e3dcc117c7ba48a", "version": "v2"},
                "events": events,
            }
        )
        headers = {
            "Content-Type": "application/json",
            "X-API-Key": SECRETS["ESCALATIONS_SUNSHINE_SECRET"],
        }
        deliveries.append(Delivery(at(turn.second + 3), body, headers))
    return Story(
        "sunshine", "sunshine", cid, tuple(deliveries), marked=lambda e: e.fallback is True
    )


# --- Intercom -------------------------------------------------------------------------------------

FIN = {
    "id": "9608808",
    "type": "bot",
    "name": "Fin",
    "email": "operator+q7xk2p1a@intercom.io",
    "from_ai_agent": True,
    "is_ai_answer": True,
}
BO = {
    "id": "6a11bb22cc33dd44ee550001",
    "type": "user",
    "name": "Ana Lima",
    "email": "ana@example.com",
}


def intercom_story() -> Story:
    """Newer-generation conversation notifications, one per part, signed X-Hub-Signature (sha1).

    Intercom has no per-reply fallback flag, intent or confidence: it says who wrote (Fin is
    the bot), so the bot's own fallback wording is what the engine can go on.
    """
    cid = "30011188888"
    secret = SECRETS["ESCALATIONS_INTERCOM_SECRET"]
    created = int(epoch(TURNS[0].second))
    source = {
        "type": "conversation",
        "id": "410000901",
        "delivered_as": "customer_initiated",
        "subject": "",
        "body": f"<p>{TURNS[0].customer}</p>",
        "author": BO,
        "attachments": [],
        "redacted": False,
    }

    def notification(topic: str, number: int, parts: list[dict[str, Any]], sent: int) -> Delivery:
        item = {
            "type": "conversation",
            "id": cid,
            "created_at": created,
            "updated_at": sent,
            "source": source,
            "contacts": {
                "type": "contact.list",
                "contacts": [{"type": "contact", "id": BO["id"], "external_id": "crm-4411"}],
            },
            "custom_attributes": {"Tier": "standard"},
            "conversation_parts": {
                "type": "conversation_part.list",
                "conversation_parts": parts,
                "total_count": len(parts),
            },
            "open": True,
            "state": "open",
        }
        body = _json(
            {
                "type": "notification_event",
                "app_id": "q7xk2p1a",
                "data": {"type": "notification_event_data", "item": item},
                "links": {},
                "id": f"notif_0b6c2b8e-2222-4a4a-9c9c-{number:012d}",
                "topic": topic,
                "delivery_status": "pending",
                "delivery_attempts": 1,
                "delivered_at": 0,
                "first_sent_at": sent,
                "created_at": sent,
                "self": None,
            }
        )
        signature = "sha1=" + _hmac(secret, body, "sha1").hex()
        headers = {"Content-Type": "application/json", "X-Hub-Signature": signature}
        return Delivery(datetime.fromtimestamp(sent, UTC), body, headers)

    def part(part_id: str, author: Mapping[str, Any], text: str, second: int) -> dict[str, Any]:
        return {
            "type": "conversation_part",
            "id": part_id,
            "part_type": "comment",
            "body": f"<p>{text}</p>",
            "created_at": int(epoch(second)),
            "updated_at": int(epoch(second)),
            "assigned_to": None,
            "author": author,
            "attachments": [],
            "redacted": False,
        }

    deliveries = [notification("conversation.user.created", 1, [], created + 1)]
    for index, turn in enumerate(TURNS):
        if index > 0:
            said = part(f"50000009{index}1", BO, turn.customer, turn.second)
            deliveries.append(
                notification("conversation.user.replied", 2 * index, [said], said["created_at"] + 1)
            )
        reply = part(f"50000009{index}2", FIN, turn.reply(phrased=True), turn.second + 2)
        deliveries.append(
            notification(
                "conversation.operator.replied", 2 * index + 1, [reply], reply["created_at"] + 1
            )
        )
    return Story(
        "intercom",
        "intercom",
        cid,
        tuple(deliveries),
        marked=lambda e: e.fallback is None and e.intent is None and e.confidence is None,
        phrased=True,
    )


# --- Rasa -----------------------------------------------------------------------------------------


def _jwt(secret: str, claims: Mapping[str, Any]) -> str:
    def part(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    signing_input = part(_json({"alg": "HS256", "typ": "JWT"})) + "." + part(_json(claims))
    signature = _hmac(secret, signing_input.encode(), "sha256")
    return signing_input + "." + part(signature)


def rasa_story() -> Story:
    """Tracker events from Rasa's event broker, forwarded with an HS256 JWT, as Rasa's HTTP API
    authenticates. Turns 1 and 3 arrive one event per post (as the broker publishes them), turn 2
    as one array. The fallbacks: FallbackClassifier's `nlu_fallback` intent and
    `action_default_fallback` before the reply (read within the array), and a reply uttered by
    `utter_default` (read from the event alone)."""
    sender = "web-8c2d"
    token = _jwt(SECRETS["ESCALATIONS_RASA_SECRET"], {"user": {"username": "forwarder"}})
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}

    def user(turn: Turn, index: int, intent: str, confidence: float) -> dict[str, Any]:
        return {
            "sender_id": sender,
            "event": "user",
            "timestamp": epoch(turn.second),
            "text": turn.customer,
            "parse_data": {"intent": {"name": intent, "confidence": confidence}, "entities": []},
            "input_channel": "rest",
            "message_id": f"5e1f0d6a2f4b4b7a8f3d3e2c1b0a9f{index:02d}",
            "metadata": {"name": "Ana Lima", "tier": "standard"},
        }

    def action(turn: Turn, name: str) -> dict[str, Any]:
        return {
            "sender_id": sender,
            "event": "action",
            "timestamp": epoch(turn.second + 1),
            "name": name,
            "policy": "RulePolicy",
            "confidence": 1.0,
        }

    def bot(turn: Turn, utter_action: str | None) -> dict[str, Any]:
        return {
            "sender_id": sender,
            "event": "bot",
            "timestamp": epoch(turn.second + 2),
            "text": turn.reply(),
            "data": {"elements": None, "buttons": None, "attachment": None, "image": None},
            "metadata": {"utter_action": utter_action} if utter_action else {},
        }

    first, second, third = TURNS
    session = {"sender_id": sender, "event": "session_started", "timestamp": epoch(-1)}
    one_by_one = [
        session,
        user(first, 1, "refund_status", 0.93),
        action(first, "utter_refund_timeline"),
        bot(first, "utter_refund_timeline"),
    ]
    array = [
        user(second, 2, "nlu_fallback", 0.41),
        action(second, "action_default_fallback"),
        bot(second, None),
    ]
    last = [
        user(third, 3, "nlu_fallback", 0.3),
        action(third, "action_default_fallback"),
        bot(third, "utter_default"),
    ]
    deliveries = [
        Delivery(at(e["timestamp"] - T0.timestamp()), _json(e), headers) for e in one_by_one
    ]
    deliveries.append(Delivery(at(second.second + 2), _json(array), headers))
    deliveries.extend(
        Delivery(at(e["timestamp"] - T0.timestamp()), _json(e), headers) for e in last
    )
    return Story("rasa", "rasa", sender, tuple(deliveries), marked=lambda e: e.fallback is True)


# --- Dialogflow CX and ES -------------------------------------------------------------------------


def dialogflow_cx_story() -> Story:
    """One fulfillment webhook call per turn, with basic auth (`user:password` is the secret).

    The no-match handler's fulfillment carries the tag its designer gave it (CX sends no
    trigger event for a no-match on typed words), and no intent.
    """
    session = "web-9d3e-2026"
    user, _, password = SECRETS["ESCALATIONS_DIALOGFLOW_CX_SECRET"].partition(":")
    authorization = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    agent = "projects/acme-support/locations/global/agents/4b2d0c1e-0000-4c1e-9f3a-8a7b6c5d4e3f"
    deliveries: list[Delivery] = []
    for index, turn in enumerate(TURNS):
        body: dict[str, Any] = {
            "detectIntentResponseId": f"6e5f2a1e-7b7c-4f0e-9a51-2f1c9e0b8d{index:02d}",
            "pageInfo": {"currentPage": f"{agent}/flows/0/pages/2f1e", "displayName": "Refund"},
            "sessionInfo": {
                "session": f"{agent}/sessions/{session}",
                "parameters": {"customer_id": "crm-4411", "customer_tier": "standard"},
            },
            "fulfillmentInfo": {"tag": "refund-no-match" if turn.failed else "refund-status"},
            "messages": [
                {
                    "text": {"text": [turn.reply()]},
                    "responseType": "HANDLER_PROMPT" if turn.failed else "ENTRY_PROMPT",
                    "source": "VIRTUAL_AGENT",
                }
            ],
            "text": turn.customer,
            "languageCode": "en",
        }
        if not turn.failed:
            body["intentInfo"] = {
                "lastMatchedIntent": f"{agent}/intents/00000000-0000-0000-0000-000000000001",
                "displayName": "refund.status",
                "confidence": 0.93,
            }
        headers = {"Content-Type": "application/json", "Authorization": authorization}
        deliveries.append(Delivery(at(turn.second + 2), _json(body), headers))
    return Story(
        "dialogflow-cx",
        "dialogflow-cx",
        session,
        tuple(deliveries),
        marked=lambda e: e.fallback is True and e.intent is None,
    )


def dialogflow_es_story() -> Story:
    """One v2 fulfillment call per turn, the secret in a header set in the console.

    The agent's custom fallback intent is named plainly ("Refund - catch-all"): only its
    `isFallback` flag says what it is.
    """
    session = "web-9d3e-2027"
    deliveries: list[Delivery] = []
    for index, turn in enumerate(TURNS):
        intent = (
            {
                "name": "projects/acme-support/agent/intents/7d6c5b4a-2817-4f6e-8d9c-0b1a2c3d4e5f",
                "displayName": "Refund - catch-all",
                "isFallback": True,
            }
            if turn.failed
            else {
                "name": "projects/acme-support/agent/intents/1a2b3c4d-2817-4f6e-8d9c-0b1a2c3d4e5f",
                "displayName": "refund.status",
            }
        )
        body = {
            "responseId": f"4f3e2d1c-9b8a-4765-b4c3-d2e1f0a9b8c7-{index:08d}",
            "session": f"projects/acme-support/agent/sessions/{session}",
            "queryResult": {
                "queryText": turn.customer,
                "parameters": {"customer_name": "Ana Lima", "tier": "standard"},
                "allRequiredParamsPresent": True,
                "fulfillmentText": turn.reply(),
                "fulfillmentMessages": [{"text": {"text": [turn.reply()]}}],
                "outputContexts": [],
                "intent": intent,
                "intentDetectionConfidence": 1 if turn.failed else 0.93,
                "languageCode": "en",
            },
            "originalDetectIntentRequest": {
                "source": "telegram",
                "payload": {"data": {"from": {"id": 55501234, "first_name": "Ana"}}},
            },
        }
        headers = {
            "Content-Type": "application/json",
            "X-Escalations-Secret": SECRETS["ESCALATIONS_DIALOGFLOW_ES_SECRET"],
        }
        deliveries.append(Delivery(at(turn.second + 2), _json(body), headers))
    return Story(
        "dialogflow-es",
        "dialogflow-es",
        session,
        tuple(deliveries),
        marked=lambda e: e.fallback is True and e.intent == "Refund - catch-all",
    )


# --- Amazon Lex V2 --------------------------------------------------------------------------------

LEX_BOT = {
    "name": "SupportBot",
    "version": "3",
    "id": "K61NSOGZCS",
    "aliasName": "Prod",
    "aliasId": "ALIAS1",
    "localeId": "en_GB",
}
_LEX_HEADERS = {
    "Content-Type": "application/json",
    "X-Escalations-Secret": SECRETS["ESCALATIONS_LEX_SECRET"],
}


def lex_logs_story() -> Story:
    """Conversation-log records, one per post, from a log-stream forwarder.

    The failed turns keep their intent (RefundStatus) at a middling confidence, given in two
    of the shapes Lex uses; only `missedUtterance` says the bot did not understand.
    """
    session = "phone-6623"
    confidences: tuple[object, ...] = (0.93, {"score": 0.41}, "0.38")
    deliveries: list[Delivery] = []
    for index, turn in enumerate(TURNS):
        record = {
            "timestamp": iso(turn.second + 2),
            "messageVersion": "2.0",
            "requestId": f"8d2b3c4e-000{index}-4e5f-8a9b-0c1d2e3f4a5b",
            "sessionId": session,
            "inputMode": "Text",
            "operationName": "RecognizeText",
            "inputTranscript": turn.customer,
            "interpretations": [
                {
                    "intent": {"name": "RefundStatus", "slots": {}},
                    "nluConfidence": confidences[index],
                },
                {"intent": {"name": "FallbackIntent", "slots": {}}},
            ],
            "sessionState": {
                "sessionAttributes": {"CustomerId": "crm-4411", "CustomerTier": "standard"},
                "intent": {"name": "RefundStatus", "state": "InProgress", "slots": {}},
                "dialogAction": {"type": "ElicitSlot", "slotToElicit": "OrderId"},
            },
            "messages": [{"contentType": "PlainText", "content": turn.reply()}],
            "missedUtterance": turn.failed,
            "bot": LEX_BOT,
        }
        deliveries.append(Delivery(at(turn.second + 3), _json(record), _LEX_HEADERS))
    return Story(
        "lex-v2",
        "lex-v2",
        session,
        tuple(deliveries),
        marked=lambda e: e.fallback is True and e.intent == "RefundStatus",
    )


def lex_lambda_story() -> Story:
    """Lambda code-hook input events, forwarded by the bot's Lambda as they come.

    A Lambda event holds the customer's words and the intent Lex chose, not the bot's reply
    (Lex writes that after the Lambda answers), so the bot's side of each turn has no words; the
    failed turns are Lex's built-in FallbackIntent.
    """
    session = "web-6624"
    deliveries: list[Delivery] = []
    for index, turn in enumerate(TURNS):
        intent_name = "FallbackIntent" if turn.failed else "RefundStatus"
        intent = {
            "name": intent_name,
            "slots": {},
            "state": "InProgress",
            "confirmationState": "None",
        }
        event = {
            "messageVersion": "1.0",
            "invocationSource": "DialogCodeHook",
            "inputMode": "Text",
            "responseContentType": "text/plain; charset=utf-8",
            "sessionId": session,
            "inputTranscript": turn.customer,
            "bot": LEX_BOT,
            "interpretations": [
                {"intent": intent, **({} if turn.failed else {"nluConfidence": 0.93})},
                {"intent": {"name": "RefundStatus", "slots": {}}, "nluConfidence": 0.22},
            ],
            "proposedNextState": {"dialogAction": {"type": "ElicitIntent"}},
            "requestAttributes": {"x-amz-lex:channel-type": "Web"},
            "sessionState": {
                "sessionAttributes": {"CustomerId": "crm-4411"},
                "intent": intent,
                "originatingRequestId": f"3c6f9a2d-4a7d-4e3b-9c6a-1d0f8e7b6a{index:02d}",
            },
        }
        deliveries.append(Delivery(at(turn.second + 1), _json(event), _LEX_HEADERS))
    return Story(
        "lex-v2",
        "lex-v2",
        session,
        tuple(deliveries),
        marked=lambda e: e.fallback is True and e.intent == "FallbackIntent",
    )


# --- LivePerson -----------------------------------------------------------------------------------

CONSUMER = "3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b"
BOT_AGENT = "42257269.9876543210"


def liveperson_story() -> Story:
    """One messaging notification per message, signed X-Liveperson-Signature (base64 sha1).

    The bot's messages carry LivePerson's `BotResponse` metadata: the first failure is the
    bot's own intent at a low `confidenceScore`, the second its Fallback intent.
    """
    cid = "d2e3f4a5-0000-4a5b-8c7d-9e0f1a2b3c4d"
    secret = SECRETS["ESCALATIONS_LIVEPERSON_SECRET"]
    verdicts = (
        {
            "id": "refund.status",
            "name": "refund.status",
            "confidence": "HIGH",
            "confidenceScore": 0.93,
        },
        {
            "id": "refund.status",
            "name": "refund.status",
            "confidence": "LOW",
            "confidenceScore": 0.22,
        },
        {"id": "fallback", "name": "Fallback", "confidence": "LOW", "confidenceScore": 0.1},
    )
    deliveries: list[Delivery] = []
    sequence = 0
    for turn, verdict in zip(TURNS, verdicts, strict=True):
        for offset, originator, role, text in (
            (0, CONSUMER, "CONSUMER", turn.customer),
            (2, BOT_AGENT, "ASSIGNED_AGENT", turn.reply()),
        ):
            sequence += 1
            change: dict[str, Any] = {
                "sequence": sequence,
                "originatorId": originator,
                "originatorMetadata": {"id": originator, "role": role},
                "serverTimestamp": int(epoch(turn.second + offset) * 1000),
                "event": {"type": "ContentEvent", "message": text, "contentType": "text/plain"},
                "conversationId": cid,
                "dialogId": cid,
            }
            if role != "CONSUMER":
                change["metadata"] = [
                    {
                        "type": "BotResponse",
                        "externalConversationId": cid[:8],
                        "businessCases": [],
                        "intents": [verdict],
                    }
                ]
            body = _json(
                {
                    "kind": "notification",
                    "body": {"changes": [change]},
                    "type": "ms.MessagingEventNotification",
                }
            )
            signature = "sha1=" + base64.b64encode(_hmac(secret, body, "sha1")).decode()
            headers = {"Content-Type": "application/json", "X-Liveperson-Signature": signature}
            deliveries.append(Delivery(at(turn.second + offset + 1), body, headers))
    return Story(
        "liveperson",
        "liveperson",
        cid,
        tuple(deliveries),
        marked=lambda e: e.confidence is not None and e.confidence < 0.3,
    )


# --- Twilio Conversations -------------------------------------------------------------------------


def _twilio_delivery(params: list[tuple[str, str]], sent: datetime) -> Delivery:
    # Twilio's algorithm: the URL it called, then each parameter name and value, sorted by name.
    url = f"{PUBLIC_URL}/webhooks/twilio"
    signed = url + "".join(name + value for name, value in sorted(params))
    signature = base64.b64encode(
        _hmac(SECRETS["ESCALATIONS_TWILIO_SECRET"], signed.encode(), "sha1")
    ).decode()
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": signature,
    }
    return Delivery(sent, urlencode(params).encode(), headers)


def twilio_story() -> Story:
    """`onMessageAdded` form posts, one per message, signed X-Twilio-Signature over the URL and
    the sorted parameters. The customer writes by SMS; the bot posts through the REST API and
    marks its replies in the message `Attributes`. Twilio's retries count up `RetryCount`."""
    cid = "CH00000000000000000000000000000077"

    def messages(retry_count: int) -> tuple[Delivery, ...]:
        deliveries: list[Delivery] = []
        index = 0
        for turn in TURNS:
            verdict = {"intent": "refund.status", "confidence": 0.64 if turn.failed else 0.93}
            if turn.failed:
                verdict["fallback"] = True
            for offset, author, source, text, attributes in (
                (0, "+15555550100", "SMS", turn.customer, {}),
                (2, "acme-bot", "API", turn.reply(), verdict),
            ):
                index += 1
                params = [
                    ("EventType", "onMessageAdded"),
                    ("AccountSid", "AC00000000000000000000000000000001"),
                    ("ChatServiceSid", "IS00000000000000000000000000000001"),
                    ("ConversationSid", cid),
                    ("MessageSid", f"IM000000000000000000000000000007{index:02d}"),
                    ("Index", str(index)),
                    ("Author", author),
                    ("Body", text),
                    ("Attributes", json.dumps(attributes)),
                    ("DateCreated", iso(turn.second + offset)),
                    ("Source", source),
                    ("RetryCount", str(retry_count)),
                    ("WebhookSid", "WH00000000000000000000000000000001"),
                    ("WebhookType", "webhook"),
                ]
                deliveries.append(_twilio_delivery(params, at(turn.second + offset + 1)))
        return tuple(deliveries)

    return Story(
        "twilio",
        "twilio",
        cid,
        messages(0),
        marked=lambda e: e.fallback is True,
        retries=messages(1),
    )


# --- Microsoft Bot Framework ----------------------------------------------------------------------


def botframework_story(*, one_activity_per_post: bool = False) -> Story:
    """A transcript logger posting each turn's activities as one batch, with its shared secret.

    The bot's LUIS recognizer traces its verdict before each reply; its `None` intent is the
    no-match, and reaches the reply that follows it in the same batch. A logger that posts one
    activity at a time (as `TranscriptLoggerMiddleware` hands them over) cannot carry the trace
    to the reply: then the bot marks its replies itself, in `channelData`.
    """
    cid = "Lm2ArQD8Kr3" if one_activity_per_post else "Lm2ArQD8Kr2"
    user = {"id": "dl_8c2d", "name": "Ana Lima", "role": "user"}
    bot = {"id": "acme-bot", "name": "Acme Bot", "role": "bot"}
    headers = {
        "Content-Type": "application/json",
        "X-Escalations-Secret": SECRETS["ESCALATIONS_BOTFRAMEWORK_SECRET"],
    }
    sequence = 0

    def activity(
        kind: str, second: float, sender: Mapping[str, Any], **fields: Any
    ) -> dict[str, Any]:
        nonlocal sequence
        sequence += 1
        return {
            "type": kind,
            "id": f"{cid}|{sequence:07d}",
            "timestamp": at(second).isoformat().replace("+00:00", "Z"),
            "channelId": "webchat",
            "serviceUrl": "https://webchat.botframework.com/",
            "conversation": {"id": cid},
            "from": sender,
            "recipient": user if sender is bot else bot,
            **fields,
        }

    deliveries: list[Delivery] = []
    for index, turn in enumerate(TURNS):
        batch = []
        if index == 0:
            batch.append(
                activity(
                    "conversationUpdate",
                    turn.second - 1,
                    user,
                    membersAdded=[user],
                    membersRemoved=[],
                )
            )
        intents = (
            {"None": {"score": 0.71}, "RefundStatus": {"score": 0.18}}
            if turn.failed
            else {"RefundStatus": {"score": 0.93}, "None": {"score": 0.04}}
        )
        signals: dict[str, Any] = {"intent": "RefundStatus", "confidence": 0.64}
        if turn.failed:
            signals["fallback"] = True
        else:
            signals["confidence"] = 0.93
        batch += [
            activity(
                "message",
                turn.second,
                user,
                text=turn.customer,
                locale="en-GB",
                textFormat="plain",
            ),
            activity(
                "trace",
                turn.second + 1,
                bot,
                name="LuisRecognizer",
                label="Luis Trace",
                valueType="https://www.luis.ai/schemas/trace",
                value={
                    "recognizerResult": {"text": turn.customer, "intents": intents, "entities": {}}
                },
            ),
            activity(
                "message",
                turn.second + 2,
                bot,
                text=turn.reply(),
                inputHint="expectingInput",
                **({"channelData": signals} if one_activity_per_post else {}),
            ),
        ]
        if one_activity_per_post:
            deliveries.extend(
                Delivery(at(turn.second + 3), _json(single), headers) for single in batch
            )
        else:
            deliveries.append(Delivery(at(turn.second + 3), _json(batch), headers))
    return Story(
        "botframework",
        "botframework",
        cid,
        tuple(deliveries),
        marked=(
            (lambda e: e.fallback is True and e.intent == "RefundStatus")
            if one_activity_per_post
            else (lambda e: e.fallback is True and e.intent == "None")
        ),
    )


# --- Chatwoot -------------------------------------------------------------------------------------


def chatwoot_story() -> Story:
    """Agent bot webhooks, one event per post; agent bot webhooks are not signed, so the URL
    the bot was given carries the secret (`?token=`).

    Chatwoot has no fallback flag, intent or confidence: it says who wrote (the agent bot's
    outgoing messages), so the bot's own fallback wording is what the engine can go on.
    """
    number, account = 57, 3
    contact = {"id": 88, "name": "Ana Lima", "email": "ana@example.com", "type": "contact"}
    agent_bot = {"id": 9, "name": "Helpdesk Bot", "type": "agent_bot"}
    conversation = {
        "id": number,
        "inbox_id": 12,
        "status": "pending",
        "meta": {"sender": contact},
        "custom_attributes": {"tier": "standard"},
    }
    query = {"token": SECRETS["ESCALATIONS_CHATWOOT_SECRET"]}
    headers = {"Content-Type": "application/json"}
    created = {
        "event": "conversation_created",
        **conversation,
        "account": {"id": account, "name": "Acme"},
        "timestamp": int(epoch(-1)),
        "messages": [],
    }
    deliveries = [Delivery(at(-1), _json(created), headers, query)]
    message_id = 700
    for turn in TURNS:
        for offset, incoming, sender, text in (
            (0, True, contact, turn.customer),
            (2, False, agent_bot, turn.reply(phrased=True)),
        ):
            message_id += 1
            body = {
                "event": "message_created",
                "id": message_id,
                "content": text,
                "created_at": iso(turn.second + offset),
                "message_type": "incoming" if incoming else "outgoing",
                "content_type": "text",
                "private": False,
                "sender": sender,
                "account": {"id": account, "name": "Acme"},
                "inbox": {"id": 12, "name": "Website"},
                "conversation": conversation,
            }
            deliveries.append(Delivery(at(turn.second + offset + 1), _json(body), headers, query))
    return Story(
        "chatwoot",
        "chatwoot",
        f"{account}:{number}",
        tuple(deliveries),
        marked=lambda e: e.fallback is None and e.intent is None and e.confidence is None,
        phrased=True,
    )


STORIES: dict[str, Callable[[], Story]] = {
    "generic": generic_story,
    "botpress": botpress_story,
    "sunshine": sunshine_story,
    "intercom": intercom_story,
    "rasa": rasa_story,
    "dialogflow-cx": dialogflow_cx_story,
    "dialogflow-es": dialogflow_es_story,
    "lex-v2 (conversation logs)": lex_logs_story,
    "lex-v2 (Lambda code hook)": lex_lambda_story,
    "liveperson": liveperson_story,
    "twilio": twilio_story,
    "botframework (a batch per turn, LUIS traces)": botframework_story,
    "botframework (one activity per post, channelData)": lambda: botframework_story(
        one_activity_per_post=True
    ),
    "chatwoot": chatwoot_story,
}
