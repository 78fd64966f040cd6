"""kill -9 in the middle of a load of webhook posts and card deliveries, then a restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.reliability.harness import (
    WAIT_LIMIT_SECONDS,
    ChatPlatform,
    ServiceProcess,
    angry_events,
    outbox_rows,
    post_body,
    post_webhook,
    read_stored,
    service_environ,
    wait_for_outbox_drained,
)

pytestmark = pytest.mark.slow

# Chatbot conversations posted at once, each one event per post.
WORKERS = 8
# A bound in case the kill never comes (it comes once the first card is in flight).
MAX_CONVERSATIONS = 60


def body(cid: str, event: dict[str, Any]) -> bytes:
    """One event of one conversation; half the conversations go to the billing team's channel."""
    return post_body(cid, [event], queue="billing" if int(cid[2:]) % 2 else "general")


# Longer than the Slack client's 10 s timeout, short enough for a test to wait out once.
LEASE_SECONDS = "12"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'escalations.db'}"
    factory: Callable[[], str] = request.getfixturevalue("postgres_url_factory")
    return factory()


@pytest.fixture
async def slack() -> AsyncIterator[ChatPlatform]:
    platform = ChatPlatform()
    await platform.start()
    yield platform
    await platform.close()


async def test_after_kill_9_every_acknowledged_event_is_stored_and_every_escalation_gets_one_card(
    database_url: str, tmp_path: Path, slack: ChatPlatform
) -> None:
    environ = service_environ(
        database_url=database_url,
        data_dir=tmp_path / "data",
        slack_api_url=slack.api_url,
        ESCALATIONS_DELIVERY_LEASE_SECONDS=LEASE_SECONDS,
    )
    first = ServiceProcess(environ, tmp_path / "first.log")
    second = ServiceProcess(environ, tmp_path / "second.log")
    await first.start()
    # Slack is slow: card posts are in flight (sent, not answered) when the process dies.
    slack.hold()
    acknowledged: set[tuple[str, str]] = set()
    first_acknowledged = asyncio.Event()
    started: list[str] = []
    killed = False

    async def platform_worker(http: aiohttp.ClientSession) -> None:
        # Conversations keep coming until the service is gone.
        while not killed and len(started) < MAX_CONVERSATIONS:
            cid = f"c-{len(started)}"
            started.append(cid)
            for event in angry_events():
                status = await post_webhook(http, first.base_url, body(cid, event))
                if status == 0:
                    return
                if 200 <= status < 300:
                    acknowledged.add((cid, event["id"]))
                    first_acknowledged.set()

    async def killer() -> None:
        nonlocal killed
        # Cards are being posted (held by the slow Slack) while posts keep arriving. A call the
        # service made for itself while starting can be held before any post, so a post must
        # have been acknowledged too.
        async with asyncio.timeout(WAIT_LIMIT_SECONDS):
            await first_acknowledged.wait()
        await slack.wait_until(lambda platform: platform.held >= 1)
        first.kill()
        killed = True

    try:
        async with aiohttp.ClientSession() as http:
            await asyncio.gather(killer(), *(platform_worker(http) for _ in range(WORKERS)))
        assert first.process is not None
        assert first.process.returncode == -9
        sent = {(cid, event["id"]) for cid in started for event in angry_events()}
        assert acknowledged < sent
        slack.release()  # what was in flight died with the process
        await second.start()

        # Every event that got a 2xx survived the kill.
        stored = await asyncio.to_thread(read_stored, database_url)
        assert acknowledged <= stored.events
        assert all(count == 1 for count in stored.escalations_by_conversation.values())

        # The platform retries what was never acknowledged; now everything is there.
        async with aiohttp.ClientSession() as http:
            statuses = await asyncio.gather(
                *(
                    post_webhook(http, second.base_url, body(cid, event))
                    for cid in started
                    for event in angry_events()
                    if (cid, event["id"]) not in acknowledged
                )
            )
        assert set(statuses) <= {200}
        stored = await wait_for_outbox_drained(database_url)
        assert stored.events == sent
        assert stored.escalations_by_conversation == dict.fromkeys(started, 1)
        assert stored.outbox_failed == 0, outbox_rows(database_url)
        assert sorted(stored.cards_by_escalation.values()) == [1] * len(started)
        assert set(slack.cards) == stored.cards
        assert "Traceback" not in second.log(), second.log()
    finally:
        slack.release()
        first.stop()
        second.stop()


async def test_a_card_slack_showed_just_before_a_crash_is_not_posted_again(
    tmp_path: Path, slack: ChatPlatform
) -> None:
    database_url = f"sqlite:///{tmp_path / 'escalations.db'}"
    environ = service_environ(
        database_url=database_url,
        data_dir=tmp_path / "data",
        slack_api_url=slack.api_url,
        ESCALATIONS_DELIVERY_LEASE_SECONDS="5",
    )
    first = ServiceProcess(environ, tmp_path / "first.log")
    second = ServiceProcess(environ, tmp_path / "second.log")
    await first.start()
    slack.hold_answers()  # Slack shows the card; its answer is still on the way
    try:
        async with aiohttp.ClientSession() as http:
            for event in angry_events():
                assert await post_webhook(http, first.base_url, body("c-0", event)) == 200
        # The card is on Slack; the answer that would record it is held.
        await slack.wait_until(lambda platform: len(platform.cards) >= 1)
        first.kill()
        slack.release()
        await second.start()
        stored = await wait_for_outbox_drained(database_url)

        # The restarted service found the card in the channel instead of posting it again.
        assert slack.card_texts() == ["Escalation #1 · conversation c-0"]
        assert stored.cards_found_in_channel == 1
        assert stored.cards == set(slack.cards)
        assert stored.cards_by_escalation == {1: 1}
        assert stored.outbox_failed == 0, outbox_rows(database_url)
        assert "Traceback" not in second.log(), second.log()
    finally:
        slack.release()
        first.stop()
        second.stop()
