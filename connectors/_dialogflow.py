"""What Dialogflow CX and ES share: session names, customer facts in parameters, the header name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.batching import scalar_metadata
from connectors.payload import check_id
from engine.events import Customer

SECRET_HEADER = "X-Escalations-Secret"  # noqa: S105 (a header name, configured in the console)
VERIFICATION = f"{SECRET_HEADER}: <secret> header, or basic auth user:password = <secret>"
# Session parameters a bot designer can set so cards show who the customer is.
_FACT_KEYS = {
    "id": ("customer_id", "user_id"),
    "name": ("customer_name", "name"),
    "tier": ("customer_tier", "tier"),
    "email": ("customer_email", "email"),
}


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
