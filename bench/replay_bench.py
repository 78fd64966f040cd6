"""The engine without I/O: assess() against VADER alone on the same messages, and the wall time
of `escalations replay` over a generated file.

    python -m bench.replay_bench                       # engine ratio; replay of 1,000,000 events
    python -m bench.replay_bench --replay-events 100000 --quick
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench import _data, _proc
from connectors.generic import parse_generic_object
from engine import ConversationState, assess, vader_compound
from engine.events import InboundBatch, Role
from engine.rules import Rules
from engine.rules_loader import load_rules_file

ENGINE_RATIO_TARGET = 0.70
REPLAY_SECONDS_TARGET = 60.0
REPLAY_TARGET_EVENTS = 1_000_000


def _batches(events: int) -> list[InboundBatch]:
    return [parse_generic_object(obj) for obj in _data.conversation_objects(events)]


def _engine(batches: list[InboundBatch], rules: Rules) -> None:
    for batch in batches:
        state = ConversationState.new()
        for event in batch.events:
            state, _ = assess(state, event, rules, batch.meta)


def _vader(batches: list[InboundBatch]) -> None:
    for batch in batches:
        for event in batch.events:
            if event.role is Role.CUSTOMER and event.text:
                vader_compound(event.text)


def _timed(work: Callable[[], None]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def engine_ratio(events: int, runs: int, rules: Rules) -> tuple[float, float, float]:
    """(engine events/s, VADER-alone events/s, ratio): medians of interleaved runs."""
    batches = _batches(events)
    total = sum(len(batch.events) for batch in batches)
    vader_compound("warm up the analyzer")
    _engine(batches[:50], rules)
    engine_times, vader_times, ratios = [], [], []
    for _ in range(runs):
        engine_s = _timed(lambda: _engine(batches, rules))
        vader_s = _timed(lambda: _vader(batches))
        engine_times.append(engine_s)
        vader_times.append(vader_s)
        ratios.append(vader_s / engine_s)
    return (
        total / statistics.median(engine_times),
        total / statistics.median(vader_times),
        statistics.median(ratios),
    )


def replay_seconds(events: int) -> tuple[float, int, int]:
    """Wall time of `escalations replay --format json` over a generated file of `events`."""
    with tempfile.TemporaryDirectory(prefix="escalations-replay-") as folder:
        path = Path(folder) / "conversations.jsonl"
        conversations, written = _data.write_jsonl(path, events)
        command = [sys.executable, "-m", "bot.cli", "replay", str(path), "--format", "json"]
        command += ["--rules", str(_proc.REPO / "rules.yaml")]
        started = time.perf_counter()
        subprocess.run(command, cwd=_proc.REPO, stdout=subprocess.DEVNULL, check=True)
        return time.perf_counter() - started, conversations, written


def build_parser() -> argparse.ArgumentParser:
    """Options of the replay benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine-events", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--replay-events", type=int, default=REPLAY_TARGET_EVENTS)
    parser.add_argument("--quick", action="store_true", help="small sizes, 2 runs")
    return parser


def run(argv: list[str] | None = None) -> _proc.Report:
    """Measure and return the report."""
    args = build_parser().parse_args(argv)
    if args.quick:
        args.engine_events, args.runs = min(args.engine_events, 5_000), 2
        args.replay_events = min(args.replay_events, 20_000)
    rules = load_rules_file(_proc.REPO / "rules.yaml")
    engine_rate, vader_rate, ratio = engine_ratio(args.engine_events, args.runs, rules)
    out = _proc.Report(f"engine and replay ({args.runs} runs, medians)")
    out.add("VADER alone (customer messages)", f"{vader_rate:,.0f} events/s")
    out.add(
        "engine alone: assess()",
        f"{engine_rate:,.0f} events/s = {ratio:.0%} of VADER",
        f">= {ENGINE_RATIO_TARGET:.0%}",
        ratio >= ENGINE_RATIO_TARGET,
    )
    seconds, conversations, events = replay_seconds(args.replay_events)
    # The target is for 1,000,000 events; a smaller run is scaled to it (cost is linear).
    scaled = seconds * REPLAY_TARGET_EVENTS / events
    label = f"`escalations replay` of {events:,} events"
    value = f"{seconds:.1f} s ({events / seconds:,.0f} events/s, {conversations:,} chats)"
    if events != REPLAY_TARGET_EVENTS:
        value += f"; 1,000,000 would take ~{scaled:.0f} s"
    out.add(label, value, f"< {REPLAY_SECONDS_TARGET:.0f} s per 1M", scaled < REPLAY_SECONDS_TARGET)
    out.raw = {
        "engine_events_per_second": engine_rate,
        "vader_events_per_second": vader_rate,
        "engine_to_vader": ratio,
        "replay_seconds": seconds,
        "replay_events": events,
    }
    return out


def main() -> None:
    """Print the table."""
    print(run(sys.argv[1:]).render())


if __name__ == "__main__":
    main()
