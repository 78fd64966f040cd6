"""Stories about installing the bot, finding channels, personal chat, and who may call it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.app import StorageChannelDirectory
from bot.cards import CardAction
from bot.teams import TeamsSettings
from storage.db import Database
from tests.teams.teams_activities import (
    ANA,
    ESCALATIONS_CHANNEL,
    GENERAL_CHANNEL,
    TEAM,
    TENANT,
    bot_added_to_team,
    installed_in_team,
    mention_in_channel,
    personal_message,
)
from tests.teams.teams_world import TeamsWorld, open_world


async def test_installing_the_bot_in_a_team_registers_its_channel_in_the_database(
    world: TeamsWorld, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.teams")

    response = await world.send(installed_in_team(world.service_url))

    assert response.status in {200, 201}
    reference = {
        "service_url": world.service_url,
        "tenant_id": TENANT,
        "team_id": TEAM["id"],
        "team_name": "Support",
        "channel_id": GENERAL_CHANNEL,
        "channel_name": "General",
        "bot_id": "28:escalations-bot",
        "bot_name": "Escalations",
    }
    assert world.channels_in_database() == {GENERAL_CHANNEL: reference}
    # Durable and shared: another replica (a fresh directory over the database) knows it too.
    assert await StorageChannelDirectory(world.database).get(GENERAL_CHANNEL) == reference
    assert f"channel 'General', id {GENERAL_CHANNEL}" in caplog.text


async def test_bot_added_conversation_update_also_registers_the_channel(world: TeamsWorld) -> None:
    await world.send(bot_added_to_team(world.service_url))

    assert list(world.channels_in_database()) == [GENERAL_CHANNEL]


async def test_mentioning_the_bot_in_a_channel_tells_its_id_for_the_rules(
    world: TeamsWorld, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.teams")
    await world.send(
        mention_in_channel(world.service_url, ESCALATIONS_CHANNEL, "Escalations", "channel id")
    )

    [answer] = world.connector.successful("reply")
    assert answer.body["text"] == f"This channel's id for rules.yaml is `{ESCALATIONS_CHANNEL}`."
    assert world.channels_in_database()[ESCALATIONS_CHANNEL]["channel_name"] == "Escalations"
    # What the service logs at start-up (the hook run when the app starts), now that it knows one.
    for hook in world.service.startup:
        await hook()
    assert (
        f"Teams channel known: team 'Support', channel 'Escalations', id {ESCALATIONS_CHANNEL}"
        in caplog.text
    )


async def _ask(world: TeamsWorld, text: str) -> str:
    before = len(world.connector.successful("reply"))
    await world.send(personal_message(world.service_url, text))
    answers = world.connector.successful("reply")
    assert len(answers) == before + 1
    return str(answers[-1].body["text"])


async def test_personal_chat_answers_queue_my_escalations_and_stats(world: TeamsWorld) -> None:
    await world.install()
    waiting = await world.escalate("c-first")
    held = await world.escalate("c-second")
    await world.deliver()
    world.clock.advance(minutes=2)
    await world.click(ANA, CardAction.CLAIM, held)

    queue = await _ask(world, "queue")
    mine = await _ask(world, "my escalations")
    stats = await _ask(world, "stats")
    help_text = await _ask(world, "hello")

    assert queue.startswith(f"1 waiting for an agent:\n- #{waiting} urgent — Ana (support)")
    assert mine.startswith(f"You hold 1:\n- #{held} urgent — Ana (support): Claimed by Ana Lima")
    assert stats == (
        "Today: 2 opened, 1 claimed, 0 resolved, 1 waiting. Median time to claim: 2m 00s."
    )
    assert "my escalations" in help_text


async def test_with_an_app_id_unauthenticated_activities_are_refused(
    database: Database, tmp_path: Path
) -> None:
    environ = {
        "ESCALATIONS_TEAMS_LOCAL_TESTING": "",
        "MICROSOFT_APP_ID": "8f2d5a40-0000-0000-0000-000000000001",
        "MICROSOFT_APP_PASSWORD": "s3cret",
    }
    async with open_world(database, tmp_path, environ=environ) as world:
        response = await world.send(installed_in_team(world.service_url))

        assert response.status == 401
        assert world.channels_in_database() == {}


def test_settings_come_from_the_environment_and_hide_the_password() -> None:
    settings = TeamsSettings.from_env(
        {
            "MICROSOFT_APP_ID": "8f2d5a40-0000-0000-0000-000000000001",
            "MICROSOFT_APP_PASSWORD": "s3cret-value",
            "MICROSOFT_APP_TENANT_ID": "tenant-1",
            "MICROSOFT_APP_TYPE": "SingleTenant",
        }
    )

    assert settings is not None
    assert (settings.app_type, settings.tenant_id, settings.authenticated) == (
        "SingleTenant",
        "tenant-1",
        True,
    )
    assert "s3cret-value" not in repr(settings)


def test_without_an_app_id_teams_is_off_unless_local_testing_is_asked_for() -> None:
    assert TeamsSettings.from_env({}) is None
    local = TeamsSettings.from_env({"ESCALATIONS_TEAMS_LOCAL_TESTING": "1"})
    assert local is not None
    assert not local.authenticated


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"MICROSOFT_APP_ID": "app", "MICROSOFT_APP_TYPE": "Sometimes"},
            "MICROSOFT_APP_TYPE='Sometimes': expected MultiTenant or SingleTenant",
        ),
        (
            {
                "MICROSOFT_APP_ID": "app",
                "MICROSOFT_APP_PASSWORD": "x",
                "MICROSOFT_APP_TYPE": "SingleTenant",
            },
            "MICROSOFT_APP_TYPE=SingleTenant needs MICROSOFT_APP_TENANT_ID",
        ),
        (
            {"MICROSOFT_APP_ID": "app"},
            "MICROSOFT_APP_ID is set but neither MICROSOFT_APP_PASSWORD nor "
            "MICROSOFT_APP_CERTIFICATE_KEY_FILE is",
        ),
    ],
)
def test_incomplete_settings_are_rejected_with_a_reason(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(") + "$"):
        TeamsSettings.from_env(environ)
