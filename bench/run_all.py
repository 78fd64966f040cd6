"""Run every benchmark and print one results table (what `make bench` does).

    python -m bench.run_all                   # default sizes, about ten minutes
    python -m bench.run_all --quick           # small sizes, a smoke run
    python -m bench.run_all --full            # the targets' own sizes (1M events), much longer
    python -m bench.run_all --only webhook,replay --json results.json --chart docs/chart.svg

Throughput figures are ratios to ceilings measured in the same run, and medians over runs: the
machine may be shared, so absolute numbers move from run to run while the ratios hold better.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench import _proc, growth_bench, latency_bench, memory_bench, replay_bench, webhook_bench
from bench.chart import write_chart

BENCHMARKS: dict[str, Callable[[list[str] | None], _proc.Report]] = {
    "webhook": webhook_bench.run,
    "replay": replay_bench.run,
    "growth": growth_bench.run,
    "latency": latency_bench.run,
    "memory": memory_bench.run,
}
SWEEP = "1,4,16,64,256"


# Default sizes keep the whole run near ten minutes on two cores; `--full` uses the sizes the
# targets name (1,000,000 events for replay and memory), which takes much longer.
DEFAULT_SIZES = {
    "replay": ["--replay-events", "200000"],
    "memory": ["--conversations", "20000"],
}
FULL_SIZES = {
    "replay": ["--replay-events", "1000000"],
    "memory": ["--conversations", "100000"],
}


def _arguments(name: str, args: argparse.Namespace) -> list[str]:
    extra: list[str] = ["--quick"] if args.quick else []
    if not args.quick:
        extra += (FULL_SIZES if args.full else DEFAULT_SIZES).get(name, [])
    if name == "webhook" and args.chart:
        extra += ["--sweep", "4,64" if args.quick else SWEEP]
    return extra


def main(argv: list[str] | None = None) -> int:
    """Run the chosen benchmarks, print each table and then every figure together."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--full", action="store_true", help="1,000,000-event replay and memory")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated names")
    parser.add_argument("--json", type=Path, help="write every raw figure here")
    parser.add_argument("--chart", type=Path, help="write the throughput/concurrency SVG here")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")

    started = time.monotonic()
    reports: dict[str, _proc.Report] = {}
    for name in chosen:
        print(f"== {name}", flush=True)
        report = BENCHMARKS[name](_arguments(name, args))
        reports[name] = report
        print(report.render(), flush=True)
        print(flush=True)

    figures = [figure for report in reports.values() for figure in report.figures]
    cores = os.cpu_count()
    print(
        _proc.render_table(
            f"results ({platform.python_implementation()} {platform.python_version()}, "
            f"{cores} cores, {time.monotonic() - started:.0f} s)",
            figures,
        )
    )
    missed = sum(1 for figure in figures if figure.verdict == "MISSED")
    print(f"{missed} target(s) missed" if missed else "every target met")
    if args.json:
        args.json.write_text(
            json.dumps({name: report.raw for name, report in reports.items()}, indent=2) + "\n"
        )
    sweep = reports["webhook"].raw.get("sweep") if "webhook" in reports else None
    if args.chart and sweep:
        write_chart(sweep, args.chart, "Webhook throughput by concurrency (same run, one core)")
        print(f"chart written to {args.chart}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
