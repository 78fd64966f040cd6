"""Real parts for the reliability stories: service processes, a faulty Slack, signed posts.

`ServiceProcess` runs `escalations serve` (the installed CLI's module) as a child process on a
free loopback port and waits for `/readyz`; `kill()` is `kill -9`. `ChatPlatform` is the fake
Slack Web API of tests/slack (posts with their metadata, edits, `conversations.history`,
`conversations.list`, `auth.test`), served on loopback so the child processes reach it, which
can also be told to answer 429 with Retry-After, to fail with 500s, to be down, or to hold calls
(a slow Slack), and which counts every card it shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from connectors.generic import sign
from tests.slack.slack_fake_api import FakeSlack

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


def rules_channels(rules_path: Path = REPO / "rules.yaml") -> dict[str, str]:
    """The workspace's channels: every Slack channel the rules name, as name -> id."""
    from engine.rules_loader import load_rules_file

    names = sorted(
        team.slack.channel.removeprefix("#")
        for team in load_rules_file(rules_path).teams.values()
        if team.slack is not None and team.slack.channel.startswith("#")
    )
    return {name: f"C{index:08d}" for index, name in enumerate(names, start=1)}


def _wall_clock() -> datetime:
    return datetime.now(UTC)


@dataclass
class ChatPlatform(FakeSlack):
    """Slack's Web API (tests/slack's fake: posts, edits, history, channels) with faults.

    Faults come before Slack's work, on any method: 429 with Retry-After, 500s, down (503), or
    calls held unanswered; `hold_answers` does the work and holds only the answer. Message
    timestamps follow the wall clock by default, as the services' `oldest` searches expect.
    """

    token: str = SLACK_TOKEN
    channels: dict[str, str] = field(default_factory=rules_channels)
    clock: Callable[[], datetime] | None = field(default_factory=lambda: _wall_clock)
    # Every escalation card shown: (channel id, ts) -> "Escalation #<id> · conversation <id>";
    # a duplicate is two entries with one value.
    cards: dict[tuple[str, str], str] = field(default_factory=dict)
    # Every digest shown: (channel id, ts) -> its title (team and period).
    digests: dict[tuple[str, str], str] = field(default_factory=dict)
    requests: int = 0  # every HTTP request, faults included (`calls` holds those Slack did)
    faults_injected: int = 0
    down: bool = False  # answer every call with 503
    holding: bool = False  # keep calls waiting until released (a slow or hanging Slack)
    # Do the work, then keep the answer until released (the caller may die meanwhile).
    holding_answers: bool = False
    held: int = 0
    _rate_limits: list[str] = field(default_factory=list)
    _errors: list[int] = field(default_factory=list)
    _released: asyncio.Event = field(default_factory=asyncio.Event)

    async def close(self) -> None:
        """Answer whatever is held, then stop listening."""
        self.release()
        await super().close()

    def rate_limit_next(self, retry_after: str = "1", times: int = 1) -> None:
        """Answer the next `times` calls with 429 and this Retry-After."""
        self._rate_limits.extend([retry_after] * times)

    def error_next(self, status: int = 500, times: int = 1) -> None:
        """Answer the next `times` calls, whatever the method, with this server error."""
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
        """Let every held call and answer go."""
        self.holding = False
        self.holding_answers = False
        self._released.set()

    def card_texts(self) -> list[str]:
        """The label of every escalation card shown, in posting order."""
        return list(self.cards.values())

    def texts(self) -> list[str]:
        """Every call's arguments as sent (posts, edits, replies), for privacy checks."""
        return [json.dumps(call.args, ensure_ascii=False) for call in self.calls]

    async def wait_until(self, predicate: Any, limit: float = WAIT_LIMIT_SECONDS) -> None:
        """Wait until `predicate(self)` holds, re-checked after every call."""
        async with asyncio.timeout(limit), self._changed:
            await self._changed.wait_for(lambda: predicate(self))

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        try:
            if self.holding:
                self.held += 1
                await self._notify()
                await self._released.wait()
                if request.transport is None or request.transport.is_closing():
                    # The caller is gone (killed): like a request that never reached Slack.
                    return web.Response(status=499)
            fault = self._fault()
            if fault is not None:
                self.faults_injected += 1
                return fault
            answer = await super()._handle(request)
            if self.holding_answers:
                self.held += 1
                await self._notify()
                await self._released.wait()
            return answer
        finally:
            await self._notify()

    def _fault(self) -> web.Response | None:
        if self.down:
            return web.Response(status=503, text="<html>Service Unavailable</html>")
        if self._rate_limits:
            return web.json_response(
                {"ok": False, "error": "ratelimited"},
                status=429,
                headers={"Retry-After": self._rate_limits.pop(0)},
            )
        if self._errors:
            return web.Response(status=self._errors.pop(0), text="<html>error</html>")
        return None

    def _answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        answer = super()._answer(method, args)
        if method == "chat.postMessage" and answer["ok"] and not args.get("thread_ts"):
            kind, label = _classify(args)
            (self.cards if kind == "card" else self.digests)[(answer["channel"], answer["ts"])] = (
                label
            )
        return answer


_CARD_LABEL = re.compile(r"Escalation #\d+ · conversation \S+")


def _classify(args: Mapping[str, Any]) -> tuple[str, str]:
    """("card", "Escalation #7 · conversation c-1") or ("digest", its title)."""
    rendered = json.dumps(args.get("blocks") or [], ensure_ascii=False)
    match = _CARD_LABEL.search(rendered)
    if match is not None:
        return "card", match.group(0)
    title = re.search(r"Hand-off digest[^\"]*", rendered)
    return "digest", title.group(0) if title else str(args.get("text", ""))


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
    # Cards an earlier, unrecorded attempt had posted, found in the channel instead of re-posted.
    cards_found_in_channel: int


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
            posted = [_json(detail) for (detail,) in db.execute(text(_CARD_POSTED_SQL))]
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
        cards_found_in_channel=sum(
            1 for detail in posted if detail.get("found_after_earlier_attempt")
        ),
    )


def _json(value: object) -> dict[str, Any]:
    """A JSON column as read without the ORM: text on SQLite, already decoded on PostgreSQL."""
    decoded = json.loads(value) if isinstance(value, str | bytes) else value
    return decoded if isinstance(decoded, dict) else {}


_EVENTS_SQL = "SELECT conversation_id, event_id FROM events"
_ESCALATIONS_SQL = "SELECT conversation_id, count(*) FROM escalations GROUP BY conversation_id"
_CARDS_SQL = "SELECT escalation_id, channel, message_id FROM card_messages"
_CARD_POSTED_SQL = "SELECT detail FROM handoff_events WHERE kind = 'card_posted'"
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
