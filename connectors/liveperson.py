"""LivePerson Connector API webhooks: messaging events and conversation state changes.

`ms.MessagingEventNotification` changes with a `ContentEvent` (or `RichContentEvent`) are
messages: the consumer is the customer; an agent-role participant is the bot when the message
carries LivePerson's `BotResponse` conversation metadata (with its intents and `confidenceScore`),
and a human agent otherwise. `cqm.ExConversationChangeNotification` changes that close the
conversation end the session. Chat-state and accept-status events, and every other notification
type, are skipped. LivePerson's webhooks say nothing that separates a transfer to a human skill
from any other transfer, so no hand-off event is derived; a human agent's message is recorded as
such. Authenticity: `X-Liveperson-Signature: sha1=<base64 HMAC-SHA1(app secret, raw body)>`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.base import BaseConnector, InboundRequest
from connectors.batching import group
from connectors.payload import (
    as_object,
    at,
    check_text,
    epoch_time,
    id_str,
    load_json_object,
    loose_confidence,
    loose_object,
    loose_str,
    req,
    req_list,
    req_object,
    req_str,
    stable_id,
)
from connectors.verification import hmac_signature_header
from engine.events import (
    ConversationEvent,
    ConversationMeta,
    Customer,
    EventType,
    InboundBatch,
    Role,
)

SIGNATURE_HEADER = "X-Liveperson-Signature"
MESSAGING = "ms.MessagingEventNotification"
CONVERSATION_STATE = "cqm.ExConversationChangeNotification"
_MESSAGE_EVENTS = {"ContentEvent", "RichContentEvent"}
_AGENT_ROLES = {"ASSIGNED_AGENT", "AGENT", "MANAGER", "AGENT_MANAGER"}

Item = tuple[str, ConversationMeta, ConversationEvent]


class LivePersonConnector(BaseConnector):
    """LivePerson Connector API webhooks, signed with the app's secret."""

    name = "liveperson"
    secret_env = "ESCALATIONS_LIVEPERSON_SECRET"  # noqa: S105 (a variable name)
    verification = f"{SIGNATURE_HEADER}: sha1=<base64 HMAC-SHA1(app secret, body)>"

    def verify(self, request: InboundRequest, secret: str | None) -> None:
        """Raise BadSignature unless the signature header is the body's HMAC-SHA1 (base64)."""
        if secret is not None:
            hmac_signature_header(
                request, secret, name=SIGNATURE_HEADER, algorithm="sha1", encoding="base64"
            )

    def parse(self, request: InboundRequest) -> list[InboundBatch]:
        """One batch per conversation among the notification's changes."""
        body = load_json_object(request.body)
        kind = req_str(body, "type", "")
        if kind not in (MESSAGING, CONVERSATION_STATE):
            return []
        changes = req_list(req_object(body, "body", ""), "changes", "body")
        items: list[Item] = []
        for index, raw in enumerate(changes):
            path = at("body.changes", index)
            change = as_object(raw, path)
            item = _message(change, path) if kind == MESSAGING else _state(change, path)
            if item is not None:
                items.append(item)
        return group(items)


def _message(change: Mapping[str, Any], path: str) -> Item | None:
    event = req_object(change, "event", path)
    event_type = req_str(event, "type", at(path, "event"))
    if event_type not in _MESSAGE_EVENTS:
        return None
    conversation_id = id_str(change, "conversationId", path)
    when = epoch_time(
        req(change, "serverTimestamp", path), at(path, "serverTimestamp"), milliseconds=True
    )
    originator = loose_object(change, "originatorMetadata")
    role_name = loose_str(originator, "role") or ""
    originator_id = loose_str(change, "originatorId") or loose_str(originator, "id")
    text = (
        loose_str(event, "message") or ""
        if event_type == "ContentEvent"
        else _rich_text(event.get("content")) or "[rich content]"
    )
    bot_response = _bot_response(change)
    intent, confidence = _top_intent(bot_response)
    if role_name == "CONSUMER":
        role = Role.CUSTOMER
    elif role_name in _AGENT_ROLES:
        role = Role.BOT if bot_response is not None else Role.AGENT
    else:
        role = Role.SYSTEM
    sequence = change.get("sequence")
    event_id = (
        f"{conversation_id}:{sequence}"
        if isinstance(sequence, int)
        else stable_id(conversation_id, change.get("serverTimestamp"), originator_id, text)
    )
    customer = Customer(id=originator_id) if role is Role.CUSTOMER else Customer()
    return (
        conversation_id,
        ConversationMeta(platform="liveperson", customer=customer),
        ConversationEvent(
            event_id=event_id,
            type=EventType.MESSAGE,
            timestamp=when,
            role=role,
            text=check_text(text, at(path, "event.message")),
            intent=intent,
            confidence=confidence,
            extra={"content_type": event_type} if event_type != "ContentEvent" else {},
        ),
    )


def _rich_text(element: object) -> str:
    """The text elements of a structured-content card, in reading order."""
    if isinstance(element, list):
        return "\n".join(text for item in element if (text := _rich_text(item)))
    if not isinstance(element, dict):
        return ""
    if element.get("type") == "text" and isinstance(element.get("text"), str):
        return str(element["text"])
    return _rich_text(element.get("elements"))


def _bot_response(change: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """LivePerson's `BotResponse` conversation metadata, which bots attach to their messages."""
    for holder in (change, loose_object(change, "event")):
        metadata = holder.get("metadata")
        if isinstance(metadata, list):
            for entry in metadata:
                if isinstance(entry, dict) and entry.get("type") == "BotResponse":
                    return entry
    return None


def _top_intent(bot_response: Mapping[str, Any] | None) -> tuple[str | None, float | None]:
    if bot_response is None:
        return None, None
    intents = [entry for entry in bot_response.get("intents") or [] if isinstance(entry, dict)]
    if not intents:
        return None, None
    best = intents[0]
    return loose_str(best, "name") or loose_str(best, "id"), loose_confidence(
        best.get("confidenceScore")
    )


def _state(change: Mapping[str, Any], path: str) -> Item | None:
    result = req_object(change, "result", path)
    result_path = at(path, "result")
    conversation_id = id_str(result, "convId", result_path)
    details = req_object(result, "conversationDetails", result_path)
    if loose_str(details, "state") != "CLOSE":
        return None
    details_path = at(result_path, "conversationDetails")
    ended = epoch_time(
        req(details, "endTs", details_path), at(details_path, "endTs"), milliseconds=True
    )
    consumer = next(
        (
            loose_str(participant, "id")
            for participant in details.get("participants") or []
            if isinstance(participant, dict) and participant.get("role") == "CONSUMER"
        ),
        None,
    )
    reason = loose_str(details, "closeReason")
    return (
        conversation_id,
        ConversationMeta(platform="liveperson", customer=Customer(id=consumer)),
        ConversationEvent(
            event_id=f"{conversation_id}:closed",
            type=EventType.SESSION_END,
            timestamp=ended,
            outcome=f"closed by {reason.lower()}" if reason else "closed",
        ),
    )
