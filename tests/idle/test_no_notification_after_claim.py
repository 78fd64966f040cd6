"""A claim is the end of calling people to an escalation: no SLA message goes out after it, not
even one the chain queued a moment before the claim landed."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from bot.sla import run_sla
from tests.idle.conftest import ANA, OPENED, Desk

# The support team's chain: mention @here 10 minutes after the card (10:11), leads at 20.
STEP_DUE = OPENED + timedelta(minutes=10)


def sla(desk: Desk) -> list[str]:
    """One run of the SLA job now; the steps it fired."""
    rules = desk.service.rules.current()
    fired = run_sla(desk.service.database, rules, desk.service.surfaces, desk.clock())
    return [step.key for step in fired]


def thread_lines(printed: str) -> list[str]:
    """Messages the console printed in card threads (card redraws are not messages)."""
    return [line for line in printed.splitlines() if line.startswith("[thread of")]


async def test_a_claim_at_minute_nine_means_nothing_at_ten_eleven_or_twenty(desk: Desk) -> None:
    escalation_id = await desk.escalate()
    await desk.deliver()
    desk.at(OPENED + timedelta(minutes=9))
    assert (await desk.claim(escalation_id)).ok
    await desk.deliver()

    for minutes in (10, 11, 20):
        desk.at(OPENED + timedelta(minutes=minutes))
        assert sla(desk) == []
        assert await desk.deliver() == ""
    assert "sla_step" not in desk.history(escalation_id)


async def test_a_claim_calls_off_the_sla_message_queued_just_before_it(desk: Desk) -> None:
    escalation_id = await desk.escalate()
    await desk.deliver()
    desk.at(STEP_DUE)
    assert sla(desk) == ["step:0"]
    assert len(desk.pending(escalation_id, "sla_step")) == 1

    # Ana claims before the delivery worker gets to the mention.
    assert (await desk.claim(escalation_id)).ok
    assert desk.pending(escalation_id, "sla_step") == []
    assert thread_lines(await desk.deliver()) == []
    desk.at(STEP_DUE + timedelta(minutes=10))
    assert sla(desk) == []


async def test_a_claim_racing_the_sla_job_leaves_nothing_to_send(desk: Desk) -> None:
    ids = [await desk.escalate(f"c-{n}") for n in range(3)]
    await desk.deliver()
    desk.at(STEP_DUE)

    claims, _fired = await asyncio.gather(
        asyncio.gather(*(desk.claim(escalation_id, ANA) for escalation_id in ids)),
        asyncio.to_thread(sla, desk),
    )

    assert all(claim.ok for claim in claims)
    for escalation_id in ids:
        # Either the claim came first and no step fired, or the step fired and the claim
        # called its message off: either way nobody is called to a claimed escalation.
        assert desk.pending(escalation_id, "sla_step") == []
    assert thread_lines(await desk.deliver()) == []
