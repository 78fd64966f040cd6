"""Chatwoot: the conversation goes `pending` -> `open` (and to a team) on claim, back on hand-back.

`POST {url}/api/v1/accounts/{account}/conversations/{id}/toggle_status` with `{"status": "open"}`,
then, when a team is configured, `POST .../assignments` with `{"team_id": <team>}`; hand-back sets
the status to `pending`, where the agent bot answers again. Header `api_access_token`. The account
and conversation ids are those the Chatwoot connector stored (`chatwoot_account_id`,
`chatwoot_conversation_id`).
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

from connectors.outbound.base import HandoffTarget, NotFound, call, required

URL_ENV = "ESCALATIONS_CHATWOOT_API_URL"
TOKEN_ENV = "ESCALATIONS_CHATWOOT_TOKEN"  # noqa: S105 (a variable name)
TEAM_ID_ENV = "ESCALATIONS_CHATWOOT_TEAM_ID"
DEFAULT_URL = "https://app.chatwoot.com"
ACCOUNT_KEY = "chatwoot_account_id"
CONVERSATION_KEY = "chatwoot_conversation_id"


class ChatwootClient:
    """Chatwoot's application API."""

    platform = "chatwoot"
    label = "Chatwoot"

    def __init__(self, token: str, *, url: str = DEFAULT_URL, team_id: str | None = None) -> None:
        self._token = token
        self._url = url.rstrip("/")
        self._team_id = team_id

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ChatwootClient | None:
        """Configured from ESCALATIONS_CHATWOOT_TOKEN (plus optional URL and team); else None."""
        values = required(environ, TOKEN_ENV)
        if values is None:
            return None
        return cls(
            values[0],
            url=environ.get(URL_ENV) or DEFAULT_URL,
            team_id=environ.get(TEAM_ID_ENV) or None,
        )

    async def pause(self, target: HandoffTarget) -> str:
        """Open the conversation for the agents, and assign the team when one is configured."""
        base = self._conversation_url(target)
        await call(
            self.label,
            "POST",
            f"{base}/toggle_status",
            headers=self._headers(),
            json={"status": "open"},
        )
        if self._team_id is None:
            return "status open"
        await call(
            self.label,
            "POST",
            f"{base}/assignments",
            headers=self._headers(),
            json={"team_id": int(self._team_id) if self._team_id.isdigit() else self._team_id},
        )
        return f"status open, assigned to team {self._team_id}"

    async def resume(self, target: HandoffTarget) -> str:
        """Set the conversation back to pending, where the agent bot answers."""
        await call(
            self.label,
            "POST",
            f"{self._conversation_url(target)}/toggle_status",
            headers=self._headers(),
            json={"status": "pending"},
        )
        return "status pending"

    def _headers(self) -> dict[str, str]:
        return {"api_access_token": self._token}

    def _conversation_url(self, target: HandoffTarget) -> str:
        account = target.metadata.get(ACCOUNT_KEY)
        conversation = target.metadata.get(CONVERSATION_KEY)
        if not account or not conversation:
            raise NotFound(f"{self.label}: the conversation has no stored account/conversation id")
        return (
            f"{self._url}/api/v1/accounts/{quote(account, safe='')}"
            f"/conversations/{quote(conversation, safe='')}"
        )
