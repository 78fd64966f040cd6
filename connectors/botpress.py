"""Botpress: the generic format, posted by a Botpress webhook with an `x-bp-secret` header."""

from __future__ import annotations

from connectors.base import InboundRequest
from connectors.generic import GenericConnector
from connectors.verification import shared_secret_header

SECRET_HEADER = "x-bp-secret"  # noqa: S105 (a header name, not a secret)


class BotpressConnector(GenericConnector):
    """The generic format; authenticity is a shared secret header rather than a body HMAC."""

    name = "botpress"
    secret_env = "ESCALATIONS_BOTPRESS_SECRET"  # noqa: S105 (a variable name)
    verification = f"{SECRET_HEADER}: <secret>"
    platform = "botpress"

    def verify(self, request: InboundRequest, secret: str | None) -> None:
        """Raise BadSignature unless the x-bp-secret header equals the secret."""
        if secret is None:
            return
        shared_secret_header(request, SECRET_HEADER, secret)
