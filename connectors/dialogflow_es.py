"""Dialogflow ES: the v2 WebhookRequest fulfillment sends, one conversational turn per call.

A call yields the customer's `queryText` and the bot's side of the turn (the agent's
`fulfillmentText` / text messages) carrying the matched intent, `intentDetectionConfidence` and the
fallback verdict: `intent.isFallback`, the flag ES sets on its fallback intents. A "live agent
hand-off" response (a `liveAgentHandoff` message or custom payload) is the platform's own
hand-off; an intent marked `endInteraction` ends the session. ES sends no time, so events are
stamped with the request's arrival. Authenticity: basic auth or a header, both set in the
console's fulfillment settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from connectors._dialogflow import DialogflowConnector, customer_from, session_id
from connectors.base import InboundRequest, received_time
from connectors.payload import (
    check_text,
    id_str,
    load_json_object,
    loose_confidence,
    loose_object,
    loose_str,
    opt_bool,
    opt_list,
    req_object,
    req_str,
)
from engine.events import ConversationEvent, ConversationMeta, EventType, InboundBatch, Role


class DialogflowESConnector(DialogflowConnector):
    """Dialogflow ES (v2) webhook calls."""

    name = "dialogflow-es"
    secret_env = "ESCALATIONS_DIALOGFLOW_ES_SECRET"  # noqa: S105 (a variable name)

    def parse(self, request: InboundRequest) -> list[InboundBatch]:
        """One batch: this turn of the session."""
        body = load_json_object(request.body)
        turn_id = id_str(body, "responseId", "")
        conversation_id = session_id(req_str(body, "session", ""), "session")
        result = req_object(body, "queryResult", "")
        original = loose_object(body, "originalDetectIntentRequest")
        source = loose_str(original, "source")
        meta = ConversationMeta(
            platform="dialogflow-es",
            customer=customer_from(loose_object(result, "parameters"), _channel_user(original)),
            metadata={"source": source} if source else {},
            language=loose_str(result, "languageCode"),
        )
        return [
            InboundBatch(
                conversation_id=conversation_id,
                meta=meta,
                events=tuple(_turn(result, turn_id, received_time(request))),
            )
        ]


def _turn(result: Mapping[str, Any], turn_id: str, when: datetime) -> list[ConversationEvent]:
    intent = loose_object(result, "intent")
    intent_name = loose_str(intent, "displayName")
    confidence = loose_confidence(result.get("intentDetectionConfidence"))
    events: list[ConversationEvent] = []
    said = loose_str(result, "queryText")
    if said is not None:
        sentiment = loose_object(
            loose_object(result, "sentimentAnalysisResult"), "queryTextSentiment"
        )
        score = sentiment.get("score")
        events.append(
            ConversationEvent(
                event_id=f"{turn_id}:customer",
                type=EventType.MESSAGE,
                timestamp=when,
                role=Role.CUSTOMER,
                text=check_text(said, "queryResult.queryText"),
                intent=intent_name,
                confidence=confidence,
                extra={"sentiment_score": float(score)} if isinstance(score, int | float) else {},
            )
        )
    replies: list[str] = []
    handoff = False
    for raw in opt_list(result, "fulfillmentMessages", "queryResult"):
        message: Mapping[str, Any] = raw if isinstance(raw, dict) else {}
        texts = loose_object(message, "text").get("text")
        if isinstance(texts, list):
            replies.extend(part for part in texts if isinstance(part, str))
        if "liveAgentHandoff" in message or "liveAgentHandoff" in loose_object(message, "payload"):
            handoff = True
    reply = loose_str(result, "fulfillmentText") or "\n".join(replies)
    events.append(
        ConversationEvent(
            event_id=f"{turn_id}:bot",
            type=EventType.MESSAGE,
            timestamp=when,
            role=Role.BOT,
            text=check_text(reply, "queryResult.fulfillmentText"),
            intent=intent_name,
            confidence=confidence,
            fallback=opt_bool(intent, "isFallback", "queryResult.intent") or False,
        )
    )
    if handoff:
        events.append(ConversationEvent(f"{turn_id}:handoff", EventType.HANDOFF, when))
    if intent.get("endInteraction") is True:
        events.append(
            ConversationEvent(
                f"{turn_id}:end", EventType.SESSION_END, when, outcome="end_interaction"
            )
        )
    return events


def _channel_user(original: Mapping[str, Any]) -> str | None:
    """The customer's id on the channel the integration names (Actions on Google, Slack...)."""
    payload = loose_object(original, "payload")
    data = loose_object(payload, "data")
    return (
        loose_str(loose_object(payload, "user"), "userId")
        or loose_str(data, "user")
        or loose_str(loose_object(data, "sender"), "id")
        or loose_str(loose_object(data, "from"), "id")
    )
