"""Cost per event as a conversation grows: event 1,000 of a conversation against event 10.

Each event is ingested the way the service does it (engine + one durable SQLite transaction
through the real Ingestor), one post per event, into several long conversations taken in turn,
and alongside them into short conversations, so that event 10 is measured at the same time as
the late events (the machine's load drifts). The cost of event N is the median time of events
N-5..N+5. The messages are plain (no escalation, no loop), so only the length differs.

    python -m bench.growth_bench                      # 8 conversations of 1,005 events
    python -m bench.growth_bench --quick
"""

from __future__ import annotations

import argparse
import random
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
SHORT_LENGTH = 20
_WORD_TEXT = (
    "order parcel invoice address account delivery tracking number size colour blue green "
    "jacket shoes shirt store courier monday tuesday week box label receipt catalogue email "
    "phone voucher basket checkout payment card shipping warehouse branch city street code "
    "model version update settings profile login password subscription plan yearly monthly"
)
_WORDS = tuple(_WORD_TEXT.split())

Costs = list[list[float]]


def _event(conversation: int, index: int) -> ConversationEvent:
    moment = _data.START + timedelta(seconds=20 * index)
    chooser = random.Random(conversation * 1_000_003 + index)
    text = " ".join(chooser.sample(_WORDS, 7))
    if index % 2 == 0:
        return ConversationEvent(f"e{index}", EventType.MESSAGE, moment, Role.CUSTOMER, text)
    return ConversationEvent(
        f"e{index}",
        EventType.MESSAGE,
        moment,
        Role.BOT,
        "Here is what I found: " + text,
        intent="answer",
        confidence=0.9,
    )


def measure(conversations: int, length: int, database_url: str) -> tuple[Costs, Costs]:
    """Seconds per event by position: for each long conversation, and for the short ones."""
    rules = load_rules_file(_proc.REPO / "rules.yaml")
    ingestor = Ingestor(lambda: rules, frozenset, utc_now)
    database = Database(database_url)
    database.migrate()

    def ingest(cid: str, number: int, index: int) -> float:
        meta = ConversationMeta(platform="bench", customer=Customer(id=f"u{number}"))
        batch = InboundBatch(cid, meta, (_event(number, index),))
        started = time.perf_counter()
        with database.session() as session:
            ingestor.apply(session, [batch])
        return time.perf_counter() - started

    long_costs: Costs = [[] for _ in range(conversations)]
    short_costs: Costs = []
    try:
        for index in range(length):
            for number in range(conversations):
                long_costs[number].append(ingest(f"long{number}", number, index))
            short, position = divmod(index, SHORT_LENGTH)
            if position == 0:
                short_costs.append([])
            short_costs[-1].append(ingest(f"short{short}", 10_000 + short, position))
    finally:
        database.dispose()
    return long_costs, short_costs


def cost_at(costs: Costs, position: int) -> float:
    """Median seconds of the events around `position` (1-based) over the conversations."""
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
    length = max(args.late, 10 + SHORT_LENGTH) + WINDOW
    with tempfile.TemporaryDirectory(prefix="escalations-growth-") as folder:
        url = f"sqlite:///{Path(folder) / 'growth.db'}"
        long_costs, short_costs = measure(args.conversations, length, url)
    late = cost_at(long_costs, args.late)
    # Event 10 of the short conversations that ran during the last fifth of the run.
    whole = [series for series in short_costs if len(series) == SHORT_LENGTH]
    early = cost_at(whole[-max(1, len(whole) // 5) :], 10)
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
