"""A running service (real aiohttp app, real database, real connectors) for HTTP stories."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import Service, build_service, create_app
from bot.config import Settings
from bot.console import ConsoleNotifier
from connectors.generic import sign
from storage.db import Database

REPO = Path(__file__).resolve().parents[2]
SECRET = "test-webhook-secret"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Running:
    service: Service
    client: TestClient[Any, Any]
    console: io.StringIO
    clock: Clock

    async def post(
        self, payload: object, *, secret: str | None = SECRET, name: str = "generic"
    ) -> tuple[int, dict[str, Any]]:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers["X-Escalations-Signature"] = sign(secret, body)
        response = await self.client.post(f"/webhooks/{name}", data=body, headers=headers)
        return response.status, await response.json()


def conversation(cid: str, *events: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A generic-format post."""
    return {"conversation_id": cid, "platform": "acme-bot", **fields, "events": list(events)}


T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def message(event_id: str, role: str, text: str, second: int, **extra: Any) -> dict[str, Any]:
    """One generic-format message event, `second` seconds after 10:00."""
    stamp = (T0 + timedelta(seconds=second)).isoformat().replace("+00:00", "Z")
    return {
        "id": event_id,
        "type": "message",
        "role": role,
        "text": text,
        "timestamp": stamp,
        **extra,
    }


def angry_conversation(cid: str = "c-angry") -> dict[str, Any]:
    """A customer stuck in fallbacks who asks for a human: escalates under the default rules."""
    fallback = {"fallback": True, "intent": "fallback", "confidence": 0.2}
    return conversation(
        cid,
        message("m1", "customer", "where is my refund for order #48213??", 0),
        message("m2", "bot", "Sorry, I didn't get that.", 2, **fallback),
        message("m3", "customer", "my refund for order 48213, where is it", 20),
        message("m4", "bot", "Sorry, I didn't get that.", 22, **fallback),
        message("m5", "customer", "this is useless. I want to talk to a real person now", 40),
        customer={"id": "u-9", "name": "Ana", "tier": "standard"},
    )


@pytest.fixture
def clock() -> Clock:
    return Clock(T0 + timedelta(minutes=1))


@pytest.fixture
def make_service(
    database: Database, tmp_path: Path, clock: Clock
) -> Callable[..., AsyncIterator[Running]]:
    async def factory(**environ: str) -> AsyncIterator[Running]:
        env = {"ESCALATIONS_WEBHOOK_SECRET": SECRET, **environ}
        settings = Settings.from_env(env)
        settings = Settings(
            rules_path=REPO / "rules.yaml",
            data_dir=tmp_path / "data",
            max_body_bytes=settings.max_body_bytes,
            ingest_writers=settings.ingest_writers,
            public_url="https://escalations.example.com",
            environ=env,
        )
        console = io.StringIO()
        service = build_service(
            settings,
            clock=clock,
            database=database,
            extra_notifiers={"console": ConsoleNotifier(console)},
        )
        app = create_app(service, watch_rules_every=None, run_delivery=False)
        async with TestClient(TestServer(app)) as client:
            yield Running(service, client, console, clock)

    return factory


@pytest.fixture
async def running(make_service: Callable[..., AsyncIterator[Running]]) -> AsyncIterator[Running]:
    async for item in make_service():
        yield item
