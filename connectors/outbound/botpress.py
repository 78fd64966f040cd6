"""Botpress: the human-in-the-loop module's pause and unpause, per channel and user.

`POST {url}/api/v1/bots/{botId}/mod/hitl/channel/{channel}/user/{userId}/pause` (and `/unpause`)
with a bearer token. The user is the conversation's customer id (else the conversation id); the
channel is the conversation's `channel` metadata (default "web").
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

from connectors.outbound.base import HandoffTarget, call, required

URL_ENV = "ESCALATIONS_BOTPRESS_API_URL"
TOKEN_ENV = "ESCALATIONS_BOTPRESS_TOKEN"  # noqa: S105 (a variable name)
BOT_ID_ENV = "ESCALATIONS_BOTPRESS_BOT_ID"
DEFAULT_CHANNEL = "web"


class BotpressClient:
    """Botpress's HITL module API."""

    platform = "botpress"
    label = "Botpress"

    def __init__(self, url: str, token: str, bot_id: str) -> None:
        self._url = url.rstrip("/")
        self._token = token
        self._bot_id = bot_id

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> BotpressClient | None:
        """Configured from ESCALATIONS_BOTPRESS_API_URL, _TOKEN and _BOT_ID; else None."""
        values = required(environ, URL_ENV, TOKEN_ENV, BOT_ID_ENV)
        return cls(*values) if values else None

    async def pause(self, target: HandoffTarget) -> str:
        """Pause the bot for this user."""
        await self._hitl(target, "pause")
        return "bot paused (HITL)"

    async def resume(self, target: HandoffTarget) -> str:
        """Unpause the bot for this user."""
        await self._hitl(target, "unpause")
        return "bot unpaused (HITL)"

    async def _hitl(self, target: HandoffTarget, action: str) -> None:
        channel = target.metadata.get("channel") or DEFAULT_CHANNEL
        user = target.customer_id or target.conversation_id
        await call(
            self.label,
            "POST",
            f"{self._url}/api/v1/bots/{quote(self._bot_id, safe='')}/mod/hitl"
            f"/channel/{quote(channel, safe='')}/user/{quote(user, safe='')}/{action}",
            headers={"Authorization": f"Bearer {self._token}"},
        )
