"""An SLA nudge in the card's thread calls people the Slack way; customer text never does."""

from __future__ import annotations

from bot.slack import SlackNotifier
from tests.slack.conftest import CARD_CHANNEL, make_card
from tests.slack.slack_fake_api import FakeSlack


async def test_a_mention_in_a_thread_reply_pings_while_customer_text_stays_inert(
    notifier: SlackNotifier, fake_slack: FakeSlack
) -> None:
    ref = await notifier.post(make_card(), CARD_CHANNEL)

    await notifier.reply(ref, "Unclaimed for 10m: <!channel> please", mention="@here")
    await notifier.reply(ref, "still no one?", mention="S0ONCALL")

    texts = [message["text"] for message in fake_slack.replies_to(ref.channel, ref.message_id)]
    assert texts == [
        "<!here> Unclaimed for 10m: &lt;!channel&gt; please",
        "<!subteam^S0ONCALL> still no one?",
    ]
