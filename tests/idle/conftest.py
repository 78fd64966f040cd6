"""A support desk for idle-claim stories: the whole service (webhooks, real database, delivery to
the console) under a hand-moved clock, with the shipped rules copied where a story may edit them.

The support team's shipped settings: remind the claimer after 10 minutes without an agent
message, release 10 minutes after that reminder.
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import Service, build_service, create_app
from bot.cards import Card
from bot.config import Settings
from bot.console import ConsoleNotifier
from bot.handoff import ActionResult, Actor
from bot.idle import IdleStep, run_idle
from connectors.generic import sign
from storage import escalations, outbox
from storage.db import Database
from storage.escalations import EscalationRecord
from tests.bot.conftest import T0, Clock, angry_conversation

REPO = Path(__file__).resolve().parents[2]
SECRET = "test-webhook-secret"
ANA = Actor("slack", "U0ANA", "Ana")
BEN = Actor("slack", "U0BEN", "Ben")
# The angry conversation's events run from 10:00:00 to 10:00:40; its card opens at 10:01.
OPENED = T0 + timedelta(minutes=1)


@dataclass
class Desk:
    """The service as a support desk sees it: customers write, agents click, minutes pass."""

    service: Service
    http: TestClient[Any, Any]
    console: io.StringIO
    clock: Clock
    rules_path: Path

    # --- the chatbot platform -------------------------------------------------------------------

    async def post(self, payload: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps(payload).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Escalations-Signature": sign(SECRET, body),
        }
        response = await self.http.post("/webhooks/generic", data=body, headers=headers)
        assert response.status == 200, await response.text()
        answer: dict[str, Any] = await response.json()
        return answer

    async def escalate(self, cid: str = "c-angry") -> int:
        """An angry customer's conversation arrives and opens an escalation."""
        answer = await self.post(angry_conversation(cid))
        (escalation_id,) = answer["escalations_opened"]
        assert isinstance(escalation_id, int)
        return escalation_id

    async def says(self, role: str, text: str, cid: str = "c-angry") -> None:
        """Someone writes in the conversation now (by the driven clock)."""
        stamp = self.clock().isoformat().replace("+00:00", "Z")
        event = {
            "id": f"{role}-{stamp}",
            "type": "message",
            "role": role,
            "text": text,
            "timestamp": stamp,
        }
        await self.post({"conversation_id": cid, "platform": "acme-bot", "events": [event]})

    # --- agents and time ------------------------------------------------------------------------

    async def claim(self, escalation_id: int, actor: Actor = ANA) -> ActionResult:
        return await self.service.handoff.claim(escalation_id, actor)

    def at(self, moment: datetime) -> None:
        """Move the clock to `moment`."""
        assert moment >= self.clock.now, "time only runs forward"
        self.clock.now = moment

    def run_idle(self) -> list[str]:
        """One run of the idle-claim job now; the steps it took, as "idle:remind" etc."""
        return [step.key for step in self.idle_steps()]

    def idle_steps(self) -> list[IdleStep]:
        return run_idle(
            self.service.database,
            self.service.rules.current(),
            self.service.surfaces,
            self.clock(),
            self.service.delivery.platform_calls,
        )

    async def deliver(self) -> str:
        """One delivery round; what it printed on the console."""
        start = self.console.tell()
        await self.service.delivery.run_once()
        return self.console.getvalue()[start:]

    # --- what the desk sees -----------------------------------------------------------------------

    async def card(self, escalation_id: int) -> Card:
        card = await self.service.handoff.card(escalation_id)
        assert card is not None
        return card

    def escalation(self, escalation_id: int) -> EscalationRecord:
        with self.service.database.session(read_only=True) as session:
            record = escalations.get_escalation(session=session, escalation_id=escalation_id)
        assert record is not None
        return record

    def history(self, escalation_id: int) -> list[str]:
        with self.service.database.session(read_only=True) as session:
            events = escalations.handoff_history(session=session, escalation_id=escalation_id)
        return [event.kind for event in events]

    def pending(self, escalation_id: int, kind: str) -> list[dict[str, Any]]:
        """Payloads of the escalation's pending outbox rows of one kind."""
        with self.service.database.session(read_only=True) as session:
            rows = outbox.pending(session=session, escalation_id=escalation_id)
        return [row.payload for row in rows if row.kind == kind]


async def open_desk(
    database: Database, rules_path: Path, data_dir: Path, clock: Clock, **environ: str
) -> AsyncIterator[Desk]:
    env = {"ESCALATIONS_WEBHOOK_SECRET": SECRET, **environ}
    settings = Settings(
        rules_path=rules_path,
        data_dir=data_dir,
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
    async with TestClient(TestServer(app)) as http:
        yield Desk(service, http, console, clock, rules_path)


@pytest.fixture
def rules_path(tmp_path: Path) -> Path:
    """A copy of the shipped rules.yaml that a story may edit."""
    path = tmp_path / "rules.yaml"
    path.write_text((REPO / "rules.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    return path


@pytest.fixture
def clock() -> Clock:
    return Clock(OPENED)


@pytest.fixture
async def desk(
    database: Database, rules_path: Path, tmp_path: Path, clock: Clock
) -> AsyncIterator[Desk]:
    """The desk on SQLite and on PostgreSQL."""
    async for running in open_desk(database, rules_path, tmp_path / "data", clock):
        yield running
