"""Zendesk Sunshine Conversations v2 webhooks: several events per post, possibly many conversations.

Used: `conversation:create` (session start), `conversation:message`, `conversation:postback` (a
button the customer pressed) and the switchboard's own hand-off, `switchboard:passControl` and
`switchboard:offerControl` (recorded as EventType.HANDOFF). Every other event type is skipped.
Authenticity: the webhook's secret, sent as is in `X-API-Key`. The post's `app.id` is kept as the
conversation's `sunshine_app_id` metadata: the switchboard hand-off call needs it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from connectors.base import BaseConnector, InboundRequest
from connectors.batching import group, scalar_metadata
from connectors.payload import (
    as_object,
    at,
    check_id,
    check_text,
    confidence,
    id_str,
    iso_time,
    load_json_object,
    loose_object,
    loose_str,
    opt_object,
    opt_str,
    req_list,
    req_object,
    req_str,
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

SECRET_HEADER = "X-API-Key"  # noqa: S105 (a header name)
APP_ID_KEY = "sunshine_app_id"
_HANDOFFS = {"switchboard:passControl", "switchboard:offerControl"}
_USED = {"conversation:create", "conversation:message", "conversation:postback", *_HANDOFFS}
# Business messages from Zendesk's own agent surfaces are written by people, not the bot.
_AGENT_SOURCES = {"zd:agentWorkspace", "zd:agent", "zd:liveChat"}
_AGENT_INTEGRATIONS = {"zd:agentWorkspace"}

Item = tuple[str, ConversationMeta, ConversationEvent]


class SunshineConnector(BaseConnector):
    """Sunshine Conversations v2 webhook posts."""

    name = "sunshine"
    secret_env = "ESCALATIONS_SUNSHINE_SECRET"  # noqa: S105 (a variable name)
    verification = "X-API-Key: <webhook secret>"

    def verify(self, request: InboundRequest, secret: str | None) -> None:
        """Raise BadSignature unless X-API-Key equals the webhook's secret."""
        if secret is not None:
            shared_secret_header(request, SECRET_HEADER, secret)

    def parse(self, request: InboundRequest) -> list[InboundBatch]:
        """One batch per conversation named in the post's `events`."""
        body = load_json_object(request.body)
        items: list[Item] = []
        app_id = loose_str(loose_object(body, "app"), "id")
        for index, raw in enumerate(req_list(body, "events", "")):
            item = _parse_event(raw, at("events", index))
            if item is not None:
                items.append(_with_app_id(item, app_id))
        return group(items)


def _with_app_id(item: Item, app_id: str | None) -> Item:
    if app_id is None:
        return item
    conversation_id, meta, event = item
    return conversation_id, replace(meta, metadata={**meta.metadata, APP_ID_KEY: app_id}), event


def _parse_event(raw: object, path: str) -> Item | None:
    event = as_object(raw, path)
    kind = req_str(event, "type", path)
    if kind not in _USED:
        return None
    payload = req_object(event, "payload", path)
    payload_path = at(path, "payload")
    conversation = req_object(payload, "conversation", payload_path)
    conversation_path = at(payload_path, "conversation")
    conversation_id = id_str(conversation, "id", conversation_path)
    created = iso_time(req_str(event, "createdAt", path), at(path, "createdAt"))
    event_id = id_str(event, "id", path)
    meta = _meta(conversation, payload.get("user"))

    if kind == "conversation:message":
        message = req_object(payload, "message", payload_path)
        return conversation_id, *_message(
            message, conversation, meta, created, at(payload_path, "message")
        )
    if kind == "conversation:postback":
        postback = req_object(payload, "postback", payload_path)
        text = opt_str(postback, "payload", at(payload_path, "postback"))
        return (
            conversation_id,
            meta,
            ConversationEvent(
                event_id=event_id,
                type=EventType.MESSAGE,
                timestamp=created,
                role=Role.CUSTOMER,
                text=check_text(text, at(payload_path, "postback.payload")),
                extra={"postback": True},
            ),
        )
    if kind == "conversation:create":
        return conversation_id, meta, ConversationEvent(event_id, EventType.SESSION_START, created)
    active = _integration_name(conversation.get("activeSwitchboardIntegration"))
    pending = _integration_name(conversation.get("pendingSwitchboardIntegration"))
    extra = {"action": kind.removeprefix("switchboard:"), "active": active, "pending": pending}
    return (
        conversation_id,
        meta,
        ConversationEvent(
            event_id=event_id,
            type=EventType.HANDOFF,
            timestamp=created,
            extra={key: value for key, value in extra.items() if value is not None},
        ),
    )


def _message(
    message: Mapping[str, Any],
    conversation: Mapping[str, Any],
    meta: ConversationMeta,
    created: Any,
    path: str,
) -> tuple[ConversationMeta, ConversationEvent]:
    author = req_object(message, "author", path)
    author_type = req_str(author, "type", at(path, "author"))
    content = req_object(message, "content", path)
    content_type = opt_str(content, "type", at(path, "content")) or "text"
    # Non-text content (images, carousels, forms) still counts as a turn; say what it was.
    text = opt_str(content, "text", at(path, "content")) or opt_str(
        content, "altText", at(path, "content")
    )
    if text is None and content_type != "text":
        text = f"[{content_type}]"
    received = message.get("received")
    timestamp = iso_time(received, at(path, "received")) if received is not None else created
    if author_type == "user":
        role = Role.CUSTOMER
        user = author.get("user")
        meta = _with_customer(meta, author, user)
    else:
        role = _business_role(author, message, conversation)
    # Bots posting through the Conversations API can put their NLU verdict in message metadata.
    signals = opt_object(message, "metadata", path)
    fallback = signals.get("fallback")
    return meta, ConversationEvent(
        event_id=check_id(req_str(message, "id", path), at(path, "id")),
        type=EventType.MESSAGE,
        timestamp=timestamp,
        role=role,
        text=check_text(text or "", at(path, "content.text")),
        intent=signals.get("intent") if isinstance(signals.get("intent"), str) else None,
        confidence=confidence(signals.get("confidence"), at(path, "metadata.confidence")),
        fallback=fallback if isinstance(fallback, bool) else None,
        extra={"content_type": content_type} if content_type != "text" else {},
    )


def _business_role(
    author: Mapping[str, Any], message: Mapping[str, Any], conversation: Mapping[str, Any]
) -> Role:
    subtypes = author.get("subtypes")
    if isinstance(subtypes, list) and "AI" in subtypes:
        return Role.BOT
    source = message.get("source")
    if isinstance(source, dict) and source.get("type") in _AGENT_SOURCES:
        return Role.AGENT
    active = conversation.get("activeSwitchboardIntegration")
    if isinstance(active, dict) and active.get("integrationType") in _AGENT_INTEGRATIONS:
        return Role.AGENT
    return Role.BOT


def _integration_name(raw: object) -> str | None:
    if isinstance(raw, dict):
        name = raw.get("name") or raw.get("integrationType")
        return name if isinstance(name, str) else None
    return None


def _meta(conversation: Mapping[str, Any], user: object) -> ConversationMeta:
    metadata = (
        scalar_metadata(conversation["metadata"])
        if isinstance(conversation.get("metadata"), dict)
        else {}
    )
    meta = ConversationMeta(
        platform="sunshine",
        metadata=metadata,
        language=metadata.get("language") or metadata.get("lang"),
    )
    return _with_customer(meta, {}, user) if isinstance(user, dict) else meta


def _with_customer(
    meta: ConversationMeta, author: Mapping[str, Any], user: object
) -> ConversationMeta:
    user = user if isinstance(user, dict) else {}
    profile = loose_object(user, "profile")
    user_metadata = loose_object(user, "metadata")
    full_name = " ".join(
        part for part in (loose_str(profile, "givenName"), loose_str(profile, "surname")) if part
    )
    return ConversationMeta(
        platform=meta.platform,
        customer=Customer(
            id=loose_str(user, "externalId")
            or loose_str(user, "id")
            or loose_str(author, "userId"),
            name=loose_str(author, "displayName") or full_name or None,
            tier=loose_str(user_metadata, "tier") or meta.metadata.get("tier"),
            email=loose_str(profile, "email"),
        ),
        metadata=meta.metadata,
        language=meta.language or loose_str(profile, "locale"),
    )
