"""How fast is assess()? Events per second against VADER alone on the same customer messages.

VADER is the one cost the engine cannot avoid (it runs once per customer message), so the ratio
says how much the rest of the engine adds. Usage: python bench/engine_bench.py --events 20000
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

# Run as a script from anywhere in the checkout: the engine package lives one level up.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine import ConversationState, assess, vader_compound
from engine.events import (
    ConversationEvent,
    ConversationMeta,
    Customer,
    EventType,
    Role,
)
from engine.rules import Level, Route, Rules, Team

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
    "my email is jane.doe@example.com",
    "great job.",
    "I want to cancel my subscription",
    "the app crashes every time I open the payment page",
    "ok",
)
BOT_LINES = (
    ("Hello! How can I help you today?", "welcome", 0.98),
    ("Sorry, I didn't get that. Could you rephrase?", "Default Fallback Intent", 0.2),
    ("Your order is on its way and should arrive within 3 days.", "order_status", 0.91),
    ("Refunds take 5-7 business days after we receive the return.", "refund_status", 0.87),
    ("I'm not sure I understand.", None, None),
    ("Can you give me your order number?", "ask_order_number", 0.8),
    ("You can change the address in your account settings.", "change_address", 0.76),
)


def _rules() -> Rules:
    return Rules(
        levels=(
            Level(name="watch", min_score=20, notify=False),
            Level(name="escalate", min_score=50),
            Level(name="urgent", min_score=80, mention="@here"),
        ),
        teams={"support": Team()},
        routes=Route(team="support"),
    )


def _conversations(total_events: int, seed: int) -> list[list[ConversationEvent]]:
    chooser = random.Random(seed)
    conversations: list[list[ConversationEvent]] = []
    produced = 0
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    while produced < total_events:
        length = min(chooser.randint(6, 40), total_events - produced)
        clock = start + timedelta(minutes=len(conversations))
        events: list[ConversationEvent] = []
        for index in range(length):
            clock += timedelta(seconds=chooser.randint(5, 90))
            event_id = f"c{len(conversations)}-{index}"
            if index == length - 1 and length > 4:
                events.append(ConversationEvent(event_id, EventType.SESSION_END, clock))
            elif index % 2 == 0:
                text = chooser.choice(CUSTOMER_LINES)
                events.append(
                    ConversationEvent(event_id, EventType.MESSAGE, clock, Role.CUSTOMER, text)
                )
            else:
                text, intent, confidence = chooser.choice(BOT_LINES)
                events.append(
                    ConversationEvent(
                        event_id,
                        EventType.MESSAGE,
                        clock,
                        Role.BOT,
                        text,
                        intent=intent,
                        confidence=confidence,
                    )
                )
        conversations.append(events)
        produced += length
    return conversations


def _run_engine(conversations: list[list[ConversationEvent]], rules: Rules) -> None:
    meta = ConversationMeta(customer=Customer(tier="premium"))
    for events in conversations:
        state = ConversationState.new()
        for event in events:
            state, _ = assess(state, event, rules, meta)


def _run_vader(conversations: list[list[ConversationEvent]], roles: set[Role]) -> None:
    for events in conversations:
        for event in events:
            if event.role in roles and event.text:
                vader_compound(event.text)


def _median_seconds(work: dict[str, Callable[[], None]], runs: int) -> dict[str, float]:
    # Interleaved, so a busy neighbour slows every contender alike; CPU time of this process,
    # so time spent waiting for a core does not count.
    timings: dict[str, list[float]] = {name: [] for name in work}
    for _ in range(runs):
        for name, job in work.items():
            started = time.process_time()
            job()
            timings[name].append(time.process_time() - started)
    return {name: statistics.median(values) for name, values in timings.items()}


def main() -> None:
    """Print events/s of assess() and of VADER alone over the same generated conversations."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    rules = _rules()
    conversations = _conversations(args.events, args.seed)
    events = sum(len(conversation) for conversation in conversations)
    customer = sum(
        1 for conversation in conversations for e in conversation if e.role is Role.CUSTOMER
    )
    vader_compound("warm up the analyzer")

    seconds = _median_seconds(
        {
            "engine": lambda: _run_engine(conversations, rules),
            "vader_customer": lambda: _run_vader(conversations, {Role.CUSTOMER}),
            "vader_all": lambda: _run_vader(conversations, {Role.CUSTOMER, Role.BOT}),
        },
        args.runs,
    )
    engine_s = seconds["engine"]
    vader_customer_s = seconds["vader_customer"]
    vader_all_s = seconds["vader_all"]

    print(f"{events} events in {len(conversations)} conversations ({customer} customer messages)")
    print(f"median CPU time of {args.runs} interleaved runs")
    print(f"assess()                        {events / engine_s:>10,.0f} events/s")
    print(f"VADER on customer messages only {events / vader_customer_s:>10,.0f} events/s")
    print(f"VADER on every message          {events / vader_all_s:>10,.0f} events/s")
    print(f"assess() / VADER (customer)     {vader_customer_s / engine_s:>10.0%}")
    print(f"assess() / VADER (every)        {vader_all_s / engine_s:>10.0%}")


if __name__ == "__main__":
    main()
