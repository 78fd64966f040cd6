"""A running service whose platform calls go to a local server speaking each platform's API."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.app import Service, build_service, create_app
from bot.config import Settings
from bot.console import ConsoleNotifier
from bot.handoff import Actor
from connectors.generic import sign
from storage import escalations
from storage.db import Database
from storage.escalations import EscalationRecord

REPO = Path(__file__).resolve().parents[2]
SECRET = "test-webhook-secret"
T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
ANA = Actor("slack", "U-ANA", "Ana")
BEN = Actor("slack", "U-BEN", "Ben")

# One set of platform credentials per connector, as an operator would put in the environment.
PLATFORM_ENV = {
    "ESCALATIONS_RASA_API_TOKEN": "rasa-token",
    "ESCALATIONS_SUNSHINE_KEY_ID": "app_key_1",
    "ESCALATIONS_SUNSHINE_KEY_SECRET": "sunshine-key-secret",
    "ESCALATIONS_SUNSHINE_BOT_INTEGRATION": "answer-bot",
    "ESCALATIONS_INTERCOM_TOKEN": "intercom-token",
    "ESCALATIONS_INTERCOM_ADMIN_ID": "814860",
    "ESCALATIONS_INTERCOM_TEAM_ID": "5017691",
    "ESCALATIONS_LIVEPERSON_ACCOUNT_ID": "63358097",
    "ESCALATIONS_LIVEPERSON_TOKEN": "liveperson-token",
    "ESCALATIONS_LIVEPERSON_AGENT_SKILL_ID": "1001",
    "ESCALATIONS_LIVEPERSON_BOT_SKILL_ID": "2002",
    "ESCALATIONS_BOTPRESS_TOKEN": "botpress-token",
    "ESCALATIONS_BOTPRESS_BOT_ID": "support-bot",
    "ESCALATIONS_CHATWOOT_TOKEN": "chatwoot-token",
    "ESCALATIONS_CHATWOOT_TEAM_ID": "4",
}


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass(frozen=True)
class Call:
    """One request a platform received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class FakePlatforms:
    """One local server answering every platform's hand-off API, recording each call.

    `fail_next` queues answers (status, headers) that the next calls get instead of success.
    """

    calls: list[Call] = field(default_factory=list)
    failures: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    url: str = ""

    def fail_next(self, status: int, times: int = 1, headers: dict[str, str] | None = None) -> None:
        self.failures.extend([(status, headers or {})] * times)

    async def handle(self, request: web.Request) -> web.Response:
        text = await request.text()
        self.calls.append(
            Call(
                request.method,
                request.path,
                dict(request.query),
                dict(request.headers),
                json.loads(text) if text else None,
            )
        )
        if self.failures:
            status, headers = self.failures.pop(0)
            return web.json_response({"error": "canned failure"}, status=status, headers=headers)
        return web.json_response(_answer(request.path), status=_status(request.path))

    def env(self) -> dict[str, str]:
        """The platform settings pointing every client at this server."""
        return {
            **PLATFORM_ENV,
            "ESCALATIONS_RASA_API_URL": self.url,
            "ESCALATIONS_SUNSHINE_API_URL": self.url,
            "ESCALATIONS_INTERCOM_API_URL": self.url,
            "ESCALATIONS_LIVEPERSON_API_URL": self.url,
            "ESCALATIONS_BOTPRESS_API_URL": self.url,
            "ESCALATIONS_CHATWOOT_API_URL": self.url,
        }


def _status(path: str) -> int:
    return 202 if "/transferToSkill/" in path else 200  # LivePerson transfers asynchronously


def _answer(path: str) -> dict[str, Any]:
    if path.endswith("/toggle_status"):
        return {"meta": {}, "payload": {"success": True}}
    if "/tracker/events" in path:
        return {"sender_id": path.split("/")[2], "paused": path.endswith("pause"), "events": None}
    return {}


@pytest.fixture
async def platforms() -> AsyncIterator[FakePlatforms]:
    fake = FakePlatforms()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    server = TestServer(app, port=0)
    await server.start_server()
    fake.url = str(server.make_url("")).rstrip("/")
    yield fake
    await server.close()


@dataclass
class Running:
    """The service, its HTTP client, and helpers the stories use."""

    service: Service
    client: TestClient[Any, Any]
    clock: Clock
    rules_path: Path

    async def post(self, payload: object, *, name: str = "generic", **query: str) -> int:
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        if name == "generic":
            headers["X-Escalations-Signature"] = sign(SECRET, body)
        response = await self.client.post(
            f"/webhooks/{name}", data=body, headers=headers, params=query
        )
        assert response.status == 200, await response.text()
        return response.status

    async def post_raw(self, name: str, body: bytes, headers: dict[str, str], **query: str) -> None:
        response = await self.client.post(
            f"/webhooks/{name}", data=body, headers=headers, params=query
        )
        assert response.status == 200, await response.text()

    def escalation(self, conversation_id: str) -> EscalationRecord:
        with self.service.database.session() as session:
            found = escalations.list_escalations(session=session, conversation_id=conversation_id)
        assert found, f"no escalation for {conversation_id}"
        return found[0]

    def notices(self, escalation_id: int) -> list[str]:
        with self.service.database.session() as session:
            history = escalations.handoff_history(session=session, escalation_id=escalation_id)
        return [str(e.detail["notice"]) for e in history if e.detail.get("notice")]

    async def card_notices(self, escalation_id: int) -> tuple[str, ...]:
        card = await self.service.handoff.card(escalation_id)
        assert card is not None
        return card.notices

    async def deliver(self) -> None:
        """Run the delivery worker until nothing is due now."""
        while await self.service.delivery.run_once():
            pass

    def edit_rules(self, edit: Callable[[str], str]) -> None:
        self.rules_path.write_text(edit(self.rules_path.read_text()))
        assert self.service.rules.reload()


@pytest.fixture
def make_service(database: Database, tmp_path: Path) -> Callable[..., AsyncIterator[Running]]:
    async def factory(**environ: str) -> AsyncIterator[Running]:
        rules_path = tmp_path / "rules.yaml"
        rules_path.write_text((REPO / "rules.yaml").read_text())
        env = {"ESCALATIONS_WEBHOOK_SECRET": SECRET, **environ}
        settings = Settings(
            rules_path=rules_path,
            data_dir=tmp_path / "data",
            public_url="https://escalations.example.com",
            environ=env,
        )
        clock = Clock(T0 + timedelta(minutes=1))
        service = build_service(
            settings,
            clock=clock,
            database=database,
            extra_notifiers={"console": ConsoleNotifier(io.StringIO())},
        )
        app = create_app(service, watch_rules_every=None, run_delivery=False)
        async with TestClient(TestServer(app)) as client:
            yield Running(service, client, clock, rules_path)

    return factory


@pytest.fixture
async def running(
    make_service: Callable[..., AsyncIterator[Running]], platforms: FakePlatforms
) -> AsyncIterator[Running]:
    async for item in make_service(**platforms.env()):
        yield item


def message(event_id: str, role: str, text: str, second: int, **extra: Any) -> dict[str, Any]:
    """One generic-format message event, `second` seconds after 10:00."""
    stamp = (T0 + timedelta(seconds=second)).isoformat().replace("+00:00", "Z")
    event = {"id": event_id, "type": "message", "role": role, "text": text, "timestamp": stamp}
    return {**event, **extra}


def stuck_customer(cid: str, platform: str = "acme-bot", **fields: Any) -> dict[str, Any]:
    """A generic-format post that escalates under the default rules: fallbacks, then "a person"."""
    fallback = {"fallback": True, "intent": "fallback", "confidence": 0.2}
    return {
        "conversation_id": cid,
        "platform": platform,
        "customer": {"id": f"user-{cid}", "name": "Rui", "tier": "standard"},
        **fields,
        "events": [
            message("m1", "customer", "where is my refund for order #48213??", 0),
            message("m2", "bot", "Sorry, I didn't get that.", 2, **fallback),
            message("m3", "customer", "my refund for order 48213, where is it", 20),
            message("m4", "bot", "Sorry, I didn't get that.", 22, **fallback),
            message("m5", "customer", "this is useless. I want to talk to a real person now", 40),
        ],
    }
