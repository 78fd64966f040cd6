"""Slack answering 429, failing with 500s, timing out and being down for minutes.

The service runs in this process with a clock the test drives and the delivery worker driven by
hand (`run_once`), against a local server speaking Slack's Web API that fails on demand.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import Service, build_service, create_app
from bot.config import Settings
from bot.delivery import DeliveryPolicy
from bot.slack import SlackNotifier, SlackSettings
from bot.slack.notifier import create_web_client
from storage.db import Database
from tests.bot.conftest import Clock
from tests.reliability.harness import (
    REPO,
    SLACK_SIGNING_SECRET,
    SLACK_TOKEN,
    T0,
    WEBHOOK_SECRET,
    ChatPlatform,
    angry_events,
    post_body,
    signed_headers,
)

# A Slack call that takes longer than this is a timeout (slack_sdk's own default is 10 s).
CLIENT_TIMEOUT_SECONDS = 1


@dataclass
class Bench:
    service: Service
    client: TestClient[Any, Any]
    slack: ChatPlatform
    clock: Clock

    async def post_conversation(self, cid: str) -> None:
        body = post_body(cid, angry_events())
        response = await self.client.post(
            "/webhooks/generic", data=body, headers=signed_headers(body)
        )
        assert response.status == 200, await response.text()

    async def deliver(self) -> int:
        return await self.service.delivery.run_once()

    async def metric(self, name: str) -> float:
        response = await self.client.get("/metrics")
        text = await response.text()
        match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
        assert match is not None, text
        return float(match.group(1))

    def cards(self) -> list[str]:
        return self.slack.card_texts()


@pytest.fixture
async def bench(database: Database, tmp_path: Path) -> AsyncIterator[Bench]:
    clock = Clock(T0 + timedelta(minutes=1))
    slack = ChatPlatform(clock=clock)  # Slack's timestamps and the service's time agree
    await slack.start()
    settings = Settings(
        rules_path=REPO / "rules.yaml",
        data_dir=tmp_path / "data",
        public_url="https://escalations.example.com",
        environ={"ESCALATIONS_WEBHOOK_SECRET": WEBHOOK_SECRET},
    )
    client = create_web_client(
        SlackSettings(
            bot_token=SLACK_TOKEN, signing_secret=SLACK_SIGNING_SECRET, api_url=slack.api_url
        )
    )
    client.timeout = CLIENT_TIMEOUT_SECONDS
    service = build_service(
        settings,
        clock=clock,
        database=database,
        extra_notifiers={"slack": SlackNotifier(client)},
        # No jitter in the arithmetic that matters here: the backoff is at most 4 s.
        delivery_policy=DeliveryPolicy(backoff_base=1.0, backoff_cap=4.0),
    )
    app = create_app(service, watch_rules_every=None, run_delivery=False)
    async with TestClient(TestServer(app)) as test_client:
        yield Bench(service, test_client, slack, clock)
    await slack.close()


async def test_a_429_is_honoured_and_the_card_arrives_once_after_retry_after(
    bench: Bench,
) -> None:
    bench.slack.rate_limit_next(retry_after="30")
    await bench.post_conversation("c-1")

    await bench.deliver()
    assert bench.cards() == []
    bench.clock.advance(seconds=29)
    await bench.deliver()
    assert bench.cards() == []  # Retry-After is not over: nothing was even tried
    assert bench.slack.requests == 1
    bench.clock.advance(seconds=2)
    await bench.deliver()
    assert len(bench.cards()) == 1
    await bench.deliver()
    assert len(bench.cards()) == 1


async def test_server_errors_are_retried_with_backoff_until_the_card_arrives_once(
    bench: Bench,
) -> None:
    bench.slack.error_next(500, times=3)
    await bench.post_conversation("c-1")
    for _ in range(4):
        await bench.deliver()
        bench.clock.advance(seconds=5)
    assert len(bench.cards()) == 1
    assert bench.slack.faults_injected == 3
    assert await bench.metric("escalations_outbox_depth") == 0


async def test_a_timed_out_call_is_retried_and_the_card_arrives_once(bench: Bench) -> None:
    bench.slack.hold()  # Slack takes longer than the client waits
    await bench.post_conversation("c-1")
    await bench.deliver()
    assert bench.cards() == []
    bench.slack.release()  # the held call, answered after its caller gave up, is dropped
    bench.clock.advance(seconds=5)
    await bench.deliver()
    assert len(bench.cards()) == 1


async def test_slack_down_for_minutes_queues_cards_durably_visible_in_metrics(
    bench: Bench,
) -> None:
    bench.slack.down = True
    for number in range(3):
        await bench.post_conversation(f"c-{number}")
    for _ in range(10):  # ten minutes of 503s
        await bench.deliver()
        bench.clock.advance(minutes=1)
    assert bench.cards() == []
    assert await bench.metric("escalations_outbox_depth") == 3
    assert await bench.metric("escalations_outbox_oldest_age_seconds") >= 600

    bench.slack.down = False
    for _ in range(5):
        bench.clock.advance(seconds=5)
        await bench.deliver()
    assert len(bench.cards()) == 3
    assert await bench.metric("escalations_outbox_depth") == 0
    assert await bench.metric("escalations_outbox_oldest_age_seconds") == 0
