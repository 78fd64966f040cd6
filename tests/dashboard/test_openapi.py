"""The OpenAPI file describes every API route, and real answers match its schemas."""

from __future__ import annotations

from typing import Any

import yaml
from aiohttp import web
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

from bot.dashboard import dashboard_routes
from tests.bot.conftest import REPO
from tests.dashboard.conftest import TOKEN, Dashboard

SPEC: dict[str, Any] = yaml.safe_load((REPO / "docs" / "openapi.yaml").read_text())
BEARER = {"Authorization": f"Bearer {TOKEN}"}


def check(answer: object, schema_name: str) -> None:
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": SPEC["components"]}
    Draft202012Validator(schema).validate(answer)


def test_every_api_route_is_documented() -> None:
    served = {
        (route.method.lower(), route.path)
        for route in dashboard_routes()
        if isinstance(route, web.RouteDef) and route.path.startswith("/api/")
    }
    documented = {
        (method, path) for path, operations in SPEC["paths"].items() for method in operations
    }
    assert served == documented


async def test_answers_match_the_documented_schemas(sqlite_dashboard: Dashboard) -> None:
    client = sqlite_dashboard.client
    check(await (await client.get("/api/v1/overview", headers=BEARER)).json(), "Overview")
    queue = await (await client.get("/api/v1/queue", headers=BEARER)).json()
    for item in queue["escalations"]:
        check(item, "QueueItem")
    conversation = await client.get("/api/v1/conversations/c-1", headers=BEARER)
    check(await conversation.json(), "Conversation")
