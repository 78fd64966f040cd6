"""Admin API: reload the rules without a restart, and see every reload attempt.

`POST /admin/rules/reload` and `GET /admin/rules/reloads` need
`Authorization: Bearer $ESCALATIONS_DASHBOARD_TOKEN`; without that variable they answer 503 and
do nothing. A reload of a broken file answers 422 with the problems (file, line, key path), and
the rules in force stay those of the last good file.
"""

from __future__ import annotations

import hmac
from typing import Any

from aiohttp import web

from bot.rules_store import ReloadRecord, RulesStore

TOKEN_ENV = "ESCALATIONS_DASHBOARD_TOKEN"  # noqa: S105 (a variable name)


def _record(record: ReloadRecord) -> dict[str, Any]:
    return {
        "at": record.at.isoformat(),
        "trigger": record.trigger,
        "loaded": record.loaded,
        "problems": list(record.problems),
    }


def _refusal(token: str | None, request: web.Request) -> web.Response | None:
    if not token:
        return web.json_response(
            {"error": f"the admin API is off until {TOKEN_ENV} is set on the service"}, status=503
        )
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        return web.json_response(
            {"error": "missing Authorization: Bearer <token>"},
            status=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        return web.json_response(
            {"error": "the bearer token does not match"},
            status=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    return None


def admin_routes(rules: RulesStore, token: str | None) -> list[web.RouteDef]:
    """The admin routes, bound to the service's rules store and admin token."""

    async def reload_rules(request: web.Request) -> web.Response:
        refusal = _refusal(token, request)
        if refusal is not None:
            return refusal
        loaded = rules.reload("admin")
        answer = {
            "loaded": loaded,
            "rules_loaded_at": rules.loaded_at.isoformat(),
            "path": str(rules.path),
            "problems": [] if loaded else list(rules.history[-1].problems),
        }
        return web.json_response(answer, status=200 if loaded else 422)

    async def reload_history(request: web.Request) -> web.Response:
        refusal = _refusal(token, request)
        if refusal is not None:
            return refusal
        return web.json_response(
            {
                "rules_loaded_at": rules.loaded_at.isoformat(),
                "path": str(rules.path),
                "reloads": [_record(record) for record in reversed(rules.history)],
            }
        )

    return [
        web.post("/admin/rules/reload", reload_rules),
        web.get("/admin/rules/reloads", reload_history),
    ]
