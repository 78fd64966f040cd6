"""Microsoft Bot Framework: Activities, `.transcript` files, and a transcript-logger endpoint.

A body is one Activity, a JSON array of them (a `.transcript` file, or a batch from a transcript
logger the bot runs), or `{"activities": [...]}` (a transcript store page). Used: `message`,
`conversationUpdate` with members added (session start), `endOfConversation` (session end, its
`code` as the outcome), the hand-off protocol's `handoff.initiate` event (the platform's own
hand-off) and NLU trace activities (`LuisRecognizer` and other recognizers' `recognizerResult`),
whose top intent and score go on the bot's next reply in the same body. Everything else (typing,
reactions, other traces) is skipped.

Bot Framework has no fallback flag; the recognizer's `None` intent is its no-match, and a bot
may also put `{"intent", "confidence", "fallback"}` in its reply's `channelData`. Who spoke is
`from.role`: `user` is the customer, `bot` (or `skill`) the bot, any other role a human agent
relayed by a hand-off bridge. Authenticity: a shared secret header the logger sends.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from connectors.base import BadPayload, BaseConnector, InboundRequest, received_time
from connectors.batching import group
from connectors.payload import (
    MAX_ID_LENGTH,
    as_object,
    at,
    check_id,
    check_text,
    iso_time,
    json_type,
    load_json,
    loose_confidence,
    loose_object,
    loose_str,
    req_list,
    req_object,
    req_str,
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
NO_MATCH_INTENT = "None"
_BOT_ROLES = {"bot", "skill"}

Item = tuple[str, ConversationMeta, ConversationEvent]
Verdict = tuple[str, float | None]


class BotFrameworkConnector(BaseConnector):
    """Bot Framework Activities and transcripts, posted with a shared secret header."""

    name = "botframework"
    secret_env = "ESCALATIONS_BOTFRAMEWORK_SECRET"  # noqa: S105 (a variable name)
    verification = f"{SECRET_HEADER}: <secret> (sent by the bot's transcript logger)"

    def verify(self, request: InboundRequest, secret: str | None) -> None:
        """Raise BadSignature unless the logger's header carries the secret."""
        if secret is not None:
            shared_secret_header(request, SECRET_HEADER, secret)

    def parse(self, request: InboundRequest) -> list[InboundBatch]:
        """One batch per conversation among the posted activities, in their order."""
        body = load_json(request.body)
        if isinstance(body, list):
            activities = [(at("", index), raw) for index, raw in enumerate(body)]
        elif isinstance(body, dict) and "activities" in body:
            raw_list = req_list(body, "activities", "")
            activities = [(at("activities", index), raw) for index, raw in enumerate(raw_list)]
        elif isinstance(body, dict):
            activities = [("", body)]
        else:
            raise BadPayload(
                f"body: expected an Activity or an array of them, got {json_type(body)}"
            )
        arrived = received_time(request)
        items: list[Item] = []
        # The recognizer's verdict, per conversation, waiting for the bot reply that follows it.
        verdicts: dict[str, Verdict] = {}
        for path, raw in activities:
            item = _activity(as_object(raw, path or "body"), path, arrived, verdicts)
            if item is not None:
                items.append(item)
        return group(items)


def _activity(
    activity: Mapping[str, Any], path: str, arrived: datetime, verdicts: dict[str, Verdict]
) -> Item | None:
    kind = req_str(activity, "type", path)
    conversation = req_object(activity, "conversation", path)
    conversation_id = _bounded(
        req_str(conversation, "id", at(path, "conversation")), at(path, "conversation.id")
    )
    stamp = activity.get("timestamp") or activity.get("localTimestamp")
    when = iso_time(stamp, at(path, "timestamp")) if stamp is not None else arrived
    sender = loose_object(activity, "from")
    event_id = _bounded(
        loose_str(activity, "id")
        or stable_id(conversation_id, stamp, loose_str(sender, "id"), activity.get("text")),
        at(path, "id"),
    )
    meta = ConversationMeta(platform="botframework", metadata=_channel(activity))
    if kind == "message":
        role = _role(activity)
        if role is Role.CUSTOMER:
            meta = ConversationMeta(
                platform="botframework",
                customer=Customer(id=loose_str(sender, "id"), name=loose_str(sender, "name")),
                metadata=meta.metadata,
                language=loose_str(activity, "locale"),
            )
        # A recognizer's verdict belongs to the bot reply that answers it, and only that one.
        verdict = verdicts.pop(conversation_id, None) if role is Role.BOT else None
        return conversation_id, meta, _message(activity, event_id, when, role, path, verdict)
    if kind == "trace":
        verdict = _recognizer_verdict(activity)
        if verdict is not None:
            verdicts[conversation_id] = verdict
        return None
    if kind == "conversationUpdate" and activity.get("membersAdded"):
        return conversation_id, meta, ConversationEvent(event_id, EventType.SESSION_START, when)
    if kind == "endOfConversation":
        outcome = loose_str(activity, "code") or "ended"
        return (
            conversation_id,
            meta,
            ConversationEvent(event_id, EventType.SESSION_END, when, outcome=outcome),
        )
    if kind == "event" and activity.get("name") == "handoff.initiate":
        return (
            conversation_id,
            meta,
            ConversationEvent(
                event_id, EventType.HANDOFF, when, extra={"name": "handoff.initiate"}
            ),
        )
    return None


def _role(activity: Mapping[str, Any]) -> Role:
    role = loose_str(loose_object(activity, "from"), "role")
    if role is None:
        # Older transcripts omit `from.role`; the recipient's role still tells the direction.
        role = "bot" if loose_str(loose_object(activity, "recipient"), "role") == "user" else "user"
    if role == "user":
        return Role.CUSTOMER
    return Role.BOT if role in _BOT_ROLES else Role.AGENT


def _message(
    activity: Mapping[str, Any],
    event_id: str,
    when: datetime,
    role: Role,
    path: str,
    verdict: Verdict | None,
) -> ConversationEvent:
    text = loose_str(activity, "text") or _attachment_text(activity)
    signals = loose_object(activity, "channelData")
    intent = loose_str(signals, "intent") or (verdict[0] if verdict else None)
    confidence = loose_confidence(signals.get("confidence"))
    if confidence is None and verdict is not None:
        confidence = verdict[1]
    fallback: bool | None = None
    if role is Role.BOT:
        flag = signals.get("fallback")
        if isinstance(flag, bool):
            fallback = flag
        elif intent is not None:
            fallback = intent == NO_MATCH_INTENT
    return ConversationEvent(
        event_id=event_id,
        type=EventType.MESSAGE,
        timestamp=when,
        role=role,
        text=check_text(text, at(path, "text")),
        intent=intent if role is Role.BOT else None,
        confidence=confidence if role is Role.BOT else None,
        fallback=fallback,
    )


def _attachment_text(activity: Mapping[str, Any]) -> str:
    """What a card says (title, subtitle, text), or a placeholder naming the attachment."""
    parts: list[str] = []
    for attachment in activity.get("attachments") or []:
        if not isinstance(attachment, dict):
            continue
        content = loose_object(attachment, "content")
        said = [
            value for key in ("title", "subtitle", "text") if (value := loose_str(content, key))
        ]
        parts.append(
            " - ".join(said)
            if said
            else f"[{loose_str(attachment, 'contentType') or 'attachment'}]"
        )
    return "\n".join(parts)


def _recognizer_verdict(activity: Mapping[str, Any]) -> Verdict | None:
    """The top intent and score of a recognizer's trace activity (LUIS, CLU, Orchestrator...)."""
    result = loose_object(loose_object(activity, "value"), "recognizerResult")
    intents = loose_object(result, "intents")
    scored = [
        (name, loose_confidence(loose_object(intents, name).get("score"))) for name in intents
    ]
    if not scored:
        return None
    return max(scored, key=lambda pair: pair[1] if pair[1] is not None else -1.0)


def _channel(activity: Mapping[str, Any]) -> dict[str, str]:
    channel = loose_str(activity, "channelId")
    return {"channel": channel} if channel else {}


def _bounded(value: str, path: str) -> str:
    """An id as the channel gave it, or its hash when the channel's ids run past our limit."""
    if len(value) > MAX_ID_LENGTH:
        # Teams thread ids can be long; a hash keeps them stable without truncating into clashes.
        return stable_id(value)
    return check_id(value, path)
