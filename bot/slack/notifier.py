"""SlackNotifier: the Notifier port on Slack's Web API, with vendor errors mapped in one place."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

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

SURFACE = "slack"
DEFAULT_RETRY_AFTER = 1.0  # when a 429 comes without a usable Retry-After header

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

    async def post(self, card: Card, channel: str) -> MessageRef:
        """Post a new card; raises RateLimited, Unavailable, NotFound or Forbidden."""
        message = render_card(card)
        async with _mapped_errors():
            response = await self._client.chat_postMessage(
                channel=channel,
                text=message.text,
                blocks=message.blocks,
                unfurl_links=False,
                unfurl_media=False,
            )
        # Slack answers with the channel id even when we posted to a channel name.
        return MessageRef(SURFACE, str(response["channel"]), str(response["ts"]))

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
