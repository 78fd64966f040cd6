"""Stories about escalation cards in a Teams channel, through the whole service.

A signed webhook post opens the escalation, the delivery worker posts the card through the real
Teams notifier to the fake Bot Connector, and agents click buttons by posting invokes to the same
service's /api/messages; the real hand-off service decides, in the test's database.
"""

from __future__ import annotations

import asyncio

import pytest

from bot.cards import CardAction
from storage import escalations
from tests.bot.conftest import conversation, message
from tests.teams.teams_activities import ANA, BEN, ESCALATIONS_CHANNEL, LEAD
from tests.teams.teams_world import MESSAGE, TeamsWorld, buttons, card_text

CLAIMED_BUTTONS = ["escalation_release", "escalation_hand_back", "Resolve", "Open transcript"]


def _card_posts(world: TeamsWorld) -> list[int]:
    """What Teams answered each attempt to post a card."""
    return [c.status for c in world.connector.calls if c.operation == "create_conversation"]


async def _card_in_channel(world: TeamsWorld) -> tuple[int, str]:
    """The bot is installed, an angry customer escalates, the worker posts the card."""
    await world.install()
    escalation_id = await world.escalate()
    await world.deliver()
    return escalation_id, world.card_message_id(escalation_id)


async def test_an_angry_conversation_becomes_one_card_in_the_teams_channel(
    world: TeamsWorld,
) -> None:
    await world.install()

    escalation_id = await world.escalate()
    await world.deliver()
    await world.deliver()  # nothing is posted twice

    [created] = world.connector.successful("create_conversation")
    assert created.body["channelData"]["channel"]["id"] == ESCALATIONS_CHANNEL
    message_id = world.card_message_id(escalation_id)
    card = world.everyone_sees(message_id)
    text = card_text(card)
    assert f"escalation #{escalation_id} — Ana (standard)" in text
    assert "Open — waiting for an agent" in text
    assert "I want to talk to a real person now" in text
    assert buttons(card) == ["escalation_claim", "Open transcript"]
    [transcript] = [a for a in card["actions"] if a["title"] == "Open transcript"]
    assert transcript["url"] == "https://escalations.example.com/conversations/c-angry"
    assert list(world.connector.messages) == [message_id]


async def test_a_card_for_a_channel_the_bot_was_never_added_to_is_given_up_with_a_reason(
    world: TeamsWorld, caplog: pytest.LogCaptureFixture
) -> None:
    escalation_id = await world.escalate()

    await world.deliver()
    world.clock.advance(minutes=10)

    assert await world.deliver() == 0  # not retried: Teams would refuse it every time
    assert world.connector.calls == []
    with world.database.session() as session:
        assert escalations.card_messages(session=session, escalation_id=escalation_id) == []
    assert f"Teams channel {ESCALATIONS_CHANNEL} is unknown: add the bot to its team" in caplog.text


async def test_claim_is_stored_and_updates_the_card_in_place_for_everyone(
    world: TeamsWorld,
) -> None:
    escalation_id, message_id = await _card_in_channel(world)
    world.clock.advance(minutes=2, seconds=10)

    answer = await world.click(ANA, CardAction.CLAIM, escalation_id)

    record = world.escalation(escalation_id)
    assert (record.status, record.claimed_by, record.claimed_by_name) == (
        "claimed",
        ANA.aad_object_id,
        "Ana Lima",
    )
    claimed = "Claimed by Ana Lima at 2026-11-24 10:03 UTC; the customer waited 2m 10s"
    assert claimed in card_text(answer["value"])  # the clicker sees it at once
    assert world.connector.successful("update") == []
    await world.deliver()
    [update] = world.connector.successful("update")
    assert update.activity_id == message_id
    assert update.conversation_id == f"{ESCALATIONS_CHANNEL};messageid={message_id}"
    everyone_sees = world.everyone_sees(message_id)
    assert claimed in card_text(everyone_sees)
    assert buttons(everyone_sees) == CLAIMED_BUTTONS


async def test_two_agents_claiming_at_once_exactly_one_wins(world: TeamsWorld) -> None:
    escalation_id, message_id = await _card_in_channel(world)
    world.clock.advance(minutes=1)

    answers = await asyncio.gather(
        world.click(ANA, CardAction.CLAIM, escalation_id),
        world.click(BEN, CardAction.CLAIM, escalation_id),
    )
    await world.deliver()

    winner = world.escalation(escalation_id).claimed_by_name
    assert winner in {"Ana Lima", "Ben Okafor"}
    [won] = [answer for answer in answers if answer["type"] != MESSAGE]
    [lost] = [answer for answer in answers if answer["type"] == MESSAGE]
    assert f"Claimed by {winner}" in card_text(won["value"])
    # The loser is told who has it, and gets no card: theirs stays as it was until the update.
    assert lost == {"statusCode": 200, "type": MESSAGE, "value": f"{winner} claimed this 0s ago."}
    assert len(world.connector.successful("update")) == 1
    assert f"Claimed by {winner}" in card_text(world.everyone_sees(message_id))


async def test_a_second_agent_is_told_who_has_it_and_nothing_changes(world: TeamsWorld) -> None:
    escalation_id, _message_id = await _card_in_channel(world)
    await world.click(ANA, CardAction.CLAIM, escalation_id)
    await world.deliver()
    world.clock.advance(minutes=3)

    answer = await world.click(BEN, CardAction.CLAIM, escalation_id)
    await world.deliver()

    assert answer == {
        "statusCode": 200,
        "type": MESSAGE,
        "value": "Ana Lima claimed this 3m 00s ago.",
    }
    assert world.escalation(escalation_id).claimed_by_name == "Ana Lima"
    assert len(world.connector.successful("update")) == 1


async def test_the_claimer_releases_the_escalation_back_to_the_queue(world: TeamsWorld) -> None:
    escalation_id, message_id = await _card_in_channel(world)
    await world.click(ANA, CardAction.CLAIM, escalation_id)
    await world.deliver()
    world.clock.advance(minutes=5)

    answer = await world.click(ANA, CardAction.RELEASE, escalation_id)
    await world.deliver()

    assert world.escalation(escalation_id).status == "open"
    assert "Open — waiting for an agent" in card_text(answer["value"])
    everyone_sees = world.everyone_sees(message_id)
    assert buttons(everyone_sees) == ["escalation_claim", "Open transcript"]
    assert len(world.connector.successful("update")) == 2


async def test_only_the_claimer_or_a_team_admin_can_release(world: TeamsWorld) -> None:
    escalation_id, _ = await _card_in_channel(world)
    await world.click(ANA, CardAction.CLAIM, escalation_id)

    refused = await world.click(BEN, CardAction.RELEASE, escalation_id)
    allowed = await world.click(LEAD, CardAction.RELEASE, escalation_id)

    assert refused["value"] == "Only Ana Lima (who claimed it) or a team admin can do that."
    assert "Open — waiting for an agent" in card_text(allowed["value"])
    assert world.escalation(escalation_id).status == "open"


async def test_the_claimer_hands_the_conversation_back_to_the_bot(world: TeamsWorld) -> None:
    escalation_id, _ = await _card_in_channel(world)
    await world.click(ANA, CardAction.CLAIM, escalation_id)

    refused = await world.click(BEN, CardAction.HAND_BACK, escalation_id)
    answer = await world.click(ANA, CardAction.HAND_BACK, escalation_id)

    assert refused["value"] == "Only Ana Lima (who claimed it) or a team admin can do that."
    record = world.escalation(escalation_id)
    assert (record.status, record.outcome) == ("resolved", "handed_back")
    assert "Handed back to the bot" in card_text(answer["value"])


async def test_the_claimer_resolves_with_an_outcome_and_a_note(world: TeamsWorld) -> None:
    escalation_id, message_id = await _card_in_channel(world)
    await world.click(ANA, CardAction.CLAIM, escalation_id)
    await world.deliver()
    world.clock.advance(minutes=20)
    note = "Refunded the duplicate charge; reshipped."

    answer = await world.click(
        ANA, CardAction.RESOLVE, escalation_id, inputs={"outcome": "solved", "note": note}
    )
    await world.deliver()

    record = world.escalation(escalation_id)
    assert (record.status, record.outcome, record.note) == ("resolved", "solved", note)
    resolved = "Resolved by Ana Lima at 2026-11-24 10:21 UTC: Solved"
    for card in (answer["value"], world.everyone_sees(message_id)):
        assert resolved in card_text(card)
        assert note in card_text(card)
        assert buttons(card) == ["Open transcript"]


async def test_resolving_needs_an_outcome_from_the_list(world: TeamsWorld) -> None:
    escalation_id, _ = await _card_in_channel(world)
    await world.click(ANA, CardAction.CLAIM, escalation_id)

    answer = await world.click(ANA, CardAction.RESOLVE, escalation_id, inputs={"outcome": "meh"})

    assert answer["value"] == "Pick an outcome to resolve the escalation."
    assert world.escalation(escalation_id).status == "claimed"


async def test_someone_else_cannot_resolve(world: TeamsWorld) -> None:
    escalation_id, _ = await _card_in_channel(world)
    await world.click(ANA, CardAction.CLAIM, escalation_id)

    answer = await world.click(BEN, CardAction.RESOLVE, escalation_id, inputs={"outcome": "solved"})

    assert answer["value"] == "Only Ana Lima (who claimed it) or a team admin can do that."
    assert world.escalation(escalation_id).status == "claimed"


async def test_teams_429_then_200_delivers_exactly_one_card_after_the_wait(
    world: TeamsWorld,
) -> None:
    await world.install()
    world.connector.fail_next(429, {"Retry-After": "30"})
    escalation_id = await world.escalate()

    await world.deliver()
    world.clock.advance(seconds=29)
    await world.deliver()  # still inside Teams' wait: nothing is sent
    assert _card_posts(world) == [429]
    world.clock.advance(seconds=1)
    await world.deliver()

    assert _card_posts(world) == [429, 200]
    assert list(world.connector.messages) == [world.card_message_id(escalation_id)]


async def test_teams_500s_are_retried_and_the_card_arrives_once(world: TeamsWorld) -> None:
    await world.install()
    world.connector.fail_next(500)
    world.connector.fail_next(502)
    escalation_id = await world.escalate()

    await world.deliver()
    world.clock.advance(seconds=1)  # the first backoff is at most one second
    await world.deliver()
    world.clock.advance(seconds=2)  # the second at most two
    await world.deliver()
    world.clock.advance(minutes=10)
    await world.deliver()

    assert _card_posts(world) == [500, 502, 200]
    assert list(world.connector.messages) == [world.card_message_id(escalation_id)]


async def test_new_customer_messages_become_one_reply_in_the_cards_thread(
    world: TeamsWorld,
) -> None:
    _escalation_id, message_id = await _card_in_channel(world)
    await world.webhook(
        conversation(
            "c-angry",
            message("m6", "customer", "hello??", 60),
            message("m7", "customer", "my email is ana@example.com", 61),
        )
    )

    await world.deliver()

    [reply] = world.connector.successful("reply")[1:]  # after the bot's answer to "hi"
    assert reply.conversation_id == f"{ESCALATIONS_CHANNEL};messageid={message_id}"
    assert reply.activity_id == message_id
    assert reply.body["text"] == (
        "Customer (10:01): hello??\nCustomer (10:01): my email is [email]"
    )
