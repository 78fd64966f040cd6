"""How fast is assess()? Three figures, each the median CPU time of several interleaved runs.

1. assess() events/s against VADER alone on the same messages: the stream of customer and bot
   messages the engine reads, every message scored by vaderSentiment's own `polarity_scores`
   (target: the engine runs at >= 70% of that rate). The engine itself scores customer messages
   only (the issue's "VADER on customer messages only"), with an exact, faster path to the same
   compound score (engine/sentiment.py). The stricter ratio against VADER on the customer
   messages alone is printed too, and both again for the real conversations of the evaluation
   corpora (evaluation/data), whose messages are longer and hardly ever repeat.
2. The cost of event 10 against event 1,000 of one long conversation, the same message at both
   places (target: event 1,000 costs at most 1.3x event 10: the state is bounded).
3. `bot.replay` over a generated file of N events, JSON parsing and output included, in this
   process, scaled to 1,000,000 events (target: under 60 s).

Usage: python bench/engine_bench.py [--events 20000] [--runs 5] [--replay-events 100000]
       python bench/engine_bench.py --quick        # a smoke test: small sizes, 3 runs
"""

from __future__ import annotations

import argparse
import io
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

# Run as a script from anywhere in the checkout: the packages live one level up.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import _data
from bot.replay import read_conversations, replay
from engine import ConversationState, assess, vader_compound
from engine.events import (
    ConversationEvent,
    ConversationMeta,
    Customer,
    EventType,
    Role,
)
from engine.rules import Level, Route, Rules, Team
from engine.rules_loader import load_rules_file

REPO = Path(__file__).resolve().parents[1]
ENGINE_RATIO_TARGET = 0.70
LONG_RATIO_TARGET = 1.3
REPLAY_TARGET_EVENTS = 1_000_000
REPLAY_SECONDS_TARGET = 60.0
EARLY_EVENT = 10
LATE_EVENT = 1_000

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
# The message measured at event 10 and at event 1,000 of the long conversation.
MEASURED_LINE = (
    "I ordered a blue sweater two weeks ago and it still has not arrived, can you check?"
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


def _bot_event(event_id: str, clock: datetime, chooser: random.Random) -> ConversationEvent:
    text, intent, confidence = chooser.choice(BOT_LINES)
    return ConversationEvent(
        event_id,
        EventType.MESSAGE,
        clock,
        Role.BOT,
        text,
        intent=intent,
        confidence=confidence,
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
                events.append(_bot_event(event_id, clock, chooser))
        conversations.append(events)
        produced += length
    return conversations


def _long_conversation(length: int, seed: int) -> list[ConversationEvent]:
    """The bot greets, then customer and bot take turns; the events numbered EARLY_EVENT and
    LATE_EVENT (counting from 1) are both customer messages saying MEASURED_LINE."""
    chooser = random.Random(seed)
    clock = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    events: list[ConversationEvent] = []
    for index in range(length):
        clock += timedelta(seconds=chooser.randint(5, 90))
        event_id = f"long-{index}"
        if index % 2 == 0:
            events.append(_bot_event(event_id, clock, chooser))
            continue
        number = index + 1
        text = (
            MEASURED_LINE if number in (EARLY_EVENT, LATE_EVENT) else chooser.choice(CUSTOMER_LINES)
        )
        events.append(ConversationEvent(event_id, EventType.MESSAGE, clock, Role.CUSTOMER, text))
    return events


def _run_engine(conversations: list[list[ConversationEvent]], rules: Rules) -> None:
    meta = ConversationMeta(customer=Customer(tier="premium"))
    for events in conversations:
        state = ConversationState.new()
        for event in events:
            state, _ = assess(state, event, rules, meta)


def _run_vader(conversations: Sequence[Sequence[ConversationEvent]], roles: set[Role]) -> None:
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


def _event_costs(
    events: list[ConversationEvent], rules: Rules, positions: tuple[int, ...], runs: int
) -> dict[int, float]:
    """Median CPU seconds of assess() for the events at `positions` (counting from 1), over
    `runs` replays of the whole conversation, less the cost of reading the clock."""
    meta = ConversationMeta(customer=Customer(tier="premium"))
    clock = time.process_time_ns
    samples: dict[int, list[int]] = {position: [] for position in positions}
    overhead: list[int] = []
    for _ in range(runs):
        state = ConversationState.new()
        for number, event in enumerate(events, start=1):
            started = clock()
            state, _ = assess(state, event, rules, meta)
            spent = clock() - started
            if number in samples:
                samples[number].append(spent)
            started = clock()
            overhead.append(clock() - started)
    empty = statistics.median(overhead)
    return {
        position: max(0.0, statistics.median(values) - empty) / 1e9
        for position, values in samples.items()
    }


def _corpus_figures(runs: int) -> None:
    """Figure 1 again over the evaluation corpora's real conversations, with the repo's rules."""
    batches = [
        batch
        for path in sorted((REPO / "evaluation" / "data").glob("*.jsonl"))
        for batch, _raw in read_conversations(path)
    ]
    rules = load_rules_file(REPO / "rules.yaml")
    conversations = [batch.events for batch in batches]
    events = sum(len(batch.events) for batch in batches)

    def engine() -> None:
        for batch in batches:
            state = ConversationState.new()
            for event in batch.events:
                state, _ = assess(state, event, rules, batch.meta)

    seconds = _median_seconds(
        {
            "engine": engine,
            "vader_customer": lambda: _run_vader(conversations, {Role.CUSTOMER}),
            "vader_all": lambda: _run_vader(conversations, {Role.CUSTOMER, Role.BOT}),
        },
        runs,
    )
    print(f"   the evaluation corpora: {events:,} events in {len(batches)} real conversations")
    print(f"   assess()                        {events / seconds['engine']:>10,.0f} events/s")
    print(f"   assess() / VADER (every)        {seconds['vader_all'] / seconds['engine']:>10.0%}")
    print(
        f"   assess() / VADER (customer)     {seconds['vader_customer'] / seconds['engine']:>10.0%}"
    )


def _replay_seconds(path: Path, rules: Rules) -> float:
    out = io.StringIO()
    started = time.process_time()
    code = replay(path, rules, fmt="json", out=out, err=io.StringIO())
    spent = time.process_time() - started
    if code != 0:
        raise RuntimeError(f"replay failed with exit code {code}")
    return spent


def _verdict(met: bool) -> str:
    return "ok" if met else "MISSED"


def main(argv: list[str] | None = None) -> None:
    """Print the three figures with their targets."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000, help="events for assess() vs VADER")
    parser.add_argument("--runs", type=int, default=5, help="interleaved runs per figure")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--long-runs", type=int, default=31, help="replays of the long chat")
    parser.add_argument("--replay-events", type=int, default=100_000)
    parser.add_argument(
        "--quick", action="store_true", help="small sizes and 3 runs (a smoke test)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.runs, args.long_runs = min(args.events, 2000), 3, 5
        args.replay_events = min(args.replay_events, 2000)

    rules = _rules()
    conversations = _conversations(args.events, args.seed)
    events = sum(len(conversation) for conversation in conversations)
    customer = sum(
        1 for conversation in conversations for e in conversation if e.role is Role.CUSTOMER
    )
    vader_compound("warm up the analyzer")
    _run_engine(conversations[:20], rules)

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
    ratio = vader_all_s / engine_s

    print(
        f"1. {events} events in {len(conversations)} conversations ({customer} customer messages)"
    )
    print(f"   median CPU time of {args.runs} interleaved runs")
    print(f"   assess()                        {events / engine_s:>10,.0f} events/s")
    print(f"   VADER on every message          {events / vader_all_s:>10,.0f} events/s")
    print(f"   VADER on customer messages only {events / vader_customer_s:>10,.0f} events/s")
    print(
        f"   assess() / VADER (every)        {ratio:>10.0%}"
        f"   target >= {ENGINE_RATIO_TARGET:.0%}: {_verdict(ratio >= ENGINE_RATIO_TARGET)}"
    )
    print(f"   assess() / VADER (customer)     {vader_customer_s / engine_s:>10.0%}")
    _corpus_figures(args.runs)

    long_events = _long_conversation(LATE_EVENT + 10, args.seed)
    costs = _event_costs(long_events, rules, (EARLY_EVENT, LATE_EVENT), args.long_runs)
    early, late = costs[EARLY_EVENT], costs[LATE_EVENT]
    growth = late / early if early > 0 else float("inf")
    print(f"2. one conversation of {len(long_events)} events, median of {args.long_runs} replays")
    print(f"   event {EARLY_EVENT:<5} {early * 1e6:>8.1f} µs CPU")
    print(f"   event {LATE_EVENT:<5} {late * 1e6:>8.1f} µs CPU")
    print(
        f"   event {LATE_EVENT} / event {EARLY_EVENT}  {growth:>6.2f}x"
        f"   target <= {LONG_RATIO_TARGET}x: {_verdict(growth <= LONG_RATIO_TARGET)}"
    )

    replay_rules = load_rules_file(REPO / "rules.yaml")
    with tempfile.TemporaryDirectory(prefix="engine-bench-") as folder:
        path = Path(folder) / "conversations.jsonl"
        chats, written = _data.write_jsonl(path, args.replay_events)
        _replay_seconds(path, replay_rules)  # warm up
        replay_s = statistics.median(_replay_seconds(path, replay_rules) for _ in range(args.runs))
    scaled = replay_s * REPLAY_TARGET_EVENTS / written
    print(f"3. bot.replay of {written:,} events in {chats:,} conversations (rules.yaml, JSON out)")
    rate = written / replay_s
    print(f"   median CPU time of {args.runs} runs {replay_s:>8.2f} s = {rate:,.0f} events/s")
    print(
        f"   1,000,000 events would take     {scaled:>8.1f} s"
        f"   target < {REPLAY_SECONDS_TARGET:.0f} s: {_verdict(scaled < REPLAY_SECONDS_TARGET)}"
    )


if __name__ == "__main__":
    main()
