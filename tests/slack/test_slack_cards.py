"""Stories about the escalation card as agents see it in the channel."""

from __future__ import annotations

import dataclasses

from bot.cards import CardAction, CardStatus
from bot.notifier import MessageRef
from bot.slack import SlackNotifier
from bot.slack.blocks import ELLIPSIS, mention, render_card
from engine.assessment import SummaryMessage
from engine.events import Role
from tests.slack.conftest import CARD_CHANNEL, NOW, make_card
from tests.slack.slack_fake_api import FakeSlack


def _text_of(blocks: list[dict[str, object]]) -> str:
    return "\n".join(
        str(block.get("text", "")) + str(block.get("elements", "")) for block in blocks
    )


async def test_an_urgent_escalation_arrives_as_a_card_with_everything_an_agent_needs(
    notifier: SlackNotifier,
    fake_slack: FakeSlack,
) -> None:
    ref = await notifier.post(make_card(), CARD_CHANNEL)

    assert ref == MessageRef("slack", CARD_CHANNEL, ref.message_id)
    (call,) = fake_slack.calls_to("chat.postMessage")
    assert call.args["channel"] == CARD_CHANNEL
    assert call.args["text"].startswith("<!here> Urgent escalation · score 8.5")
    shown = _text_of(call.args["blocks"])
    for expected in (
        "<!here>",
        "Dana Smith (gold)",
        "botpress",
        "3 bot fallbacks in a row, turns 4-6",
        "asked for a human at 10:02",
        "sentiment fell from +0.4 to -0.7",
        "Refund for order #1234, charged twice",
        "refund_policy answer",
        "Let me talk to a human",
        f"<!date^{int(make_card().opened_at.timestamp())}^",
    ):
        assert expected in shown
    (actions,) = [block for block in call.args["blocks"] if block["type"] == "actions"]
    buttons = {button["action_id"]: button for button in actions["elements"]}
    assert buttons[CardAction.CLAIM]["style"] == "primary"
    assert buttons[CardAction.CLAIM]["value"] == "42"
    assert buttons[CardAction.OPEN_TRANSCRIPT]["url"].endswith("/conversations/conv-77")
    assert buttons["escalation_open_platform"]["url"].startswith("https://botpress.example.com")


async def test_a_claimed_card_says_who_has_it_and_how_long_the_customer_waited(
    notifier: SlackNotifier,
    fake_slack: FakeSlack,
) -> None:
    ref = await notifier.post(make_card(), CARD_CHANNEL)
    claimed = make_card(status=CardStatus.CLAIMED, claimed_by="U0ANA", claimed_at=NOW)

    await notifier.update(ref, claimed)

    (call,) = fake_slack.calls_to("chat.update")
    assert (call.args["channel"], call.args["ts"]) == (ref.channel, ref.message_id)
    shown = _text_of(call.args["blocks"])
    assert f"Claimed by <@U0ANA> at <!date^{int(NOW.timestamp())}^{{time}}|" in shown
    assert "waited 2m 10s" in shown
    assert "<!here>" not in shown  # an update must not ping the channel again
    (actions,) = [block for block in call.args["blocks"] if block["type"] == "actions"]
    assert [button["action_id"] for button in actions["elements"]][:3] == [
        CardAction.RELEASE,
        CardAction.HAND_BACK,
        CardAction.RESOLVE,
    ]


async def test_the_card_says_so_when_the_bot_recovered_before_anyone_claimed(
    notifier: SlackNotifier,
    fake_slack: FakeSlack,
) -> None:
    ref = await notifier.post(make_card(), CARD_CHANNEL)

    await notifier.update(ref, make_card(status=CardStatus.RECOVERED))

    (call,) = fake_slack.calls_to("chat.update")
    assert "The bot recovered before anyone claimed it." in _text_of(call.args["blocks"])
    (actions,) = [block for block in call.args["blocks"] if block["type"] == "actions"]
    assert CardAction.CLAIM not in [button["action_id"] for button in actions["elements"]]


async def test_new_customer_messages_go_in_the_cards_thread_without_pinging_anyone(
    notifier: SlackNotifier,
    fake_slack: FakeSlack,
) -> None:
    ref = await notifier.post(make_card(), CARD_CHANNEL)

    await notifier.reply(ref, "Customer: hello?? <!channel> & more")

    replies = [call for call in fake_slack.calls_to("chat.postMessage") if "thread_ts" in call.args]
    assert [call.args["thread_ts"] for call in replies] == [ref.message_id]
    assert replies[0].args["text"] == "Customer: hello?? &lt;!channel&gt; &amp; more"


async def test_a_huge_conversation_still_fits_slacks_limits_and_shows_where_it_was_cut(
    notifier: SlackNotifier,
    fake_slack: FakeSlack,
) -> None:
    huge = "word " * 3000
    card = make_card(
        reasons=tuple(f"reason {n}: {huge}" for n in range(5)),
        notices=tuple(f"SLA re-alert {n}" for n in range(80)),
        summary=dataclasses.replace(
            make_card().summary,
            wants=(huge,),
            recent=tuple(SummaryMessage(Role.CUSTOMER, huge, NOW, f"e{n}") for n in range(20)),
        ),
        customer_name="D" * 400,
        level="x" * 400,
    )

    await notifier.post(card, CARD_CHANNEL)

    # The fake API validated every block with slack_sdk.models and the limits (see conftest).
    (call,) = fake_slack.calls_to("chat.postMessage")
    blocks = call.args["blocks"]
    assert len(blocks) == 50
    sections = [block["text"]["text"] for block in blocks if block["type"] == "section"]
    assert all(len(text) <= 3000 for text in sections)
    assert sum(text.endswith(ELLIPSIS) for text in sections) >= 3
    assert blocks[0]["text"]["text"].endswith(ELLIPSIS)
    assert "Escalation #42" in blocks[-1]["elements"][0]["text"]


def test_cutting_never_leaves_half_a_date_or_entity() -> None:
    card = make_card(reasons=("&" * 2999,))

    rendered = render_card(card)

    why = next(
        b for b in rendered.blocks if "Why it escalated" in b.get("text", {}).get("text", "")
    )
    assert why["text"]["text"].endswith("&amp;" + ELLIPSIS)


def test_mentions_use_slacks_markup() -> None:
    assert mention("@here") == "<!here>"
    assert mention("@channel") == "<!channel>"
    assert mention("S0ONCALL") == "<!subteam^S0ONCALL>"
    assert mention("@U0ANA") == "<@U0ANA>"
    assert mention("<!subteam^S0ONCALL>") == "<!subteam^S0ONCALL>"
    assert mention("<script>") == "&lt;script&gt;"
