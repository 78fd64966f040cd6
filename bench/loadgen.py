"""A small, fast HTTP/1.1 load generator: N keep-alive connections posting signed webhook bodies.

It speaks just enough HTTP over raw asyncio protocols (no client library in the way), so one core
drives far more requests than the server under test can answer. By default every post carries a
new conversation id and new event ids, so each one is a real insert; with `--conversations N`
the posts go to N conversations in turn, each with new event ids (once the warm-up has posted to
all N, every post continues a conversation already seen). It runs for a fixed time (with a
warm-up that is not counted), never past `--max-requests`, and prints one JSON line of results.

    python -m bench.loadgen --port 8080 --connections 64 --seconds 5 --events-per-post 1
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import statistics
import time
from array import array
from dataclasses import dataclass, field
from typing import Any

MESSAGES = (
    "where is my refund? I returned the shoes on Monday",
    "I ordered a blue sweater two weeks ago and it still has not arrived, can you check?",
    "this is ridiculous, I have been waiting for ages",
    "thanks, that helped a lot!",
    "can I change the delivery address to 12 Baker Street?",
    "the app crashes every time I open the payment page",
)
# Calm traffic that should not escalate (the background of the latency benchmark).
PLAIN_MESSAGES = (
    "can you check the status of my order please",
    "what are your opening hours on saturday",
    "I would like to update my delivery address",
    "which sizes does the blue jacket come in",
    "do you ship to Norway",
    "how do I download my invoice",
)
SIGNATURE_HEADER = "X-Escalations-Signature"


def post_body(
    prefix: str,
    number: int,
    events_per_post: int,
    end: bool = False,
    plain: bool = False,
    later: int = 0,
) -> bytes:
    """A generic-format post to conversation `number` with `events_per_post` messages; with
    `end`, the last event closes the conversation (session_end). `later` is how many posts
    went to the conversation before this one: its events come after theirs (new ids, later
    times), and customer and bot take turns across posts as within one."""
    events: list[dict[str, str]] = []
    for index in range(events_per_post):
        position = later * events_per_post + index  # the event's place in its conversation
        event_id = f"e{index}" if not later else f"p{later}e{index}"
        if end and index == events_per_post - 1:
            events.append(
                {
                    "id": event_id,
                    "type": "session_end",
                    "timestamp": _timestamp(3600 + later * events_per_post),
                }
            )
            continue
        role = "customer" if position % 2 == 0 else "bot"
        lines = PLAIN_MESSAGES if plain else MESSAGES
        text = lines[(number + position) % len(lines)]
        if plain and role == "bot":
            text = "Here is what I found about that."
        events.append(
            {
                "id": event_id,
                "type": "message",
                "role": role,
                "text": text,
                "timestamp": _timestamp(position),
            }
        )
    return json.dumps(
        {
            "conversation_id": f"{prefix}-{number}",
            "platform": "bench",
            "customer": {"id": f"u-{number}", "tier": "standard"},
            "events": events,
        },
        separators=(",", ":"),
    ).encode()


def _timestamp(second: int) -> str:
    """The time `second` seconds into a conversation that starts 2026-03-02 09:00 UTC."""
    minutes, second = divmod(second, 60)
    hours, minute = divmod(minutes, 60)
    days, hour = divmod(9 + hours, 24)
    return f"2026-03-{2 + days:02d}T{hour:02d}:{minute:02d}:{second:02d}Z"


def sign(secret: bytes, body: bytes) -> str:
    """The generic connector's signature header value (HMAC-SHA256, hex)."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


@dataclass
class Tally:
    """What the connections have seen, shared by all of them."""

    measuring: bool = False
    stopping: bool = False
    started: int = 0
    sent: int = 0
    ok: int = 0
    failed: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    latencies: array[float] = field(default_factory=lambda: array("d"))


class _Connection(asyncio.Protocol):
    """One keep-alive connection that posts, waits for the whole answer, and posts again."""

    def __init__(self, run: _Run) -> None:
        self.run = run
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.sent_at = 0.0
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._send()

    def _send(self) -> None:
        run = self.run
        assert self.transport is not None
        if run.tally.stopping or run.tally.started >= run.max_requests:
            self.transport.close()
            return
        run.tally.started += 1
        if run.args.rate:
            # Paced: request n goes out no earlier than n / rate seconds after the start.
            due = run.started_at + run.tally.started / run.args.rate
            delay = due - time.perf_counter()
            if delay > 0:
                asyncio.get_running_loop().call_later(delay, self._write)
                return
        self._write()

    def _write(self) -> None:
        assert self.transport is not None
        if self.transport.is_closing():
            return
        self.sent_at = time.perf_counter()
        self.transport.write(self.run.next_request())

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = bytes(self.buffer[:head_end]).lower()
            length_at = head.find(b"content-length:")
            if length_at < 0:
                raise RuntimeError("the server answered without Content-Length")
            line_end = head.find(b"\r\n", length_at)
            length = int(head[length_at + 15 : line_end if line_end > 0 else None])
            total = head_end + 4 + length
            if len(self.buffer) < total:
                return
            status = int(head[9:12])
            del self.buffer[:total]
            self._answered(status)

    def _answered(self, status: int) -> None:
        tally = self.run.tally
        # Throughput counts the answers that arrive while measuring, whenever they were sent.
        if tally.measuring:
            tally.latencies.append(time.perf_counter() - self.sent_at)
            tally.statuses[status] = tally.statuses.get(status, 0) + 1
            if 200 <= status < 300:
                tally.ok += 1
            else:
                tally.failed += 1
        self._send()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class _Run:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tally = Tally()
        self.max_requests = args.max_requests
        self.secret = args.secret.encode()
        self.counter = 0
        self.started_at = time.perf_counter()
        self.head = (
            f"POST {args.path} HTTP/1.1\r\nHost: {args.host}:{args.port}\r\n"
            "Content-Type: application/json\r\n"
        ).encode()

    def next_request(self) -> bytes:
        self.counter += 1
        number, later = self.counter, 0
        pool = self.args.conversations
        if pool:  # the same conversations in turn, each post after the one before it
            later, number = divmod(self.counter - 1, pool)
        body = post_body(
            self.args.prefix,
            number,
            self.args.events_per_post,
            self.args.session_end,
            self.args.plain,
            later,
        )
        return b"".join(
            (
                self.head,
                f"{SIGNATURE_HEADER}: {sign(self.secret, body)}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n".encode(),
                body,
            )
        )


async def run_load(args: argparse.Namespace) -> dict[str, Any]:
    """Drive the server for warm-up + measured seconds; return the measured figures."""
    run = _Run(args)
    loop = asyncio.get_running_loop()
    # Without a warm-up every answer counts, including those to the first connections' posts,
    # which can arrive while later connections are still being opened.
    run.tally.measuring = args.warmup <= 0
    connections: list[_Connection] = []
    for _ in range(args.connections):
        protocol = _Connection(run)
        await loop.create_connection(lambda p=protocol: p, args.host, args.port)  # type: ignore[misc]
        connections.append(protocol)
    await asyncio.sleep(args.warmup)
    run.tally.measuring = True
    started = time.perf_counter()
    cpu_started = time.process_time()
    # The measured window ends after `seconds`, or earlier once every request has been answered.
    await asyncio.wait([asyncio.gather(*(c.closed for c in connections))], timeout=args.seconds)
    run.tally.measuring = False
    elapsed = time.perf_counter() - started
    cpu_used = time.process_time() - cpu_started
    run.tally.stopping = True
    await asyncio.wait_for(
        asyncio.gather(*(c.closed for c in connections)), timeout=args.drain_timeout
    )
    tally = run.tally
    latencies = sorted(tally.latencies)

    def percentile(fraction: float) -> float:
        if not latencies:
            return float("nan")
        return latencies[min(len(latencies) - 1, int(fraction * len(latencies)))] * 1000

    return {
        "requests": tally.ok + tally.failed,
        "ok": tally.ok,
        "failed": tally.failed,
        "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
        "seconds": elapsed,
        "requests_per_second": tally.ok / elapsed,
        "events_per_second": tally.ok * args.events_per_post / elapsed,
        "p50_ms": percentile(0.50),
        "p99_ms": percentile(0.99),
        "mean_ms": statistics.fmean(latencies) * 1000 if latencies else float("nan"),
        # The generator's own CPU share while measuring: well below 1 means it kept up.
        "loadgen_cpu": cpu_used / elapsed,
    }


def build_parser() -> argparse.ArgumentParser:
    """The load generator's options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/webhooks/generic")
    parser.add_argument("--secret", default="bench-secret")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--max-requests", type=int, default=2_000_000)
    parser.add_argument("--events-per-post", type=int, default=1)
    parser.add_argument("--prefix", default=f"load{os.getpid()}")
    parser.add_argument("--rate", type=float, default=0.0, help="requests/s in all (0: flat out)")
    parser.add_argument("--plain", action="store_true", help="calm messages that do not escalate")
    parser.add_argument("--session-end", action="store_true", help="each post ends its chat")
    parser.add_argument(
        "--conversations",
        type=int,
        default=0,
        help="post to this many conversations in turn (0: every post starts a new one)",
    )
    parser.add_argument("--drain-timeout", type=float, default=30.0)
    parser.add_argument("--cpu", type=int, default=None, help="pin this process to one CPU")
    return parser


def main() -> None:
    """Run once and print the figures as one JSON line."""
    main_with(None)


def main_with(argv: list[str] | None) -> None:
    """`main` with explicit arguments."""
    args = build_parser().parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("the load generator only targets this machine's loopback address")
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    print(json.dumps(asyncio.run(run_load(args))), flush=True)


if __name__ == "__main__":
    main()
