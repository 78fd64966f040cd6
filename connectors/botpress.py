"""Botpress: the generic format, posted by a Botpress webhook with an `x-bp-secret` header."""

from __future__ import annotations

import hmac

from connectors.base import BadSignature, InboundRequest, header
from connectors.generic import GenericConnector

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
        given = header(request.headers, SECRET_HEADER)
        if given is None:
            raise BadSignature(f"missing {SECRET_HEADER} header")
        if not hmac.compare_digest(given.encode(), secret.encode()):
            raise BadSignature(f"{SECRET_HEADER} does not match the secret")
