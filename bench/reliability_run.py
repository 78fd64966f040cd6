"""Reliability figures: real service processes under load while faults are injected.

Starts a local stand-in for Slack's Web API and several `escalations serve` processes on one
database, then posts chatbot conversations through the signed generic webhook: every event to
one replica, a share of them to a second replica at the same time (a retrying platform behind a
load balancer), while Slack answers 429 with Retry-After, fails with 500s and is down for a
while, and one replica is killed with SIGKILL mid-load and started again. Posts that got no
answer are retried, as platforms do. When the outbox has drained it prints:

- events sent: distinct events the platforms sent (posts, including duplicates, in brackets)
- events stored: distinct events in the database (must equal events sent)
- escalations: escalations opened (one per conversation: each conversation escalates)
- cards delivered: cards Slack shows
- duplicates: stored events beyond one per event, cards beyond one per escalation (including a
  card Slack showed but whose answer died with a killed process) and digests posted twice
- channel searches: `conversations.history` calls made before re-posting a card whose earlier
  attempt may have reached Slack; cards found in the channel: those that had (recorded, not
  posted again)
- faults injected: Slack errors answered plus processes killed

    python -m bench.reliability_run                       # SQLite file, 2 replicas
    python -m bench.reliability_run --database-url postgresql://postgres@127.0.0.1/escalations_rel

The PostgreSQL database must exist and be empty (it is migrated on start). Exit status 1 when an
event is lost or anything is duplicated.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiohttp

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

EVENTS_PER_CONVERSATION = len(angry_events())


async def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    rng = random.Random(args.seed)
    database_url = args.database_url or f"sqlite:///{workdir / 'escalations.db'}"
    slack = ChatPlatform()
    await slack.start()
    environ = service_environ(
        database_url=database_url,
        data_dir=workdir / "data",
        slack_api_url=slack.api_url,
        ESCALATIONS_DELIVERY_LEASE_SECONDS="12",
    )
    replicas = [
        ServiceProcess(environ, workdir / f"replica-{index}.log") for index in range(args.replicas)
    ]
    kills = 0
    posts = 0
    try:
        await asyncio.gather(*(replica.start() for replica in replicas))
        slack.rate_limit_next(retry_after="1", times=args.rate_limits)
        slack.error_next(500, times=args.server_errors)
        half = args.conversations // 2

        async def conversation(http: aiohttp.ClientSession, number: int) -> None:
            nonlocal posts
            cid = f"c-{number}"
            queue = "billing" if number % 2 else "general"
            for event in angry_events():
                body = post_body(cid, [event], queue=queue)
                targets = [rng.randrange(len(replicas))]
                if rng.random() < args.duplicate_share:
                    targets.append((targets[0] + 1) % len(replicas))
                while True:
                    posts += len(targets)
                    statuses = await asyncio.gather(
                        *(post_webhook(http, replicas[t].base_url, body) for t in targets)
                    )
                    if any(200 <= status < 300 for status in statuses):
                        break
                    # No answer (the replica died): the platform retries on another one.
                    targets = [(targets[0] + 1) % len(replicas)]
                    await asyncio.sleep(0.05)

        async def faults() -> None:
            nonlocal kills
            await asyncio.sleep(args.kill_after)
            replicas[0].kill()
            kills += 1
            slack.down = True
            await asyncio.sleep(args.down_seconds)
            slack.down = False
            await replicas[0].start()

        async with aiohttp.ClientSession() as http:
            await conversation_batch(http, conversation, range(half))
            await asyncio.gather(
                faults(), conversation_batch(http, conversation, range(half, args.conversations))
            )
        try:
            stored = await wait_for_outbox_drained(database_url, limit=args.drain_limit)
        except TimeoutError:
            for row in outbox_rows(database_url):
                if row[4] == "pending":
                    print("still pending:", row, file=sys.stderr)
            raise
    finally:
        for replica in replicas:
            replica.stop()
        await slack.close()
    sent = args.conversations * EVENTS_PER_CONVERSATION
    escalations = sum(stored.escalations_by_conversation.values())
    cards = len(slack.cards)
    card_duplicates = sum(count - 1 for count in stored.cards_by_escalation.values())
    shown_not_recorded = len(set(slack.cards) - stored.cards)
    digests_twice = len(slack.digests) - len(set(slack.digests.values()))
    return {
        "database": "postgresql" if database_url.startswith("postgres") else "sqlite",
        "replicas": args.replicas,
        "conversations": args.conversations,
        "events_sent": sent,
        "posts_sent": posts,
        "events_stored": len(stored.events),
        "escalations": escalations,
        "cards_delivered": cards,
        "duplicates": (len(stored.events) - min(sent, len(stored.events)))
        + card_duplicates
        + shown_not_recorded
        + digests_twice
        + (escalations - len(stored.escalations_by_conversation)),
        "cards_posted_twice": card_duplicates,
        "cards_shown_but_not_recorded": shown_not_recorded,
        "digests_posted_twice": digests_twice,
        "channel_searches": len(slack.calls_to("conversations.history")),
        "cards_found_in_channel": stored.cards_found_in_channel,
        "faults_injected": slack.faults_injected + kills,
        "slack_errors": slack.faults_injected,
        "processes_killed": kills,
        "deliveries_given_up": stored.outbox_failed,
    }


async def conversation_batch(http: aiohttp.ClientSession, one: Any, numbers: range) -> None:
    await asyncio.gather(*(one(http, number) for number in numbers))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="PostgreSQL URL (default: a temporary SQLite file)")
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--conversations", type=int, default=40)
    parser.add_argument("--duplicate-share", type=float, default=0.3)
    parser.add_argument("--rate-limits", type=int, default=3, help="429s Slack answers")
    parser.add_argument("--server-errors", type=int, default=3, help="500s Slack answers")
    parser.add_argument("--kill-after", type=float, default=0.5, help="seconds into the 2nd half")
    parser.add_argument("--down-seconds", type=float, default=2.0, help="how long Slack is down")
    parser.add_argument("--drain-limit", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="escalations-reliability-") as workdir:
        figures = asyncio.run(run(args, Path(workdir)))
    if args.json:
        print(json.dumps(figures))
    else:
        width = max(len(key) for key in figures)
        for key, value in figures.items():
            print(f"{key.replace('_', ' '):<{width}}  {value}")
    lost = figures["events_stored"] < figures["events_sent"]
    undelivered = figures["cards_delivered"] < figures["escalations"]
    return 1 if lost or undelivered or figures["duplicates"] else 0


if __name__ == "__main__":
    sys.exit(main())
