"""Chatwoot: agent bot (and account) webhooks, one event per post.

Used: `message_created` (incoming messages are the customer's; outgoing ones the agent bot's, or a
human agent's when the sender is a `user`; private notes and activity lines are skipped),
`conversation_created` (session start), `conversation_opened` and `conversation_status_changed`
to `open` (the conversation left the bot's `pending` queue for the agents: a hand-off), and
`conversation_resolved` / a change to `resolved` (session end). Every other event is skipped.

Chatwoot's conversation number in an account (`display_id`, which its webhooks call `id`) is what
its API takes, so the conversation is stored as `<account>:<number>` with the parts kept as
`chatwoot_account_id` and `chatwoot_conversation_id` metadata for the hand-off calls.

Authenticity: a signed webhook's `X-Chatwoot-Signature: sha256=<hex HMAC-SHA256(secret,
"<X-Chatwoot-Timestamp>.<raw body>")>`; agent bot webhooks are not signed, so for them the
webhook URL carries the secret as `?token=<secret>`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from connectors.base import (
    BadPayload,
    BadSignature,
    BaseConnector,
    InboundRequest,
    header,
    received_time,
)
from connectors.batching import scalar_metadata
from connectors.payload import (
    at,
    check_text,
    epoch_time,
    iso_time,
    load_json_object,
    loose_object,
    loose_str,
    req,
    req_object,
    req_str,
)
from engine.events import (
    ConversationEvent,
    ConversationMeta,
    Customer,
    EventType,
    InboundBatch,
    Role,
)

SIGNATURE_HEADER = "X-Chatwoot-Signature"
TIMESTAMP_HEADER = "X-Chatwoot-Timestamp"
ACCOUNT_KEY = "chatwoot_account_id"
CONVERSATION_KEY = "chatwoot_conversation_id"
_CONVERSATION_EVENTS = {
    "conversation_created",
    "conversation_opened",
    "conversation_resolved",
    "conversation_status_changed",
}
# Chatwoot sends message types as names; older payloads (and its database) use numbers.
_INCOMING = {"incoming", 0}
_OUTGOING = {"outgoing", 1}


class ChatwootConnector(BaseConnector):
    """Chatwoot agent bot and account webhooks."""

    name = "chatwoot"
    secret_env = "ESCALATIONS_CHATWOOT_SECRET"  # noqa: S105 (a variable name)
    verification = (
        f"{SIGNATURE_HEADER}: sha256=<hex HMAC-SHA256(secret, timestamp.body)>, "
        "or ?token=<secret> in the agent bot's webhook URL"
    )

    def verify(self, request: InboundRequest, secret: str | None) -> None:
        """Raise BadSignature unless the body is signed with the secret or the URL carries it."""
        if secret is None:
            return
        signature = header(request.headers, SIGNATURE_HEADER)
        if signature is not None:
            timestamp = header(request.headers, TIMESTAMP_HEADER) or ""
            digest = hmac.new(
                secret.encode(), timestamp.encode() + b"." + request.body, hashlib.sha256
            ).hexdigest()
            if not hmac.compare_digest(signature.strip().encode(), f"sha256={digest}".encode()):
                raise BadSignature(f"{SIGNATURE_HEADER} does not match the body and timestamp")
            return
        tokens = parse_qs(urlsplit(request.url).query).get("token")
        if not tokens:
            raise BadSignature(f"missing {SIGNATURE_HEADER} header or token query parameter")
        if not hmac.compare_digest(tokens[-1].encode(), secret.encode()):
            raise BadSignature("token does not match the secret")

    def parse(self, request: InboundRequest) -> list[InboundBatch]:
        """One batch for the event's conversation; empty for events we do not use."""
        body = load_json_object(request.body)
        kind = req_str(body, "event", "")
        if kind == "message_created":
            conversation = req_object(body, "conversation", "")
            path = "conversation"
        elif kind in _CONVERSATION_EVENTS:
            conversation, path = body, ""
        else:
            return []
        account_id = _account_id(body, conversation)
        number = loose_str(conversation, "display_id") or loose_str(conversation, "id")
        if number is None:
            raise BadPayload(f"{at(path, 'id')}: missing")
        conversation_id = f"{account_id}:{number}"
        meta = _meta(conversation, account_id, number)
        if kind == "message_created":
            parsed = _message(body, meta)
            if parsed is None:
                return []
            meta, event = parsed
        else:
            event_or_none = _lifecycle(kind, conversation, conversation_id, request)
            if event_or_none is None:
                return []
            event = event_or_none
        return [InboundBatch(conversation_id=conversation_id, meta=meta, events=(event,))]


def _account_id(body: Mapping[str, Any], conversation: Mapping[str, Any]) -> str:
    account = loose_str(loose_object(body, "account"), "id") or loose_str(
        conversation, "account_id"
    )
    if account is None:
        messages = conversation.get("messages")
        if isinstance(messages, list) and messages and isinstance(messages[0], dict):
            account = loose_str(messages[0], "account_id")
    if account is None:
        raise BadPayload("account.id: missing (no account in the event or its conversation)")
    return account


def _meta(conversation: Mapping[str, Any], account_id: str, number: str) -> ConversationMeta:
    sender = loose_object(loose_object(conversation, "meta"), "sender")
    custom = scalar_metadata(loose_object(conversation, "custom_attributes"))
    tier = custom.get("tier") or scalar_metadata(loose_object(sender, "custom_attributes")).get(
        "tier"
    )
    metadata = {**custom, ACCOUNT_KEY: account_id, CONVERSATION_KEY: number}
    inbox = loose_str(conversation, "inbox_id")
    if inbox is not None:
        metadata["chatwoot_inbox_id"] = inbox
    return ConversationMeta(
        platform="chatwoot",
        customer=Customer(
            id=loose_str(sender, "id"),
            name=loose_str(sender, "name"),
            tier=tier,
            email=loose_str(sender, "email"),
        ),
        metadata=metadata,
    )


def _message(
    body: Mapping[str, Any], meta: ConversationMeta
) -> tuple[ConversationMeta, ConversationEvent] | None:
    if body.get("private") is True:
        return None  # an internal note between agents: the customer never sees it
    message_type = body.get("message_type")
    sender = loose_object(body, "sender")
    if message_type in _INCOMING:
        role = Role.CUSTOMER
        meta = ConversationMeta(
            platform=meta.platform,
            customer=Customer(
                id=loose_str(sender, "id") or meta.customer.id,
                name=loose_str(sender, "name") or meta.customer.name,
                tier=meta.customer.tier,
                email=loose_str(sender, "email") or meta.customer.email,
            ),
            metadata=meta.metadata,
        )
    elif message_type in _OUTGOING:
        role = Role.AGENT if sender.get("type") == "user" else Role.BOT
    else:
        return None  # activity lines ("assigned to Ana") and templates
    message_id = loose_str(body, "id")
    if message_id is None:
        raise BadPayload("id: missing")
    text = loose_str(body, "content") or ""
    return meta, ConversationEvent(
        event_id=f"message:{message_id}",
        type=EventType.MESSAGE,
        timestamp=_time(req(body, "created_at", ""), "created_at"),
        role=role,
        text=check_text(text, "content"),
        extra={"content_type": body["content_type"]}
        if isinstance(body.get("content_type"), str) and body["content_type"] != "text"
        else {},
    )


def _lifecycle(
    kind: str, conversation: Mapping[str, Any], conversation_id: str, request: InboundRequest
) -> ConversationEvent | None:
    status = loose_str(conversation, "status")
    raw_time = conversation.get("timestamp") or conversation.get("updated_at")
    when = _time(raw_time, "timestamp") if raw_time is not None else received_time(request)
    stamp = int(when.timestamp())
    if kind == "conversation_created":
        return ConversationEvent(f"{conversation_id}:created", EventType.SESSION_START, when)
    opened = kind == "conversation_opened"
    if opened or (kind == "conversation_status_changed" and status == "open"):
        return ConversationEvent(
            f"{conversation_id}:opened:{stamp}",
            EventType.HANDOFF,
            when,
            extra={"status": "open"},
        )
    if kind == "conversation_resolved" or status == "resolved":
        return ConversationEvent(
            f"{conversation_id}:resolved:{stamp}",
            EventType.SESSION_END,
            when,
            outcome="resolved",
        )
    return None


def _time(value: object, path: str) -> datetime:
    """Chatwoot sends Unix seconds, ISO 8601, or "2020-03-03 13:05:57 UTC"."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return epoch_time(value, path)
    if isinstance(value, str) and value.endswith(" UTC"):
        try:
            return datetime.strptime(value, "%Y-%m-%d %H:%M:%S UTC").replace(tzinfo=UTC)
        except ValueError:
            raise BadPayload(f"{path}: not a time: {value!r}") from None
    return iso_time(value, path)
