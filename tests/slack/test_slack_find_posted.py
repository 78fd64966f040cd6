"""Stories about finding a card Slack already shows, by the metadata it was posted with."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.notifier import FindsPostedCards, Forbidden, NotFound, Unavailable
from bot.slack import SlackNotifier
from tests.slack.conftest import CARD_CHANNEL, make_card
from tests.slack.slack_fake_api import EPOCH, FakeSlack

TEAM_CHANNEL = "#support-escalations"
LONG_AGO = datetime.fromtimestamp(EPOCH - 60, UTC)  # a minute before the fake's messages


async def test_a_card_is_posted_with_metadata_naming_its_escalation(
    notifier: SlackNotifier, fake_slack: FakeSlack
) -> None:
    ref = await notifier.post(make_card(escalation_id=42), TEAM_CHANNEL)

    assert fake_slack.message(ref.channel, ref.message_id)["metadata"] == {
        "event_type": "escalation_card",
        "event_payload": {"escalation_id": 42},
    }
    (call,) = fake_slack.calls_to("chat.postMessage")
    assert call.args["metadata"]["event_type"] == "escalation_card"


async def test_the_card_is_found_by_its_escalation_among_other_messages(
    notifier: SlackNotifier, fake_slack: FakeSlack
) -> None:
    assert isinstance(notifier, FindsPostedCards)
    posted = await notifier.post(make_card(escalation_id=42), CARD_CHANNEL)
    await notifier.post(make_card(escalation_id=43), CARD_CHANNEL)
    fake_slack.say(CARD_CHANNEL, "anyone on #42?")

    found = await notifier.find_posted(make_card(escalation_id=42), CARD_CHANNEL, LONG_AGO)

    assert found == posted
    (call,) = fake_slack.calls_to("conversations.history")
    assert call.args["include_all_metadata"] == "1"


async def test_a_card_posted_before_the_search_window_or_never_is_not_found(
    notifier: SlackNotifier, fake_slack: FakeSlack
) -> None:
    await notifier.post(make_card(escalation_id=42), CARD_CHANNEL)
    later = datetime.fromtimestamp(EPOCH + 60, UTC)

    assert await notifier.find_posted(make_card(escalation_id=42), CARD_CHANNEL, later) is None
    assert await notifier.find_posted(make_card(escalation_id=7), CARD_CHANNEL, LONG_AGO) is None


async def test_another_apps_message_with_the_same_metadata_is_not_taken_for_our_card(
    notifier: SlackNotifier, fake_slack: FakeSlack
) -> None:
    ts = fake_slack.say(CARD_CHANNEL, "a staging copy of the app", user="U0OTHER")
    fake_slack.messages[(CARD_CHANNEL, ts)].update(
        bot_id="B0OTHER",
        metadata={"event_type": "escalation_card", "event_payload": {"escalation_id": 42}},
    )

    assert await notifier.find_posted(make_card(escalation_id=42), CARD_CHANNEL, LONG_AGO) is None


async def test_the_search_pages_through_a_busy_channel_and_many_channels(
    notifier: SlackNotifier, fake_slack: FakeSlack
) -> None:
    # A restarted process knows the channel only by name; the workspace lists it on page 2.
    fake_slack.channels = {f"random-{n:03d}": f"C0R{n:03d}" for n in range(250)} | {
        "support-escalations": CARD_CHANNEL
    }
    posted = await notifier.post(make_card(), CARD_CHANNEL)  # by id: teaches no name
    for n in range(150):  # agents kept talking after the card arrived
        fake_slack.say(CARD_CHANNEL, f"message {n}")

    found = await notifier.find_posted(make_card(), TEAM_CHANNEL, LONG_AGO)

    assert found == posted
    listed = fake_slack.calls_to("conversations.list")
    assert [bool(call.args.get("cursor")) for call in listed] == [False, True]
    read = fake_slack.calls_to("conversations.history")
    assert [bool(call.args.get("cursor")) for call in read] == [False, True]


async def test_a_channel_name_learnt_from_a_post_needs_no_lookup(
    notifier: SlackNotifier, fake_slack: FakeSlack
) -> None:
    posted = await notifier.post(make_card(), TEAM_CHANNEL)

    assert await notifier.find_posted(make_card(), TEAM_CHANNEL, LONG_AGO) == posted
    assert fake_slack.calls_to("conversations.list") == []


@pytest.mark.parametrize(
    ("method", "status", "error", "expected"),
    [
        ("conversations.history", 500, None, Unavailable),
        ("conversations.history", 200, "not_in_channel", Forbidden),
        ("conversations.history", 200, "missing_scope", Forbidden),
        ("conversations.list", 200, "missing_scope", Forbidden),
    ],
)
async def test_a_search_slack_refuses_says_whether_to_try_later_or_never(
    notifier: SlackNotifier,
    fake_slack: FakeSlack,
    method: str,
    status: int,
    error: str | None,
    expected: type[Exception],
) -> None:
    fake_slack.fail_next(method, status=status, error=error)

    with pytest.raises(expected):
        await notifier.find_posted(make_card(), TEAM_CHANNEL, LONG_AGO)


async def test_a_channel_the_app_cannot_see_is_not_found(
    notifier: SlackNotifier, fake_slack: FakeSlack
) -> None:
    with pytest.raises(NotFound, match="#nowhere"):
        await notifier.find_posted(make_card(), "#nowhere", LONG_AGO)
