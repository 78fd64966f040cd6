"""Generated conversations for the offline benchmarks (replay, engine, growth)."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

CUSTOMER_LINES = (
    "hi",
    "I ordered a blue sweater two weeks ago and it still has not arrived, can you check?",
    "my order number is #48213",
    "where is my refund? I returned the shoes on Monday",
    "that's not what I asked",
    "can I change the delivery address to 12 Baker Street?",
    "this is ridiculous, I have been waiting for ages",
    "thanks, that helped a lot!",
    "WHY IS THIS SO HARD???",
    "can I talk to a person please",
    "I want to cancel my subscription",
    "the app crashes every time I open the payment page",
    "ok",
)
BOT_LINES = (
    ("Hello! How can I help you today?", "welcome", 0.98, False),
    ("Sorry, I didn't get that. Could you rephrase?", "fallback", 0.2, True),
    ("Your order is on its way and should arrive within 3 days.", "order_status", 0.91, False),
    ("Refunds take 5-7 business days after we receive the return.", "refund_status", 0.87, False),
    ("Can you give me your order number?", "ask_order_number", 0.8, False),
)
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _stamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def conversation_objects(total_events: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    """Generic-format conversations of 6-40 events, alternating customer and bot, until
    `total_events` events have been produced; the last event of most of them ends the session."""
    chooser = random.Random(seed)
    produced = 0
    number = 0
    while produced < total_events:
        length = min(chooser.randint(6, 40), total_events - produced)
        clock = START + timedelta(minutes=number % 10_000)
        events: list[dict[str, Any]] = []
        for index in range(length):
            clock += timedelta(seconds=chooser.randint(5, 90))
            event: dict[str, Any] = {"id": f"e{index}", "timestamp": _stamp(clock)}
            if index == length - 1 and length > 4:
                event["type"] = "session_end"
            elif index % 2 == 0:
                event.update(type="message", role="customer", text=chooser.choice(CUSTOMER_LINES))
            else:
                text, intent, confidence, fallback = chooser.choice(BOT_LINES)
                event.update(
                    type="message",
                    role="bot",
                    text=text,
                    intent=intent,
                    confidence=confidence,
                    fallback=fallback,
                )
            events.append(event)
        yield {
            "conversation_id": f"c{number}",
            "platform": "bench",
            "customer": {"id": f"u{number}", "tier": "standard"},
            "events": events,
        }
        produced += length
        number += 1


def write_jsonl(path: Path, total_events: int, seed: int = 7) -> tuple[int, int]:
    """Write a replay file; returns (conversations, events)."""
    conversations = events = 0
    with path.open("w", encoding="utf-8") as handle:
        for obj in conversation_objects(total_events, seed):
            handle.write(json.dumps(obj, separators=(",", ":")) + "\n")
            conversations += 1
            events += len(obj["events"])
    return conversations, events
