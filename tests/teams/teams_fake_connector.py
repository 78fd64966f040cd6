"""A local stand-in for the Bot Connector service that Teams runs behind each `serviceUrl`.

It implements the REST calls the bot makes (create conversation, send to conversation, reply to
activity, update activity), records them, keeps the current content of each message, validates
every Adaptive Card against the pinned schema, and can answer faults such as 429 or 500.
"""

from __future__ import annotations

import itertools
import json
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # no stubs in the dev dependencies
from aiohttp import web

ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
SCHEMAS = Path(__file__).parent / "schemas"
_card_schema = json.loads((SCHEMAS / "adaptive-card-1.5.json").read_text(encoding="utf-8"))
CARD_VALIDATOR = jsonschema.Draft6Validator(_card_schema)


def card_errors(card: dict[str, Any]) -> list[str]:
    """Schema errors of one Adaptive Card, as readable lines (empty when valid).

    `msteams` is Teams' host extension, which the generic schema does not know: it is checked
    here the way Teams reads it (each mention's "<at>...</at>" text must appear on the card).
    """
    generic = {key: value for key, value in card.items() if key != "msteams"}
    errors = [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in CARD_VALIDATOR.iter_errors(generic)
    ]
    return errors + _msteams_errors(card)


def _texts(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["text"]] if isinstance(node.get("text"), str) else []
        return own + [text for value in node.values() for text in _texts(value)]
    if isinstance(node, list):
        return [text for item in node for text in _texts(item)]
    return []


def _msteams_errors(card: dict[str, Any]) -> list[str]:
    if "msteams" not in card:
        return []
    extension = card["msteams"]
    if not isinstance(extension, dict) or set(extension) - {"entities", "width"}:
        return [f"msteams: unexpected {extension!r}"]
    shown = "\n".join(_texts(card.get("body", [])))
    errors = []
    for index, entity in enumerate(extension.get("entities", [])):
        mentioned = entity.get("mentioned") or {}
        if entity.get("type") != "mention" or not mentioned.get("id") or not mentioned.get("name"):
            errors.append(f"msteams/entities/{index}: not a mention of an id with a name")
        text = str(entity.get("text", ""))
        if not (text.startswith("<at>") and text.endswith("</at>")) or text not in shown:
            errors.append(f"msteams/entities/{index}: {text!r} is not on the card")
        if mentioned.get("type") not in (None, "person", "tag"):
            errors.append(f"msteams/entities/{index}: unknown mention type {mentioned['type']!r}")
    return errors


@dataclass
class Call:
    """One request the bot made."""

    operation: str  # "create_conversation", "send_to_conversation", "reply", "update"
    conversation_id: str
    activity_id: str | None
    body: dict[str, Any]
    status: int


@dataclass
class FakeBotConnector:
    """The fake service's state: calls, messages by id, channels of each team, queued faults."""

    calls: list[Call] = field(default_factory=list)
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    threads: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    faults: deque[tuple[int, dict[str, str]]] = field(default_factory=deque)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1000))

    def fail_next(self, status: int, headers: dict[str, str] | None = None) -> None:
        """Answer the next request with `status` (queued faults are used in order)."""
        self.faults.append((status, headers or {}))

    def successful(self, operation: str) -> list[Call]:
        """Calls of one kind that the fake accepted."""
        return [call for call in self.calls if call.operation == operation and call.status < 300]

    def app(self) -> web.Application:
        """The aiohttp application speaking the Bot Connector REST API."""
        app = web.Application()
        app.router.add_post("/v3/conversations", self._create_conversation)
        app.router.add_post("/v3/conversations/{conversation}/activities", self._send)
        app.router.add_post("/v3/conversations/{conversation}/activities/{activity}", self._reply)
        app.router.add_put("/v3/conversations/{conversation}/activities/{activity}", self._update)
        return app

    async def _accept(
        self, request: web.Request, operation: str, activity: dict[str, Any]
    ) -> web.Response | None:
        """Record the call; answer a queued fault or a schema error, or None to go on."""
        body = await request.json()
        conversation = request.match_info.get("conversation", "")
        activity_id = request.match_info.get("activity")
        if self.faults:
            status, headers = self.faults.popleft()
            self.calls.append(Call(operation, conversation, activity_id, body, status))
            return web.json_response(
                {"error": {"code": "Fault", "message": "injected"}}, status=status, headers=headers
            )
        for attachment in activity.get("attachments") or []:
            if attachment.get("contentType") == ADAPTIVE_CARD:
                errors = card_errors(attachment["content"])
                if errors:
                    self.calls.append(Call(operation, conversation, activity_id, body, 400))
                    message = "; ".join(errors)
                    return web.json_response(
                        {"error": {"code": "BadArgument", "message": message}}, status=400
                    )
        self.calls.append(Call(operation, conversation, activity_id, body, 200))
        return None

    async def _create_conversation(self, request: web.Request) -> web.Response:
        body = await request.json()
        refused = await self._accept(request, "create_conversation", body.get("activity") or {})
        if refused:
            return refused
        channel = body["channelData"]["channel"]["id"]
        message_id = str(next(self._ids))
        self.messages[message_id] = body["activity"]
        conversation = f"{channel};messageid={message_id}"
        self.threads[conversation] = []
        return web.json_response({"id": conversation, "activityId": message_id}, status=201)

    async def _send(self, request: web.Request) -> web.Response:
        body = await request.json()
        refused = await self._accept(request, "send_to_conversation", body)
        if refused:
            return refused
        self.threads.setdefault(request.match_info["conversation"], []).append(body)
        return web.json_response({"id": str(next(self._ids))}, status=201)

    async def _reply(self, request: web.Request) -> web.Response:
        body = await request.json()
        refused = await self._accept(request, "reply", body)
        if refused:
            return refused
        self.threads.setdefault(request.match_info["conversation"], []).append(body)
        return web.json_response({"id": str(next(self._ids))}, status=201)

    async def _update(self, request: web.Request) -> web.Response:
        body = await request.json()
        activity_id = request.match_info["activity"]
        if activity_id not in self.messages:
            return web.json_response({"error": {"code": "NotFound"}}, status=404)
        refused = await self._accept(request, "update", body)
        if refused:
            return refused
        self.messages[activity_id] = body
        return web.json_response({"id": activity_id})
