"""A running service with the dashboard installed, and a day of hand-offs seeded through it."""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import build_service, create_app
from bot.config import Settings
from bot.console import ConsoleNotifier
from bot.handoff import Actor
from storage.db import Database
from tests.bot.conftest import (
    REPO,
    SECRET,
    T0,
    Clock,
    Running,
    angry_conversation,
    conversation,
    message,
)

TOKEN = "correct horse battery staple"
AGENT = Actor(surface="slack", user_id="U-ANA", display_name="Ana Agent")
ARTIFACTS = REPO / "test-artifacts" / "dashboard"


@dataclass
class Dashboard(Running):
    """The running service plus what the seed left behind."""

    escalation_ids: dict[str, int]

    async def login(self, password: str = TOKEN, next_path: str = "/") -> Any:
        """Log in through the form, as a browser would (CSRF cookie and field)."""
        form = await self.client.get("/login")
        csrf = csrf_of(await form.text())
        return await self.client.post(
            "/login",
            data={"csrf": csrf, "password": password, "next": next_path},
            allow_redirects=False,
        )


def csrf_of(html: str) -> str:
    """The CSRF token of the first form on a page."""
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None, "the page has no form with a CSRF token"
    return found.group(1)


async def seed(running: Running) -> dict[str, int]:
    """Three hand-offs and one happy chat, with claims and a resolution at known times.

    10:01 c-1 escalates; 10:02 Ana claims it (60 s); 10:03 c-2 escalates and c-3 stays happy;
    10:06 Ana claims c-2 (180 s); 10:11 she resolves c-1 (600 s after it opened);
    11:03 c-4, on another platform, escalates and waits. The clock then stands at 11:10.
    """
    clock = running.clock
    ids: dict[str, int] = {}

    async def escalate(cid: str, **fields: Any) -> None:
        status, answer = await running.post({**angry_conversation(cid), **fields})
        assert status == 200, answer
        [ids[cid]] = answer["escalations_opened"]

    clock.now = T0 + timedelta(minutes=1)
    await escalate("c-1")
    clock.now = T0 + timedelta(minutes=2)
    assert (await running.service.handoff.claim(ids["c-1"], AGENT)).ok
    clock.now = T0 + timedelta(minutes=3)
    await escalate("c-2")
    status, _ = await running.post(
        conversation(
            "c-3",
            message("h1", "customer", "when does my parcel arrive?", 0),
            message("h2", "bot", "Parcel 7731 arrives today before 6pm.", 2, intent="eta"),
            message("h3", "customer", "great, thanks!", 10),
        )
    )
    assert status == 200
    clock.now = T0 + timedelta(minutes=6)
    assert (await running.service.handoff.claim(ids["c-2"], AGENT)).ok
    clock.now = T0 + timedelta(minutes=11)
    assert (await running.service.handoff.resolve(ids["c-1"], AGENT, "refunded", None)).ok
    clock.now = T0 + timedelta(hours=1, minutes=3)
    await escalate("c-4", platform="other-bot")
    clock.now = T0 + timedelta(hours=1, minutes=10)
    return ids


DashboardFactory = Callable[..., AsyncIterator[Dashboard]]


def _factory(database: Database, tmp_path: Path) -> DashboardFactory:
    async def start(
        *,
        token: str | None = TOKEN,
        public_url: str = "http://127.0.0.1",
        seeded: bool = True,
        **environ: str,
    ) -> AsyncIterator[Dashboard]:
        env = {"ESCALATIONS_WEBHOOK_SECRET": SECRET, **environ}
        settings = Settings(
            rules_path=REPO / "rules.yaml",
            data_dir=tmp_path / "data",
            public_url=public_url,
            dashboard_token=token,
            environ=env,
        )
        clock = Clock(T0)
        console = io.StringIO()
        service = build_service(
            settings,
            clock=clock,
            database=database,
            extra_notifiers={"console": ConsoleNotifier(console)},
        )
        app = create_app(service, watch_rules_every=None, run_delivery=False)
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            running = Running(service, client, console, clock)
            ids = await seed(running) if seeded else {}
            yield Dashboard(service, client, console, clock, ids)

    return start


@pytest.fixture
def make_dashboard(database: Database, tmp_path: Path) -> DashboardFactory:
    """Start a seeded dashboard on SQLite and on PostgreSQL."""
    return _factory(database, tmp_path)


@pytest.fixture
def make_sqlite_dashboard(sqlite_database: Database, tmp_path: Path) -> DashboardFactory:
    """Start a seeded dashboard on SQLite only (login and browser stories)."""
    return _factory(sqlite_database, tmp_path)


@pytest.fixture
async def dashboard(make_dashboard: DashboardFactory) -> AsyncIterator[Dashboard]:
    async for item in make_dashboard():
        yield item


@pytest.fixture
async def sqlite_dashboard(make_sqlite_dashboard: DashboardFactory) -> AsyncIterator[Dashboard]:
    async for item in make_sqlite_dashboard():
        yield item
