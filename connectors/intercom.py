"""Intercom conversation webhooks, both payload generations.

Topics used: `conversation.user.created` (the customer's opening message),
`conversation.user.replied`, `conversation.admin.replied`, `conversation.operator.replied`
(Intercom's own bot), `conversation.admin.assigned` and `conversation.admin.closed`. Other topics
(and `ping`) are skipped. The older generation names the opening message `conversation_message` and
the customer `user`; the newer one says `source` and `contacts`. Bodies are HTML and become plain
text.

Intercom has no per-reply fallback flag. Its own hand-offs are recorded as EventType.HANDOFF: an
assignment part (a bot or workflow routing to a person or team) and Fin's
`ai_agent.resolution_state == "routed_to_team"`.

Authenticity: `X-Hub-Signature: sha1=<hex HMAC-SHA1(app client secret, raw body)>`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from connectors.base import BaseConnector, InboundRequest
from connectors.batching import first_of_each, scalar_metadata
from connectors.html_text import html_to_text
from connectors.payload import (
    as_object,
    at,
    check_text,
    epoch_time,
    id_str,
    load_json_object,
    loose_object,
    loose_str,
    opt_list,
    req,
    req_object,
    req_str,
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

SIGNATURE_HEADER = "X-Hub-Signature"
_REPLIES = {
    "conversation.user.replied",
    "conversation.admin.replied",
    "conversation.operator.replied",
    "conversation.admin.assigned",
}
_USED = {"conversation.user.created", "conversation.admin.closed", *_REPLIES}
_CUSTOMERS = {"user", "lead", "contact"}
_BOTS = {"bot", "operator"}
_ASSIGNMENTS = {"assignment", "default_assignment", "assign_and_reopen", "assign_and_unsnooze"}
# Internal notes are for colleagues, never seen by the customer: not part of the conversation.
_HIDDEN_PARTS = {"note", "note_and_reopen"}


class IntercomConnector(BaseConnector):
    """Intercom conversation topics, signed with the app's client secret."""

    name = "intercom"
    secret_env = "ESCALATIONS_INTERCOM_SECRET"  # noqa: S105 (a variable name)
    verification = f"{SIGNATURE_HEADER}: sha1=<hex HMAC-SHA1(client secret, body)>"

    def verify(self, request: InboundRequest, secret: str | None) -> None:
        """Raise BadSignature unless X-Hub-Signature is the body's HMAC-SHA1 under the secret."""
        if secret is not None:
            hmac_signature_header(
                request, secret, name=SIGNATURE_HEADER, algorithm="sha1", encoding="hex"
            )

    def parse(self, request: InboundRequest) -> list[InboundBatch]:
        """One batch for the notification's conversation; empty for topics we do not use."""
        body = load_json_object(request.body)
        topic = req_str(body, "topic", "")
        if topic not in _USED:
            return []
        item = req_object(req_object(body, "data", ""), "item", "data")
        conversation_id = id_str(item, "id", "data.item")
        events = _events(topic, item, body)
        if not events:
            return []
        return [
            InboundBatch(
                conversation_id=conversation_id,
                meta=_meta(item, conversation_id, loose_str(body, "app_id")),
                events=first_of_each(events),
            )
        ]


def _events(
    topic: str, item: Mapping[str, Any], body: Mapping[str, Any]
) -> list[ConversationEvent]:
    path = "data.item"
    events: list[ConversationEvent] = []
    if topic == "conversation.user.created":
        created = epoch_time(req(item, "created_at", path), at(path, "created_at"))
        opening_key = "source" if "source" in item else "conversation_message"
        opening = req_object(item, opening_key, path)
        opening_id = id_str(opening, "id", at(path, opening_key))
        events.append(ConversationEvent(f"{opening_id}:start", EventType.SESSION_START, created))
        events.append(_message(opening_id, opening, created, at(path, opening_key)))
    parts_path = at(path, "conversation_parts.conversation_parts")
    parts = opt_list(
        loose_object(item, "conversation_parts"),
        "conversation_parts",
        at(path, "conversation_parts"),
    )
    for index, raw in enumerate(parts):
        events.extend(_part(as_object(raw, at(parts_path, index)), at(parts_path, index)))
    ai_agent = loose_object(item, "ai_agent")
    if ai_agent.get("resolution_state") == "routed_to_team":
        updated = epoch_time(req(item, "updated_at", path), at(path, "updated_at"))
        events.append(
            ConversationEvent(
                event_id=f"{item['id']}:fin-routed-to-team",
                type=EventType.HANDOFF,
                timestamp=updated,
                extra={"by": "fin", "resolution_state": "routed_to_team"},
            )
        )
    if topic == "conversation.admin.closed":
        closed_at = body.get("created_at") or item.get("updated_at")
        events.append(
            ConversationEvent(
                event_id=f"{item['id']}:closed:{closed_at}",
                type=EventType.SESSION_END,
                timestamp=epoch_time(closed_at, "created_at"),
                outcome="closed",
            )
        )
    return events


def _part(part: Mapping[str, Any], path: str) -> list[ConversationEvent]:
    part_id = id_str(part, "id", path)
    part_type = loose_str(part, "part_type") or "comment"
    if part_type in _HIDDEN_PARTS:
        return []
    created = epoch_time(req(part, "created_at", path), at(path, "created_at"))
    events: list[ConversationEvent] = []
    if isinstance(part.get("body"), str) and part["body"].strip():
        events.append(_message(part_id, part, created, path, part_type))
    assigned_to = loose_object(part, "assigned_to")
    if part_type in _ASSIGNMENTS and assigned_to:
        events.append(
            ConversationEvent(
                event_id=f"{part_id}:handoff",
                type=EventType.HANDOFF,
                timestamp=created,
                extra={
                    key: value
                    for key, value in {
                        "to_type": loose_str(assigned_to, "type"),
                        "to_id": loose_str(assigned_to, "id"),
                        "to_name": loose_str(assigned_to, "name"),
                    }.items()
                    if value is not None
                },
            )
        )
    return events


def _message(
    event_id: str,
    part: Mapping[str, Any],
    created: datetime,
    path: str,
    part_type: str | None = None,
) -> ConversationEvent:
    author = req_object(part, "author", path)
    author_type = req_str(author, "type", at(path, "author"))
    raw_body = part.get("body")
    text = html_to_text(raw_body) if isinstance(raw_body, str) else ""
    extra: dict[str, Any] = {"part_type": part_type} if part_type not in (None, "comment") else {}
    if author.get("is_ai_answer") is True:
        extra["ai_answer"] = True
    return ConversationEvent(
        event_id=event_id,
        type=EventType.MESSAGE,
        timestamp=created,
        role=_role(author_type, author),
        text=check_text(text, at(path, "body")),
        extra=extra,
    )


def _role(author_type: str, author: Mapping[str, Any]) -> Role:
    if author_type in _CUSTOMERS:
        return Role.CUSTOMER
    if author_type in _BOTS or author.get("from_ai_agent") is True:
        return Role.BOT
    return Role.AGENT


def _meta(item: Mapping[str, Any], conversation_id: str, app_id: str | None) -> ConversationMeta:
    # Older payloads name the customer `user`; newer ones give the opening author plus `contacts`.
    user = loose_object(item, "user")
    author = loose_object(loose_object(item, "source"), "author")
    contacts = loose_object(item, "contacts").get("contacts")
    contact = (
        contacts[0]
        if isinstance(contacts, list) and contacts and isinstance(contacts[0], dict)
        else {}
    )
    custom = scalar_metadata(loose_object(item, "custom_attributes"))
    tier = next((value for key, value in custom.items() if key.lower() == "tier"), None)
    link = loose_str(loose_object(item, "links"), "conversation_web")
    if link is None and app_id is not None:
        link = f"https://app.intercom.com/a/apps/{app_id}/conversations/{conversation_id}"
    return ConversationMeta(
        platform="intercom",
        customer=Customer(
            id=loose_str(contact, "external_id")
            or loose_str(user, "user_id")
            or loose_str(contact, "id")
            or loose_str(user, "id")
            or loose_str(author, "id"),
            name=loose_str(user, "name") or loose_str(author, "name"),
            tier=tier,
            email=loose_str(user, "email") or loose_str(author, "email"),
        ),
        metadata=custom,
        link=link,
    )
