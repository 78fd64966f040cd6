"""`Notifier` for Microsoft Teams: post, update and reply to escalation cards in channels."""

from __future__ import annotations

from typing import Any

from botbuilder.core import MessageFactory, TurnContext
from botbuilder.integration.aiohttp import CloudAdapter
from botbuilder.schema import (
    Attachment,
    ChannelAccount,
    ConversationAccount,
    ConversationParameters,
    ConversationReference,
    Mention,
)

from bot.cards import Card
from bot.digest import DigestReport
from bot.digest import render_adaptive_card as render_digest_card
from bot.notifier import MessageRef, NotFound
from bot.teams.adaptive_card import (
    ADAPTIVE_CARD_CONTENT_TYPE,
    render_adaptive_card,
    teams_mention,
)
from bot.teams.channels import ChannelDirectory
from bot.teams.errors import teams_errors
from bot.teams.throttle import ConversationThrottle

SURFACE = "teams"
TEAMS_CHANNEL_ID = "msteams"
_THREAD_MARKER = ";messageid="


def thread_id(channel: str, message_id: str) -> str:
    """The conversation id of a channel message's reply thread."""
    return f"{channel}{_THREAD_MARKER}{message_id}"


def split_thread_id(conversation_id: str) -> tuple[str, str | None]:
    """Channel id and root message id of a conversation id (no message id for a channel)."""
    channel, _, message_id = conversation_id.partition(_THREAD_MARKER)
    return channel, message_id or None


def card_attachment(card: Card) -> Attachment:
    """The escalation card as a Bot Framework attachment."""
    return Attachment(content_type=ADAPTIVE_CARD_CONTENT_TYPE, content=render_adaptive_card(card))


class TeamsNotifier:
    """Posts escalation cards to Teams channels through the Bot Connector.

    Every method raises RateLimited, Unavailable, NotFound or Forbidden (bot/notifier.py); the
    delivery outbox retries the first two.
    """

    surface = SURFACE

    def __init__(
        self,
        adapter: CloudAdapter,
        app_id: str,
        channels: ChannelDirectory,
        throttle: ConversationThrottle | None = None,
    ) -> None:
        self._adapter = adapter
        self._app_id = app_id
        self._channels = channels
        self._throttle = throttle or ConversationThrottle()

    async def _reference(self, channel: str) -> dict[str, Any]:
        reference = await self._channels.get(channel)
        if reference is None:
            raise NotFound(
                f"Teams channel {channel} is unknown: add the bot to its team, then check the "
                "channel id in rules.yaml"
            )
        return reference

    def _conversation(
        self, reference: dict[str, Any], conversation_id: str
    ) -> ConversationReference:
        return ConversationReference(
            channel_id=TEAMS_CHANNEL_ID,
            service_url=reference["service_url"],
            bot=ChannelAccount(id=reference.get("bot_id"), name=reference.get("bot_name")),
            conversation=ConversationAccount(
                id=conversation_id,
                is_group=True,
                conversation_type="channel",
                tenant_id=reference.get("tenant_id"),
            ),
        )

    async def post(self, card: Card, channel: str) -> MessageRef:
        """Post a new card as a new thread in the channel."""
        return await self.post_attachment(card_attachment(card), channel)

    async def post_attachment(self, attachment: Attachment, channel: str) -> MessageRef:
        """Start a new thread in the channel with one attachment (a card or a digest)."""
        reference = await self._reference(channel)
        self._throttle.acquire(channel)
        activity = MessageFactory.attachment(attachment)
        parameters = ConversationParameters(
            is_group=True,
            bot=ChannelAccount(id=reference.get("bot_id")),
            channel_data={"channel": {"id": channel}, "tenant": {"id": reference.get("tenant_id")}},
            activity=activity,
            tenant_id=reference.get("tenant_id"),
        )
        created: list[str] = []

        async def remember(turn_context: TurnContext) -> None:
            # Teams names the new thread "<channel>;messageid=<root activity id>".
            _, root = split_thread_id(turn_context.activity.conversation.id)
            created.append(root or turn_context.activity.id)

        async with teams_errors("create conversation"):
            await self._adapter.create_conversation(
                self._app_id, remember, parameters, TEAMS_CHANNEL_ID, reference["service_url"]
            )
        return MessageRef(surface=SURFACE, channel=channel, message_id=created[0])

    async def update(self, ref: MessageRef, card: Card) -> None:
        """Replace the card in place for everyone (the message keeps its activity id)."""
        reference = await self._reference(ref.channel)
        conversation = thread_id(ref.channel, ref.message_id)
        self._throttle.acquire(conversation)

        async def replace(turn_context: TurnContext) -> None:
            activity = MessageFactory.attachment(card_attachment(card))
            activity.id = ref.message_id
            await turn_context.update_activity(activity)

        async with teams_errors("update activity"):
            await self._adapter.continue_conversation(
                self._conversation(reference, conversation), replace, self._app_id
            )

    async def reply(self, ref: MessageRef, text: str, *, mention: str | None = None) -> None:
        """Add a message to the card's reply thread, with a real Teams mention when possible."""
        called = teams_mention(mention) if mention else None
        message = MessageFactory.text(f"{called.text} {text}" if called else text)
        # The SDK's ChannelAccount has no "type", so a tag mention would arrive as a user
        # mention of an unknown id: tags are named in words only in thread replies.
        if (
            called is not None
            and called.entity is not None
            and called.entity.get("mentioned", {}).get("type") != "tag"
        ):
            message.entities = [Mention.deserialize(called.entity)]
        reference = await self._reference(ref.channel)
        conversation = thread_id(ref.channel, ref.message_id)
        self._throttle.acquire(conversation)

        async def send(turn_context: TurnContext) -> None:
            # The SDK replies to the turn's activity id, which for a proactive turn is a random
            # id Teams never saw: make it the card's, so the reply hangs under the card.
            turn_context.activity.id = ref.message_id
            await turn_context.send_activity(message)

        async with teams_errors("send to conversation"):
            await self._adapter.continue_conversation(
                self._conversation(reference, conversation), send, self._app_id
            )


class TeamsDigestPublisher:
    """Posts hand-off digests to Teams channels as Adaptive Cards."""

    surface = SURFACE

    def __init__(self, notifier: TeamsNotifier) -> None:
        self._notifier = notifier

    async def post_digest(self, report: DigestReport, channel: str) -> str:
        """A new thread in the channel holding the digest card; returns its message id."""
        attachment = Attachment(
            content_type=ADAPTIVE_CARD_CONTENT_TYPE, content=render_digest_card(report)
        )
        ref = await self._notifier.post_attachment(attachment, channel)
        return ref.message_id
