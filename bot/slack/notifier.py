"""SlackNotifier: the Notifier port on Slack's Web API, with vendor errors mapped in one place."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.cards import Card
from bot.notifier import (
    DeliveryError,
    Forbidden,
    MessageRef,
    NotFound,
    RateLimited,
    Unavailable,
)
from bot.slack.blocks import MAX_TEXT, cut, escape, render_card
from bot.slack.blocks import mention as mention_markup
from bot.slack.settings import SlackSettings

log = logging.getLogger(__name__)

SURFACE = "slack"
DEFAULT_RETRY_AFTER = 1.0  # when a 429 comes without a usable Retry-After header

# Every card carries message metadata naming its escalation, so that a card whose post was
# never recorded (the process died after Slack's answer) can be found in the channel again.
CARD_EVENT_TYPE = "escalation_card"
# Searching is bounded: a card is looked for only shortly after an attempt to post it, so it
# is among the channel's newest messages; past these pages the worker posts (and says so).
HISTORY_PAGE_SIZE = 100
HISTORY_PAGES = 10
CHANNEL_PAGE_SIZE = 200
CHANNEL_PAGES = 20
_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{2,}")

_NOT_FOUND = frozenset({"channel_not_found", "message_not_found", "thread_not_found"})
_FORBIDDEN = frozenset(
    {
        "not_in_channel",
        "invalid_auth",
        "not_authed",
        "missing_scope",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "is_archived",
        "restricted_action",
        "cant_update_message",
        "ekm_access_denied",
        "no_permission",
    }
)
_UNAVAILABLE = frozenset(
    {"fatal_error", "service_unavailable", "internal_error", "request_timeout"}
)


def create_web_client(settings: SlackSettings) -> AsyncWebClient:
    """A Web API client on the configured base URL, with slack_sdk's own retries turned off."""
    # Retries and throttling live in the delivery worker; retrying here too would multiply them.
    return AsyncWebClient(
        token=settings.bot_token,
        base_url=settings.api_url,
        timeout=10,
        retry_handlers=[],
    )


def delivery_error(error: Exception) -> DeliveryError:
    """The Notifier error type for a slack_sdk / aiohttp failure."""
    if isinstance(error, SlackApiError):
        response = error.response
        status = response.status_code
        data = response.data if isinstance(response.data, dict) else {}
        code = str(data.get("error", "")) or f"HTTP {status}"
        if status == 429 or code == "ratelimited":
            return RateLimited(_retry_after(response.headers), f"Slack: {code}")
        if status >= 500 or code in _UNAVAILABLE:
            return Unavailable(f"Slack: {code}")
        if code in _NOT_FOUND:
            return NotFound(f"Slack: {code}")
        if code in _FORBIDDEN:
            return Forbidden(f"Slack: {code}")
        # Anything else (invalid_blocks, msg_too_long...) is our bug: retrying cannot help.
        return Forbidden(f"Slack refused the request: {code}")
    return Unavailable(f"Slack unreachable: {type(error).__name__}: {error}")


def card_metadata(card: Card) -> dict[str, Any]:
    """The message metadata a card is posted with: it names the escalation, nothing personal."""
    return {"event_type": CARD_EVENT_TYPE, "event_payload": {"escalation_id": card.escalation_id}}


def _is_card_of(message: dict[str, Any], escalation_id: int, bot_id: str | None) -> bool:
    metadata = message.get("metadata")
    if not isinstance(metadata, dict) or metadata.get("event_type") != CARD_EVENT_TYPE:
        return False
    if bot_id is not None and message.get("bot_id") != bot_id:
        return False
    payload = metadata.get("event_payload")
    return isinstance(payload, dict) and payload.get("escalation_id") == escalation_id


def _is_channel_id(channel: str) -> bool:
    return _CHANNEL_ID.fullmatch(channel) is not None


def _channel_name(channel: str) -> str:
    return channel.removeprefix("#")


def _next_cursor(data: object) -> str | None:
    metadata = data.get("response_metadata") if isinstance(data, dict) else None
    cursor = metadata.get("next_cursor") if isinstance(metadata, dict) else None
    return str(cursor) if cursor else None


def _retry_after(headers: object) -> float:
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        seconds = float(value) if value is not None else DEFAULT_RETRY_AFTER
    except ValueError:
        return DEFAULT_RETRY_AFTER
    return max(seconds, 0.0)


@asynccontextmanager
async def _mapped_errors() -> AsyncIterator[None]:
    try:
        yield
    except (SlackClientError, aiohttp.ClientError, TimeoutError) as error:
        raise delivery_error(error) from error


class SlackNotifier:
    """Posts, edits and threads escalation cards in Slack channels."""

    surface = SURFACE

    def __init__(self, client: AsyncWebClient) -> None:
        self._client = client
        # Channel names ("support-escalations") to ids, learnt from posts and conversations.list:
        # conversations.history takes only an id.
        self._channel_ids: dict[str, str] = {}
        self._bot_id: str | None = None

    async def post(self, card: Card, channel: str) -> MessageRef:
        """Post a new card; raises RateLimited, Unavailable, NotFound or Forbidden."""
        message = render_card(card)
        async with _mapped_errors():
            response = await self._client.chat_postMessage(
                channel=channel,
                text=message.text,
                blocks=message.blocks,
                metadata=card_metadata(card),
                unfurl_links=False,
                unfurl_media=False,
            )
        # Slack answers with the channel id even when we posted to a channel name.
        channel_id = str(response["channel"])
        if not _is_channel_id(channel):
            self._channel_ids[_channel_name(channel)] = channel_id
        return MessageRef(SURFACE, channel_id, str(response["ts"]))

    async def find_posted(self, card: Card, channel: str, since: datetime) -> MessageRef | None:
        """The card's message in `channel` posted at or after `since`, found by its metadata.

        Reads the channel's history newest first, a bounded number of pages; raises as `post`
        (Forbidden when the bot may not read the channel: `not_in_channel`, `missing_scope`).
        """
        async with _mapped_errors():
            channel_id = await self._resolve(channel)
            bot_id = await self._own_bot_id()
            cursor: str | None = None
            for _ in range(HISTORY_PAGES):
                response = await self._client.conversations_history(
                    channel=channel_id,
                    oldest=f"{since.timestamp():.6f}",
                    inclusive=True,
                    limit=HISTORY_PAGE_SIZE,
                    include_all_metadata=True,
                    cursor=cursor,
                )
                for message in response.get("messages") or []:
                    if _is_card_of(message, card.escalation_id, bot_id):
                        return MessageRef(SURFACE, channel_id, str(message["ts"]))
                cursor = _next_cursor(response.data)
                if not cursor:
                    return None
        log.warning(
            "escalation %s: %d pages of %s since %s searched without reaching the start; "
            "taking the card as not posted",
            card.escalation_id,
            HISTORY_PAGES,
            channel,
            since.isoformat(),
        )
        return None

    async def _resolve(self, channel: str) -> str:
        """The channel's id; a name is looked up once with conversations.list, then cached."""
        if _is_channel_id(channel):
            return channel
        name = _channel_name(channel)
        if name in self._channel_ids:
            return self._channel_ids[name]
        cursor: str | None = None
        for _ in range(CHANNEL_PAGES):
            response = await self._client.conversations_list(
                types="public_channel,private_channel",
                exclude_archived=True,
                limit=CHANNEL_PAGE_SIZE,
                cursor=cursor,
            )
            for found in response.get("channels") or []:
                self._channel_ids[str(found["name"])] = str(found["id"])
            cursor = _next_cursor(response.data)
            if name in self._channel_ids or not cursor:
                break
        if name not in self._channel_ids:
            raise NotFound(f"Slack: no channel named #{name} that the app can see")
        return self._channel_ids[name]

    async def _own_bot_id(self) -> str | None:
        """This app's bot id, so that another app's look-alike metadata is never taken."""
        if self._bot_id is None:
            response = await self._client.auth_test()
            found = response.get("bot_id")
            self._bot_id = str(found) if found else None
        return self._bot_id

    async def update(self, ref: MessageRef, card: Card) -> None:
        """Replace the card in place for everyone; raises as `post`."""
        message = render_card(card)
        async with _mapped_errors():
            await self._client.chat_update(
                channel=ref.channel, ts=ref.message_id, text=message.text, blocks=message.blocks
            )

    async def reply(self, ref: MessageRef, text: str, *, mention: str | None = None) -> None:
        """Add a message in the card's thread (customer text is escaped); raises as `post`."""
        called = f"{mention_markup(mention)} " if mention else ""
        async with _mapped_errors():
            await self._client.chat_postMessage(
                channel=ref.channel,
                thread_ts=ref.message_id,
                text=called + cut(escape(text), MAX_TEXT - len(called)),
                unfurl_links=False,
                unfurl_media=False,
            )
