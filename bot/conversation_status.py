"""`GET /api/conversations/{id}/status`: the hand-off signal for bots whose platform has no API.

Dialogflow and Lex cannot be told to pause; their fulfillment code asks here before answering
and stays quiet while `handoff` is true. The answer:

```json
{"conversation_id": "c-1", "handoff": true, "claimed_by": "Ana",
 "escalation": {"id": 7, "status": "claimed", "team": "support",
                "opened_at": "2026-11-24T10:00:40+00:00",
                "claimed_at": "2026-11-24T10:02:00+00:00"}}
```

`handoff` is true while a human holds the conversation (the escalation is claimed) and the
escalation's team pauses the bot on claim. A conversation we never saw answers `handoff: false`
with no escalation: the bot simply carries on.

Authenticity: header `X-Escalations-Secret` equal to ESCALATIONS_STATUS_SECRET, or, when that is
not set, to the generic webhook secret ESCALATIONS_WEBHOOK_SECRET (the one secret a custom bot
already has). With neither set, the route refuses every request.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from bot.handback import pauses_bot
from storage import conversations, escalations
from storage.db import Database
from storage.escalations import EscalationRecord, EscalationStatus

SECRET_HEADER = "X-Escalations-Secret"  # noqa: S105 (a header name)
STATUS_SECRET_ENV = "ESCALATIONS_STATUS_SECRET"  # noqa: S105 (a variable name)
WEBHOOK_SECRET_ENV = "ESCALATIONS_WEBHOOK_SECRET"  # noqa: S105 (a variable name)
PATH = "/api/conversations/{conversation_id}/status"


def status_secret(environ: Mapping[str, str]) -> str | None:
    """The secret callers must send: the status secret, else the generic webhook secret."""
    return environ.get(STATUS_SECRET_ENV) or environ.get(WEBHOOK_SECRET_ENV) or None


def status_routes(database: Database, environ: Mapping[str, str]) -> list[web.RouteDef]:
    """The status route, bound to the database and the secret from the environment."""
    secret = status_secret(environ)

    async def handle(request: web.Request) -> web.Response:
        """Whether a human has the conversation now."""
        if secret is None:
            return _error(
                401,
                f"this endpoint refuses requests until {STATUS_SECRET_ENV} "
                f"(or {WEBHOOK_SECRET_ENV}) is set on the service",
            )
        given = request.headers.get(SECRET_HEADER)
        if given is None:
            return _error(401, f"missing {SECRET_HEADER} header")
        if not hmac.compare_digest(given.encode(), secret.encode()):
            return _error(401, f"{SECRET_HEADER} does not match the secret")
        conversation_id = request.match_info["conversation_id"]
        answer = await asyncio.to_thread(_status, database, conversation_id)
        return web.json_response(answer)

    return [web.get(PATH, handle)]


def _status(database: Database, conversation_id: str) -> dict[str, Any]:
    with database.session(read_only=True) as session:
        record = escalations.active_escalation(session=session, conversation_id=conversation_id)
        if record is None:
            # No human involved now; show the latest closed escalation for context, if any.
            known = conversations.get_conversation(session=session, conversation_id=conversation_id)
            latest = (
                escalations.list_escalations(
                    session=session, conversation_id=conversation_id, limit=1
                )
                if known is not None
                else []
            )
            record = latest[0] if latest else None
    claimed = record is not None and record.status is EscalationStatus.CLAIMED
    return {
        "conversation_id": conversation_id,
        "handoff": bool(claimed and record is not None and pauses_bot(record)),
        "claimed_by": (record.claimed_by_name or record.claimed_by) if claimed and record else None,
        "escalation": _escalation(record) if record is not None else None,
    }


def _escalation(record: EscalationRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "status": record.status.value,
        "team": record.team,
        "opened_at": record.opened_at.isoformat(),
        "claimed_at": record.claimed_at.isoformat() if record.claimed_at else None,
    }


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)
