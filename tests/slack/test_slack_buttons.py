"""Stories about agents clicking Claim, Release and Resolve on a card."""

from __future__ import annotations

from bot.cards import CardAction, CardStatus
from bot.slack.blocks import UNKNOWN_ESCALATION
from tests.slack.conftest import ANA, BEN, LEAD, SlackBench, make_card


async def test_an_agent_claims_an_open_escalation_in_one_click(bench: SlackBench) -> None:
    bench.handoff.add(make_card())

    response = await bench.click(CardAction.CLAIM, "42", ANA)

    assert response.status == 200
    await bench.handoff.wait_for("claim")
    card = bench.handoff.cards[42]
    assert (card.status, card.claimed_by) == (CardStatus.CLAIMED, "ana")
    (operation,) = bench.handoff.operations
    assert operation[2].user_id == ANA.id
    assert operation[2].surface == "slack"


async def test_second_agent_cannot_claim_a_claimed_escalation_and_is_told_privately_who_has_it(
    bench: SlackBench,
) -> None:
    bench.handoff.add(make_card())
    await bench.click(CardAction.CLAIM, "42", ANA)
    await bench.handoff.wait_for("claim")

    response = await bench.click(CardAction.CLAIM, "42", BEN)

    assert response.status == 200
    (ephemeral,) = await bench.fake.wait_for("chat.postEphemeral")
    assert ephemeral.args["user"] == BEN.id
    assert ephemeral.args["channel"] == "C0SUPPORT"
    assert ephemeral.args["text"] == "ana claimed this 0s ago."
    assert bench.handoff.cards[42].claimed_by == "ana"
    # The click handler never edits the shared card; the outbox does, for every channel.
    assert bench.fake.calls_to("chat.update") == []


async def test_the_claimer_releases_an_escalation_back_to_the_queue(bench: SlackBench) -> None:
    bench.handoff.add(make_card())
    await bench.click(CardAction.CLAIM, "42", ANA)
    await bench.handoff.wait_for("claim")

    await bench.click(CardAction.RELEASE, "42", ANA)

    await bench.handoff.wait_for("release")
    assert bench.handoff.cards[42].status is CardStatus.OPEN


async def test_someone_else_cannot_release_an_escalation_they_do_not_hold(
    bench: SlackBench,
) -> None:
    bench.handoff.add(make_card())
    await bench.click(CardAction.CLAIM, "42", ANA)
    await bench.handoff.wait_for("claim")

    await bench.click(CardAction.RELEASE, "42", BEN)

    (ephemeral,) = await bench.fake.wait_for("chat.postEphemeral")
    assert (ephemeral.args["user"], ephemeral.args["text"]) == (
        BEN.id,
        "Only ana or an admin can release this.",
    )
    assert bench.handoff.cards[42].status is CardStatus.CLAIMED


async def test_an_admin_may_release_someone_elses_escalation(bench: SlackBench) -> None:
    bench.handoff.add(make_card())
    await bench.click(CardAction.CLAIM, "42", ANA)
    await bench.handoff.wait_for("claim")

    await bench.click(CardAction.RELEASE, "42", LEAD)

    await bench.handoff.wait_for("release")
    assert bench.handoff.cards[42].status is CardStatus.OPEN


async def test_the_claimer_resolves_with_an_outcome_and_a_note_from_the_modal(
    bench: SlackBench,
) -> None:
    bench.handoff.add(make_card())
    await bench.click(CardAction.CLAIM, "42", ANA)
    await bench.handoff.wait_for("claim")

    await bench.click(CardAction.RESOLVE, "42", ANA)
    (opened,) = await bench.fake.wait_for("views.open")
    assert opened.args["trigger_id"] == "1111.2222.abcd"
    view = opened.args["view"]
    outcomes = [option["value"] for option in view["blocks"][1]["element"]["options"]]
    assert outcomes == ["solved", "workaround", "needs_follow_up", "not_an_issue", "duplicate"]

    response = await bench.submit_view(
        filled_in(view, outcome="workaround", note="Refunded the duplicate charge."), ANA
    )

    assert response.status == 200
    assert await response.text() == ""  # an empty ack closes the modal
    card = bench.handoff.cards[42]
    assert (card.status, card.outcome, card.note) == (
        CardStatus.RESOLVED,
        "workaround",
        "Refunded the duplicate charge.",
    )


async def test_resolving_someone_elses_escalation_is_refused_inside_the_modal(
    bench: SlackBench,
) -> None:
    bench.handoff.add(make_card())
    await bench.click(CardAction.CLAIM, "42", ANA)
    await bench.handoff.wait_for("claim")
    await bench.click(CardAction.RESOLVE, "42", BEN)
    (opened,) = await bench.fake.wait_for("views.open")

    response = await bench.submit_view(filled_in(opened.args["view"], outcome="solved"), BEN)

    assert await response.json() == {
        "response_action": "errors",
        "errors": {"outcome": "Only ana or an admin can resolve this."},
    }
    assert bench.handoff.cards[42].status is CardStatus.CLAIMED


async def test_a_click_on_a_malformed_or_unknown_escalation_is_answered_politely(
    bench: SlackBench,
) -> None:
    for value in ("not-a-number", "-3", "", "99"):
        await bench.click(CardAction.CLAIM, value, BEN)
    await bench.click(CardAction.RESOLVE, "99", BEN)

    calls = await bench.fake.wait_for("chat.postEphemeral", count=5)
    assert [call.args["text"] for call in calls] == [UNKNOWN_ESCALATION] * 5
    assert bench.fake.calls_to("views.open") == []


async def test_opening_the_transcript_is_acknowledged_and_changes_nothing(
    bench: SlackBench,
) -> None:
    bench.handoff.add(make_card())

    response = await bench.click(CardAction.OPEN_TRANSCRIPT, "42", BEN)

    assert response.status == 200
    assert bench.handoff.operations == []


def filled_in(
    view: dict[str, object], *, outcome: str, note: str | None = None
) -> dict[str, object]:
    """The view as Slack sends it back on submit: the same view plus the user's input state."""
    selected = {"text": {"type": "plain_text", "text": outcome}, "value": outcome}
    return {
        **view,
        "id": "V0MODAL",
        "state": {
            "values": {
                "outcome": {"outcome": {"type": "static_select", "selected_option": selected}},
                "note": {"note": {"type": "plain_text_input", "value": note}},
            }
        },
    }
