"""A local server that speaks the parts of Slack's Web API the app calls.

It answers with Slack's response shapes, records every call, and checks every `blocks` and
`view` payload with slack_sdk.models plus Slack's documented limits, answering `invalid_blocks`
like Slack does when one is wrong. It can be told to fail the next call of a method (429 with
Retry-After, 500, or an `ok: false` error) for fault tests.

Like Slack, it accepts a channel by name ("#support") only where Slack does (posting), answers
with the channel's id, and keeps every posted message so that `chat.update` and thread replies
must name a message that exists; `message()` shows a card as the channel sees it now.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_TEXT = 3000
MAX_BUTTON_VALUE = 2000

BOT_USER_ID = "U0BOT"
WAIT_LIMIT_SECONDS = 10  # a guard against a hung test, never a timing assertion


@dataclass(frozen=True)
class Call:
    """One Web API call as the server received it."""

    method: str
    args: dict[str, Any]


@dataclass(frozen=True)
class Fault:
    """How to answer the next call of a method instead of succeeding."""

    status: int = 200
    error: str | None = None
    retry_after: str | None = None


@dataclass
class FakeSlack:
    """The fake Web API: start() it, point the SDK at `api_url`, then read `calls`."""

    token: str
    channels: dict[str, str] = field(default_factory=dict)  # name -> id, e.g. "support": "C0S"
    calls: list[Call] = field(default_factory=list)
    invalid_payloads: list[str] = field(default_factory=list)
    messages: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    _faults: dict[str, list[Fault]] = field(default_factory=dict)
    _server: TestServer | None = None
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _ts: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    async def start(self) -> None:
        """Listen on a free local port."""
        app = web.Application()
        app.router.add_post("/api/{method}", self._handle)
        self._server = TestServer(app, host="127.0.0.1", port=0)
        await self._server.start_server()

    async def close(self) -> None:
        """Stop listening."""
        if self._server is not None:
            await self._server.close()

    @property
    def api_url(self) -> str:
        """The base URL to give slack_sdk (ends with a slash, like Slack's own)."""
        assert self._server is not None
        return str(self._server.make_url("/api/"))

    def fail_next(
        self,
        method: str,
        *,
        status: int = 200,
        error: str | None = None,
        retry_after: str | None = None,
    ) -> None:
        """Answer the next call of `method` with this failure instead of success."""
        self._faults.setdefault(method, []).append(Fault(status, error, retry_after))

    def calls_to(self, method: str) -> list[Call]:
        """Every recorded call of one method, oldest first."""
        return [call for call in self.calls if call.method == method]

    def message(self, channel: str, ts: str) -> dict[str, Any]:
        """A posted message as the channel shows it now (after every chat.update)."""
        return self.messages[(channel, ts)]

    def cards_in(self, channel: str) -> list[dict[str, Any]]:
        """Messages the channel shows (not thread replies), oldest first, as they stand now."""
        return [
            message
            for (where, _), message in sorted(self.messages.items())
            if where == channel and "thread_ts" not in message
        ]

    def replies_to(self, channel: str, ts: str) -> list[dict[str, Any]]:
        """The messages in one message's thread, oldest first."""
        return [
            message
            for (where, _), message in sorted(self.messages.items())
            if where == channel and message.get("thread_ts") == ts
        ]

    async def wait_for(self, method: str, count: int = 1) -> list[Call]:
        """Wait until `method` has been called `count` times (bolt works after acking)."""
        async with asyncio.timeout(WAIT_LIMIT_SECONDS), self._changed:
            await self._changed.wait_for(lambda: len(self.calls_to(method)) >= count)
        return self.calls_to(method)

    # --- the server side ----------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args = await _arguments(request)
        async with self._changed:
            self.calls.append(Call(method, args))
            self._changed.notify_all()
        faults = self._faults.get(method)
        if faults:
            fault = faults.pop(0)
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            if fault.status >= 500:
                return web.Response(
                    status=fault.status, text="<html>Server Error</html>", content_type="text/html"
                )
            body = {"ok": False, "error": fault.error or "ratelimited"}
            return web.json_response(body, status=fault.status, headers=headers)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        problems = self._validate(method, args)
        if problems:
            self.invalid_payloads.extend(f"{method}: {problem}" for problem in problems)
            return web.json_response({"ok": False, "error": "invalid_blocks", "errors": problems})
        missing = self._missing(method, args)
        if missing:
            return web.json_response({"ok": False, "error": missing})
        if "channel" in args:
            # What the call did is kept as sent; the answer names the channel by its id.
            args = {**args, "channel": self._channel_id(str(args["channel"]), by_name=True)}
        return web.json_response(self._answer(method, args))

    def _channel_id(self, channel: str, *, by_name: bool) -> str | None:
        if channel[:1] in ("C", "G", "D"):
            return channel
        if by_name and channel.startswith("#"):
            return self.channels.get(channel[1:])
        return None

    def _missing(self, method: str, args: dict[str, Any]) -> str | None:
        """Slack's answer when the call names a channel or message that does not exist."""
        if method not in ("chat.postMessage", "chat.update", "chat.postEphemeral"):
            return None
        # Slack takes "#name" when posting; editing needs the id the post answered with.
        channel = self._channel_id(str(args.get("channel", "")), by_name=method != "chat.update")
        if channel is None:
            return "channel_not_found"
        if method == "chat.update" and (channel, str(args.get("ts"))) not in self.messages:
            return "message_not_found"
        thread = args.get("thread_ts")
        if thread is not None and (channel, str(thread)) not in self.messages:
            return "thread_not_found"
        return None

    def _answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        if method == "auth.test":
            return {
                "ok": True,
                "url": "https://example.slack.com/",
                "team": "Example",
                "user": "escalations",
                "team_id": "T0TEAM",
                "user_id": BOT_USER_ID,
                "bot_id": "B0BOT",
                "is_enterprise_install": False,
            }
        if method == "chat.postMessage":
            ts = f"1700000000.{next(self._ts):06d}"
            message = {"type": "message", "user": BOT_USER_ID, "ts": ts, "text": args.get("text")}
            if "blocks" in args:
                message["blocks"] = args["blocks"]
            if "thread_ts" in args:
                message["thread_ts"] = args["thread_ts"]
            self.messages[(args["channel"], ts)] = message
            return {"ok": True, "channel": args["channel"], "ts": ts, "message": message}
        if method == "chat.update":
            shown = self.messages[(args["channel"], args["ts"])]
            shown.update({key: args[key] for key in ("text", "blocks") if key in args})
            return {
                "ok": True,
                "channel": args["channel"],
                "ts": args["ts"],
                "text": args.get("text"),
            }
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": f"1700000000.{next(self._ts):06d}"}
        if method in ("views.open", "views.publish"):
            view = dict(args["view"])
            view.update({"id": f"V{next(self._ts):08d}", "team_id": "T0TEAM", "hash": "1.abc"})
            return {"ok": True, "view": view}
        return {"ok": False, "error": "unknown_method"}

    def _validate(self, method: str, args: dict[str, Any]) -> list[str]:
        problems: list[str] = []
        if "blocks" in args:
            blocks = args["blocks"]
            if len(blocks) > MAX_MESSAGE_BLOCKS:
                problems.append(f"{len(blocks)} blocks, more than {MAX_MESSAGE_BLOCKS}")
            problems += _check_blocks(blocks)
        if "text" in args and len(str(args["text"])) > 40_000:
            problems.append("text longer than 40,000 characters")
        if "view" in args:
            view = args["view"]
            if len(view.get("blocks", [])) > MAX_VIEW_BLOCKS:
                problems.append(f"view has more than {MAX_VIEW_BLOCKS} blocks")
            problems += _check_model(lambda: View(**view).to_dict(), "view")
            problems += _check_blocks(view.get("blocks", []))
        if method in ("chat.postMessage", "chat.postEphemeral") and not args.get("channel"):
            problems.append("channel_not_found")
        return problems


async def _arguments(request: web.Request) -> dict[str, Any]:
    """The call's arguments, whether slack_sdk sent JSON or a form (blocks/view as JSON text)."""
    if request.content_type == "application/json":
        data: dict[str, Any] = await request.json()
        return data
    form = await request.post()
    args: dict[str, Any] = {key: str(value) for key, value in form.items()}
    args.update({key: value for key, value in request.query.items()})
    for key in ("blocks", "view"):
        if isinstance(args.get(key), str):
            args[key] = json.loads(args[key])
    return args


def _check_model(build: Any, what: str) -> list[str]:
    try:
        # slack_sdk warns about unknown fields; here such a warning is a failed check.
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            build()
    except Exception as error:
        return [f"{what}: {type(error).__name__}: {error}"]
    return []


def _check_blocks(blocks: list[dict[str, Any]]) -> list[str]:
    problems: list[str] = []
    for index, block in enumerate(blocks):
        parsed = Block.parse(block)
        if parsed is None:
            problems.append(f"block {index}: unknown block {block.get('type')!r}")
            continue
        problems += _check_model(parsed.to_dict, f"block {index} ({block.get('type')})")
        problems += [f"block {index}: {p}" for p in _check_limits(block)]
    return problems


def _check_limits(node: Any) -> Iterator[str]:
    """Slack's per-field limits that slack_sdk.models does not check everywhere."""
    if isinstance(node, dict):
        if node.get("type") in ("mrkdwn", "plain_text") and len(node.get("text", "")) > MAX_TEXT:
            yield f"text object of {len(node['text'])} characters"
        if node.get("type") == "button" and len(node.get("value", "")) > MAX_BUTTON_VALUE:
            yield f"button value of {len(node['value'])} characters"
        for value in node.values():
            yield from _check_limits(value)
    elif isinstance(node, list):
        for item in node:
            yield from _check_limits(item)
