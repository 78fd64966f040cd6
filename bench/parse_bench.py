"""The webhook's work on the event loop before the writer: check the signature, parse the body.

What the generic connector does with each of the load generator's posts (`verify`, then
`parse` into an InboundBatch), in a fresh process per run: µs per post as the best of several
repeats, or, with `--instructions`, the instructions a post executes under valgrind's callgrind
(the same on every run, so two versions compare exactly).

    python -m bench.parse_bench                          # 1 and 100 events a post
    python -m bench.parse_bench --instructions
    BENCH_SERVICE_ROOT=/path/to/other/checkout python -m bench.parse_bench --instructions
"""

from __future__ import annotations

import argparse
import json
import operator
import os
import shutil
import statistics
import sys
import timeit
from pathlib import Path
from typing import Any

from bench import _proc

SIZES = (1, 100)


def _child(args: argparse.Namespace) -> None:
    """Verify and parse the posts in this process; print one JSON line of figures."""
    from bench.loadgen import post_body, sign
    from connectors.base import InboundRequest
    from connectors.generic import GenericConnector

    connector = GenericConnector()
    requests = []
    for number in range(args.posts):
        body = post_body("post", number, args.events_per_post, plain=True)
        headers = {"X-Escalations-Signature": sign(_proc.SECRET.encode(), body)}
        requests.append(InboundRequest("http://bench/", headers, body, "application/json"))

    def handle_all() -> int:
        events = 0
        for request in requests:
            connector.verify(request, _proc.SECRET)
            for batch in connector.parse(request):
                events += len(batch.events)
        return events

    parsed = handle_all()  # the warm-up (imports, caches) also says what a pass parses
    if args.measure_instructions:
        operator.call(handle_all)
        best = 0.0
    else:
        best = min(timeit.repeat(handle_all, number=1, repeat=args.repeats))
    print(json.dumps({"seconds_per_post": best / args.posts, "events": parsed}))


def _one_run(args: argparse.Namespace, events_per_post: int, root: Path) -> dict[str, Any]:
    posts = args.posts if events_per_post == 1 else max(1, args.posts // 100)
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        "--events-per-post",
        str(events_per_post),
        "--posts",
        str(posts),
        "--repeats",
        str(args.repeats),
        *(["--measure-instructions"] if args.instructions else []),
    ]
    figures = _proc.run_child(command, root, instructions=args.instructions, what="parse")
    return {**figures, "posts": posts}


def build_parser() -> argparse.ArgumentParser:
    """Options of the parse benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=2000, help="posts of 1 event per run")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes; the best counts")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--instructions", action="store_true", help="count instructions under callgrind"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, one run")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--events-per-post", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--measure-instructions", action="store_true", help=argparse.SUPPRESS)
    return parser


def run(argv: list[str] | None = None) -> _proc.Report:
    """Measure and return the report."""
    args = build_parser().parse_args(argv)
    if args.quick:
        args.posts, args.repeats, args.runs = min(args.posts, 200), 1, 1
    if args.instructions:
        if shutil.which("valgrind") is None:
            raise SystemExit("--instructions needs valgrind (Debian: apt-get install valgrind)")
        args.runs = 1  # the count is the same every run
    root = Path(os.environ.get(_proc.SERVICE_ROOT_ENV) or _proc.REPO)
    out = _proc.Report(
        f"signature check and parse, generic connector ({args.runs} runs; "
        f"{args.posts} posts of 1 event, {max(1, args.posts // 100)} of 100)"
    )
    raw: dict[str, Any] = {}
    for size in SIZES:
        runs = [_one_run(args, size, root) for _ in range(args.runs)]
        raw[str(size)] = runs
        label = "1 event/post" if size == 1 else f"{size} events/post"
        if args.instructions:
            count = runs[0]["instructions"] / runs[0]["posts"]
            out.add(f"instructions per post, {label}", f"{count:,.0f}")
        else:
            micros = statistics.median(figures["seconds_per_post"] * 1e6 for figures in runs)
            out.add(f"per post, {label}", f"{micros:,.1f} µs ({micros / size:,.2f} µs an event)")
    if args.instructions:
        out.notes.append("instructions counted under callgrind")
    out.raw = raw
    return out


def main() -> None:
    """Print the table (or, as the measured child process, one JSON line)."""
    args = build_parser().parse_args(sys.argv[1:])
    if args.child:
        _child(args)
        return
    print(run(sys.argv[1:]).render())


if __name__ == "__main__":
    main()
