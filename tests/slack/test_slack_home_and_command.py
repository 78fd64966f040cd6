"""Stories about App Home and the /escalations command."""

from __future__ import annotations

from typing import Any

from bot.cards import CardAction
from bot.handoff import Actor
from bot.slack.blocks import UNKNOWN_ESCALATION
from tests.slack.conftest import ANA, BEN, SlackBench, make_card


def _texts(blocks: list[dict[str, Any]]) -> str:
    return "\n".join(str(block) for block in blocks)


async def _seed(bench: SlackBench) -> None:
    """Two customers waiting (41, 42) and one Ana already holds (43)."""
    bench.handoff.add(make_card(41, customer_name="Ola Nordmann"))
    bench.handoff.add(make_card(42))
    bench.handoff.add(make_card(43, customer_name="Kim Lee"))
    await bench.handoff.claim(43, Actor("slack", ANA.id, ANA.name))


async def test_app_home_shows_my_escalations_the_open_queue_and_todays_numbers(
    bench: SlackBench,
) -> None:
    await _seed(bench)

    response = await bench.event({"type": "app_home_opened", "user": ANA.id, "tab": "home"})

    assert response.status == 200
    (published,) = await bench.fake.wait_for("views.publish")
    assert published.args["user_id"] == ANA.id
    view = published.args["view"]
    assert view["type"] == "home"
    headers = [b["text"]["text"] for b in view["blocks"] if b["type"] == "header"]
    assert headers == ["Your escalations", "Open queue", "Today"]
    shown = _texts(view["blocks"])
    assert shown.index("Kim Lee") < shown.index("Open queue") < shown.index("Ola Nordmann")
    assert "*Opened*\\n3" in shown
    assert "*Waiting now*\\n2" in shown


async def test_claiming_from_app_home_refreshes_it_instead_of_posting_in_a_channel(
    bench: SlackBench,
) -> None:
    await _seed(bench)

    await bench.click(CardAction.CLAIM, "41", BEN, from_home=True)

    (published,) = await bench.fake.wait_for("views.publish")
    assert published.args["user_id"] == BEN.id
    assert "Ola Nordmann" in _texts(published.args["view"]["blocks"][:3])
    assert bench.handoff.cards[41].claimed_by == "ben"
    assert bench.fake.calls_to("chat.postEphemeral") == []


async def test_the_messages_tab_does_not_republish_home(bench: SlackBench) -> None:
    await _seed(bench)

    response = await bench.event({"type": "app_home_opened", "user": ANA.id, "tab": "messages"})

    assert response.status == 200
    assert bench.fake.calls_to("views.publish") == []


async def test_slash_command_lists_open_escalations_with_claim_buttons(bench: SlackBench) -> None:
    await _seed(bench)

    response = await bench.command("", ANA)

    answer = await response.json()
    assert answer["text"] == "Open escalations: 2"
    items = [block for block in answer["blocks"] if "accessory" in block]
    assert [block["accessory"]["value"] for block in items] == ["41", "42"]
    assert {block["accessory"]["action_id"] for block in items} == {CardAction.CLAIM}


async def test_slash_command_claims_by_id(bench: SlackBench) -> None:
    await _seed(bench)

    response = await bench.command("claim #42", BEN)

    assert (await response.json())["text"] == "Claimed."
    assert bench.handoff.cards[42].claimed_by == "ben"


async def test_slash_command_claim_of_a_taken_or_unknown_escalation_explains(
    bench: SlackBench,
) -> None:
    await _seed(bench)

    taken = await (await bench.command("claim 43", BEN)).json()
    unknown = await (await bench.command("claim 4x", BEN)).json()

    assert taken["text"] == "ana claimed this 0s ago."
    assert unknown["text"] == UNKNOWN_ESCALATION


async def test_slash_command_shows_todays_numbers(bench: SlackBench) -> None:
    await _seed(bench)

    answer = await (await bench.command("stats", ANA)).json()

    assert answer["text"] == "Today: 3 opened, 1 claimed, 0 resolved, 2 waiting"
    assert "*Median time to claim*\\n2m 10s" in _texts(answer["blocks"])


async def test_slash_command_explains_itself_when_it_does_not_understand(
    bench: SlackBench,
) -> None:
    answer = await (await bench.command("frobnicate", ANA)).json()

    assert "/escalations claim 42" in answer["text"]
