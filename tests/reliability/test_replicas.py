"""Three replicas on one PostgreSQL database, every conversation posted to all of them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest

from tests.reliability.harness import (
    ChatPlatform,
    ServiceProcess,
    angry_events,
    outbox_rows,
    post_body,
    post_webhook,
    service_environ,
    wait_for_outbox_drained,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

CONVERSATIONS = 12
REPLICAS = 3


@pytest.fixture
async def slack() -> AsyncIterator[ChatPlatform]:
    platform = ChatPlatform()
    await platform.start()
    yield platform
    await platform.close()


async def test_three_replicas_store_each_event_once_and_post_one_card_per_conversation(
    postgres_url_factory: Callable[[], str], tmp_path: Path, slack: ChatPlatform
) -> None:
    database_url = postgres_url_factory()
    replicas = [
        ServiceProcess(
            service_environ(
                database_url=database_url,
                data_dir=tmp_path / f"replica-{index}",
                slack_api_url=slack.api_url,
            ),
            tmp_path / f"replica-{index}.log",
        )
        for index in range(REPLICAS)
    ]
    try:
        # All three start together: they migrate the same empty database at the same time.
        await asyncio.gather(*(replica.start() for replica in replicas))
        statuses: list[int] = []

        async def one_conversation(http: aiohttp.ClientSession, number: int) -> None:
            cid = f"c-{number}"
            queue = "billing" if number % 2 else "general"
            events = angry_events()
            first, second, third = (
                replicas[number % REPLICAS],
                replicas[(number + 1) % REPLICAS],
                replicas[(number + 2) % REPLICAS],
            )
            for event in events:
                # The same event to two replicas at once, as a retrying platform behind a
                # load balancer does.
                body = post_body(cid, [event], queue=queue)
                statuses.extend(
                    await asyncio.gather(
                        post_webhook(http, first.base_url, body),
                        post_webhook(http, second.base_url, body),
                    )
                )
            # Then the whole conversation again to the third one.
            statuses.append(
                await post_webhook(http, third.base_url, post_body(cid, events, queue=queue))
            )

        async with aiohttp.ClientSession() as http:
            await asyncio.gather(*(one_conversation(http, n) for n in range(CONVERSATIONS)))

        assert statuses == [200] * (CONVERSATIONS * (2 * 5 + 1))
        stored = await wait_for_outbox_drained(database_url)
        # Every event once, whichever replica stored it.
        assert len(stored.events) == CONVERSATIONS * 5
        assert stored.escalations_by_conversation == {f"c-{n}": 1 for n in range(CONVERSATIONS)}
        # One card per escalation, and Slack shows exactly the cards the database recorded.
        assert stored.outbox_failed == 0, outbox_rows(database_url)
        assert sorted(stored.cards_by_escalation.values()) == [1] * CONVERSATIONS, outbox_rows(
            database_url
        )
        assert set(slack.cards) == stored.cards
        assert sorted(set(slack.card_texts())) == sorted(slack.card_texts())
        # Scheduled digests: whichever replica posts one, each team's period is posted once.
        digests = list(slack.digests.values())
        assert digests  # each replica starts by catching up on the last period
        assert len(set(digests)) == len(digests), digests
        for replica in replicas:
            log = replica.log()
            assert "deadlock" not in log.lower(), log
            assert "Traceback" not in log, log
    finally:
        for replica in replicas:
            replica.stop()
