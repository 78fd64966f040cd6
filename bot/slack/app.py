"""The Slack app: bolt's AsyncApp in HTTP mode, mounted on the service's aiohttp server.

Each handler turns the click or command into one `Handoff` operation and answers Slack once that
operation is committed: one local database statement, well inside the 3 seconds Slack waits. A
click is therefore never acknowledged and then lost (a crash after an early ack would drop it
silently; Slack instead shows the agent that the click failed). Card updates for everyone go
through the delivery outbox; the handlers only tell the acting user, privately, when the action
was refused.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.cards import CardAction, CardStatus
from bot.handoff import ActionResult, Actor, Handoff
from bot.slack.blocks import (
    NOTE_BLOCK,
    OPEN_PLATFORM_ACTION,
    OUTCOME_BLOCK,
    OUTCOME_LABELS,
    RESOLVE_MODAL_CALLBACK,
    UNKNOWN_ESCALATION,
    home_view,
    parse_escalation_id,
    queue_message,
    resolve_modal,
    stats_message,
)
from bot.slack.notifier import SURFACE, SlackNotifier, create_web_client
from bot.slack.settings import SlackSettings

logger = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
COMMAND = "/escalations"
COMMAND_HELP = (
    "`/escalations` or `/escalations list`: open escalations\n"
    "`/escalations claim 42`: claim escalation #42\n"
    "`/escalations stats`: today's numbers"
)

Body = dict[str, Any]
Operation = Callable[[int, Actor], Awaitable[ActionResult]]


@dataclass(frozen=True, slots=True)
class SlackIntegration:
    """The Slack surface of the service: the notifier for the outbox and the HTTP routes."""

    app: AsyncApp
    notifier: SlackNotifier

    def routes(self) -> list[web.RouteDef]:
        """POST /slack/events: events, interactivity and slash commands, signature-checked."""
        return [web.post(EVENTS_PATH, self._handle)]

    async def _handle(self, request: web.Request) -> web.Response:
        bolt_response = await self.app.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(bolt_response)


def _clicking_actor(body: Body) -> Actor:
    user = body.get("user") or {}
    user_id = str(user.get("id", ""))
    name = user.get("username") or user.get("name") or user_id
    return Actor(surface=SURFACE, user_id=user_id, display_name=str(name))


def _command_actor(body: Body) -> Actor:
    user_id = str(body.get("user_id", ""))
    return Actor(
        surface=SURFACE, user_id=user_id, display_name=str(body.get("user_name") or user_id)
    )


def _clicked_value(body: Body) -> object:
    actions = body.get("actions") or [{}]
    return actions[0].get("value")


def _from_home(body: Body) -> bool:
    view = body.get("view") or {}
    return bool(view.get("type") == "home")


def _channel_of(body: Body) -> str | None:
    channel = body.get("channel") or {}
    return str(channel["id"]) if "id" in channel else None


def _metadata(view: Body) -> Body:
    try:
        data = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def create_slack_app(handoff: Handoff, settings: SlackSettings) -> SlackIntegration:
    """The bolt app wired to `handoff`, and the notifier the outbox delivers cards with."""
    client = create_web_client(settings)
    # AsyncApp never calls auth.test while being built (unlike the sync App), so start-up needs
    # no network; bolt asks auth.test lazily on the first request and caches the answer.
    app = AsyncApp(
        client=client,
        signing_secret=settings.signing_secret,
        logger=logger,
        # Answer the HTTP request when the handler is done, not at ack(): see the module doc.
        process_before_response=True,
    )

    async def publish_home(client: AsyncWebClient, actor: Actor, notice: str | None) -> None:
        mine = await handoff.claimed_by(actor)
        queue = await handoff.open_queue(await handoff.teams_of(actor))
        stats = await handoff.today()
        view = home_view(mine, queue, stats, notice)
        await client.views_publish(user_id=actor.user_id, view=view)

    async def tell(client: AsyncWebClient, body: Body, actor: Actor, text: str | None) -> None:
        """Answer the clicking user only: in the channel (ephemeral) or on their App Home."""
        if _from_home(body):
            await publish_home(client, actor, text)
            return
        channel = _channel_of(body)
        if text and channel:
            await client.chat_postEphemeral(channel=channel, user=actor.user_id, text=text)

    @app.action(CardAction.CLAIM)
    async def claim(ack: AsyncAck, body: Body, client: AsyncWebClient) -> None:
        await ack()
        await act(body, client, handoff.claim)

    async def act(
        body: Body,
        client: AsyncWebClient,
        operation: Callable[[int, Actor], Awaitable[ActionResult]],
    ) -> None:
        """One button, one hand-off operation; only a refusal is said, privately."""
        actor = _clicking_actor(body)
        escalation_id = parse_escalation_id(_clicked_value(body))
        if escalation_id is None:
            await tell(client, body, actor, UNKNOWN_ESCALATION)
            return
        result = await operation(escalation_id, actor)
        refusal = None if result.ok else (result.message if result.card else UNKNOWN_ESCALATION)
        await tell(client, body, actor, refusal)

    @app.action(CardAction.RELEASE)
    async def release(ack: AsyncAck, body: Body, client: AsyncWebClient) -> None:
        await ack()
        await act(body, client, handoff.release)

    @app.action(CardAction.STILL_ON_IT)
    async def still_on_it(ack: AsyncAck, body: Body, client: AsyncWebClient) -> None:
        await ack()
        await act(body, client, handoff.still_on_it)

    @app.action(CardAction.HAND_BACK)
    async def hand_back(ack: AsyncAck, body: Body, client: AsyncWebClient) -> None:
        await ack()
        await act(body, client, handoff.hand_back)

    @app.action(CardAction.RESOLVE)
    async def open_resolve_modal(ack: AsyncAck, body: Body, client: AsyncWebClient) -> None:
        await ack()
        actor = _clicking_actor(body)
        escalation_id = parse_escalation_id(_clicked_value(body))
        card = await handoff.card(escalation_id) if escalation_id is not None else None
        if card is None:
            await tell(client, body, actor, UNKNOWN_ESCALATION)
            return
        if card.status is not CardStatus.CLAIMED:
            await tell(client, body, actor, f"Escalation #{card.escalation_id} is {card.status}.")
            return
        view = resolve_modal(card, channel=_channel_of(body), from_home=_from_home(body))
        await client.views_open(trigger_id=body["trigger_id"], view=view)

    @app.view(RESOLVE_MODAL_CALLBACK)
    async def resolve_submitted(ack: AsyncAck, body: Body, client: AsyncWebClient) -> None:
        # The outcome is checked before acknowledging, so a refusal shows inside the modal.
        actor = _clicking_actor(body)
        view = body.get("view") or {}
        metadata = _metadata(view)
        values = (view.get("state") or {}).get("values") or {}
        selected = (values.get(OUTCOME_BLOCK, {}).get(OUTCOME_BLOCK) or {}).get("selected_option")
        outcome = str((selected or {}).get("value", ""))
        note = (values.get(NOTE_BLOCK, {}).get(NOTE_BLOCK) or {}).get("value") or None
        escalation_id = parse_escalation_id(metadata.get("escalation_id"))
        if escalation_id is None:
            await ack(response_action="errors", errors={OUTCOME_BLOCK: UNKNOWN_ESCALATION})
            return
        if outcome not in OUTCOME_LABELS:
            await ack(response_action="errors", errors={OUTCOME_BLOCK: "Pick an outcome."})
            return
        result = await handoff.resolve(escalation_id, actor, outcome, note)
        if not result.ok:
            message = result.message if result.card else UNKNOWN_ESCALATION
            await ack(response_action="errors", errors={OUTCOME_BLOCK: message})
            return
        await ack()
        if metadata.get("home"):
            await publish_home(client, actor, f"Resolved #{escalation_id}.")

    @app.action(CardAction.OPEN_TRANSCRIPT)
    @app.action(OPEN_PLATFORM_ACTION)
    async def link_clicked(ack: AsyncAck) -> None:
        # Link buttons open in the browser; Slack still reports the click and wants an ack.
        await ack()

    @app.event("app_home_opened")
    async def home_opened(event: Body, client: AsyncWebClient) -> None:
        if event.get("tab", "home") != "home":
            return
        user_id = str(event.get("user", ""))
        await publish_home(client, Actor(SURFACE, user_id, user_id), None)

    @app.command(COMMAND)
    async def escalations_command(ack: AsyncAck, body: Body) -> None:
        # Each answer is one local query, well inside the 3 seconds, so it goes in the ack.
        actor = _command_actor(body)
        words = str(body.get("text", "")).split()
        verb = words[0].lower() if words else "list"
        if verb == "list":
            message = queue_message(await handoff.open_queue(await handoff.teams_of(actor)))
            await ack(text=message.text, blocks=message.blocks, response_type="ephemeral")
        elif verb in ("stats", "today"):
            message = stats_message(await handoff.today())
            await ack(text=message.text, blocks=message.blocks, response_type="ephemeral")
        elif verb == "claim" and len(words) == 2:
            escalation_id = parse_escalation_id(words[1].lstrip("#"))
            result = await handoff.claim(escalation_id, actor) if escalation_id else None
            if result is None or result.card is None:
                await ack(text=UNKNOWN_ESCALATION, response_type="ephemeral")
            else:
                await ack(text=result.message, response_type="ephemeral")
        else:
            await ack(text=COMMAND_HELP, response_type="ephemeral")

    return SlackIntegration(app=app, notifier=SlackNotifier(client))
