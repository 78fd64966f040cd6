"""A local server that speaks the parts of Slack's Web API the app calls.

It answers with Slack's response shapes, records every call, and checks every `blocks` and
`view` payload with slack_sdk.models plus Slack's documented limits, answering `invalid_blocks`
like Slack does when one is wrong. It can be told to fail the next call of a method (429 with
Retry-After, 500, or an `ok: false` error) for fault tests.

Like Slack, it accepts a channel by name ("#support") only where Slack does (posting), answers
with the channel's id, and keeps every posted message so that `chat.update` and thread replies
must name a message that exists; `message()` shows a card as the channel sees it now.
`conversations.history` pages through a channel newest first (`oldest`, `latest`, `inclusive`,
`limit`, `cursor`) and shows message `metadata` only when asked with `include_all_metadata`;
`conversations.list` pages through the channels. Message timestamps follow `clock` when one is
given, so that `oldest` means what it means on Slack.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
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
BOT_ID = "B0BOT"
APP_ID = "A0APP"
EPOCH = 1_700_000_000  # the seconds of every ts when no clock is given
HISTORY_LIMIT = 100  # conversations.history's default page; 999 at most
LIST_LIMIT = 100  # conversations.list's default page; 1,000 at most
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
    clock: Callable[[], datetime] | None = None
    _faults: dict[str, list[Fault]] = field(default_factory=dict)
    _server: TestServer | None = None
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _ts: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    async def start(self) -> None:
        """Listen on a free local port."""
        app = web.Application()
        app.router.add_post("/api/{method}", self._handle)
        # slack_sdk reads with GET (conversations.history, conversations.list).
        app.router.add_get("/api/{method}", self._handle)
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

    def say(self, channel: str, text: str, user: str = "U0PERSON") -> str:
        """Someone writes in a channel (by id); returns the message's ts."""
        ts = self._new_ts()
        self.messages[(channel, ts)] = {"type": "message", "user": user, "text": text, "ts": ts}
        return ts

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

    def _new_ts(self) -> str:
        seconds = int(self.clock().timestamp()) if self.clock is not None else EPOCH
        return f"{seconds}.{next(self._ts):06d}"

    def _missing(self, method: str, args: dict[str, Any]) -> str | None:
        """Slack's answer when the call names a channel or message that does not exist."""
        if method not in (
            "chat.postMessage",
            "chat.update",
            "chat.postEphemeral",
            "conversations.history",
        ):
            return None
        # Slack takes "#name" when posting; editing and reading need the channel's id.
        by_name = method in ("chat.postMessage", "chat.postEphemeral")
        channel = self._channel_id(str(args.get("channel", "")), by_name=by_name)
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
            ts = self._new_ts()
            message = {
                "type": "message",
                "user": BOT_USER_ID,
                "bot_id": BOT_ID,
                "app_id": APP_ID,
                "ts": ts,
                "text": args.get("text"),
            }
            for key in ("blocks", "thread_ts"):
                if key in args:
                    message[key] = args[key]
            if "metadata" in args:
                # Slack posts the message anyway and drops bad metadata with only a warning:
                # here that is a failed check, or a lost card could never be found again.
                problems = _check_metadata(args["metadata"])
                self.invalid_payloads.extend(f"{method}: {problem}" for problem in problems)
                if not problems:
                    message["metadata"] = args["metadata"]
            self.messages[(args["channel"], ts)] = message
            return {"ok": True, "channel": args["channel"], "ts": ts, "message": message}
        if method == "conversations.history":
            return self._history(args)
        if method == "conversations.list":
            return self._list(args)
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
            return {"ok": True, "message_ts": self._new_ts()}
        if method in ("views.open", "views.publish"):
            view = dict(args["view"])
            view.update({"id": f"V{next(self._ts):08d}", "team_id": "T0TEAM", "hash": "1.abc"})
            return {"ok": True, "view": view}
        return {"ok": False, "error": "unknown_method"}

    def _history(self, args: dict[str, Any]) -> dict[str, Any]:
        """A page of the channel's messages (no thread replies), newest first."""
        inclusive = _flag(args.get("inclusive"))
        oldest = float(args.get("oldest") or 0)
        latest = float(args["latest"]) if args.get("latest") else float("inf")
        shown = [
            message
            for (where, ts), message in sorted(self.messages.items(), reverse=True)
            if where == args["channel"]
            and "thread_ts" not in message
            and (oldest <= float(ts) if inclusive else oldest < float(ts))
            and (float(ts) <= latest if inclusive else float(ts) < latest)
        ]
        start = _offset(args.get("cursor"))
        page = shown[start : start + _limit(args.get("limit"), HISTORY_LIMIT, 999)]
        with_metadata = _flag(args.get("include_all_metadata"))
        answer: dict[str, Any] = {
            "ok": True,
            "messages": [
                message if with_metadata else _without(message, "metadata") for message in page
            ],
            "has_more": start + len(page) < len(shown),
            "pin_count": 0,
            "channel_actions_ts": None,
            "channel_actions_count": 0,
        }
        if answer["has_more"]:
            answer["response_metadata"] = {"next_cursor": _cursor(start + len(page))}
        return answer

    def _list(self, args: dict[str, Any]) -> dict[str, Any]:
        """A page of the workspace's channels, with Slack's paging."""
        channels = [
            {
                "id": channel_id,
                "name": name,
                "is_channel": channel_id.startswith("C"),
                "is_group": False,
                "is_im": False,
                "is_private": channel_id.startswith("G"),
                "is_archived": False,
                "is_member": True,
                "created": EPOCH,
                "creator": "U0ADMIN",
                "name_normalized": name,
                "num_members": 3,
            }
            for name, channel_id in self.channels.items()
        ]
        start = _offset(args.get("cursor"))
        page = channels[start : start + _limit(args.get("limit"), LIST_LIMIT, 1000)]
        more = start + len(page) < len(channels)
        return {
            "ok": True,
            "channels": page,
            "response_metadata": {"next_cursor": _cursor(start + len(page)) if more else ""},
        }

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


def _check_metadata(metadata: Any) -> list[str]:
    """Slack's message metadata: an `event_type` name and an `event_payload` object."""
    if not isinstance(metadata, dict) or set(metadata) != {"event_type", "event_payload"}:
        return [f"metadata must have event_type and event_payload only: {metadata!r}"]
    event_type = metadata["event_type"]
    # Letters, digits, underscores and hyphens; not periods or other punctuation.
    if (
        not isinstance(event_type, str)
        or not event_type.replace("_", "").replace("-", "").isalnum()
    ):
        return [f"metadata event_type {event_type!r} is not a valid name"]
    if not isinstance(metadata["event_payload"], dict):
        return ["metadata event_payload is not an object"]
    return []


def _flag(value: Any) -> bool:
    """A boolean argument as slack_sdk sends it ("1"/"0") or as JSON."""
    return value in (True, 1, "1", "true")


def _limit(value: Any, default: int, most: int) -> int:
    return min(int(value), most) if value else default


def _cursor(offset: int) -> str:
    return base64.b64encode(f"offset:{offset}".encode()).decode()


def _offset(cursor: Any) -> int:
    return int(base64.b64decode(str(cursor)).decode().split(":")[1]) if cursor else 0


def _without(message: dict[str, Any], key: str) -> dict[str, Any]:
    return {name: value for name, value in message.items() if name != key}


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
