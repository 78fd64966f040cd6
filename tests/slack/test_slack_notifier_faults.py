"""Stories about Slack failing, and the notifier telling the delivery worker what to do."""

from __future__ import annotations

import pytest

from bot.notifier import Forbidden, MessageRef, NotFound, RateLimited, Unavailable
from bot.slack import SlackNotifier, SlackSettings
from bot.slack.notifier import create_web_client
from tests.slack.conftest import CARD_CHANNEL, TOKEN, make_card
from tests.slack.slack_fake_api import FakeSlack


async def test_slack_asking_to_slow_down_becomes_rate_limited_with_its_retry_after(
    notifier: SlackNotifier,
    fake_slack: FakeSlack,
) -> None:
    fake_slack.fail_next("chat.postMessage", status=429, error="ratelimited", retry_after="7")

    with pytest.raises(RateLimited) as raised:
        await notifier.post(make_card(), CARD_CHANNEL)

    assert raised.value.retry_after == 7
    # One attempt only: retrying is the delivery worker's job, not the SDK's.
    assert len(fake_slack.calls_to("chat.postMessage")) == 1


async def test_a_slack_server_error_is_unavailable_so_the_worker_retries(
    notifier: SlackNotifier,
    fake_slack: FakeSlack,
) -> None:
    fake_slack.fail_next("chat.update", status=500)
    ref = MessageRef("slack", CARD_CHANNEL, "1700000000.000001")

    with pytest.raises(Unavailable):
        await notifier.update(ref, make_card())

    assert len(fake_slack.calls_to("chat.update")) == 1


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ("channel_not_found", NotFound),
        ("message_not_found", NotFound),
        ("not_in_channel", Forbidden),
        ("invalid_auth", Forbidden),
        ("missing_scope", Forbidden),
        ("account_inactive", Forbidden),
        ("fatal_error", Unavailable),
        ("service_unavailable", Unavailable),
    ],
)
async def test_slack_errors_map_to_what_the_worker_should_do(
    notifier: SlackNotifier, fake_slack: FakeSlack, error: str, expected: type[Exception]
) -> None:
    fake_slack.fail_next("chat.postMessage", error=error)

    with pytest.raises(expected, match=error):
        await notifier.post(make_card(), CARD_CHANNEL)


async def test_slack_unreachable_is_unavailable() -> None:
    # Port 9 (discard) on localhost is closed, so the connection is refused at once.
    settings = SlackSettings(TOKEN, "secret", api_url="http://127.0.0.1:9/api/")
    notifier = SlackNotifier(create_web_client(settings))

    with pytest.raises(Unavailable, match="unreachable"):
        await notifier.post(make_card(), CARD_CHANNEL)
