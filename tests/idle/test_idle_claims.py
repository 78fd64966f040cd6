"""Claimed but idle: the claimer is reminded, can say they are still on it, and an escalation
nobody answers goes back to the queue — under a driven clock, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from bot.cards import CardAction, CardStatus
from bot.idle import run_idle
from bot.scheduler import IDLE_JOB
from bot.sla import run_sla
from tests.idle.conftest import ANA, BEN, OPENED, Desk

CLAIMED = OPENED + timedelta(minutes=1)  # 10:02


async def claimed_escalation(desk: Desk, cid: str = "c-angry") -> int:
    """An escalation whose card is out, claimed by Ana at 10:02."""
    escalation_id = await desk.escalate(cid)
    await desk.deliver()
    desk.at(CLAIMED)
    assert (await desk.claim(escalation_id)).ok
    await desk.deliver()
    return escalation_id


async def test_the_claimer_is_reminded_in_the_thread_after_ten_quiet_minutes_and_not_before(
    desk: Desk,
) -> None:
    escalation_id = await claimed_escalation(desk)

    desk.at(CLAIMED + timedelta(minutes=9, seconds=59))
    assert desk.run_idle() == []

    desk.at(CLAIMED + timedelta(minutes=10))
    assert desk.run_idle() == ["idle:remind"]
    card = await desk.card(escalation_id)
    assert card.notices[-1] == (
        "Reminder to Ana at 10:12: no agent reply for 10 min; "
        "back to the queue at 10:22 unless Still on it"
    )
    assert card.actions[:2] == (CardAction.STILL_ON_IT, CardAction.RELEASE)
    printed = await desk.deliver()
    # No chat surface is configured here: the console shows the thread and names the claimer.
    assert (
        'Ana: No agent reply for 10 min since you took this. Still on it? Press "Still on it" '
        'or "Release" on the card; without an answer it goes back to the queue at 10:22.'
    ) in printed

    desk.at(CLAIMED + timedelta(minutes=11))
    assert desk.run_idle() == []  # reminded once


async def test_still_on_it_restarts_the_clock(desk: Desk) -> None:
    escalation_id = await claimed_escalation(desk)
    desk.at(CLAIMED + timedelta(minutes=10))
    assert desk.run_idle() == ["idle:remind"]

    desk.at(CLAIMED + timedelta(minutes=13))  # 10:15
    answer = await desk.service.handoff.still_on_it(escalation_id, ANA)
    assert answer.ok
    assert (
        answer.message == "Noted: you will be reminded again at 10:25 if there is still no reply."
    )
    assert answer.card is not None
    assert CardAction.STILL_ON_IT not in answer.card.actions
    assert answer.card.notices[-1] == "Ana is still on it (10:15)"

    desk.at(CLAIMED + timedelta(minutes=20))  # when the release would have come
    assert desk.run_idle() == []
    assert desk.escalation(escalation_id).status == "claimed"
    desk.at(CLAIMED + timedelta(minutes=23))  # 10 quiet minutes after "Still on it"
    assert desk.run_idle() == ["idle:remind"]
    desk.at(CLAIMED + timedelta(minutes=33))
    assert desk.run_idle() == ["idle:release"]


async def test_without_an_answer_the_escalation_goes_back_to_the_queue_and_the_card_says_so(
    desk: Desk,
) -> None:
    escalation_id = await claimed_escalation(desk)
    desk.at(CLAIMED + timedelta(minutes=10))
    assert desk.run_idle() == ["idle:remind"]
    await desk.deliver()

    desk.at(CLAIMED + timedelta(minutes=19, seconds=59))
    assert desk.run_idle() == []
    desk.at(CLAIMED + timedelta(minutes=20))  # 10:22
    assert desk.run_idle() == ["idle:release"]

    record = desk.escalation(escalation_id)
    assert (record.status, record.claimed_by) == ("open", None)
    assert desk.history(escalation_id)[-3:] == ["idle_reminder", "released", "auto_released"]
    card = await desk.card(escalation_id)
    assert card.status is CardStatus.OPEN
    assert card.actions[0] is CardAction.CLAIM
    assert card.notices[-1] == (
        "Released automatically at 10:22: no agent reply for 20 min since Ana took it"
    )
    printed = await desk.deliver()
    assert "Ana: Back in the queue: no agent reply for 20 min since you took this." in printed

    # Too late to say "Still on it"; anyone may claim it again, and the SLA chain starts over.
    late = await desk.service.handoff.still_on_it(escalation_id, ANA)
    assert (late.ok, late.message) == (
        False,
        "This escalation is back in the queue: claim it again to take it.",
    )
    rules = desk.service.rules.current()
    assert (
        run_sla(desk.service.database, rules, frozenset(), desk.clock() + timedelta(minutes=9))
        == []
    )
    fired = run_sla(desk.service.database, rules, frozenset(), desk.clock() + timedelta(minutes=10))
    assert [step.key for step in fired] == ["step:0"]
    assert (await desk.claim(escalation_id, BEN)).ok


async def test_an_agent_message_before_the_reminder_means_no_reminder(desk: Desk) -> None:
    escalation_id = await claimed_escalation(desk)
    desk.at(CLAIMED + timedelta(minutes=3))
    await desk.says("agent", "Hi, I'm Ana from support. Let me look at your refund.")

    for minutes in (10, 20, 60):
        desk.at(CLAIMED + timedelta(minutes=minutes))
        assert desk.run_idle() == []
    assert desk.escalation(escalation_id).status == "claimed"
    assert "idle_reminder" not in desk.history(escalation_id)


async def test_an_agent_reply_after_the_reminder_stops_the_release_and_hides_the_button(
    desk: Desk,
) -> None:
    escalation_id = await claimed_escalation(desk)
    desk.at(CLAIMED + timedelta(minutes=10))
    assert desk.run_idle() == ["idle:remind"]

    desk.at(CLAIMED + timedelta(minutes=12))
    await desk.says("agent", "Sorry for the wait, I'm on it.")
    assert desk.run_idle() == ["idle:answered"]
    assert CardAction.STILL_ON_IT not in (await desk.card(escalation_id)).actions

    desk.at(CLAIMED + timedelta(minutes=40))
    assert desk.run_idle() == []
    assert desk.escalation(escalation_id).status == "claimed"


@pytest.mark.parametrize("ending", ["release", "resolve"])
async def test_a_claim_that_ends_before_the_reminder_is_never_reminded(
    desk: Desk, ending: str
) -> None:
    escalation_id = await claimed_escalation(desk)
    desk.at(CLAIMED + timedelta(minutes=5))
    if ending == "release":
        assert (await desk.service.handoff.release(escalation_id, ANA)).ok
    else:
        handoff = desk.service.handoff
        assert (await handoff.resolve(escalation_id, ANA, "solved", None)).ok

    for minutes in (10, 20, 30):
        desk.at(CLAIMED + timedelta(minutes=minutes))
        assert desk.run_idle() == []
    assert "idle_reminder" not in desk.history(escalation_id)


async def test_a_release_calls_off_a_reminder_that_has_not_gone_out_yet(desk: Desk) -> None:
    escalation_id = await claimed_escalation(desk)
    desk.at(CLAIMED + timedelta(minutes=10))
    assert desk.run_idle() == ["idle:remind"]
    assert len(desk.pending(escalation_id, "idle_reminder")) == 1

    assert (await desk.service.handoff.release(escalation_id, ANA)).ok
    assert desk.pending(escalation_id, "idle_reminder") == []
    assert "No agent reply" not in await desk.deliver()


async def test_a_customer_nobody_answers_re_alerts_the_claimer_once_per_unanswered_stretch(
    desk: Desk,
) -> None:
    escalation_id = await claimed_escalation(desk)
    desk.at(CLAIMED + timedelta(minutes=2))  # 10:04
    await desk.says("customer", "hello?? is anyone there")
    desk.at(CLAIMED + timedelta(minutes=3))
    assert desk.run_idle() == ["idle:realert"]
    assert desk.pending(escalation_id, "idle_reminder") == [
        {"text": "Ana: The customer wrote at 10:04 and is waiting for your reply.", "mention": None}
    ]
    await desk.deliver()

    await desk.says("customer", "HELLO")
    desk.at(CLAIMED + timedelta(minutes=4))
    assert desk.run_idle() == []  # still the same unanswered stretch

    await desk.says("agent", "Here now, sorry! Checking your order.")
    desk.at(CLAIMED + timedelta(minutes=6))  # 10:08
    await desk.says("customer", "ok, order 48213")
    desk.at(CLAIMED + timedelta(minutes=7))
    assert desk.run_idle() == ["idle:realert"]
    desk.at(CLAIMED + timedelta(minutes=30))
    assert desk.run_idle() == []  # the agent has answered since the claim: no idle reminder


async def test_still_on_it_racing_the_automatic_release_has_exactly_one_outcome(
    desk: Desk,
) -> None:
    ids = [await claimed_escalation(desk, f"c-{n}") for n in range(3)]
    desk.at(CLAIMED + timedelta(minutes=10))
    assert sorted(desk.run_idle()) == ["idle:remind"] * 3

    desk.at(CLAIMED + timedelta(minutes=20))
    answers, taken = await asyncio.gather(
        asyncio.gather(*(desk.service.handoff.still_on_it(i, ANA) for i in ids)),
        asyncio.to_thread(desk.idle_steps),
    )
    released = {step.escalation_id for step in taken if step.key == "idle:release"}
    for escalation_id, answer in zip(ids, answers, strict=True):
        kinds = desk.history(escalation_id)
        status = desk.escalation(escalation_id).status
        if answer.ok:
            assert escalation_id not in released
            assert (status, "auto_released" in kinds) == ("claimed", False)
        else:
            assert escalation_id in released
            assert (status, "still_on_it" in kinds) == ("open", False)


async def test_a_running_escalation_keeps_the_idle_settings_it_opened_with(desk: Desk) -> None:
    before = await claimed_escalation(desk, "c-before")
    text = desk.rules_path.read_text(encoding="utf-8")
    edited = text.replace(
        "    idle:\n      remind_after_minutes: 10\n",
        "    idle:\n      remind_after_minutes: 30\n",
        1,
    )
    assert edited != text
    desk.rules_path.write_text(edited, encoding="utf-8")
    assert desk.service.rules.reload()
    after = await desk.escalate("c-after")
    assert (await desk.claim(after)).ok

    desk.at(CLAIMED + timedelta(minutes=10))
    assert [(s.escalation_id, s.key) for s in desk.idle_steps()] == [(before, "idle:remind")]
    desk.at(CLAIMED + timedelta(minutes=30))
    assert [(s.escalation_id, s.key) for s in desk.idle_steps()] == [
        (before, "idle:release"),
        (after, "idle:remind"),
    ]


async def test_the_idle_job_runs_on_the_scheduler_by_its_stable_name(desk: Desk) -> None:
    await claimed_escalation(desk)
    scheduler = desk.service.scheduler
    assert scheduler is not None
    assert IDLE_JOB == "idle-claims"
    assert IDLE_JOB in scheduler.job_names
    desk.at(CLAIMED + timedelta(minutes=10))
    scheduler.start()
    try:
        taken = await scheduler.run_now(IDLE_JOB)
    finally:
        await scheduler.shutdown()
    assert isinstance(taken, list)
    # The start-up catch-up run may have taken it first; either way it was taken once.
    assert [step.key for step in taken] in (["idle:remind"], [])
    assert (
        run_idle(desk.service.database, desk.service.rules.current(), frozenset(), desk.clock())
        == []
    )
