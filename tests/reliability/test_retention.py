"""Retention: old transcripts and personal data go; the numbers digests need stay."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from bot.app import Service, build_service, create_app
from bot.config import Settings, SettingsError
from bot.retention import RetentionJob, retention_days
from storage import conversations, escalations, tables
from storage.db import Database
from storage.escalations import EscalationStats
from tests.bot.conftest import Clock
from tests.reliability.harness import (
    REPO,
    T0,
    WEBHOOK_SECRET,
    angry_events,
    post_body,
    signed_headers,
)

RETENTION_DAYS = 30


def session_end(second: int) -> dict[str, Any]:
    stamp = (T0 + timedelta(seconds=second)).isoformat().replace("+00:00", "Z")
    return {"id": "end", "type": "session_end", "timestamp": stamp}


@pytest.fixture
async def app(
    database: Database, tmp_path: Path
) -> AsyncIterator[tuple[Service, TestClient[Any, Any], Clock]]:
    clock = Clock(T0 + timedelta(minutes=2))
    settings = Settings(
        rules_path=REPO / "rules.yaml",
        data_dir=tmp_path / "data",
        environ={"ESCALATIONS_WEBHOOK_SECRET": WEBHOOK_SECRET},
    )
    service = build_service(settings, clock=clock, database=database)
    application = create_app(service, watch_rules_every=None, run_delivery=False)
    async with TestClient(TestServer(application)) as client:
        yield service, client, clock


async def post(client: TestClient[Any, Any], cid: str, events: list[dict[str, Any]]) -> None:
    body = post_body(cid, events)
    response = await client.post("/webhooks/generic", data=body, headers=signed_headers(body))
    assert response.status == 200, await response.text()


def stats(database: Database) -> EscalationStats:
    with database.session(read_only=True) as session:
        return escalations.today_stats(
            session=session, day_start=T0 - timedelta(days=1), day_end=T0 + timedelta(days=1)
        )


async def test_transcripts_older_than_the_retention_period_are_deleted_but_numbers_stay(
    app: tuple[Service, TestClient[Any, Any], Clock],
) -> None:
    service, client, clock = app
    database = service.database
    # An old conversation that escalated and ended, and an old one still waiting for a human.
    await post(client, "c-old", [*angry_events(), session_end(120)])
    await post(client, "c-waiting", angry_events())
    clock.advance(days=RETENTION_DAYS + 10)
    await post(client, "c-recent", angry_events())
    before = stats(database)

    job = RetentionJob(database, RETENTION_DAYS, clock)
    result = job.run_once()
    assert result is not None
    assert (result.conversations, result.events, result.escalations_scrubbed) == (1, 6, 1)

    with database.session(read_only=True) as session:
        assert conversations.transcript(session=session, conversation_id="c-old") == []
        assert len(conversations.transcript(session=session, conversation_id="c-waiting")) == 5
        assert len(conversations.transcript(session=session, conversation_id="c-recent")) == 5
        old = conversations.get_conversation(session=session, conversation_id="c-old")
        assert old is not None
        assert (old.meta.customer.id, old.meta.customer.name, old.state) == (None, None, None)
        row = (
            session.connection()
            .execute(
                select(tables.escalations).where(tables.escalations.c.conversation_id == "c-old")
            )
            .mappings()
            .one()
        )
    # The escalation is still counted, with its level and the signals behind it, but nothing
    # the customer wrote.
    assert row["summary"] is None
    assert row["level"]
    assert {reason["signal"] for reason in row["reasons"]} >= {"human_request"}
    assert "real person" not in json.dumps(row["reasons"])
    assert stats(database) == before

    # A second run has nothing left to do.
    again = job.run_once()
    assert again is not None
    assert again.conversations == 0


def test_the_retention_period_is_configurable_and_zero_keeps_everything(
    sqlite_database: Database,
) -> None:
    assert retention_days({}) == 90
    assert retention_days({"ESCALATIONS_RETENTION_DAYS": "7"}) == 7
    assert (
        RetentionJob(
            sqlite_database, retention_days({"ESCALATIONS_RETENTION_DAYS": "0"})
        ).run_once()
        is None
    )
    with pytest.raises(SettingsError, match="ESCALATIONS_RETENTION_DAYS: expected a whole number"):
        retention_days({"ESCALATIONS_RETENTION_DAYS": "a month"})
    with pytest.raises(SettingsError, match="must be 0 \\(keep forever\\) or more, got -1"):
        retention_days({"ESCALATIONS_RETENTION_DAYS": "-1"})
