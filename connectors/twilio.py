"""Twilio Conversations post-event webhooks, form-encoded.

Used: `onMessageAdded` and `onConversationStateUpdated`; every other `EventType` is skipped.

Who wrote a message: the message's `Attributes` JSON may say (`{"role": "bot", "intent": ...,
"confidence": 0.4, "fallback": true}` is how a bot posting through the REST API marks its replies
and their fallback signal); otherwise `system` is the system, REST API posts are the bot and
everything else (SMS, WhatsApp, chat SDK) is the customer. A conversation going `inactive` or
`closed` ends the session. Twilio Conversations has no hand-off event of its own.
Authenticity: `X-Twilio-Signature`, base64 HMAC-SHA1 under the auth token of the URL Twilio called
followed by the sorted form parameters (JSON bodies: the URL only, and its `bodySHA256` parameter
must be the body's SHA-256).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit, urlunsplit

from connectors.base import (
    BadPayload,
    BadSignature,
    BaseConnector,
    InboundRequest,
    header,
    received_time,
)
from connectors.payload import (
    check_id,
    check_text,
    confidence,
    iso_time,
    load_form,
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

SIGNATURE_HEADER = "X-Twilio-Signature"
_DEFAULT_PORTS = {"https": 443, "http": 80}
_ENDED_STATES = {"inactive", "closed"}


def twilio_signature(auth_token: str, url: str, params: list[tuple[str, str]]) -> str:
    """Twilio's request signature: base64 HMAC-SHA1 of the URL plus each sorted name and value."""
    # Identical repeated values count once, as Twilio's own validators treat them.
    signed = url + "".join(name + value for name, value in sorted(set(params)))
    digest = hmac.new(auth_token.encode(), signed.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _url_variants(url: str) -> list[str]:
    """The URL without its port, and with one (the default if none): Twilio signs as configured."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    without_port = urlunsplit(parts._replace(netloc=_with_credentials(parts.netloc, host)))
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
    with_port = urlunsplit(
        parts._replace(netloc=_with_credentials(parts.netloc, f"{host}:{port}" if port else host))
    )
    return [without_port, with_port]


def _with_credentials(netloc: str, host: str) -> str:
    credentials, at_sign, _ = netloc.rpartition("@")
    return f"{credentials}{at_sign}{host}"


class TwilioConversationsConnector(BaseConnector):
    """Twilio Conversations webhooks, signed with the account's auth token."""

    name = "twilio"
    secret_env = "ESCALATIONS_TWILIO_SECRET"  # noqa: S105 (a variable name)
    verification = f"{SIGNATURE_HEADER}: base64 HMAC-SHA1(auth token, URL + sorted params)"

    def verify(self, request: InboundRequest, secret: str | None) -> None:
        """Raise BadSignature unless X-Twilio-Signature matches the URL and parameters."""
        if secret is None:
            return
        given = header(request.headers, SIGNATURE_HEADER)
        if given is None:
            raise BadSignature(f"missing {SIGNATURE_HEADER} header")
        params: list[tuple[str, str]] = []
        if request.content_type.split(";")[0].strip().lower() == "application/json":
            claimed = parse_qs(urlsplit(request.url).query).get("bodySHA256", [""])[-1]
            actual = hashlib.sha256(request.body).hexdigest()
            if not hmac.compare_digest(claimed.encode(), actual.encode()):
                raise BadSignature("bodySHA256 does not match the body")
        else:
            params = parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True)
        expected = [twilio_signature(secret, url, params) for url in _url_variants(request.url)]
        # Both variants are always compared, so timing says nothing about which one was close.
        matches = [hmac.compare_digest(given.encode(), e.encode()) for e in expected]
        if not any(matches):
            raise BadSignature("signature does not match the URL and parameters")

    def parse(self, request: InboundRequest) -> list[InboundBatch]:
        """One batch: the conversation the event belongs to; empty for events we do not use."""
        form = load_form(request.body)
        event_type = req_str(form, "EventType", "")
        if event_type not in ("onMessageAdded", "onConversationStateUpdated"):
            return []
        conversation_id = check_id(req_str(form, "ConversationSid", ""), "ConversationSid")
        if event_type == "onMessageAdded":
            meta, event = _message(form)
        else:
            meta = ConversationMeta(platform="twilio")
            state_to = req_str(form, "StateTo", "")
            if state_to not in _ENDED_STATES:
                return []
            stamp = form.get("StateUpdated") or form.get("DateUpdated")
            when = iso_time(stamp, "StateUpdated") if stamp else received_time(request)
            event = ConversationEvent(
                event_id=f"{conversation_id}:state:{state_to}:{stamp or form.get('StateFrom')}",
                type=EventType.SESSION_END,
                timestamp=when,
                outcome=state_to,
                extra={"reason": form["Reason"]} if form.get("Reason") else {},
            )
        return [InboundBatch(conversation_id=conversation_id, meta=meta, events=(event,))]


def _message(form: Mapping[str, str]) -> tuple[ConversationMeta, ConversationEvent]:
    attributes = _attributes(form.get("Attributes"))
    author = form.get("Author") or ""
    role_name = attributes.get("role")
    if isinstance(role_name, str) and role_name in Role.__members__.values():
        role = Role(role_name)
    elif author == "system":
        role = Role.SYSTEM
    elif form.get("Source", "").upper() == "API":
        role = Role.BOT
    else:
        role = Role.CUSTOMER
    body = form.get("Body") or ("[media]" if form.get("Media") else "")
    fallback = attributes.get("fallback")
    intent = attributes.get("intent")
    customer = Customer()
    if role is Role.CUSTOMER:
        customer = Customer(
            id=author or form.get("ClientIdentity") or None,
            name=_text(attributes, "name"),
            tier=_text(attributes, "tier"),
            email=_text(attributes, "email"),
        )
    source = form.get("Source")
    meta = ConversationMeta(
        platform="twilio", customer=customer, metadata={"source": source} if source else {}
    )
    return meta, ConversationEvent(
        event_id=check_id(req_str(form, "MessageSid", ""), "MessageSid"),
        type=EventType.MESSAGE,
        timestamp=iso_time(req_str(form, "DateCreated", ""), "DateCreated"),
        role=role,
        text=check_text(body, "Body"),
        intent=intent if isinstance(intent, str) else None,
        confidence=confidence(attributes.get("confidence"), "Attributes.confidence"),
        fallback=fallback if isinstance(fallback, bool) else None,
    )


def _attributes(raw: str | None) -> Mapping[str, Any]:
    if not raw:
        return {}
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise BadPayload(f"Attributes: not valid JSON: {exc.msg}") from None
    return parsed if isinstance(parsed, dict) else {}


def _text(attributes: Mapping[str, Any], key: str) -> str | None:
    value = attributes.get(key)
    return value if isinstance(value, str) and value else None
