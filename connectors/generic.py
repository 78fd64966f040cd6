"""The generic webhook format: our own JSON, for bots on platforms without a dedicated connector.

```json
{"conversation_id": "c-123", "platform": "acme-bot",
 "customer": {"id": "u-9", "name": "Ana", "tier": "enterprise", "email": "ana@example.com"},
 "metadata": {"language": "en", "queue": "billing"}, "link": "https://...",
 "events": [{"id": "m-1", "type": "message", "role": "customer", "text": "where is my refund??",
             "timestamp": "2026-11-24T10:00:00Z"}]}
```
Signed with `X-Escalations-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from connectors.base import BadPayload, BaseConnector, InboundRequest
from connectors.payload import (
    MAX_TEXT_LENGTH,
    as_object,
    as_str,
    at,
    check_text,
    confidence,
    iso_time,
    json_type,
    load_json_object,
    opt_bool,
    opt_object,
    opt_str,
    req,
    req_id,
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

MAX_EVENTS = 1000
SIGNATURE_HEADER = "X-Escalations-Signature"
_EVENT_TYPES = ", ".join(event_type.value for event_type in EventType)
_ROLES = ", ".join(role.value for role in Role)
# By value: what EventType(name) and Role(name) find, without Enum's lookup machinery.
_EVENT_TYPE_BY_NAME = {event_type.value: event_type for event_type in EventType}
_ROLE_BY_NAME = {role.value: role for role in Role}
_MESSAGE = EventType.MESSAGE  # (a global: the enum class's look-up costs more, at every event)


def parse_generic_object(obj: object, where: str = "") -> InboundBatch:
    """Read one generic-format object; every error message starts with `where` when given.

    Unknown keys are ignored, so a sender may add fields (and replay files a `label`). When two
    events in one object share an id, the first one is kept and the later ones are dropped, the
    same answer a retried delivery gets.
    """
    try:
        return _parse_batch(obj)
    except BadPayload as exc:
        if where:
            raise BadPayload(f"{where}: {exc}") from None
        raise


def replay_label(obj: object) -> object:
    """The raw `label` of a replay line (what a human decided about it); None when absent."""
    return obj.get("label") if isinstance(obj, dict) else None


def _parse_batch(obj: object) -> InboundBatch:
    if not isinstance(obj, dict):
        raise BadPayload(f"expected a JSON object, got {json_type(obj)}")
    conversation_id = req_id(obj, "conversation_id", "")
    return InboundBatch(
        conversation_id=conversation_id,
        meta=_parse_meta(obj),
        events=_parse_events(obj),
    )


def _parse_meta(obj: Mapping[str, Any]) -> ConversationMeta:
    customer = opt_object(obj, "customer", "")
    metadata = _parse_metadata(opt_object(obj, "metadata", ""))
    link = opt_str(obj, "link", "")
    if link is not None and not link.startswith(("https://", "http://")):
        # The link becomes a button in Slack and Teams; only web links are safe to click.
        raise BadPayload(f"link: not an http(s) URL: {link!r}")
    return ConversationMeta(
        platform=opt_str(obj, "platform", "") or "generic",
        customer=Customer(
            id=opt_str(customer, "id", "customer"),
            name=opt_str(customer, "name", "customer"),
            tier=opt_str(customer, "tier", "customer"),
            email=opt_str(customer, "email", "customer"),
        ),
        metadata=metadata,
        language=opt_str(obj, "language", "") or metadata.get("language"),
        link=link,
    )


def _parse_metadata(raw: Mapping[str, Any]) -> dict[str, str]:
    metadata: dict[str, str] = {}
    for key, value in raw.items():
        if value is None:
            continue
        if isinstance(value, bool):
            metadata[key] = "true" if value else "false"
        elif isinstance(value, int | float | str):
            metadata[key] = str(value)
        else:
            raise BadPayload(
                f"{at('metadata', key)}: expected a string, number or boolean, "
                f"got {json_type(value)}"
            )
    return metadata


def _parse_events(obj: Mapping[str, Any]) -> tuple[ConversationEvent, ...]:
    if "event" in obj and "events" in obj:
        raise BadPayload("events: give either 'event' or 'events', not both")
    if "event" in obj:
        return (_parse_event(req(obj, "event", ""), "event"),)
    raw_events = req(obj, "events", "")
    if not isinstance(raw_events, list):
        raise BadPayload(f"events: expected an array, got {json_type(raw_events)}")
    if not raw_events:
        raise BadPayload("events: empty")
    if len(raw_events) > MAX_EVENTS:
        raise BadPayload(f"events: more than {MAX_EVENTS} events ({len(raw_events)})")
    events: dict[str, ConversationEvent] = {}
    for index, raw in enumerate(raw_events):
        event = _parse_event(raw, _EVENT_PATHS[index])
        events.setdefault(event.event_id, event)
    return tuple(events.values())


# Each event's path ("events[3]"), built once rather than for every event of every post.
_EVENT_PATHS = tuple(at("events", index) for index in range(MAX_EVENTS))


def _parse_event(raw: object, path: str) -> ConversationEvent:
    # A member's path (`events[3].text`) is built only for an error message; the members a
    # post usually leaves out cost one look-up each.
    obj = raw if type(raw) is dict else as_object(raw, path)
    event_id = req_id(obj, "id", path)
    type_name = req(obj, "type", path)
    if type(type_name) is not str:
        type_name = as_str(type_name, at(path, "type"))
    event_type = _EVENT_TYPE_BY_NAME.get(type_name)
    if event_type is None:
        raise BadPayload(
            f"{at(path, 'type')}: unknown event type {type_name!r}; expected one of {_EVENT_TYPES}"
        )
    timestamp = iso_time(req(obj, "timestamp", path), path, "timestamp")
    message = event_type is _MESSAGE
    role: Role | None = None
    role_name = req_str(obj, "role", path) if message else opt_str(obj, "role", path)
    if role_name is not None:
        role = _ROLE_BY_NAME.get(role_name)
        if role is None:
            raise BadPayload(
                f"{at(path, 'role')}: unknown role {role_name!r}; expected one of {_ROLES}"
            )
    text: str | None
    if message:
        text = req(obj, "text", path)
        if type(text) is not str:
            text = as_str(text, at(path, "text"))
    else:
        text = opt_str(obj, "text", path)
    if text is not None and len(text) > MAX_TEXT_LENGTH:
        check_text(text, at(path, "text"))
    get = obj.get
    intent = None if get("intent") is None else opt_str(obj, "intent", path)
    score = get("confidence")
    fallback = None if get("fallback") is None else opt_bool(obj, "fallback", path)
    outcome = None if get("outcome") is None else opt_str(obj, "outcome", path)
    return ConversationEvent(
        event_id,
        event_type,
        timestamp,
        role,
        text,
        intent,
        None if score is None else confidence(score, at(path, "confidence")),
        fallback,
        outcome,
    )


def sign(secret: str, body: bytes) -> str:
    """The X-Escalations-Signature value for `body`: what a sender computes, and what we expect."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class GenericConnector(BaseConnector):
    """Our own format, HMAC-SHA256 signed; the base for platforms that post it (Botpress)."""

    name = "generic"
    secret_env = "ESCALATIONS_WEBHOOK_SECRET"  # noqa: S105 (a variable name)
    verification = f"{SIGNATURE_HEADER}: sha256=<hex HMAC-SHA256(secret, body)>"
    platform = "generic"

    def verify(self, request: InboundRequest, secret: str | None) -> None:
        """Raise BadSignature unless the body's HMAC-SHA256 matches the signature header."""
        if secret is None:
            return
        hmac_signature_header(
            request, secret, name=SIGNATURE_HEADER, algorithm="sha256", encoding="hex"
        )

    def parse(self, request: InboundRequest) -> list[InboundBatch]:
        """One batch: the posted conversation and its events."""
        obj = load_json_object(request.body)
        batch = parse_generic_object(obj)
        if "platform" not in obj and self.platform != batch.meta.platform:
            batch = _with_platform(batch, self.platform)
        return [batch]


def _with_platform(batch: InboundBatch, platform: str) -> InboundBatch:
    meta = batch.meta
    return InboundBatch(
        conversation_id=batch.conversation_id,
        meta=ConversationMeta(
            platform=platform,
            customer=meta.customer,
            metadata=meta.metadata,
            language=meta.language,
            link=meta.link,
        ),
        events=batch.events,
    )
