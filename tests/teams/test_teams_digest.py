"""A team lead reading the daily digest in a Teams channel."""

from __future__ import annotations

from bot.teams import TeamsDigestPublisher
from tests.scheduler.test_digest_render import busy_report
from tests.teams.teams_activities import ESCALATIONS_CHANNEL
from tests.teams.teams_world import TeamsWorld, card_text


async def test_the_digest_is_posted_to_the_teams_channel_as_a_valid_adaptive_card(
    world: TeamsWorld,
) -> None:
    await world.install()
    publisher = TeamsDigestPublisher(world.notifier)

    message_id = await publisher.post_digest(busy_report(), ESCALATIONS_CHANNEL)

    shown = card_text(world.everyone_sees(message_id))  # checked against the pinned schema
    assert shown.startswith(
        "Hand-off digest · support · Mon 09 Mar 09:00 → Tue 10 Mar 09:00 (Europe/Berlin)\n"
        "11 hand-offs (-3 vs the period before) · 5.0% of 220 conversations\n"
    )
    assert "Time to claim\nmedian 4m 00s, 90th 8m 48s (10 claimed)" in shown
