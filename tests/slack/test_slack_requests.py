"""Stories about who may talk to the Slack endpoint, and how the app is configured."""

from __future__ import annotations

import json
import logging
import time
from urllib.parse import urlencode

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.cards import CardAction
from bot.slack import SlackSettings
from tests.slack.conftest import SIGNING_SECRET, TOKEN, SlackBench
from tests.slack.slack_fake_api import FakeSlack

URL_CHECK = json.dumps({"type": "url_verification", "challenge": "c-123", "token": "t"})


async def test_slack_proves_the_events_url_with_a_signed_challenge(bench: SlackBench) -> None:
    response = await bench.post_signed(URL_CHECK, "application/json")

    assert response.status == 200
    assert (await response.json())["challenge"] == "c-123"


async def test_a_request_signed_with_the_wrong_secret_is_refused(bench: SlackBench) -> None:
    response = await bench.post_signed(URL_CHECK, "application/json", secret="guessed")

    assert response.status == 401


async def test_a_replayed_request_older_than_five_minutes_is_refused(bench: SlackBench) -> None:
    stale = int(time.time()) - 6 * 60

    response = await bench.post_signed(URL_CHECK, "application/json", timestamp=stale)

    assert response.status == 401


async def test_an_unsigned_button_click_does_not_reach_the_hand_off(bench: SlackBench) -> None:
    escalation_id = await bench.escalate_and_deliver()
    action = {"action_id": CardAction.CLAIM, "value": str(escalation_id)}
    body = urlencode({"payload": json.dumps({"type": "block_actions", "actions": [action]})})

    response = await bench.http.post(
        "/slack/events", data=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )

    assert response.status == 401
    assert bench.escalation(escalation_id).status == "open"


def test_slack_is_off_without_a_token_and_says_which_setting_is_missing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        assert SlackSettings.from_env({"SLACK_SIGNING_SECRET": SIGNING_SECRET}) is None
    assert "Slack is off: SLACK_BOT_TOKEN not set" in caplog.text


def test_settings_default_to_slacks_own_api_and_never_show_secrets() -> None:
    settings = SlackSettings.from_env(
        {"SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET}
    )

    assert settings is not None
    assert settings.api_url == "https://slack.com/api/"
    assert TOKEN not in repr(settings)
    assert SIGNING_SECRET not in repr(settings)


def test_a_proxy_api_url_gets_the_trailing_slash_the_sdk_needs() -> None:
    settings = SlackSettings.from_env(
        {
            "SLACK_BOT_TOKEN": TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": "https://slack-proxy.internal/api",
        }
    )

    assert settings is not None
    assert settings.api_url == "https://slack-proxy.internal/api/"


async def test_the_fake_api_rejects_blocks_slack_would_reject(fake_slack: FakeSlack) -> None:
    client = AsyncWebClient(token=TOKEN, base_url=fake_slack.api_url, retry_handlers=[])
    too_many = [{"type": "divider"}] * 51

    with pytest.raises(SlackApiError) as raised:
        await client.chat_postMessage(channel="C1", text="x", blocks=too_many)

    assert raised.value.response["error"] == "invalid_blocks"
    assert fake_slack.invalid_payloads == ["chat.postMessage: 51 blocks, more than 50"]
    fake_slack.invalid_payloads.clear()  # expected here; the fixture checks the rest stay valid
