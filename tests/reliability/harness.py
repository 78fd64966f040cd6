"""Real parts for the reliability stories: service processes, a faulty Slack, signed posts.

`ServiceProcess` runs `escalations serve` (the installed CLI's module) as a child process on a
free loopback port and waits for `/readyz`; `kill()` is `kill -9`. `ChatPlatform` is a small
local server speaking the part of Slack's Web API the delivery worker calls, which can be told
to answer 429 with Retry-After, to fail with 500s, to be down, or to hold calls (a slow Slack),
and which counts every card it shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from connectors.generic import sign

REPO = Path(__file__).resolve().parents[2]
WEBHOOK_SECRET = "reliability-webhook-secret"
SLACK_TOKEN = "xoxb-reliability-token"
SLACK_SIGNING_SECRET = "reliability-signing-secret"
ADMIN_TOKEN = "reliability-admin-token"
# Bounds against a hung test, never timing assertions.
START_LIMIT_SECONDS = 30.0
WAIT_LIMIT_SECONDS = 60.0

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# --- conversations -------------------------------------------------------------------------


def _stamp(second: int) -> str:
    return (T0 + timedelta(seconds=second)).isoformat().replace("+00:00", "Z")


def angry_events(prefix: str = "m") -> list[dict[str, Any]]:
    """Five events of a customer stuck in fallbacks who asks for a person: escalates."""
    fallback = {"fallback": True, "intent": "fallback", "confidence": 0.2}
    texts = [
        ("customer", "where is my refund for order #48213??", {}),
        ("bot", "Sorry, I didn't get that.", fallback),
        ("customer", "my refund for order 48213, where is it", {}),
        ("bot", "Sorry, I didn't get that.", fallback),
        ("customer", "this is useless. I want to talk to a real person now", {}),
    ]
    return [
        {
            "id": f"{prefix}{index + 1}",
            "type": "message",
            "role": role,
            "text": text,
            "timestamp": _stamp(index * 20),
            **extra,
        }
        for index, (role, text, extra) in enumerate(texts)
    ]


def post_body(cid: str, events: list[dict[str, Any]], *, queue: str = "general") -> bytes:
    """A generic-webhook body for one conversation."""
    return json.dumps(
        {
            "conversation_id": cid,
            "platform": "acme-bot",
            "customer": {"id": f"u-{cid}", "name": "Ana", "tier": "standard"},
            "metadata": {"queue": queue},
            "events": events,
        }
    ).encode()


def signed_headers(body: bytes, secret: str = WEBHOOK_SECRET) -> dict[str, str]:
    """Headers of a correctly signed generic-webhook post."""
    return {"Content-Type": "application/json", "X-Escalations-Signature": sign(secret, body)}


async def post_webhook(
    http: aiohttp.ClientSession, base_url: str, body: bytes, *, name: str = "generic"
) -> int:
    """POST a signed body; the status, or 0 when the connection failed (a killed service)."""
    try:
        async with http.post(
            f"{base_url}/webhooks/{name}", data=body, headers=signed_headers(body)
        ) as response:
            await response.read()
            return response.status
    except (aiohttp.ClientError, ConnectionError):
        return 0


# --- the service as a process --------------------------------------------------------------


@dataclass
class ServiceProcess:
    """`escalations serve` in a child process."""

    environ: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Start the process and wait until it answers /readyz."""
        self.process = self._launch()
        deadline = time.monotonic() + START_LIMIT_SECONDS
        async with aiohttp.ClientSession() as http:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"service exited at start-up:\n{self.log()}")
                with contextlib.suppress(aiohttp.ClientError, ConnectionError):
                    async with http.get(f"{self.base_url}/readyz") as response:
                        if response.status == 200:
                            return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"service not ready in time:\n{self.log()}")
                await asyncio.sleep(0.1)  # polling start-up with a bounded deadline

    def _launch(self) -> subprocess.Popen[bytes]:
        env = {**self.environ, "ESCALATIONS_PORT": str(self.port)}
        with self.log_path.open("ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "bot.cli", "serve"],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        """kill -9: no clean-up of any kind."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)

    def send(self, signum: signal.Signals) -> None:
        """Send a signal (SIGHUP for a rules reload)."""
        assert self.process is not None
        self.process.send_signal(signum)

    def stop(self) -> None:
        """SIGTERM and wait; kill if it will not stop."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def log(self) -> str:
        """Everything the process wrote."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def service_environ(
    *,
    database_url: str,
    data_dir: Path,
    slack_api_url: str | None = None,
    rules_path: Path | None = None,
    **extra: str,
) -> dict[str, str]:
    """The environment of one service process (nothing inherited but PATH and the locale)."""
    env = {key: os.environ[key] for key in ("PATH", "LANG", "HOME") if key in os.environ}
    env.update(
        ESCALATIONS_DATABASE_URL=database_url,
        ESCALATIONS_DATA_DIR=str(data_dir),
        ESCALATIONS_RULES=str(rules_path or REPO / "rules.yaml"),
        ESCALATIONS_WEBHOOK_SECRET=WEBHOOK_SECRET,
        ESCALATIONS_DASHBOARD_TOKEN=ADMIN_TOKEN,
        PYTHONPATH=str(REPO),
    )
    if slack_api_url is not None:
        env.update(
            SLACK_BOT_TOKEN=SLACK_TOKEN,
            SLACK_SIGNING_SECRET=SLACK_SIGNING_SECRET,
            SLACK_API_URL=slack_api_url,
        )
    env.update(extra)
    return env


# --- a chat platform that fails on demand ---------------------------------------------------


@dataclass
class ChatPlatform:
    """Slack's Web API (chat.postMessage, chat.update, auth.test) with injectable faults."""

    token: str = SLACK_TOKEN
    # Every escalation card shown: (channel, ts) -> "Escalation #<id> · conversation <id>";
    # a duplicate is two entries with one value.
    cards: dict[tuple[str, str], str] = field(default_factory=dict)
    # Every digest shown: (channel, ts) -> its title (team and period).
    digests: dict[tuple[str, str], str] = field(default_factory=dict)
    calls: int = 0
    faults_injected: int = 0
    down: bool = False  # answer every call with 503
    holding: bool = False  # keep calls waiting until released (a slow or hanging Slack)
    # Do the work, then keep the answer until released (the caller may die meanwhile).
    holding_answers: bool = False
    _rate_limits: list[str] = field(default_factory=list)
    _errors: list[int] = field(default_factory=list)
    _released: asyncio.Event = field(default_factory=asyncio.Event)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    held: int = 0
    sent_texts: list[str] = field(default_factory=list)
    _ts: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _runner: web.AppRunner | None = None
    port: int = 0

    async def start(self) -> None:
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
        self.release()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def rate_limit_next(self, retry_after: str = "1", times: int = 1) -> None:
        """Answer the next `times` calls with 429 and this Retry-After."""
        self._rate_limits.extend([retry_after] * times)

    def fail_next(self, status: int = 500, times: int = 1) -> None:
        """Answer the next `times` calls with this server error."""
        self._errors.extend([status] * times)

    def hold(self) -> None:
        """Keep every call waiting (no answer) until `release()`."""
        self.holding = True
        self._released.clear()

    def hold_answers(self) -> None:
        """Show cards at once but keep every answer waiting until `release()`."""
        self.holding_answers = True
        self._released.clear()

    def release(self) -> None:
        self.holding = False
        self.holding_answers = False
        self._released.set()

    def card_texts(self) -> list[str]:
        """The label of every escalation card shown, in posting order."""
        return list(self.cards.values())

    def texts(self) -> list[str]:
        """Every text sent (posts, edits, replies), for privacy checks."""
        return list(self.sent_texts)

    async def wait_until(self, predicate: Any, limit: float = WAIT_LIMIT_SECONDS) -> None:
        """Wait until `predicate(self)` holds, re-checked after every call."""
        async with asyncio.timeout(limit), self._changed:
            await self._changed.wait_for(lambda: predicate(self))

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args = await _arguments(request)
        self.calls += 1
        if self.holding:
            self.held += 1
            await self._notify()
            await self._released.wait()
            if request.transport is None or request.transport.is_closing():
                # The caller is gone (killed): like a request that never reached Slack.
                return web.Response(status=499)
        try:
            if self.down:
                self.faults_injected += 1
                return web.Response(status=503, text="<html>Service Unavailable</html>")
            if self._rate_limits:
                self.faults_injected += 1
                retry_after = self._rate_limits.pop(0)
                return web.json_response(
                    {"ok": False, "error": "ratelimited"},
                    status=429,
                    headers={"Retry-After": retry_after},
                )
            if self._errors:
                self.faults_injected += 1
                return web.Response(status=self._errors.pop(0), text="<html>error</html>")
            if request.headers.get("Authorization") != f"Bearer {self.token}":
                return web.json_response({"ok": False, "error": "invalid_auth"})
            answer = self._answer(method, args)
            if self.holding_answers:
                self.held += 1
                await self._notify()
                await self._released.wait()
            return web.json_response(answer)
        finally:
            await self._notify()

    def _answer(self, method: str, args: Mapping[str, Any]) -> dict[str, Any]:
        self.sent_texts.append(json.dumps(args, ensure_ascii=False))
        if method == "auth.test":
            return {"ok": True, "user_id": "U0BOT", "team_id": "T0", "bot_id": "B0"}
        channel = str(args.get("channel", "")).lstrip("#")
        if method == "chat.postMessage":
            ts = f"1700000000.{next(self._ts):06d}"
            if not args.get("thread_ts"):
                kind, label = _classify(args)
                (self.cards if kind == "card" else self.digests)[(channel, ts)] = label
            return {"ok": True, "channel": channel, "ts": ts, "message": {"ts": ts}}
        if method == "chat.update":
            key = (channel, str(args.get("ts")))
            if key not in self.cards:
                return {"ok": False, "error": "message_not_found"}
            return {"ok": True, "channel": channel, "ts": key[1]}
        return {"ok": False, "error": "unknown_method"}


_CARD_LABEL = re.compile(r"Escalation #\d+ · conversation \S+")


def _classify(args: Mapping[str, Any]) -> tuple[str, str]:
    """("card", "Escalation #7 · conversation c-1") or ("digest", its title)."""
    blocks = args.get("blocks") or []
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    rendered = json.dumps(blocks, ensure_ascii=False)
    match = _CARD_LABEL.search(rendered)
    if match is not None:
        return "card", match.group(0)
    title = re.search(r"Hand-off digest[^\"]*", rendered)
    return "digest", title.group(0) if title else str(args.get("text", ""))


async def _arguments(request: web.Request) -> dict[str, Any]:
    if request.content_type == "application/json":
        data: dict[str, Any] = await request.json()
        return data
    form = await request.post()
    return {key: str(value) for key, value in form.items()}


def signal_available(name: str) -> bool:
    """Whether this platform has the named signal (SIGHUP is POSIX only)."""
    return hasattr(signal, name)


# --- what the database holds ---------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    """Counts read back from the database after a run."""

    events: set[tuple[str, str]]  # (conversation id, event id)
    escalations_by_conversation: dict[str, int]
    cards: set[tuple[str, str]]  # (channel, message id) recorded as posted
    cards_by_escalation: dict[int, int]
    outbox_pending: int
    outbox_failed: int


def read_stored(database_url: str) -> Stored:
    """Everything the stories check, read in one go (a fresh connection each time)."""
    from sqlalchemy import text

    from storage.db import Database

    database = Database(database_url)
    try:
        with database.engine.connect() as db:
            events = {(str(c), str(e)) for c, e in db.execute(text(_EVENTS_SQL))}
            escalations = {str(c): int(n) for c, n in db.execute(text(_ESCALATIONS_SQL))}
            card_rows = list(db.execute(text(_CARDS_SQL)))
            pending, failed = db.execute(text(_OUTBOX_SQL)).one()
    finally:
        database.dispose()
    by_escalation: dict[int, int] = {}
    for escalation_id, _, _ in card_rows:
        by_escalation[int(escalation_id)] = by_escalation.get(int(escalation_id), 0) + 1
    return Stored(
        events=events,
        escalations_by_conversation=escalations,
        cards={(str(channel), str(ts)) for _, channel, ts in card_rows},
        cards_by_escalation=by_escalation,
        outbox_pending=int(pending or 0),
        outbox_failed=int(failed or 0),
    )


_EVENTS_SQL = "SELECT conversation_id, event_id FROM events"
_ESCALATIONS_SQL = "SELECT conversation_id, count(*) FROM escalations GROUP BY conversation_id"
_CARDS_SQL = "SELECT escalation_id, channel, message_id FROM card_messages"
_OUTBOX_SQL = (
    "SELECT sum(CASE WHEN status = 'pending' THEN 1 ELSE 0 END), "
    "sum(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) FROM outbox"
)


async def wait_for_outbox_drained(database_url: str, limit: float = WAIT_LIMIT_SECONDS) -> Stored:
    """Poll the database until no delivery is pending (bounded); the final counts."""
    deadline = time.monotonic() + limit
    while True:
        stored = await asyncio.to_thread(read_stored, database_url)
        if stored.outbox_pending == 0:
            return stored
        if time.monotonic() > deadline:
            raise TimeoutError(f"{stored.outbox_pending} deliveries still pending")
        await asyncio.sleep(0.2)  # the outbox lives in another process: poll it, bounded


def outbox_rows(database_url: str) -> list[tuple[object, ...]]:
    """Every outbox row (for a failure message)."""
    from sqlalchemy import text

    from storage.db import Database

    database = Database(database_url)
    try:
        with database.engine.connect() as db:
            query = text(
                "SELECT id, kind, surface, escalation_id, status, attempts, last_error "
                "FROM outbox ORDER BY id"
            )
            return [tuple(row) for row in db.execute(query)]
    finally:
        database.dispose()
