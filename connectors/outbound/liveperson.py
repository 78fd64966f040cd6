"""LivePerson: transfer the conversation to the human agents' skill, and back to the bot's.

Message Routing API: `PUT {api}/v1/transferToSkill/account/{accountId}/conversation/{id}
?skillId=<skill>` with a bearer token (answers 202: the transfer runs asynchronously).
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

from connectors.outbound.base import HandoffTarget, call, required

API_URL_ENV = "ESCALATIONS_LIVEPERSON_API_URL"
ACCOUNT_ID_ENV = "ESCALATIONS_LIVEPERSON_ACCOUNT_ID"
TOKEN_ENV = "ESCALATIONS_LIVEPERSON_TOKEN"  # noqa: S105 (a variable name)
AGENT_SKILL_ENV = "ESCALATIONS_LIVEPERSON_AGENT_SKILL_ID"
BOT_SKILL_ENV = "ESCALATIONS_LIVEPERSON_BOT_SKILL_ID"


class LivePersonClient:
    """LivePerson's Message Routing API."""

    platform = "liveperson"
    label = "LivePerson"

    def __init__(
        self, api_url: str, account_id: str, token: str, agent_skill: str, bot_skill: str
    ) -> None:
        self._api_url = api_url.rstrip("/")
        self._account_id = account_id
        self._token = token
        self._agent_skill = agent_skill
        self._bot_skill = bot_skill

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> LivePersonClient | None:
        """Configured from the five ESCALATIONS_LIVEPERSON_* call settings; else None."""
        values = required(
            environ, API_URL_ENV, ACCOUNT_ID_ENV, TOKEN_ENV, AGENT_SKILL_ENV, BOT_SKILL_ENV
        )
        return cls(*values) if values else None

    async def pause(self, target: HandoffTarget) -> str:
        """Transfer to the agents' skill."""
        await self._transfer(target, self._agent_skill)
        return f"transferred to skill {self._agent_skill}"

    async def resume(self, target: HandoffTarget) -> str:
        """Transfer back to the bot's skill."""
        await self._transfer(target, self._bot_skill)
        return f"transferred to skill {self._bot_skill}"

    async def _transfer(self, target: HandoffTarget, skill: str) -> None:
        await call(
            self.label,
            "PUT",
            f"{self._api_url}/v1/transferToSkill/account/{quote(self._account_id, safe='')}"
            f"/conversation/{quote(target.conversation_id, safe='')}",
            params={"skillId": skill},
            headers={"Authorization": f"Bearer {self._token}"},
        )
