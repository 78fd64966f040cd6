"""Dialogflow CX: the WebhookRequest a flow's fulfillment sends, one conversational turn per call.

A call yields the customer's words (`text`, `transcript` or `dtmfDigits`) and the bot's side of the
turn: the response messages queued so far, carrying the matched intent, its confidence and the
fallback verdict. Fallback: a no-match or no-input turn, known from the `triggerEvent`
(`sys.no-match-*`, `sys.no-input-*`) or from the fulfillment `tag` the designer gave the no-match
handler (any tag containing "no-match", "no-input" or "fallback"). A `liveAgentHandoff` response
message is the platform's own hand-off; `endInteraction` ends the session. CX sends no time, so
events are stamped with the request's arrival. Authenticity: the secret in a header configured on
the webhook, or basic auth.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from connectors._dialogflow import DialogflowConnector, customer_from, session_id
from connectors.base import InboundRequest, received_time
from connectors.payload import (
    at,
    check_text,
    id_str,
    load_json_object,
    loose_confidence,
    loose_object,
    loose_str,
    opt_list,
    req_object,
    req_str,
)
from engine.events import ConversationEvent, ConversationMeta, EventType, InboundBatch, Role

_FALLBACK_TAG = re.compile(r"no[-_ ]?match|no[-_ ]?input|fallback", re.IGNORECASE)
_FALLBACK_EVENTS = ("sys.no-match", "sys.no-input")


class DialogflowCXConnector(DialogflowConnector):
    """Dialogflow CX webhook calls."""

    name = "dialogflow-cx"
    secret_env = "ESCALATIONS_DIALOGFLOW_CX_SECRET"  # noqa: S105 (a variable name)

    def parse(self, request: InboundRequest) -> list[InboundBatch]:
        """One batch: this turn of the session."""
        body = load_json_object(request.body)
        turn_id = id_str(body, "detectIntentResponseId", "")
        session_info = req_object(body, "sessionInfo", "")
        conversation_id = session_id(
            req_str(session_info, "session", "sessionInfo"), "sessionInfo.session"
        )
        when = received_time(request)
        parameters = loose_object(session_info, "parameters")
        page = loose_object(body, "pageInfo")
        metadata = {
            key: value
            for key, value in {
                "page": loose_str(page, "displayName"),
                "tag": loose_str(loose_object(body, "fulfillmentInfo"), "tag"),
            }.items()
            if value
        }
        meta = ConversationMeta(
            platform="dialogflow-cx",
            customer=customer_from(parameters, None),
            metadata=metadata,
            language=loose_str(body, "languageCode"),
        )
        return [
            InboundBatch(
                conversation_id=conversation_id,
                meta=meta,
                events=tuple(_turn(body, turn_id, when)),
            )
        ]


def _turn(body: Mapping[str, Any], turn_id: str, when: datetime) -> list[ConversationEvent]:
    events: list[ConversationEvent] = []
    intent_info = loose_object(body, "intentInfo")
    intent = loose_str(intent_info, "displayName")
    confidence = loose_confidence(intent_info.get("confidence"))
    said = loose_str(body, "text") or loose_str(body, "transcript") or loose_str(body, "dtmfDigits")
    if said is not None:
        events.append(
            ConversationEvent(
                event_id=f"{turn_id}:customer",
                type=EventType.MESSAGE,
                timestamp=when,
                role=Role.CUSTOMER,
                text=check_text(said, "text"),
                intent=intent,
                confidence=confidence,
                extra=_sentiment(body),
            )
        )
    trigger_event = loose_str(body, "triggerEvent") or ""
    tag = loose_str(loose_object(body, "fulfillmentInfo"), "tag") or ""
    fallback = trigger_event.startswith(_FALLBACK_EVENTS) or bool(_FALLBACK_TAG.search(tag))
    replies: list[str] = []
    handoff: Mapping[str, Any] | None = None
    ended = False
    for raw in opt_list(body, "messages", ""):
        message: Mapping[str, Any] = raw if isinstance(raw, dict) else {}
        texts = loose_object(message, "text").get("text")
        if isinstance(texts, list):
            replies.extend(part for part in texts if isinstance(part, str))
        if "liveAgentHandoff" in message:
            handoff = loose_object(loose_object(message, "liveAgentHandoff"), "metadata")
        if "endInteraction" in message:
            ended = True
    events.append(
        ConversationEvent(
            event_id=f"{turn_id}:bot",
            type=EventType.MESSAGE,
            timestamp=when,
            role=Role.BOT,
            text=check_text("\n".join(replies), at("messages", "text")),
            intent=intent,
            confidence=confidence,
            fallback=fallback,
            extra={"trigger_event": trigger_event} if trigger_event else {},
        )
    )
    if handoff is not None:
        events.append(
            ConversationEvent(
                event_id=f"{turn_id}:handoff",
                type=EventType.HANDOFF,
                timestamp=when,
                extra={"metadata": dict(handoff)} if handoff else {},
            )
        )
    if ended:
        events.append(
            ConversationEvent(
                event_id=f"{turn_id}:end",
                type=EventType.SESSION_END,
                timestamp=when,
                outcome="end_interaction",
            )
        )
    return events


def _sentiment(body: Mapping[str, Any]) -> dict[str, float]:
    score = loose_object(body, "sentimentAnalysisResult").get("score")
    if isinstance(score, int | float) and not isinstance(score, bool):
        return {"sentiment_score": float(score)}
    return {}
