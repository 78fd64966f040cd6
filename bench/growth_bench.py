"""Cost per event as a conversation grows: event 1,000 of a conversation against event 10.

Each event is ingested the way the service does it (engine + one durable SQLite transaction
through the real Ingestor), one post per event, into several long conversations taken in turn.
The cost of event N is the median time of events N-5..N+5 over all conversations.

    python -m bench.growth_bench                      # 8 conversations of 1,010 events
    python -m bench.growth_bench --quick
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from bench import _data, _proc
from bot.pipeline import Ingestor, utc_now
from engine.events import (
    ConversationEvent,
    ConversationMeta,
    Customer,
    EventType,
    InboundBatch,
    Role,
)
from engine.rules_loader import load_rules_file
from storage.db import Database

GROWTH_TARGET = 1.3
WINDOW = 5


def _event(conversation: int, index: int) -> ConversationEvent:
    moment = _data.START + timedelta(seconds=20 * index)
    if index % 2 == 0:
        lines = _data.CUSTOMER_LINES
        text = lines[(index // 2 + conversation) % len(lines)]
        return ConversationEvent(f"e{index}", EventType.MESSAGE, moment, Role.CUSTOMER, text)
    text, intent, confidence, fallback = _data.BOT_LINES[(index // 2) % len(_data.BOT_LINES)]
    return ConversationEvent(
        f"e{index}",
        EventType.MESSAGE,
        moment,
        Role.BOT,
        text,
        intent=intent,
        confidence=confidence,
        fallback=fallback,
    )


def measure(conversations: int, length: int, database_url: str) -> list[list[float]]:
    """Seconds per event, by position, for each conversation."""
    rules = load_rules_file(_proc.REPO / "rules.yaml")
    ingestor = Ingestor(lambda: rules, frozenset, utc_now)
    database = Database(database_url)
    database.migrate()
    metas = [
        ConversationMeta(platform="bench", customer=Customer(id=f"u{n}", tier="standard"))
        for n in range(conversations)
    ]
    costs: list[list[float]] = [[] for _ in range(conversations)]
    try:
        for index in range(length):
            for number in range(conversations):
                batch = InboundBatch(f"grow{number}", metas[number], (_event(number, index),))
                started = time.perf_counter()
                with database.session() as session:
                    ingestor.apply(session, [batch])
                costs[number].append(time.perf_counter() - started)
    finally:
        database.dispose()
    return costs


def cost_at(costs: list[list[float]], position: int) -> float:
    """Median seconds of the events around `position` (1-based) over every conversation."""
    low, high = max(0, position - 1 - WINDOW), position + WINDOW
    return statistics.median(value for series in costs for value in series[low:high])


def build_parser() -> argparse.ArgumentParser:
    """Options of the growth benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=8)
    parser.add_argument("--late", type=int, default=1000, help="the late event to compare")
    parser.add_argument("--quick", action="store_true", help="event 200 instead of 1,000")
    return parser


def run(argv: list[str] | None = None) -> _proc.Report:
    """Measure and return the report."""
    args = build_parser().parse_args(argv)
    if args.quick:
        args.conversations, args.late = 2, min(args.late, 200)
    length = args.late + WINDOW + 1
    with tempfile.TemporaryDirectory(prefix="escalations-growth-") as folder:
        url = f"sqlite:///{Path(folder) / 'growth.db'}"
        costs = measure(args.conversations, length, url)
    early, late = cost_at(costs, 10), cost_at(costs, args.late)
    out = _proc.Report(f"cost per event as a conversation grows ({args.conversations} chats)")
    out.add("event 10", f"{early * 1e6:,.0f} µs")
    out.add(
        f"event {args.late:,}",
        f"{late * 1e6:,.0f} µs = {late / early:.2f}x event 10",
        f"<= {GROWTH_TARGET}x",
        late / early <= GROWTH_TARGET,
    )
    out.raw = {"event_10_seconds": early, "late_event": args.late, "late_seconds": late}
    return out


def main() -> None:
    """Print the table."""
    print(run(sys.argv[1:]).render())


if __name__ == "__main__":
    main()
