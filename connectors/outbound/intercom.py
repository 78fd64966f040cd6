"""Intercom: assign the conversation to the support team (or an admin) on claim, and back.

`POST {api}/conversations/{id}/parts` with `message_type: "assignment"`, acting as an admin
(`admin_id`), bearer access token. On claim the assignee is the team in
ESCALATIONS_INTERCOM_TEAM_ID (else the admin in ESCALATIONS_INTERCOM_ASSIGNEE_ID); on hand-back
it is ESCALATIONS_INTERCOM_BOT_ASSIGNEE_ID, default "0" (unassigned, where the bot's workflows
answer again).
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

from connectors.outbound.base import HandoffTarget, call, required

API_URL_ENV = "ESCALATIONS_INTERCOM_API_URL"
TOKEN_ENV = "ESCALATIONS_INTERCOM_TOKEN"  # noqa: S105 (a variable name)
ADMIN_ID_ENV = "ESCALATIONS_INTERCOM_ADMIN_ID"
TEAM_ID_ENV = "ESCALATIONS_INTERCOM_TEAM_ID"
ASSIGNEE_ID_ENV = "ESCALATIONS_INTERCOM_ASSIGNEE_ID"
BOT_ASSIGNEE_ID_ENV = "ESCALATIONS_INTERCOM_BOT_ASSIGNEE_ID"
DEFAULT_API_URL = "https://api.intercom.io"
API_VERSION = "2.11"


class IntercomClient:
    """Intercom's Conversations API."""

    platform = "intercom"
    label = "Intercom"

    def __init__(
        self,
        token: str,
        admin_id: str,
        *,
        api_url: str = DEFAULT_API_URL,
        team_id: str | None = None,
        assignee_id: str | None = None,
        bot_assignee_id: str = "0",
    ) -> None:
        self._token = token
        self._admin_id = admin_id
        self._api_url = api_url.rstrip("/")
        self._team_id = team_id
        self._assignee_id = assignee_id or admin_id
        self._bot_assignee_id = bot_assignee_id

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> IntercomClient | None:
        """Configured from ESCALATIONS_INTERCOM_TOKEN and _ADMIN_ID (plus optional assignees)."""
        values = required(environ, TOKEN_ENV, ADMIN_ID_ENV)
        if values is None:
            return None
        return cls(
            *values,
            api_url=environ.get(API_URL_ENV) or DEFAULT_API_URL,
            team_id=environ.get(TEAM_ID_ENV) or None,
            assignee_id=environ.get(ASSIGNEE_ID_ENV) or None,
            bot_assignee_id=environ.get(BOT_ASSIGNEE_ID_ENV) or "0",
        )

    async def pause(self, target: HandoffTarget) -> str:
        """Assign the conversation to the team (or admin) that answers it."""
        who = f" {target.agent_name}" if target.agent_name else " an agent"
        if self._team_id is not None:
            await self._assign(target, "team", self._team_id, f"Claimed by{who}.")
            return f"assigned to team {self._team_id}"
        await self._assign(target, "admin", self._assignee_id, f"Claimed by{who}.")
        return f"assigned to admin {self._assignee_id}"

    async def resume(self, target: HandoffTarget) -> str:
        """Assign the conversation back where the bot answers."""
        await self._assign(target, "admin", self._bot_assignee_id, "Handed back to the bot.")
        return f"assigned to {self._bot_assignee_id}"

    async def _assign(self, target: HandoffTarget, kind: str, assignee: str, note: str) -> None:
        await call(
            self.label,
            "POST",
            f"{self._api_url}/conversations/{quote(target.conversation_id, safe='')}/parts",
            headers={
                "Authorization": f"Bearer {self._token}",
                "Intercom-Version": API_VERSION,
                "Accept": "application/json",
            },
            json={
                "message_type": "assignment",
                "type": kind,
                "admin_id": self._admin_id,
                "assignee_id": assignee,
                "body": note,
            },
        )
