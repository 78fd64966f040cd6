"""What Dialogflow CX and ES share: authenticity, the answer, session names, customer facts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.base import BaseConnector, InboundRequest
from connectors.batching import scalar_metadata
from connectors.payload import check_id
from connectors.verification import header_secret_or_basic_auth
from engine.events import Customer, InboundBatch

SECRET_HEADER = "X-Escalations-Secret"  # noqa: S105 (a header name, configured in the console)
VERIFICATION = f"{SECRET_HEADER}: <secret> header, or basic auth user:password = <secret>"
# Session parameters a bot designer can set so cards show who the customer is.
_FACT_KEYS = {
    "id": ("customer_id", "user_id"),
    "name": ("customer_name", "name"),
    "tier": ("customer_tier", "tier"),
    "email": ("customer_email", "email"),
}


class DialogflowConnector(BaseConnector):
    """The webhook contract of both editions: secret header or basic auth in, `{}` out."""

    verification = VERIFICATION

    def verify(self, request: InboundRequest, secret: str | None) -> None:
        """Raise BadSignature unless the secret header or basic-auth credentials are right."""
        if secret is not None:
            header_secret_or_basic_auth(request, SECRET_HEADER, secret)

    def respond(self, batches: list[InboundBatch]) -> tuple[str, bytes]:
        """An empty WebhookResponse: the agent's own responses stand (Dialogflow refuses extras)."""
        return "application/json", b"{}"


def session_id(session: str, path: str) -> str:
    """The conversation id of a Dialogflow session name: the segment after `/sessions/`."""
    _, found, tail = session.rpartition("/sessions/")
    return check_id(tail.split("/")[0] if found else session, path)


def customer_from(parameters: Mapping[str, Any], fallback_id: str | None) -> Customer:
    """The customer facts a bot keeps in its parameters (`customer_tier`, `email`...)."""
    flat = scalar_metadata(parameters)
    facts = {
        field: next((flat[key] for key in keys if flat.get(key)), None)
        for field, keys in _FACT_KEYS.items()
    }
    return Customer(
        id=facts["id"] or fallback_id,
        name=facts["name"],
        tier=facts["tier"],
        email=facts["email"],
    )
