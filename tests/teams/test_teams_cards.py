"""Stories about escalation cards in a Teams channel."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from typing import Any

import pytest

from bot.cards import CardAction, CardStatus
from bot.notifier import MessageRef, NotFound, RateLimited
from tests.teams.teams_activities import ANA, BEN, ESCALATIONS_CHANNEL, LEAD, card_click
from tests.teams.teams_fake_connector import card_errors
from tests.teams.teams_world import OPENED_AT, TeamsWorld, sample_card


def _texts(card: dict[str, Any]) -> str:
    """All the text a reader sees on a card, in one string."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key in ("text", "title", "value"):
                if isinstance(node.get(key), str):
                    found.append(node[key])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(card)
    return "\n".join(found)


def _verbs(card: dict[str, Any]) -> list[str]:
    return [action.get("verb") or action["title"] for action in card.get("actions", [])]


async def _post_card(world: TeamsWorld, escalation_id: int = 1) -> MessageRef:
    card = sample_card(escalation_id)
    world.handoff.add(card)
    return await world.integration.notifier.post(card, ESCALATIONS_CHANNEL)


async def _click(world: TeamsWorld, *args: Any, **kwargs: Any) -> dict[str, Any]:
    response = await world.send(card_click(world.service_url, *args, **kwargs))
    assert response.status == 200
    body: dict[str, Any] = await response.json()
    if body["type"] == "application/vnd.microsoft.card.adaptive":
        assert card_errors(body["value"]) == []
    return body


async def test_escalation_card_is_posted_to_the_mapped_channel(world: TeamsWorld) -> None:
    await world.install()

    ref = await _post_card(world)

    [created] = world.connector.successful("create_conversation")
    assert created.body["channelData"]["channel"]["id"] == ESCALATIONS_CHANNEL
    assert ref == MessageRef("teams", ESCALATIONS_CHANNEL, ref.message_id)
    card = world.connector.messages[ref.message_id]["attachments"][0]["content"]
    assert card_errors(card) == []
    text = _texts(card)
    for expected in (
        "CRITICAL escalation #1 — Dana Cruz (gold)",
        "Asked for a human",
        "3 bot fallbacks in a row",
        "My order #A-1042 never arrived",
        "I want to talk to a human",
        "Open — waiting for an agent",
    ):
        assert expected in text
    assert _verbs(card) == ["escalation_claim", "Open transcript", "Open in platform"]


async def test_posting_to_a_channel_the_bot_was_never_added_to_is_not_found(
    world: TeamsWorld,
) -> None:
    with pytest.raises(NotFound, match="add the bot to its team"):
        await world.integration.notifier.post(sample_card(), "19:elsewhere@thread.tacv2")


async def test_claim_updates_the_card_in_place_for_everyone(world: TeamsWorld) -> None:
    await world.install()
    ref = await _post_card(world)
    world.handoff.now = OPENED_AT + timedelta(minutes=2, seconds=10)

    answer = await _click(world, ANA, CardAction.CLAIM, 1, ref.message_id)
    await world.deliver_updates(ref)

    expected = "Claimed by Ana Lima at 2026-03-02 10:02 UTC; the customer waited 2m 10s"
    assert expected in _texts(answer["value"])
    [update] = world.connector.successful("update")
    assert update.activity_id == ref.message_id
    assert update.conversation_id == f"{ESCALATIONS_CHANNEL};messageid={ref.message_id}"
    everyone_sees = world.connector.messages[ref.message_id]["attachments"][0]["content"]
    assert expected in _texts(everyone_sees)
    assert _verbs(everyone_sees) == [
        "escalation_release",
        "Resolve",
        "Open transcript",
        "Open in platform",
    ]


async def test_second_agent_is_told_who_has_it_and_the_card_stays(world: TeamsWorld) -> None:
    await world.install()
    ref = await _post_card(world)
    await _click(world, ANA, CardAction.CLAIM, 1, ref.message_id)
    await world.deliver_updates(ref)
    world.handoff.now = OPENED_AT + timedelta(minutes=3)

    answer = await _click(world, BEN, CardAction.CLAIM, 1, ref.message_id)
    await world.deliver_updates(ref)

    assert answer == {
        "statusCode": 200,
        "type": "application/vnd.microsoft.activity.message",
        "value": "Ana Lima claimed this 3m 00s ago.",
    }
    assert len(world.connector.successful("update")) == 1


async def test_two_agents_claiming_at_once_one_wins(world: TeamsWorld) -> None:
    await world.install()
    ref = await _post_card(world)

    answers = await asyncio.gather(
        _click(world, ANA, CardAction.CLAIM, 1, ref.message_id),
        _click(world, BEN, CardAction.CLAIM, 1, ref.message_id),
    )
    await world.deliver_updates(ref)

    kinds = sorted(answer["type"] for answer in answers)
    assert kinds == [
        "application/vnd.microsoft.activity.message",
        "application/vnd.microsoft.card.adaptive",
    ]
    winner = world.handoff.cards[1].claimed_by
    loser_message = next(a["value"] for a in answers if isinstance(a["value"], str))
    assert loser_message.startswith(f"{winner} claimed this")
    assert len(world.connector.successful("update")) == 1


async def test_claimer_releases_the_escalation_back_to_the_queue(world: TeamsWorld) -> None:
    await world.install()
    ref = await _post_card(world)
    await _click(world, ANA, CardAction.CLAIM, 1, ref.message_id)

    answer = await _click(world, ANA, CardAction.RELEASE, 1, ref.message_id)
    await world.deliver_updates(ref)

    assert "Open — waiting for an agent" in _texts(answer["value"])
    everyone_sees = world.connector.messages[ref.message_id]["attachments"][0]["content"]
    assert _verbs(everyone_sees)[0] == "escalation_claim"
    assert world.handoff.cards[1].status is CardStatus.OPEN


async def test_only_the_claimer_or_an_admin_can_release(world: TeamsWorld) -> None:
    await world.install()
    ref = await _post_card(world)
    await _click(world, ANA, CardAction.CLAIM, 1, ref.message_id)

    refused = await _click(world, BEN, CardAction.RELEASE, 1, ref.message_id)
    allowed = await _click(world, LEAD, CardAction.RELEASE, 1, ref.message_id)

    assert refused["value"] == "Only Ana Lima or an admin can release this."
    assert allowed["type"] == "application/vnd.microsoft.card.adaptive"


async def test_claimer_resolves_with_an_outcome_and_a_note(world: TeamsWorld) -> None:
    await world.install()
    ref = await _post_card(world)
    await _click(world, ANA, CardAction.CLAIM, 1, ref.message_id)
    world.handoff.now = OPENED_AT + timedelta(minutes=20)

    inputs = {"outcome": "resolved", "note": "Refunded the duplicate charge; reshipped."}
    answer = await _click(world, ANA, CardAction.RESOLVE, 1, ref.message_id, inputs=inputs)
    await world.deliver_updates(ref)

    text = _texts(answer["value"])
    assert "Resolved by Ana Lima at 2026-03-02 10:20 UTC (resolved)" in text
    assert "Refunded the duplicate charge; reshipped." in text
    everyone_sees = world.connector.messages[ref.message_id]["attachments"][0]["content"]
    assert _verbs(everyone_sees) == ["Open transcript", "Open in platform"]
    resolved = world.handoff.cards[1]
    assert (resolved.outcome, resolved.note) == ("resolved", inputs["note"])


async def test_someone_else_cannot_resolve(world: TeamsWorld) -> None:
    await world.install()
    ref = await _post_card(world)
    await _click(world, ANA, CardAction.CLAIM, 1, ref.message_id)

    answer = await _click(
        world, BEN, CardAction.RESOLVE, 1, ref.message_id, inputs={"outcome": "resolved"}
    )

    assert answer["value"] == "Only Ana Lima or an admin can resolve this."
    assert world.handoff.cards[1].status is CardStatus.CLAIMED


async def test_teams_429_then_200_delivers_exactly_one_card(world: TeamsWorld) -> None:
    await world.install()
    world.connector.fail_next(429, {"Retry-After": "3"})
    card = sample_card()

    with pytest.raises(RateLimited) as limited:
        await world.integration.notifier.post(card, ESCALATIONS_CHANNEL)
    # The outbox waits retry_after and tries again; here the test plays the outbox.
    assert limited.value.retry_after == 3
    ref = await world.integration.notifier.post(card, ESCALATIONS_CHANNEL)

    posts = [c for c in world.connector.calls if c.operation == "create_conversation"]
    assert [call.status for call in posts] == [429, 200]
    assert list(world.connector.messages) == [ref.message_id]


async def test_new_customer_messages_go_to_the_cards_thread(world: TeamsWorld) -> None:
    await world.install()
    ref = await _post_card(world)

    await world.integration.notifier.reply(ref, "Dana: hello?? anyone there")

    thread = world.connector.threads[f"{ESCALATIONS_CHANNEL};messageid={ref.message_id}"]
    assert [message["text"] for message in thread] == ["Dana: hello?? anyone there"]


async def test_an_upgrade_edits_the_card(world: TeamsWorld) -> None:
    await world.install()
    ref = await _post_card(world)
    upgraded = dataclasses.replace(
        sample_card(), level="severe", notices=("Upgraded to severe at 10:05",)
    )

    await world.integration.notifier.update(ref, upgraded)

    card = world.connector.messages[ref.message_id]["attachments"][0]["content"]
    assert "SEVERE escalation #1" in _texts(card)
    assert "Upgraded to severe at 10:05" in _texts(card)
