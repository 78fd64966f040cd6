"""The built-in demo source: bundled conversations posted to the real webhook, like a live bot."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import aiohttp

from connectors.generic import sign

log = logging.getLogger(__name__)

DEMO_FILE = "conversations.jsonl"


def demo_conversations(now: datetime | None = None) -> list[dict[str, Any]]:
    """The bundled conversations, their timestamps moved so that they end around `now`."""
    now = now or datetime.now(UTC)
    text = resources.files("bot.demo_data").joinpath(DEMO_FILE).read_text(encoding="utf-8")
    conversations = [json.loads(line) for line in text.splitlines() if line.strip()]
    latest = max(
        datetime.fromisoformat(event["timestamp"])
        for conversation in conversations
        for event in conversation["events"]
    )
    shift = now - latest
    for conversation in conversations:
        for event in conversation["events"]:
            moved = datetime.fromisoformat(event["timestamp"]) + shift
            event["timestamp"] = moved.isoformat().replace("+00:00", "Z")
    return conversations


async def feed_demo(base_url: str, secret: str, *, pause: float = 0.4) -> None:
    """Post every demo event, one at a time, to /webhooks/generic; log what escalated."""
    conversations = demo_conversations()
    url = f"{base_url}/webhooks/generic"
    opened = 0
    async with aiohttp.ClientSession() as http:
        await asyncio.sleep(0.5)  # let the server finish starting
        steps = max(len(c["events"]) for c in conversations)
        # Interleave the conversations turn by turn, as live traffic would.
        for step in range(steps):
            for conversation in conversations:
                if step >= len(conversation["events"]):
                    continue
                post = {key: value for key, value in conversation.items() if key != "events"}
                post["events"] = [conversation["events"][step]]
                body = json.dumps(post).encode()
                headers = {
                    "Content-Type": "application/json",
                    "X-Escalations-Signature": sign(secret, body),
                }
                async with http.post(url, data=body, headers=headers) as response:
                    answer = await response.json()
                    if response.status != 200:
                        log.error("demo post refused (%s): %s", response.status, answer)
                        return
                    opened += len(answer.get("escalations_opened", []))
            await asyncio.sleep(pause)
    log.info(
        "demo: %d conversations fed through %s; %d escalations opened (cards above)",
        len(conversations),
        url,
        opened,
    )
