"""The ingest writer alone: what one group commit costs per post, without HTTP or threads.

Posts like the load generator's (new conversations, calm by default; with `--seen` the next post
to each of them, as most real traffic is: its state read back, its stored events looked up, the
engine going on from where it was) are parsed up front, then
stored in groups through the service's own `Ingestor.apply_group`, one transaction per group, as
the writer thread does. Each run is a fresh process with a fresh database; a warm-up group of
posts is stored before the measured ones.

On a shared machine CPU time moves by a third from one run to the next, which hides a change of
a few percent. `--instructions` counts the instructions the measured posts execute instead,
under valgrind's callgrind: the same count on every run, so two versions compare exactly
(needs `valgrind`; about a minute a run).

    python -m bench.writer_bench                       # CPU µs/post, median of 5 runs
    python -m bench.writer_bench --instructions --runs 1
    python -m bench.writer_bench --angry --events-per-post 100 --group 4
    python -m bench.writer_bench --seen --database postgres   # posts to conversations seen before
    python -m bench.writer_bench --seen --later 5             # their sixth posts (states kept)
    BENCH_SERVICE_ROOT=/path/to/other/checkout python -m bench.writer_bench --instructions
"""

from __future__ import annotations

import argparse
import contextlib
import json
import operator
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import _proc

WARM_UP_POSTS = 96


def _child(args: argparse.Namespace) -> None:
    """Store the posts in this process; print one JSON line of figures."""
    from datetime import UTC, datetime

    from sqlalchemy import func, select

    from bench.loadgen import post_body
    from bot.pipeline import Ingestor
    from connectors.generic import parse_generic_object
    from engine.events import InboundBatch
    from engine.rules_loader import load_rules_file
    from storage import tables
    from storage.db import Database

    rules = load_rules_file(Path(args.rules))
    ingestor = Ingestor(lambda: rules, frozenset, lambda: datetime.now(UTC))
    database = Database(args.database_url)
    database.migrate()

    def posts(prefix: str, count: int, *, later: int = 0) -> list[list[InboundBatch]]:
        """The load generator's posts; `later`, how many posts each of their conversations had
        before."""
        bodies = (
            post_body(prefix, number, args.events_per_post, plain=not args.angry, later=later)
            for number in range(count)
        )
        return [[parse_generic_object(json.loads(body))] for body in bodies]

    # As the ingest pipeline does, the states a group saved are kept once it has committed (by a
    # checkout whose Ingestor keeps them: this file also runs other checkouts' code).
    keeps = hasattr(ingestor, "saved_states")

    def store(group: list[list[InboundBatch]]) -> None:
        for start in range(0, len(group), args.group):
            saved: list[Any] = []
            kept = {"saved": saved} if keeps else {}
            with database.session(ping=False) as session:
                ingestor.apply_group(
                    session, group[start : start + args.group], commit=True, **kept
                )
            if keeps:
                ingestor.saved_states.put(saved)

    try:
        store(posts("warm", WARM_UP_POSTS))
        before = args.later if args.seen else 0
        for later in range(before):  # their earlier posts, not measured
            store(posts("post", args.posts, later=later))
        measured = posts("post", args.posts, later=before)
        server = _server_cpu(database)
        wall, cpu = time.perf_counter(), time.process_time()
        operator.call(store, measured)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        server = {pid: spent - server.get(pid, 0) for pid, spent in _server_cpu(database).items()}
        with database.session() as session:  # what was stored, so a run that stored nothing shows
            conn = session.connection()
            counts = {
                table.name: conn.execute(select(func.count()).select_from(table)).scalar_one()
                for table in (tables.conversations, tables.events, tables.escalations)
            }
    finally:
        database.dispose()
    figures = {"cpu_seconds": cpu, "wall_seconds": wall, "posts": args.posts, **counts}
    if server:
        figures["server_cpu_seconds"] = sum(server.values()) / 1e9
    print(json.dumps(figures))


def _server_cpu(database: Any) -> dict[int, int]:
    """The CPU time (ns) spent so far by each PostgreSQL backend serving the benchmark's database,
    when the server runs on this machine (read from /proc); {} on SQLite or a remote server."""
    if database.dialect != "postgresql":
        return {}
    from sqlalchemy import text

    with database.session() as session:
        pids = session.connection().execute(
            text(
                "SELECT pid FROM pg_stat_activity"
                " WHERE datname = current_database() AND backend_type = 'client backend'"
            )
        )
        spent: dict[int, int] = {}
        for (pid,) in pids:
            try:  # schedstat's first field: nanoseconds on a CPU
                spent[pid] = int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
            except (OSError, ValueError, IndexError):
                return {}
    return spent


@contextlib.contextmanager
def _database(on_postgres: bool) -> Iterator[str]:
    if on_postgres:
        with _proc.postgres_database() as url:
            yield url
        return
    folder = tempfile.mkdtemp(prefix="escalations-writer-")
    try:
        yield f"sqlite:///{Path(folder) / 'writer.db'}"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _one_run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    with _database(args.database == "postgres") as url:
        # This file runs the child even for another checkout's code (which may not have it).
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--child",
            "--database-url",
            url,
            "--rules",
            str(root / "rules.yaml"),
            "--posts",
            str(args.posts),
            "--events-per-post",
            str(args.events_per_post),
            "--group",
            str(args.group),
            *(["--angry"] if args.angry else []),
            *(["--seen", "--later", str(args.later)] if args.seen else []),
        ]
        return _proc.run_child(command, root, instructions=args.instructions, what="writer")


def build_parser() -> argparse.ArgumentParser:
    """Options of the writer benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=960, help="measured posts per run")
    parser.add_argument("--events-per-post", type=int, default=1)
    parser.add_argument("--group", type=int, default=48, help="posts per transaction")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--angry", action="store_true", help="the load generator's mix: 1 post in 6 escalates"
    )
    parser.add_argument(
        "--seen",
        action="store_true",
        help="each measured post continues a conversation (its earlier posts stored, unmeasured)",
    )
    parser.add_argument(
        "--later",
        type=int,
        default=1,
        help="with --seen: how many posts each conversation had before the measured one (1: it "
        "is the second, whose state is decoded; from 2 on, states kept between posts show)",
    )
    parser.add_argument(
        "--instructions", action="store_true", help="count instructions under callgrind"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, one run")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    parser.add_argument("--rules", help=argparse.SUPPRESS)
    return parser


def run(argv: list[str] | None = None) -> _proc.Report:
    """Measure and return the report."""
    args = build_parser().parse_args(argv)
    if args.quick:
        args.posts, args.runs = min(args.posts, 96), 1
    if args.instructions and shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind (Debian: apt-get install valgrind)")
    root = Path(os.environ.get(_proc.SERVICE_ROOT_ENV) or _proc.REPO)
    runs = [_one_run(args, root) for _ in range(args.runs)]
    mix = "1 in 6 escalating" if args.angry else "calm"
    conversations = (
        f"conversations already seen ({args.later} post(s) before)"
        if args.seen
        else "new conversations"
    )
    out = _proc.Report(
        f"ingest writer, {args.database}, {args.events_per_post} event(s)/post to {conversations}, "
        f"groups of {args.group}, {mix} ({args.runs} runs of {args.posts} posts)"
    )
    cpu = [figures["cpu_seconds"] / args.posts * 1e6 for figures in runs]
    listed = ", ".join(f"{value:,.0f}" for value in cpu)
    out.add("CPU per post", f"{statistics.median(cpu):,.1f} µs (runs: {listed})")
    wall = [figures["wall_seconds"] / args.posts * 1e6 for figures in runs]
    out.add("wall time per post", f"{statistics.median(wall):,.1f} µs")
    server = [
        figures["server_cpu_seconds"] / args.posts * 1e6
        for figures in runs
        if "server_cpu_seconds" in figures
    ]
    if server:
        listed = ", ".join(f"{value:,.0f}" for value in server)
        out.add("server CPU per post", f"{statistics.median(server):,.1f} µs (runs: {listed})")
    if args.instructions:
        counts = [figures["instructions"] / args.posts for figures in runs]
        out.add("instructions per post", f"{statistics.median(counts):,.0f}")
        out.notes.append("instructions counted under callgrind (CPU time above is valgrind's)")
    out.raw = {"runs": runs, "args": {"posts": args.posts, "group": args.group}}
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
