"""Sunshine Conversations: the switchboard's `passControl` to the agent integration, and back.

`POST {api}/v2/apps/{appId}/conversations/{conversationId}/passControl` with
`{"switchboardIntegration": <agent integration>}` on claim; on hand-back, `passControl` to the bot
integration when one is named, else `releaseControl` (control returns to the default integration,
normally the bot). Basic auth with an API key id and secret. The app id comes from the webhook
(stored as the conversation's `sunshine_app_id`), else from ESCALATIONS_SUNSHINE_APP_ID.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from urllib.parse import quote

from connectors.outbound.base import HandoffTarget, NotFound, call, required

API_URL_ENV = "ESCALATIONS_SUNSHINE_API_URL"
KEY_ID_ENV = "ESCALATIONS_SUNSHINE_KEY_ID"
KEY_SECRET_ENV = "ESCALATIONS_SUNSHINE_KEY_SECRET"  # noqa: S105 (a variable name)
APP_ID_ENV = "ESCALATIONS_SUNSHINE_APP_ID"
AGENT_INTEGRATION_ENV = "ESCALATIONS_SUNSHINE_AGENT_INTEGRATION"
BOT_INTEGRATION_ENV = "ESCALATIONS_SUNSHINE_BOT_INTEGRATION"
DEFAULT_API_URL = "https://api.smooch.io"
DEFAULT_AGENT_INTEGRATION = "zd:agentWorkspace"
APP_ID_KEY = "sunshine_app_id"


class SunshineClient:
    """The Sunshine Conversations v2 switchboard."""

    platform = "sunshine"
    label = "Sunshine"

    def __init__(
        self,
        key_id: str,
        key_secret: str,
        *,
        api_url: str = DEFAULT_API_URL,
        app_id: str | None = None,
        agent_integration: str = DEFAULT_AGENT_INTEGRATION,
        bot_integration: str | None = None,
    ) -> None:
        credentials = base64.b64encode(f"{key_id}:{key_secret}".encode()).decode()
        self._authorization = f"Basic {credentials}"
        self._api_url = api_url.rstrip("/")
        self._app_id = app_id
        self._agent_integration = agent_integration
        self._bot_integration = bot_integration

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> SunshineClient | None:
        """Configured from ESCALATIONS_SUNSHINE_KEY_ID and _KEY_SECRET (plus optional settings)."""
        values = required(environ, KEY_ID_ENV, KEY_SECRET_ENV)
        if values is None:
            return None
        return cls(
            *values,
            api_url=environ.get(API_URL_ENV) or DEFAULT_API_URL,
            app_id=environ.get(APP_ID_ENV) or None,
            agent_integration=environ.get(AGENT_INTEGRATION_ENV) or DEFAULT_AGENT_INTEGRATION,
            bot_integration=environ.get(BOT_INTEGRATION_ENV) or None,
        )

    async def pause(self, target: HandoffTarget) -> str:
        """Pass control to the agent integration."""
        await self._post(target, "passControl", {"switchboardIntegration": self._agent_integration})
        return f"control passed to {self._agent_integration}"

    async def resume(self, target: HandoffTarget) -> str:
        """Pass control back to the bot integration (or release it to the default one)."""
        if self._bot_integration is None:
            await self._post(target, "releaseControl", {})
            return "control released to the default integration"
        await self._post(target, "passControl", {"switchboardIntegration": self._bot_integration})
        return f"control passed to {self._bot_integration}"

    async def _post(self, target: HandoffTarget, verb: str, body: dict[str, object]) -> None:
        app_id = target.metadata.get(APP_ID_KEY) or self._app_id
        if not app_id:
            raise NotFound(f"{self.label}: no app id (the webhook gave none; set {APP_ID_ENV})")
        if target.agent_name:
            body = {**body, "metadata": {"claimedBy": target.agent_name}}
        url = (
            f"{self._api_url}/v2/apps/{quote(app_id, safe='')}"
            f"/conversations/{quote(target.conversation_id, safe='')}/{verb}"
        )
        await call(
            self.label, "POST", url, json=body, headers={"Authorization": self._authorization}
        )
