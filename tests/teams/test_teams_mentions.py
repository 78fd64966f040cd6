"""Stories about who a Teams card calls: people and tags by mention, everyone in words."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cards import CardAction, CardStatus
from bot.teams.adaptive_card import TeamsMention, render_adaptive_card, teams_mention
from storage.db import Database
from tests.teams.teams_activities import ANA
from tests.teams.teams_fake_connector import card_errors
from tests.teams.teams_world import TeamsWorld, card_text, open_world, sample_card, write_rules

AAD_ID = "87d349ed-44d7-43e1-9a83-5f2406dee5bd"
EVERYONE = TeamsMention("**Everyone in this channel:** this needs an agent now", None)


def _person(name: str, user_id: str) -> TeamsMention:
    return TeamsMention(
        f"<at>{name}</at>: this needs an agent now",
        {"type": "mention", "text": f"<at>{name}</at>", "mentioned": {"id": user_id, "name": name}},
    )


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("@here", EVERYONE),
        ("@channel", EVERYONE),
        ("<!here>", EVERYONE),
        ("Ana Lima <ana@contoso.com>", _person("Ana Lima", "ana@contoso.com")),
        ("ana@contoso.com", _person("ana@contoso.com", "ana@contoso.com")),
        (f"Ana Lima <{AAD_ID}>", _person("Ana Lima", AAD_ID)),
        (AAD_ID, _person(AAD_ID, AAD_ID)),
        ("29:1a2b3c", _person("29:1a2b3c", "29:1a2b3c")),
        (
            "On call <tag:MjQ5NzQ4>",
            TeamsMention(
                "<at>On call</at>: this needs an agent now",
                {
                    "type": "mention",
                    "text": "<at>On call</at>",
                    "mentioned": {"id": "MjQ5NzQ4", "type": "tag", "name": "On call"},
                },
            ),
        ),
        ("tag:", None),
        ("<!subteam^S0123ABC>", None),  # a Slack user group means nothing in Teams
        ("U0123ABCD", None),
        ("support team", None),
    ],
)
def test_how_teams_calls_each_kind_of_mention(target: str, expected: TeamsMention | None) -> None:
    assert teams_mention(target) == expected


def test_a_mention_is_only_on_an_open_card_and_the_card_stays_valid() -> None:
    open_card = render_adaptive_card(sample_card(mention=f"Ana Lima <{AAD_ID}>"))
    claimed = render_adaptive_card(
        sample_card(mention=f"Ana Lima <{AAD_ID}>", status=CardStatus.CLAIMED, claimed_by="Ben")
    )

    assert card_errors(open_card) == []
    assert open_card["msteams"]["entities"][0]["mentioned"] == {"id": AAD_ID, "name": "Ana Lima"}
    assert "msteams" not in claimed
    assert "<at>" not in card_text(claimed)


async def test_a_level_that_mentions_a_person_mentions_them_on_the_teams_card(
    database: Database, tmp_path: Path
) -> None:
    rules = write_rules(tmp_path / "rules.yaml", urgent=f"Ana Lima <{AAD_ID}>")
    async with open_world(database, tmp_path, rules=rules) as world:
        await world.install()
        escalation_id = await world.escalate()
        await world.deliver()

        message_id = world.card_message_id(escalation_id)
        card = world.everyone_sees(message_id)
        assert card["body"][0]["text"] == "<at>Ana Lima</at>: this needs an agent now"
        assert card["msteams"] == {
            "entities": [
                {
                    "type": "mention",
                    "text": "<at>Ana Lima</at>",
                    "mentioned": {"id": AAD_ID, "name": "Ana Lima"},
                }
            ]
        }

        world.clock.advance(minutes=1)
        await world.click(ANA, CardAction.CLAIM, escalation_id)
        await world.deliver()
        assert "msteams" not in world.everyone_sees(message_id)


async def test_here_is_said_in_words_because_teams_lets_no_bot_mention_a_whole_channel(
    world: TeamsWorld,
) -> None:
    # The repository's rules mention "@here" on urgent cards; the angry customer is urgent.
    await world.install()
    escalation_id = await world.escalate()
    await world.deliver()

    card = world.everyone_sees(world.card_message_id(escalation_id))
    assert card["body"][0]["text"] == "**Everyone in this channel:** this needs an agent now"
    assert "msteams" not in card
