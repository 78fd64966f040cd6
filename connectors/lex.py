"""Amazon Lex V2: Lambda code-hook input events, and conversation-log records.

Lex calls only Lambda, so a small forwarding function posts each input event here (and may return
our answer to Lex as is: a `Delegate` dialog action that changes nothing). Conversation-log
records (one object, or an array of them, e.g. from a log export) carry their own time, the bot's
reply messages and the `missedUtterance` flag.

One turn yields the customer's `inputTranscript` and the bot's side carrying the chosen intent,
its `nluConfidence` (a number, `{"score": n}` or a string, all seen in the wild) and the fallback
verdict: the built-in `FallbackIntent`, or `missedUtterance`. A log's `EndConversation` next step
ends the session. Lex has no hand-off event of its own. Lambda events carry no time, so they are
stamped with the request's arrival. Authenticity: a header secret set by the forwarder.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from connectors.base import BadPayload, BaseConnector, InboundRequest, received_time
from connectors.batching import group, scalar_metadata
from connectors.payload import (
    as_object,
    at,
    check_text,
    id_str,
    iso_time,
    json_type,
    load_json,
    loose_confidence,
    loose_object,
    loose_str,
    opt_bool,
    opt_list,
    req,
    stable_id,
)
from connectors.verification import shared_secret_header
from engine.events import (
    ConversationEvent,
    ConversationMeta,
    Customer,
    EventType,
    InboundBatch,
    Role,
)

SECRET_HEADER = "X-Escalations-Secret"  # noqa: S105 (a header name)
FALLBACK_INTENT = "FallbackIntent"
# Where the Lambda answer's state is kept between parse and respond; never shown to anyone.
_REPLY_STATE = "lex_reply_state"
_FACT_KEYS = {
    "id": ("customerid", "customer_id", "userid", "user_id"),
    "name": ("customername", "customer_name", "name"),
    "tier": ("customertier", "customer_tier", "tier"),
    "email": ("customeremail", "customer_email", "email"),
}

Item = tuple[str, ConversationMeta, ConversationEvent]


class LexV2Connector(BaseConnector):
    """Lex V2 Lambda input events and conversation logs, forwarded with a header secret."""

    name = "lex-v2"
    secret_env = "ESCALATIONS_LEX_SECRET"  # noqa: S105 (a variable name)
    verification = f"{SECRET_HEADER}: <secret> (sent by the forwarding Lambda)"

    def verify(self, request: InboundRequest, secret: str | None) -> None:
        """Raise BadSignature unless the forwarder's header carries the secret."""
        if secret is not None:
            shared_secret_header(request, SECRET_HEADER, secret)

    def parse(self, request: InboundRequest) -> list[InboundBatch]:
        """One batch per Lex session in the body."""
        body = load_json(request.body)
        if isinstance(body, list):
            records = [
                (at("", index), as_object(raw, at("", index))) for index, raw in enumerate(body)
            ]
        elif isinstance(body, dict):
            records = [("", body)]
        else:
            raise BadPayload(f"body: expected a JSON object or array, got {json_type(body)}")
        items: list[Item] = []
        for path, record in records:
            items.extend(_turn(record, path, received_time(request)))
        return group(items)

    def respond(self, batches: list[InboundBatch]) -> tuple[str, bytes]:
        """For a Lambda event, a `Delegate` answer that leaves the intent and session untouched."""
        for batch in batches:
            for event in batch.events:
                state = event.extra.get(_REPLY_STATE)
                if isinstance(state, dict):
                    answer = {
                        "sessionState": {
                            "dialogAction": {"type": "Delegate"},
                            "intent": state["intent"],
                            "sessionAttributes": state["sessionAttributes"],
                        }
                    }
                    return "application/json", json.dumps(answer).encode()
        return "application/json", b"{}"


def _turn(record: Mapping[str, Any], path: str, arrived: datetime) -> list[Item]:
    session_id = id_str(record, "sessionId", path)
    session_state = loose_object(record, "sessionState")
    intent = loose_object(session_state, "intent")
    intent_name = loose_str(intent, "name")
    is_lambda = "invocationSource" in record
    # Lambda input carries no time of its own; log records do.
    when = arrived if is_lambda else iso_time(req(record, "timestamp", path), at(path, "timestamp"))
    turn_id = (
        loose_str(record, "requestId")
        or loose_str(session_state, "originatingRequestId")
        or stable_id(session_id, record.get("inputTranscript"), intent_name)
    )
    confidence = _confidence_of(record, intent_name, path)
    missed = opt_bool(record, "missedUtterance", path)
    meta = _meta(record, session_state)
    events: list[ConversationEvent] = []
    said = loose_str(record, "inputTranscript")
    if said is not None:
        events.append(
            ConversationEvent(
                event_id=f"{turn_id}:customer",
                type=EventType.MESSAGE,
                timestamp=when,
                role=Role.CUSTOMER,
                text=check_text(said, at(path, "inputTranscript")),
                intent=intent_name,
                confidence=confidence,
            )
        )
    replies = [
        content
        for message in opt_list(record, "messages", path)
        if isinstance(message, dict) and (content := loose_str(message, "content"))
    ]
    extra: dict[str, Any] = {}
    if missed:
        extra["missed_utterance"] = True
    if is_lambda:
        extra[_REPLY_STATE] = {
            "intent": dict(intent),
            "sessionAttributes": dict(loose_object(session_state, "sessionAttributes")),
        }
    events.append(
        ConversationEvent(
            event_id=f"{turn_id}:bot",
            type=EventType.MESSAGE,
            timestamp=when,
            role=Role.BOT,
            text=check_text("\n".join(replies), at(path, "messages")),
            intent=intent_name,
            confidence=confidence,
            fallback=intent_name == FALLBACK_INTENT or bool(missed),
            extra=extra,
        )
    )
    if _ends_conversation(record):
        events.append(
            ConversationEvent(
                f"{turn_id}:end", EventType.SESSION_END, when, outcome="end_conversation"
            )
        )
    return [(session_id, meta, event) for event in events]


def _confidence_of(record: Mapping[str, Any], intent_name: str | None, path: str) -> float | None:
    """The NLU confidence Lex gave the chosen intent (the first interpretation if none matches)."""
    interpretations = [
        raw for raw in opt_list(record, "interpretations", path) if isinstance(raw, dict)
    ]
    for interpretation in interpretations:
        if loose_str(loose_object(interpretation, "intent"), "name") == intent_name:
            return loose_confidence(interpretation.get("nluConfidence"))
    return loose_confidence(interpretations[0].get("nluConfidence")) if interpretations else None


def _ends_conversation(record: Mapping[str, Any]) -> bool:
    logs = record.get("dialogEventLogs")
    if not isinstance(logs, list):
        return False
    return any(
        isinstance(log, dict)
        and loose_object(loose_object(log, "nextStep"), "dialogAction").get("type")
        == "EndConversation"
        for log in logs
    )


def _meta(record: Mapping[str, Any], session_state: Mapping[str, Any]) -> ConversationMeta:
    attributes = {
        key.lower(): value
        for key, value in scalar_metadata(loose_object(session_state, "sessionAttributes")).items()
        if value
    }
    facts = {
        field: next((attributes[key] for key in keys if key in attributes), None)
        for field, keys in _FACT_KEYS.items()
    }
    bot = loose_object(record, "bot")
    channel = loose_str(loose_object(record, "requestAttributes"), "x-amz-lex:channel-type")
    locale = loose_str(bot, "localeId")
    metadata = {
        key: value
        for key, value in {
            "bot": loose_str(bot, "name"),
            "alias": loose_str(bot, "aliasName"),
            "channel": channel or attributes.get("channel"),
        }.items()
        if value
    }
    return ConversationMeta(
        platform="lex-v2",
        customer=Customer(
            id=facts["id"], name=facts["name"], tier=facts["tier"], email=facts["email"]
        ),
        metadata=metadata,
        language=locale.replace("_", "-") if locale else None,
    )
