"""Memory of the running service while it ingests many short conversations that end.

The service (`escalations serve`, SQLite) gets posts of `--events-per-post` events for new
conversations, each closed by a session_end; its resident set size (RSS, from /proc) is read
after every tenth of the conversations. The figure of merit is the RSS at the end and how much
it grew over the second half, when every earlier conversation is already closed.

    python -m bench.memory_bench --conversations 100000 --events-per-post 10   # 1,000,000 events
    python -m bench.memory_bench --quick
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench import _proc

RSS_TARGET_MB = 300.0
# Allocator noise and caches warming: growth over the second half below this counts as flat.
FLAT_GROWTH = 0.10


def rss_mb(pid: int) -> float:
    """Resident set size of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def build_parser() -> argparse.ArgumentParser:
    """Options of the memory benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=20_000)
    parser.add_argument("--events-per-post", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--max-seconds", type=float, default=1800.0, help="a guard, not a target")
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--quick", action="store_true")
    return parser


def run(argv: list[str] | None = None) -> _proc.Report:
    """Measure and return the report."""
    args = build_parser().parse_args(argv)
    if args.quick:
        args.conversations, args.steps = min(args.conversations, 1_000), min(args.steps, 4)
    per_step = max(1, args.conversations // args.steps)
    samples: list[tuple[int, float]] = []
    log_dir = _proc.new_log_dir()
    with _proc.service_server(log_dir, not args.no_pin) as server:
        samples.append((0, rss_mb(server.process.pid)))
        done = 0
        for _ in range(args.steps):
            result = _proc.load(
                server.port,
                connections=args.connections,
                seconds=args.max_seconds / args.steps,
                events_per_post=args.events_per_post,
                warmup=0.0,
                pin=not args.no_pin,
                max_requests=per_step,
                session_end=True,
            )
            done += result["ok"]
            samples.append((done, rss_mb(server.process.pid)))
            print(f"{done:>8,} conversations: RSS {samples[-1][1]:.0f} MiB", flush=True)
    events = done * args.events_per_post
    final = samples[-1][1]
    half = min(samples, key=lambda sample: abs(sample[0] - done / 2))[1]
    growth = (final - half) / half
    out = _proc.Report(f"memory of the service ({done:,} conversations, {events:,} events)")
    out.add("RSS at start", f"{samples[0][1]:.0f} MiB")
    out.add(
        f"RSS after {events:,} events",
        f"{final:.0f} MiB",
        f"< {RSS_TARGET_MB:.0f} MiB",
        final < RSS_TARGET_MB,
    )
    out.add(
        "RSS growth over the second half",
        f"{growth:+.1%} ({half:.0f} -> {final:.0f} MiB)",
        f"< {FLAT_GROWTH:.0%}",
        growth < FLAT_GROWTH,
    )
    out.raw = {"samples": samples, "events": events}
    return out


def main() -> None:
    """Print the table."""
    print(run(sys.argv[1:]).render())


if __name__ == "__main__":
    main()
