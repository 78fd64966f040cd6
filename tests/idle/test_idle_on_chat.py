"""The idle reminder where agents are: a mention in the card's thread, and *Still on it* on the
card — on the real Slack app (fake Web API) and the real Teams bot (fake Bot Connector)."""

from __future__ import annotations

from pathlib import Path

from bot.cards import CardAction
from bot.idle import run_idle
from storage.db import Database
from tests.slack import conftest as slack_conftest
from tests.slack.conftest import ANA, BEN, CARD_CHANNEL, SlackBench
from tests.teams.teams_activities import TeamsUser
from tests.teams.teams_world import ADAPTIVE_CARD, MESSAGE, buttons, card_text, open_world

# The Slack bench (the service with Slack on, the fake Web API) on this package's clock and rules.
bench = slack_conftest.bench
fake_slack = slack_conftest.fake_slack

# A Teams user with a real-looking AAD object id, which Teams can mention.
CLEO = TeamsUser("29:cleo", "Cleo Park", "3f2504e0-4f89-41d3-9a0c-0305e82c3301")
OTHER = TeamsUser("29:dev", "Dev Rao", "9a7b1c2d-0000-4000-8000-000000000001")


def slack_buttons(message: dict[str, object]) -> list[str]:
    blocks = message["blocks"]
    assert isinstance(blocks, list)
    return [
        element["action_id"]
        for block in blocks
        if block["type"] == "actions"
        for element in block["elements"]
    ]


def idle_job(bench: SlackBench) -> list[str]:
    service = bench.service
    taken = run_idle(service.database, service.rules.current(), service.surfaces, bench.clock())
    return [step.key for step in taken]


async def test_on_slack_the_claimer_is_mentioned_and_says_still_on_it_on_the_card(
    bench: SlackBench,
) -> None:
    escalation_id = await bench.escalate_and_deliver()
    await bench.click_on_card(CardAction.CLAIM, escalation_id, ANA)
    await bench.deliver()
    ts = bench.card_ts(escalation_id)
    assert ts is not None

    bench.clock.advance(minutes=10)
    assert idle_job(bench) == ["idle:remind"]
    await bench.deliver()
    reminder = bench.fake.replies_to(CARD_CHANNEL, ts)[-1]["text"]
    assert reminder.startswith("<@U0ANA> No agent reply for 10 min since you took this.")
    assert slack_buttons(bench.card(escalation_id))[:2] == [
        CardAction.STILL_ON_IT,
        CardAction.RELEASE,
    ]

    # Ben cannot answer for Ana; Ana can.
    await bench.click_on_card(CardAction.STILL_ON_IT, escalation_id, BEN)
    (refusal,) = [call.args for call in bench.fake.calls_to("chat.postEphemeral")]
    assert (refusal["user"], refusal["text"]) == (
        BEN.id,
        "Only ana (who claimed it) or a team admin can do that.",
    )
    await bench.click_on_card(CardAction.STILL_ON_IT, escalation_id, ANA)
    await bench.deliver()
    card = bench.card(escalation_id)
    assert CardAction.STILL_ON_IT not in slack_buttons(card)
    assert "ana is still on it" in str(card["blocks"])

    bench.clock.advance(minutes=10)
    assert idle_job(bench) == ["idle:remind"]  # ten quiet minutes after "Still on it"
    assert bench.escalation(escalation_id).status == "claimed"


async def test_on_teams_the_claimer_is_mentioned_and_still_on_it_is_a_card_button(
    database: Database, tmp_path: Path
) -> None:
    async with open_world(database, tmp_path) as world:
        await world.install()
        escalation_id = await world.escalate()
        await world.deliver()
        assert (await world.click(CLEO, CardAction.CLAIM, escalation_id))["type"] == ADAPTIVE_CARD
        await world.deliver()

        world.clock.advance(minutes=10)
        service = world.service
        taken = run_idle(service.database, service.rules.current(), service.surfaces, world.clock())
        assert [step.key for step in taken] == ["idle:remind"]
        await world.deliver()
        (reply,) = [
            call.body
            for call in world.connector.successful("reply")
            if "No agent reply" in str(call.body.get("text"))
        ]
        assert reply["text"].startswith("<at>Cleo Park</at>")
        assert reply["entities"][0]["mentioned"]["id"] == CLEO.aad_object_id
        message_id = world.card_message_id(escalation_id)
        assert buttons(world.everyone_sees(message_id))[:2] == [
            CardAction.STILL_ON_IT,
            CardAction.RELEASE,
        ]

        refused = await world.click(OTHER, CardAction.STILL_ON_IT, escalation_id)
        assert refused == {
            "statusCode": 200,
            "type": MESSAGE,
            "value": "Only Cleo Park (who claimed it) or a team admin can do that.",
        }
        answer = await world.click(CLEO, CardAction.STILL_ON_IT, escalation_id)
        assert answer["type"] == ADAPTIVE_CARD
        assert CardAction.STILL_ON_IT not in buttons(answer["value"])
        assert "Cleo Park is still on it" in card_text(answer["value"])
