"""Stories about App Home and the /escalations command, over the real hand-off service."""

from __future__ import annotations

from typing import Any

from bot.cards import CardAction
from bot.slack.blocks import UNKNOWN_ESCALATION
from tests.slack.conftest import ANA, BEN, LEAD, SlackBench, angry_customer


def _texts(blocks: list[dict[str, Any]]) -> str:
    return "\n".join(str(block) for block in blocks)


async def _seed(bench: SlackBench) -> tuple[int, int, int]:
    """Two customers waiting (Ola, then Dana) and one Ana already holds (Kim)."""
    ola = await bench.escalate("c-ola", "Ola Nordmann")
    bench.clock.advance(seconds=5)
    dana = await bench.escalate("c-dana", "Dana Smith")
    kim = await bench.escalate("c-kim", "Kim Lee")
    await bench.deliver()
    bench.clock.advance(minutes=2, seconds=10)
    await bench.click_on_card(CardAction.CLAIM, kim, ANA)
    return ola, dana, kim


async def test_app_home_shows_my_escalations_the_open_queue_and_todays_numbers(
    bench: SlackBench,
) -> None:
    await _seed(bench)

    response = await bench.event({"type": "app_home_opened", "user": ANA.id, "tab": "home"})

    assert response.status == 200
    (published,) = bench.fake.calls_to("views.publish")
    assert published.args["user_id"] == ANA.id
    view = published.args["view"]
    assert view["type"] == "home"
    headers = [b["text"]["text"] for b in view["blocks"] if b["type"] == "header"]
    assert headers == ["Your escalations", "Open queue", "Today"]
    shown = _texts(view["blocks"])
    assert shown.index("Kim Lee") < shown.index("Open queue") < shown.index("Ola Nordmann")
    assert shown.index("Ola Nordmann") < shown.index("Dana Smith")
    assert "*Opened*\\n3" in shown
    assert "*Waiting now*\\n2" in shown


async def test_claiming_from_app_home_refreshes_it_instead_of_posting_in_a_channel(
    bench: SlackBench,
) -> None:
    ola, _, _ = await _seed(bench)

    await bench.click(CardAction.CLAIM, str(ola), BEN, from_home=True)

    (published,) = bench.fake.calls_to("views.publish")
    assert published.args["user_id"] == BEN.id
    assert "Ola Nordmann" in _texts(published.args["view"]["blocks"][:3])
    assert bench.escalation(ola).claimed_by == BEN.id
    assert bench.fake.calls_to("chat.postEphemeral") == []
    # The card in the channel follows, through the outbox.
    await bench.deliver()
    assert "Claimed by *ben*" in str(bench.card(ola)["blocks"])


async def test_the_messages_tab_does_not_republish_home(bench: SlackBench) -> None:
    await _seed(bench)

    response = await bench.event({"type": "app_home_opened", "user": ANA.id, "tab": "messages"})

    assert response.status == 200
    assert bench.fake.calls_to("views.publish") == []


async def test_slash_command_lists_open_escalations_with_claim_buttons(bench: SlackBench) -> None:
    ola, dana, _ = await _seed(bench)

    response = await bench.command("", ANA)

    answer = await response.json()
    assert answer["text"] == "Open escalations: 2"
    items = [block for block in answer["blocks"] if "accessory" in block]
    assert [block["accessory"]["value"] for block in items] == [str(ola), str(dana)]
    assert {block["accessory"]["action_id"] for block in items} == {CardAction.CLAIM}


async def test_slash_command_claims_by_id_and_the_card_follows(bench: SlackBench) -> None:
    _, dana, _ = await _seed(bench)

    response = await bench.command(f"claim #{dana}", BEN)

    assert (await response.json())["text"] == "You have it: the customer waited 2m 10s."
    assert bench.escalation(dana).claimed_by == BEN.id
    await bench.deliver()
    assert "Claimed by *ben*" in str(bench.card(dana)["blocks"])


async def test_slash_command_claim_of_a_taken_or_unknown_escalation_explains(
    bench: SlackBench,
) -> None:
    _, _, kim = await _seed(bench)
    bench.clock.advance(seconds=30)

    taken = await (await bench.command(f"claim {kim}", BEN)).json()
    unknown = await (await bench.command("claim 4x", BEN)).json()
    missing = await (await bench.command("claim 999", BEN)).json()

    assert taken["text"] == "ana claimed this 30s ago."
    assert unknown["text"] == UNKNOWN_ESCALATION
    assert missing["text"] == UNKNOWN_ESCALATION


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


async def test_app_home_shows_an_agent_the_queue_of_their_own_teams(bench: SlackBench) -> None:
    await bench.escalate("c-support", "Sam Support")
    await bench.post_conversation(angry_customer("c-vip", "Vera Vip", tier="enterprise"))
    await bench.deliver()

    # LEAD is an admin of the support team only (rules.yaml of this bench).
    await bench.event({"type": "app_home_opened", "user": LEAD.id, "tab": "home"})
    # BEN is in no team's list: he sees every team's queue.
    await bench.event({"type": "app_home_opened", "user": BEN.id, "tab": "home"})

    lead_view, ben_view = (call.args["view"] for call in bench.fake.calls_to("views.publish"))
    assert "Sam Support" in _texts(lead_view["blocks"])
    assert "Vera Vip" not in _texts(lead_view["blocks"])
    assert "Sam Support" in _texts(ben_view["blocks"])
    assert "Vera Vip" in _texts(ben_view["blocks"])
