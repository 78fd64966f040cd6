"""Stories about the buttons beyond the everyday ones: admins, refusals in the modal, and
buttons that no longer apply. The hand-off behind them is the real service on a real database."""

from __future__ import annotations

from bot.cards import CardAction
from tests.slack.conftest import ANA, BEN, LEAD, SlackBench, filled_in


async def test_a_team_admin_may_release_someone_elses_escalation(bench: SlackBench) -> None:
    escalation_id = await bench.escalate_and_deliver()
    await bench.click_on_card(CardAction.CLAIM, escalation_id, ANA)

    await bench.click_on_card(CardAction.RELEASE, escalation_id, LEAD)

    assert bench.escalation(escalation_id).status == "open"
    assert bench.fake.calls_to("chat.postEphemeral") == []


async def test_resolving_someone_elses_escalation_is_refused_inside_the_modal(
    bench: SlackBench,
) -> None:
    escalation_id = await bench.escalate_and_deliver()
    await bench.click_on_card(CardAction.CLAIM, escalation_id, ANA)
    await bench.click_on_card(CardAction.RESOLVE, escalation_id, BEN)
    (opened,) = bench.fake.calls_to("views.open")

    response = await bench.submit_view(filled_in(opened.args["view"], outcome="solved"), BEN)

    assert await response.json() == {
        "response_action": "errors",
        "errors": {"outcome": "Only ana (who claimed it) or a team admin can do that."},
    }
    assert bench.escalation(escalation_id).status == "claimed"


async def test_a_modal_submitted_without_an_outcome_asks_for_one(bench: SlackBench) -> None:
    escalation_id = await bench.escalate_and_deliver()
    await bench.click_on_card(CardAction.CLAIM, escalation_id, ANA)
    await bench.click_on_card(CardAction.RESOLVE, escalation_id, ANA)
    (opened,) = bench.fake.calls_to("views.open")

    response = await bench.submit_view(filled_in(opened.args["view"], outcome="shrug"), ANA)

    assert await response.json() == {
        "response_action": "errors",
        "errors": {"outcome": "Pick an outcome."},
    }
    assert bench.escalation(escalation_id).status == "claimed"


async def test_resolve_on_an_escalation_nobody_claimed_says_so_instead_of_opening_the_modal(
    bench: SlackBench,
) -> None:
    escalation_id = await bench.escalate_and_deliver()

    await bench.click_on_card(CardAction.RESOLVE, escalation_id, BEN)

    (ephemeral,) = bench.fake.calls_to("chat.postEphemeral")
    assert ephemeral.args["text"] == f"Escalation #{escalation_id} is open."
    assert bench.fake.calls_to("views.open") == []


async def test_claiming_a_resolved_escalation_from_an_old_card_explains_why_not(
    bench: SlackBench,
) -> None:
    escalation_id = await bench.escalate_and_deliver()
    await bench.click_on_card(CardAction.CLAIM, escalation_id, ANA)
    await bench.click_on_card(CardAction.RESOLVE, escalation_id, ANA)
    (opened,) = bench.fake.calls_to("views.open")
    await bench.submit_view(filled_in(opened.args["view"], outcome="solved"), ANA)

    await bench.click_on_card(CardAction.CLAIM, escalation_id, BEN)

    (ephemeral,) = bench.fake.calls_to("chat.postEphemeral")
    assert ephemeral.args["text"] == "Already resolved by ana."


async def test_the_claimer_hands_the_conversation_back_to_the_bot(bench: SlackBench) -> None:
    escalation_id = await bench.escalate_and_deliver()
    await bench.click_on_card(CardAction.CLAIM, escalation_id, ANA)

    await bench.click_on_card(CardAction.HAND_BACK, escalation_id, ANA)

    record = bench.escalation(escalation_id)
    assert (record.status, record.outcome) == ("resolved", "handed_back")
    assert bench.fake.calls_to("chat.postEphemeral") == []


async def test_only_the_claimer_may_hand_back_and_the_other_agent_is_told_why(
    bench: SlackBench,
) -> None:
    escalation_id = await bench.escalate_and_deliver()
    await bench.click_on_card(CardAction.CLAIM, escalation_id, ANA)

    await bench.click_on_card(CardAction.HAND_BACK, escalation_id, BEN)

    assert bench.escalation(escalation_id).status == "claimed"
    [told] = bench.fake.calls_to("chat.postEphemeral")
    assert told.args["user"] == BEN.id
    assert told.args["text"].startswith("Only ")


async def test_a_claim_on_a_card_closed_meanwhile_redraws_the_stale_card(
    bench: SlackBench,
) -> None:
    escalation_id = await bench.escalate_and_deliver()
    await bench.click_on_card(CardAction.CLAIM, escalation_id, ANA)
    await bench.click_on_card(CardAction.HAND_BACK, escalation_id, ANA)
    await bench.deliver()
    updates_before = len(bench.fake.calls_to("chat.update"))

    await bench.click_on_card(CardAction.CLAIM, escalation_id, BEN)
    await bench.deliver()

    (ephemeral,) = bench.fake.calls_to("chat.postEphemeral")
    assert ephemeral.args["text"] == "Already resolved by ana."
    assert len(bench.fake.calls_to("chat.update")) == updates_before + 1
    assert bench.escalation(escalation_id).status == "resolved"
