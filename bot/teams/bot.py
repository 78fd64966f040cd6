"""The Teams bot: `/api/messages` through the botbuilder adapter, card clicks, personal chat.

Every import of the Bot Framework SDK (botbuilder / botframework) lives in this package, so that
moving to its successor, the Microsoft 365 Agents SDK, touches nothing else.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from botbuilder.core import MessageFactory, TurnContext
from botbuilder.core.invoke_response import InvokeResponse
from botbuilder.integration.aiohttp import (
    CloudAdapter,
    ConfigurationBotFrameworkAuthentication,
)
from botbuilder.schema import Activity, ActivityTypes
from botframework.connector.aio import ConnectorClient
from botframework.connector.auth import (
    CertificateServiceClientCredentialsFactory,
    ClaimsIdentity,
    ConnectorFactory,
)
from msrest.serialization import Model

from bot.cards import RESOLVE_OUTCOMES, Card, CardAction, format_wait
from bot.handoff import ActionResult, Actor, Handoff
from bot.teams.adaptive_card import (
    ADAPTIVE_CARD_CONTENT_TYPE,
    NOTE_INPUT_ID,
    OUTCOME_INPUT_ID,
    render_adaptive_card,
    status_line,
)
from bot.teams.channels import ChannelDirectory
from bot.teams.notifier import SURFACE, TeamsNotifier, split_thread_id
from bot.teams.settings import TeamsSettings

log = logging.getLogger(__name__)

CARD_ACTION_INVOKE = "adaptiveCard/action"
_MESSAGE_RESPONSE = "application/vnd.microsoft.activity.message"
_ERROR_RESPONSE = "application/vnd.microsoft.error"
_MENTION = re.compile(r"<at>.*?</at>", re.IGNORECASE)
# Teams events after which the bot (again) knows a channel it can post to.
_CHANNEL_EVENTS = {"teamMemberAdded", "channelCreated", "channelRenamed", "channelRestored"}

HELP = (
    "I post escalation cards to channels and keep them up to date. In a personal chat, ask me "
    "for **my escalations**, the **queue** or today's **stats**. In a channel, mention me with "
    "**channel id** to get the id to put in rules.yaml."
)


class _AuthConfiguration:
    """The attribute bag botbuilder's configuration classes read."""

    def __init__(self, settings: TeamsSettings) -> None:
        self.APP_ID = settings.app_id
        self.APP_PASSWORD = settings.password or ""
        self.APP_TENANTID = settings.tenant_id or ""
        self.APP_TYPE = settings.app_type


class _SingleAttemptConnectorFactory(ConnectorFactory):  # type: ignore[misc]
    """Connector clients that make each call once.

    The SDK's HTTP layer retries 5xx and connection errors itself, sleeping in a worker thread;
    retries and backoff belong to the delivery outbox, which must see every failure at once.
    """

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    async def create(self, service_url: str, audience: str | None = None) -> ConnectorClient:
        client = await self._inner.create(service_url, audience)
        client.config.retry_policy.retries = 0
        return client


class _Authentication(ConfigurationBotFrameworkAuthentication):  # type: ignore[misc]
    def create_connector_factory(self, claims_identity: ClaimsIdentity) -> ConnectorFactory:
        return _SingleAttemptConnectorFactory(super().create_connector_factory(claims_identity))


def _adapter(settings: TeamsSettings) -> CloudAdapter:
    credentials = None
    if settings.app_id and settings.certificate_private_key and settings.certificate_thumbprint:
        credentials = CertificateServiceClientCredentialsFactory(
            settings.certificate_thumbprint,
            settings.certificate_private_key,
            settings.app_id,
            settings.tenant_id,
        )
    # With an empty app id the SDK treats authentication as disabled; settings only allow that
    # in the explicit local-testing mode.
    authentication = _Authentication(_AuthConfiguration(settings), credentials_factory=credentials)
    return CloudAdapter(authentication)


def _actor(activity: Activity) -> Actor:
    sender = activity.from_property
    user_id = getattr(sender, "aad_object_id", None) or sender.id
    return Actor(surface=SURFACE, user_id=user_id, display_name=sender.name or sender.id)


def _channel_reference(activity: Activity) -> tuple[str, dict[str, Any]] | None:
    """The channel an activity came from and how to post there, or None outside a team."""
    data = activity.channel_data or {}
    team = data.get("team") or {}
    channel = data.get("channel") or {}
    conversation_channel, _ = split_thread_id(activity.conversation.id)
    channel_id = channel.get("id") or (conversation_channel if team else None)
    if not channel_id:
        return None
    reference = {
        "service_url": activity.service_url,
        "tenant_id": (data.get("tenant") or {}).get("id") or activity.conversation.tenant_id,
        "team_id": team.get("id"),
        "team_name": team.get("name"),
        "channel_id": channel_id,
        # Teams leaves the General channel unnamed.
        "channel_name": channel.get("name") or "General",
        "bot_id": activity.recipient.id if activity.recipient else None,
        "bot_name": activity.recipient.name if activity.recipient else None,
    }
    return channel_id, reference


class _CardActionResponse(Model):
    """The adaptiveCard/action answer; the SDK's own model types `value` as a dict only, but a
    message response carries a string."""

    _attribute_map = {  # noqa: RUF012 - msrest reads this class attribute
        "status_code": {"key": "statusCode", "type": "int"},
        "type": {"key": "type", "type": "str"},
        "value": {"key": "value", "type": "object"},
    }

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.status_code = body["statusCode"]
        self.type = body["type"]
        self.value = body["value"]


def _invoke(body: dict[str, Any]) -> Activity:
    # The HTTP status stays 200 for refusals too: Teams reads the outcome from statusCode.
    return Activity(
        type=ActivityTypes.invoke_response,
        value=InvokeResponse(status=200, body=_CardActionResponse(body)),
    )


def _card_response(card: Card) -> dict[str, Any]:
    return {
        "statusCode": 200,
        "type": ADAPTIVE_CARD_CONTENT_TYPE,
        "value": render_adaptive_card(card),
    }


def _message_response(text: str) -> dict[str, Any]:
    return {"statusCode": 200, "type": _MESSAGE_RESPONSE, "value": text}


def _bad_request(text: str) -> dict[str, Any]:
    return {
        "statusCode": 400,
        "type": _ERROR_RESPONSE,
        "value": {"code": "BadRequest", "message": text},
    }


def _card_lines(cards: list[Card]) -> str:
    return "\n".join(
        f"- #{card.escalation_id} {card.level} — {card.customer_name or 'unknown customer'} "
        f"({card.team}): {status_line(card)}"
        for card in cards
    )


class EscalationBot:
    """Turns Teams activities into hand-off calls; knows nothing of storage or rules."""

    def __init__(self, handoff: Handoff, channels: ChannelDirectory) -> None:
        self._handoff = handoff
        self._channels = channels

    async def on_turn(self, context: TurnContext) -> None:
        """Dispatch one inbound activity."""
        activity = context.activity
        if activity.type == ActivityTypes.invoke and activity.name == CARD_ACTION_INVOKE:
            await context.send_activity(_invoke(await self._card_action(activity)))
        elif activity.type == ActivityTypes.installation_update:
            if (activity.action or "").startswith("add"):
                await self._register(activity)
        elif activity.type == ActivityTypes.conversation_update:
            event = (activity.channel_data or {}).get("eventType")
            bot_added = any(
                member.id == activity.recipient.id for member in activity.members_added or []
            )
            if bot_added or event in _CHANNEL_EVENTS:
                await self._register(activity)
        elif activity.type == ActivityTypes.message:
            await self._message(context)

    async def _register(self, activity: Activity) -> None:
        found = _channel_reference(activity)
        if found is None:
            return
        channel_id, reference = found
        await self._channels.save(channel_id, reference)
        log.info(
            "Teams channel registered: team %r, channel %r, id %s",
            reference["team_name"],
            reference["channel_name"],
            channel_id,
        )

    async def _card_action(self, activity: Activity) -> dict[str, Any]:
        action = (activity.value or {}).get("action") or {}
        data = action.get("data") or {}
        try:
            escalation_id = int(data["escalation_id"])
        except (KeyError, TypeError, ValueError):
            return _bad_request("This card has no escalation id.")
        actor = _actor(activity)
        verb = action.get("verb")
        result: ActionResult
        if verb == CardAction.CLAIM:
            result = await self._handoff.claim(escalation_id, actor)
        elif verb == CardAction.RELEASE:
            result = await self._handoff.release(escalation_id, actor)
        elif verb == CardAction.HAND_BACK:
            result = await self._handoff.hand_back(escalation_id, actor)
        elif verb == CardAction.STILL_ON_IT:
            result = await self._handoff.still_on_it(escalation_id, actor)
        elif verb == CardAction.RESOLVE:
            outcome = str(data.get(OUTCOME_INPUT_ID) or "").strip()
            if outcome not in dict(RESOLVE_OUTCOMES):
                return _message_response("Pick an outcome to resolve the escalation.")
            note = str(data.get(NOTE_INPUT_ID) or "").strip() or None
            result = await self._handoff.resolve(escalation_id, actor, outcome, note)
        else:
            return _bad_request(f"Unknown action {verb!r}.")
        if result.card is None:
            return _message_response(result.message or "This escalation no longer exists.")
        # Refused: tell the clicker privately and leave the card as everyone sees it.
        if not result.ok:
            return _message_response(result.message)
        # The card in the invoke response refreshes the clicker's view at once; everyone else's
        # view is updated by the outbox's update_card, which edits the message by its id.
        return _card_response(result.card)

    async def _message(self, context: TurnContext) -> None:
        activity = context.activity
        text = _MENTION.sub("", activity.text or "").strip().lower()
        if activity.conversation.conversation_type != "personal":
            await self._register(activity)
            if "channel id" in text:
                channel_id, _ = split_thread_id(activity.conversation.id)
                reply = f"This channel's id for rules.yaml is `{channel_id}`."
            else:
                reply = HELP
            await context.send_activity(MessageFactory.text(reply))
            return
        await context.send_activity(
            MessageFactory.text(await self._personal_answer(activity, text))
        )

    async def _personal_answer(self, activity: Activity, text: str) -> str:
        if "my escalations" in text or text in {"mine", "my"}:
            cards = await self._handoff.claimed_by(_actor(activity))
            return f"You hold {len(cards)}:\n{_card_lines(cards)}" if cards else "You hold none."
        if "queue" in text:
            teams = await self._handoff.teams_of(_actor(activity))
            cards = await self._handoff.open_queue(teams)
            if not cards:
                return "The queue is empty."
            return f"{len(cards)} waiting for an agent:\n{_card_lines(cards)}"
        if "stats" in text:
            stats = await self._handoff.today()
            median = stats.median_time_to_claim_seconds
            return (
                f"Today: {stats.opened} opened, {stats.claimed} claimed, {stats.resolved} "
                f"resolved, {stats.open_unclaimed} waiting. Median time to claim: "
                f"{format_wait(median) if median is not None else 'n/a'}."
            )
        return HELP


@dataclass(frozen=True, slots=True)
class TeamsIntegration:
    """What the service mounts: the notifier for the outbox and the `/api/messages` route."""

    settings: TeamsSettings
    adapter: CloudAdapter
    bot: EscalationBot
    notifier: TeamsNotifier
    channels: ChannelDirectory

    def routes(self) -> list[web.RouteDef]:
        """The aiohttp routes to add to the service's application."""
        return [web.post("/api/messages", self._messages)]

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        if "application/json" not in request.headers.get("Content-Type", ""):
            return web.json_response({"error": "expected an application/json activity"}, status=415)
        # The adapter validates the bearer token (unless in local-testing mode), runs the bot,
        # and answers invokes with the bot's InvokeResponse.
        response = await self.adapter.process(request, self.bot)
        return response if response is not None else web.Response(status=201)

    async def log_known_channels(self) -> dict[str, dict[str, Any]]:
        """Log every Teams channel the bot can post to, and return them."""
        known = await self.channels.all()
        if not known:
            log.info("Teams: no channel known yet; add the bot to a team to register its channels")
        for channel_id, reference in sorted(known.items()):
            log.info(
                "Teams channel known: team %r, channel %r, id %s",
                reference.get("team_name"),
                reference.get("channel_name"),
                channel_id,
            )
        return known


def create_teams_bot(
    handoff: Handoff, settings: TeamsSettings, channels: ChannelDirectory
) -> TeamsIntegration:
    """Wire the adapter, the bot and the notifier for one service."""
    adapter = _adapter(settings)
    bot = EscalationBot(handoff, channels)
    notifier = TeamsNotifier(adapter, settings.app_id, channels)
    if not settings.authenticated:
        log.warning("Teams: local-testing mode, inbound activities are NOT authenticated")
    return TeamsIntegration(
        settings=settings, adapter=adapter, bot=bot, notifier=notifier, channels=channels
    )
