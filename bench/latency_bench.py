"""Time from the breaching event's 2xx to the card request arriving at the (local) Slack API,
while the service ingests a steady background load.

The service runs with SLACK_API_URL pointing at a small fake Slack Web API served by this
process; a load generator process posts background events at a fixed rate; every `--interval`
seconds (Slack's per-channel pace) this process posts a conversation that escalates under the
default rules and notes when its 2xx arrives and when the chat.postMessage of its card arrives.

    python -m bench.latency_bench                    # 1,000 events/s background, 15 s
    python -m bench.latency_bench --quick
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

import aiohttp
from aiohttp import web

from bench import _proc
from bench.loadgen import sign

P99_TARGET_MS = 300.0


class FakeSlackApi:
    """Answers the Web API methods the service calls and notes when each call arrives."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[float, str, str]] = []  # (monotonic time, method, raw body)
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._ts = 0

    async def start(self) -> None:
        """Listen on a free loopback port."""
        app = web.Application()
        app.router.add_post("/api/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def close(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        arrived = time.monotonic()
        method = request.match_info["method"]
        body = await request.text()
        self.arrivals.append((arrived, method, body))
        self._ts += 1
        answer: dict[str, Any] = {"ok": True}
        if method == "auth.test":
            answer.update(user_id="U0BOT", bot_id="B0BOT", team_id="T0TEAM", user="escalations")
        elif method.startswith("chat."):
            answer.update(channel="C0SUPPORT", ts=f"1700000000.{self._ts:06d}")
        return web.json_response(answer)


def breaching_post(cid: str) -> bytes:
    """A customer stuck in fallbacks who asks for a person: escalates under rules.yaml."""
    fallback = {"fallback": True, "intent": "fallback", "confidence": 0.2}
    lines = [
        ("customer", "where is my refund for order #48213??", {}),
        ("bot", "Sorry, I didn't get that.", fallback),
        ("customer", "my refund for order 48213, where is it", {}),
        ("bot", "Sorry, I didn't get that.", fallback),
        ("customer", "this is useless. I want to talk to a real person now", {}),
    ]
    events = [
        {
            "id": f"m{index}",
            "type": "message",
            "role": role,
            "text": text,
            "timestamp": f"2026-03-02T10:00:{index * 10:02d}Z",
            **extra,
        }
        for index, (role, text, extra) in enumerate(lines)
    ]
    payload = {
        "conversation_id": cid,
        "platform": "bench",
        "customer": {"id": f"u-{cid}", "name": "Ana", "tier": "standard"},
        "events": events,
    }
    return json.dumps(payload).encode()


async def _measure(args: argparse.Namespace) -> dict[str, Any]:
    slack = FakeSlackApi()
    await slack.start()
    log_dir = _proc.new_log_dir()
    extra = {
        "SLACK_API_URL": f"http://127.0.0.1:{slack.port}/api/",
        "SLACK_BOT_TOKEN": "xoxb-bench",
        "SLACK_SIGNING_SECRET": "bench-signing-secret",
    }
    answered: dict[str, float] = {}
    try:
        with _proc.service_server(log_dir, not args.no_pin, **extra) as server:
            background = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.loadgen",
                "--port",
                str(server.port),
                "--connections",
                "64",
                "--rate",
                str(args.rate / args.background_events_per_post),
                "--events-per-post",
                str(args.background_events_per_post),
                # Calm conversations: their cards would queue before ours in the same channel.
                "--plain",
                "--seconds",
                str(args.seconds),
                "--warmup",
                "1",
                "--secret",
                _proc.SECRET,
                "--prefix",
                f"bg{time.time_ns()}",
                *(["--cpu", str(_proc.LOADGEN_CPU)] if not args.no_pin else []),
                cwd=_proc.REPO,
                stdout=asyncio.subprocess.PIPE,
            )
            url = f"http://127.0.0.1:{server.port}/webhooks/generic"
            async with aiohttp.ClientSession() as client:
                await asyncio.sleep(1.5)  # the background load is under way
                deadline = time.monotonic() + args.seconds - 1
                number = 0
                while time.monotonic() < deadline and number < args.max_breaches:
                    number += 1
                    cid = f"breach-{time.time_ns()}-{number}"
                    body = breaching_post(cid)
                    headers = {
                        "Content-Type": "application/json",
                        "X-Escalations-Signature": sign(_proc.SECRET.encode(), body),
                    }
                    async with client.post(url, data=body, headers=headers) as response:
                        await response.read()
                        if response.status < 300:
                            answered[cid] = time.monotonic()
                    await asyncio.sleep(args.interval)
                output, _ = await background.communicate()
                await asyncio.sleep(1.0)  # the last cards are on their way
        load = json.loads(output.decode().strip().splitlines()[-1])
    finally:
        await slack.close()
    latencies = []
    missing = 0
    for cid, at in answered.items():
        marker = cid  # the card names its conversation
        arrivals = [
            when
            for when, method, body in slack.arrivals
            if method == "chat.postMessage" and marker in body
        ]
        if arrivals:
            latencies.append((min(arrivals) - at) * 1000)
        else:
            missing += 1
    return {"latencies_ms": latencies, "missing": missing, "background": load}


def build_parser() -> argparse.ArgumentParser:
    """Options of the latency benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000.0, help="background events/s")
    parser.add_argument(
        "--background-events-per-post",
        type=int,
        default=5,
        help="events in each background post (the rate counts events)",
    )
    parser.add_argument("--seconds", type=float, default=25.0)
    # Slack takes about one message per second per channel, and the delivery worker keeps to
    # that: breaching posts come a little slower so that the throttle is not what is measured.
    parser.add_argument("--interval", type=float, default=1.2, help="between breaching posts")
    parser.add_argument("--max-breaches", type=int, default=500)
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--quick", action="store_true")
    return parser


def run(argv: list[str] | None = None) -> _proc.Report:
    """Measure and return the report."""
    args = build_parser().parse_args(argv)
    if args.quick:
        args.seconds, args.rate = min(args.seconds, 5.0), min(args.rate, 200.0)
    raw = asyncio.run(_measure(args))
    latencies = sorted(raw["latencies_ms"])
    background = raw["background"]
    out = _proc.Report("escalation card latency (2xx -> chat.postMessage at the Slack API)")
    if not latencies:
        out.add("card latency", "no card arrived", f"p99 < {P99_TARGET_MS:.0f} ms", False)
        return out
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    out.add(
        "background load",
        f"{background['events_per_second']:,.0f} events/s",
        f"{args.rate:,.0f}",
        detail=f"p99 {background['p99_ms']:.1f} ms",
    )
    out.add(
        f"card latency ({len(latencies)} escalations)",
        f"p50 {p50:.0f} ms, p99 {p99:.0f} ms",
        f"p99 < {P99_TARGET_MS:.0f} ms",
        p99 < P99_TARGET_MS and raw["missing"] == 0,
    )
    if raw["missing"]:
        out.notes.append(f"{raw['missing']} escalations never reached the Slack API")
    out.raw = raw
    return out


def main() -> None:
    """Print the table."""
    print(run(sys.argv[1:]).render())


if __name__ == "__main__":
    main()
