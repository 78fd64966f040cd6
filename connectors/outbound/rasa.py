"""Rasa: append `pause` (ConversationPaused) or `resume` to the tracker through Rasa's HTTP API.

`POST {url}/conversations/{sender_id}/tracker/events?token=<token>` with one event; a paused
tracker makes Rasa ignore the customer's messages until it is resumed. Rasa's sender id is our
conversation id.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

from connectors.outbound.base import HandoffTarget, call, required

URL_ENV = "ESCALATIONS_RASA_API_URL"
TOKEN_ENV = "ESCALATIONS_RASA_API_TOKEN"  # noqa: S105 (a variable name)


class RasaClient:
    """Rasa's HTTP API (started with `--enable-api --auth-token <token>`)."""

    platform = "rasa"
    label = "Rasa"

    def __init__(self, url: str, token: str) -> None:
        self._url = url.rstrip("/")
        self._token = token

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> RasaClient | None:
        """Configured from ESCALATIONS_RASA_API_URL and ESCALATIONS_RASA_API_TOKEN; else None."""
        values = required(environ, URL_ENV, TOKEN_ENV)
        return cls(*values) if values else None

    async def pause(self, target: HandoffTarget) -> str:
        """Append a `pause` event to the sender's tracker."""
        await self._append(target, "pause")
        return "tracker paused"

    async def resume(self, target: HandoffTarget) -> str:
        """Append a `resume` event to the sender's tracker."""
        await self._append(target, "resume")
        return "tracker resumed"

    async def _append(self, target: HandoffTarget, event: str) -> None:
        sender = quote(target.conversation_id, safe="")
        await call(
            self.label,
            "POST",
            f"{self._url}/conversations/{sender}/tracker/events",
            params={"token": self._token, "include_events": "NONE"},
            json={"event": event},
        )
