"""Rasa: tracker events as the event broker publishes them, and whole trackers.

Three body shapes are accepted: one event (`{"sender_id": ..., "event": "user", ...}`, what Rasa's
event broker publishes), a JSON array of such events, and a whole tracker (what
`GET /conversations/{id}/tracker` returns: `sender_id` plus `events`). Events used: `user`, `bot`,
`session_started`, `restart`, `pause` (Rasa's "conversation paused", its hand-off to a human) and
`action` (only to see fallback and hand-off actions); every other event is skipped.

Fallback signals go on the bot's reply, where the engine looks for them: a bot message uttered by
`utter_default` / `utter_ask_rephrase`; and, within one tracker or array, a reply that follows a
fallback action or answers a customer message whose intent was `nlu_fallback` (the reply then
carries that message's intent and confidence). Customer messages carry their own NLU intent and
confidence, for the record.
Authenticity, as Rasa's own HTTP API does it: the secret as a token (`?token=` or
`Authorization: Bearer <token>`), or an HS256 JWT signed with the secret in `Authorization: Bearer`.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from connectors.base import BadPayload, BadSignature, BaseConnector, InboundRequest, header
from connectors.batching import group
from connectors.payload import (
    as_object,
    at,
    check_text,
    epoch_time,
    id_str,
    json_type,
    load_json,
    loose_confidence,
    loose_object,
    loose_str,
    req,
    req_list,
    req_str,
    stable_id,
)
from connectors.verification import check_hs256_jwt
from engine.events import (
    ConversationEvent,
    ConversationMeta,
    Customer,
    EventType,
    InboundBatch,
    Role,
)

FALLBACK_INTENTS = {"nlu_fallback"}
FALLBACK_UTTERANCES = {"utter_default", "utter_ask_rephrase"}
FALLBACK_ACTIONS = {"action_default_fallback", "action_two_stage_fallback"}
# Rasa has no built-in hand-off action; these are the names its docs and templates use.
HANDOFF_ACTIONS = {"action_handoff", "action_human_handoff", "action_handoff_to_human"}
# What a channel put in a user message's metadata that we read as facts about the customer.
_CUSTOMER_KEYS = ("name", "tier", "email", "language")

Item = tuple[str, ConversationMeta, ConversationEvent]


class RasaConnector(BaseConnector):
    """Rasa tracker events and trackers, authenticated like Rasa's HTTP API."""

    name = "rasa"
    secret_env = "ESCALATIONS_RASA_SECRET"  # noqa: S105 (a variable name)
    verification = "token (?token= or Authorization: Bearer) or HS256 JWT in Authorization: Bearer"

    def verify(self, request: InboundRequest, secret: str | None) -> None:
        """Raise BadSignature unless the request carries the token or a JWT signed with it."""
        if secret is None:
            return
        query_token = parse_qs(urlsplit(request.url).query).get("token")
        authorization = header(request.headers, "Authorization")
        if authorization is not None:
            scheme, _, credentials = authorization.strip().partition(" ")
            if scheme.lower() != "bearer" or not credentials.strip():
                raise BadSignature("Authorization must be 'Bearer <token or JWT>'")
            _check_bearer(credentials.strip(), secret)
        elif query_token:
            _check_token(query_token[-1], secret)
        else:
            raise BadSignature("missing Authorization header or token query parameter")

    def parse(self, request: InboundRequest) -> list[InboundBatch]:
        """One batch per sender; events in the order Rasa recorded them."""
        body = load_json(request.body)
        if isinstance(body, list):
            return group(_parse_stream(body))
        if not isinstance(body, dict):
            raise BadPayload(f"body: expected a JSON object or array, got {json_type(body)}")
        if "events" in body:
            sender_id = id_str(body, "sender_id", "")
            raw_events = req_list(body, "events", "")
            return group(_parse_run(sender_id, _tracker_events(raw_events)))
        if "event" in body:
            return group(_parse_stream([body], single=True))
        raise BadPayload("body: expected a Rasa event (with 'event') or a tracker (with 'events')")


def _check_bearer(credentials: str, secret: str) -> None:
    if credentials.count(".") != 2:
        _check_token(credentials, secret)
        return
    # Rasa's HTTP API signs its JWTs with HS256 by default.
    check_hs256_jwt(credentials, secret, time.time())


def _check_token(token: str, secret: str) -> None:
    if not hmac.compare_digest(token.encode(), secret.encode()):
        raise BadSignature("token does not match the secret")


def _parse_stream(raw_events: list[Any], *, single: bool = False) -> list[Item]:
    """Events each naming their sender, as the broker publishes them."""
    runs: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
    for index, raw in enumerate(raw_events):
        path = "" if single else at("", index)
        event = as_object(raw, path or "body")
        runs.setdefault(id_str(event, "sender_id", path), []).append((path, event))
    return [item for sender_id, run in runs.items() for item in _parse_run(sender_id, run)]


def _tracker_events(raw_events: list[Any]) -> list[tuple[str, Mapping[str, Any]]]:
    return [
        (at("events", index), as_object(raw, at("events", index)))
        for index, raw in enumerate(raw_events)
    ]


def _parse_run(sender_id: str, run: list[tuple[str, Mapping[str, Any]]]) -> list[Item]:
    """One sender's events in order, carrying the fallback-action context between them."""
    items: list[Item] = []
    meta = ConversationMeta(platform="rasa", customer=Customer(id=sender_id))
    after_fallback_action = False
    # The NLU verdict on the customer's last message, carried to the bot reply that answers it.
    verdict: ConversationEvent | None = None
    for path, event in run:
        kind = req_str(event, "event", path)
        timestamp = epoch_time(req(event, "timestamp", path), at(path, "timestamp"))
        parsed: ConversationEvent | None = None
        if kind == "user":
            parsed, meta = _user(sender_id, event, timestamp, path)
            verdict, after_fallback_action = parsed, False
        elif kind == "bot":
            parsed = _bot(sender_id, event, timestamp, path, verdict, after_fallback_action)
        elif kind == "action":
            action = loose_str(event, "name") or ""
            after_fallback_action = action in FALLBACK_ACTIONS
            if action in HANDOFF_ACTIONS:
                parsed = _marker(sender_id, event, timestamp, EventType.HANDOFF, action=action)
        elif kind == "session_started":
            parsed = _marker(sender_id, event, timestamp, EventType.SESSION_START)
        elif kind == "restart":
            parsed = _marker(sender_id, event, timestamp, EventType.SESSION_END)
        elif kind == "pause":
            parsed = _marker(sender_id, event, timestamp, EventType.HANDOFF, rasa_event="pause")
        if parsed is not None:
            items.append((sender_id, meta, parsed))
    return items


def _user(
    sender_id: str, event: Mapping[str, Any], timestamp: datetime, path: str
) -> tuple[ConversationEvent, ConversationMeta]:
    text = loose_str(event, "text") or ""
    parse_data = loose_object(event, "parse_data")
    intent = loose_object(parse_data, "intent")
    intent_name = loose_str(intent, "name")
    channel_facts = loose_object(event, "metadata")
    facts = {key: value for key in _CUSTOMER_KEYS if (value := loose_str(channel_facts, key))}
    channel = loose_str(event, "input_channel")
    meta = ConversationMeta(
        platform="rasa",
        customer=Customer(
            id=sender_id, name=facts.get("name"), tier=facts.get("tier"), email=facts.get("email")
        ),
        metadata={"channel": channel} if channel else {},
        language=facts.get("language"),
    )
    return (
        ConversationEvent(
            event_id=loose_str(event, "message_id")
            or stable_id(sender_id, "user", event.get("timestamp"), text),
            type=EventType.MESSAGE,
            timestamp=timestamp,
            role=Role.CUSTOMER,
            text=check_text(text, at(path, "text")),
            intent=intent_name,
            confidence=loose_confidence(intent.get("confidence")),
        ),
        meta,
    )


def _bot(
    sender_id: str,
    event: Mapping[str, Any],
    timestamp: datetime,
    path: str,
    verdict: ConversationEvent | None,
    after_fallback_action: bool,
) -> ConversationEvent:
    text = loose_str(event, "text")
    if text is None:
        data = loose_object(event, "data")
        attachment = next((key for key in ("image", "attachment", "custom") if data.get(key)), None)
        text = f"[{attachment}]" if attachment else ""
    utter_action = loose_str(loose_object(event, "metadata"), "utter_action")
    intent = verdict.intent if verdict is not None else None
    fallback = (
        after_fallback_action or utter_action in FALLBACK_UTTERANCES or intent in FALLBACK_INTENTS
    )
    return ConversationEvent(
        event_id=loose_str(event, "message_id")
        or stable_id(sender_id, "bot", event.get("timestamp"), text),
        type=EventType.MESSAGE,
        timestamp=timestamp,
        role=Role.BOT,
        text=check_text(text, at(path, "text")),
        intent=intent,
        confidence=verdict.confidence if verdict is not None else None,
        fallback=fallback,
        extra={"utter_action": utter_action} if utter_action else {},
    )


def _marker(
    sender_id: str,
    event: Mapping[str, Any],
    timestamp: datetime,
    event_type: EventType,
    **extra: str,
) -> ConversationEvent:
    return ConversationEvent(
        event_id=stable_id(sender_id, event.get("event"), event.get("timestamp"), extra),
        type=event_type,
        timestamp=timestamp,
        outcome="restarted" if event.get("event") == "restart" else None,
        extra=extra,
    )
