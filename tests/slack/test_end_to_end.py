"""Slack end to end: a webhook post in, a card in the team's channel, agents clicking on it.

Everything is real except Slack itself: the service is built from its environment, the
conversation goes through the webhook, the pipeline and the database (SQLite and PostgreSQL), the
delivery worker posts with slack_sdk to the local fake Web API, and clicks arrive on
/slack/events signed like Slack signs them. Time moves only when a story moves the clock.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.cards import Card, CardAction
from bot.delivery import DeliveryPolicy
from bot.notifier import MessageRef
from bot.slack.blocks import OPEN_PLATFORM_ACTION, UNKNOWN_ESCALATION
from storage import outbox
from tests.bot.conftest import conversation, message
from tests.slack.conftest import (
    ANA,
    BEN,
    CARD_CHANNEL,
    PUBLIC_URL,
    SlackBench,
    filled_in,
    start_bench,
)
from tests.slack.slack_fake_api import FakeSlack

TEAM_CHANNEL = "#support-escalations"  # rules.yaml: teams.support.slack.channel


def buttons(card: dict[str, Any]) -> list[str]:
    """The action ids of the card's buttons, in order."""
    (actions,) = [block for block in card["blocks"] if block["type"] == "actions"]
    return [button["action_id"] for button in actions["elements"]]


def shown(card: dict[str, Any]) -> str:
    """Every text on the card, for reading like an agent would."""
    return str(card["blocks"])


# --- 1. the card arrives --------------------------------------------------------------------


async def test_an_angry_conversation_becomes_one_card_in_the_teams_channel(
    bench: SlackBench,
) -> None:
    escalation_id = await bench.escalate()
    assert bench.fake.calls_to("chat.postMessage") == []  # durable first, delivered after

    await bench.deliver()

    (call,) = bench.fake.calls_to("chat.postMessage")
    assert call.args["channel"] == TEAM_CHANNEL
    (card,) = bench.fake.cards_in(CARD_CHANNEL)
    reasons = [reason.text for reason in bench.escalation(escalation_id).reasons if reason.text]
    assert reasons
    for reason in reasons:
        assert reason.replace("<", "&lt;").replace(">", "&gt;") in shown(card)
    (actions,) = [block for block in card["blocks"] if block["type"] == "actions"]
    transcript = {button["action_id"]: button for button in actions["elements"]}
    assert transcript[CardAction.OPEN_TRANSCRIPT]["url"] == f"{PUBLIC_URL}/conversations/c-angry"
    assert buttons(card) == [CardAction.CLAIM, CardAction.OPEN_TRANSCRIPT]
    # The ts Slack answered with is what later edits and thread replies address.
    assert bench.card_ts(escalation_id) == card["ts"]
    assert bench.pending() == []
    assert await bench.deliver() == 0
    assert len(bench.fake.cards_in(CARD_CHANNEL)) == 1


async def test_the_same_webhook_delivered_twice_still_makes_one_card(bench: SlackBench) -> None:
    await bench.escalate()
    await bench.post_conversation(
        conversation("c-angry", message("m5", "customer", "retried by the platform", 40))
    )

    await bench.deliver()
    await bench.deliver()

    assert len(bench.fake.cards_in(CARD_CHANNEL)) == 1


# --- 2. and 3. claiming ----------------------------------------------------------------------


async def test_claiming_a_card_claims_the_escalation_and_redraws_the_card_for_everyone(
    bench: SlackBench,
) -> None:
    escalation_id = await bench.escalate_and_deliver()
    bench.clock.advance(minutes=2)

    await bench.click_on_card(CardAction.CLAIM, escalation_id, ANA)

    record = bench.escalation(escalation_id)
    assert (record.status, record.claimed_by, record.claimed_by_name) == ("claimed", ANA.id, "ana")
    assert bench.fake.calls_to("chat.update") == []  # the outbox redraws it, not the click
    await bench.deliver()
    (update,) = bench.fake.calls_to("chat.update")
    assert (update.args["channel"], update.args["ts"]) == (
        CARD_CHANNEL,
        bench.card(escalation_id)["ts"],
    )
    card = bench.card(escalation_id)
    assert "Claimed by *ana*" in shown(card)
    assert "waited 2m 00s" in shown(card)
    assert buttons(card) == [
        CardAction.RELEASE,
        CardAction.HAND_BACK,
        CardAction.RESOLVE,
        CardAction.OPEN_TRANSCRIPT,
    ]
    assert bench.fake.calls_to("chat.postEphemeral") == []


async def test_two_agents_clicking_claim_at_once_one_wins_and_the_other_is_told_who(
    bench: SlackBench,
) -> None:
    escalation_id = await bench.escalate_and_deliver()

    await asyncio.gather(
        bench.click_on_card(CardAction.CLAIM, escalation_id, ANA),
        bench.click_on_card(CardAction.CLAIM, escalation_id, BEN),
    )

    winner_id = bench.escalation(escalation_id).claimed_by
    winner, loser = (ANA, BEN) if winner_id == ANA.id else (BEN, ANA)
    assert winner_id == winner.id
    (ephemeral,) = bench.fake.calls_to("chat.postEphemeral")
    assert (ephemeral.args["channel"], ephemeral.args["user"]) == (CARD_CHANNEL, loser.id)
    assert ephemeral.args["text"] == f"{winner.name} claimed this 0s ago."
    await bench.deliver()
    assert len(bench.fake.calls_to("chat.update")) == 1
    assert f"Claimed by *{winner.name}*" in shown(bench.card(escalation_id))


# --- 4. release and resolve -----------------------------------------------------------------


async def test_the_claimer_releases_and_the_card_is_open_again(bench: SlackBench) -> None:
    escalation_id = await bench.escalate_and_deliver()
    await bench.click_on_card(CardAction.CLAIM, escalation_id, ANA)
    await bench.deliver()
    bench.clock.advance(minutes=1)

    await bench.click_on_card(CardAction.RELEASE, escalation_id, ANA)

    record = bench.escalation(escalation_id)
    assert (record.status, record.claimed_by) == ("open", None)
    await bench.deliver()
    assert len(bench.fake.calls_to("chat.update")) == 2
    card = bench.card(escalation_id)
    assert buttons(card) == [CardAction.CLAIM, CardAction.OPEN_TRANSCRIPT]
    assert "*Open*, waiting since" in shown(card)


async def test_someone_else_cannot_release_a_claim_and_the_card_stays_as_it_is(
    bench: SlackBench,
) -> None:
    escalation_id = await bench.escalate_and_deliver()
    await bench.click_on_card(CardAction.CLAIM, escalation_id, ANA)
    await bench.deliver()
    before = dict(bench.card(escalation_id))

    await bench.click_on_card(CardAction.RELEASE, escalation_id, BEN)

    (ephemeral,) = bench.fake.calls_to("chat.postEphemeral")
    assert (ephemeral.args["user"], ephemeral.args["text"]) == (
        BEN.id,
        "Only ana (who claimed it) or a team admin can do that.",
    )
    assert bench.escalation(escalation_id).claimed_by == ANA.id
    assert await bench.deliver() == 0
    assert len(bench.fake.calls_to("chat.update")) == 1
    assert bench.card(escalation_id) == before


async def test_the_claimer_resolves_from_the_modal_and_the_card_says_how_it_ended(
    bench: SlackBench,
) -> None:
    escalation_id = await bench.escalate_and_deliver()
    await bench.click_on_card(CardAction.CLAIM, escalation_id, ANA)
    await bench.deliver()
    bench.clock.advance(minutes=5)

    await bench.click_on_card(CardAction.RESOLVE, escalation_id, ANA)
    (opened,) = bench.fake.calls_to("views.open")
    response = await bench.submit_view(
        filled_in(opened.args["view"], outcome="workaround", note="Refunded by hand."), ANA
    )

    assert response.status == 200
    assert await response.text() == ""  # an empty answer closes the modal
    record = bench.escalation(escalation_id)
    assert (record.status, record.outcome, record.note) == (
        "resolved",
        "workaround",
        "Refunded by hand.",
    )
    await bench.deliver()
    card = bench.card(escalation_id)
    assert "Resolved by *ana*" in shown(card)
    assert "*Workaround given*" in shown(card)
    assert "&gt;Refunded by hand." not in shown(card)  # a quote, not escaped markup
    assert ">Refunded by hand." in shown(card)
    assert buttons(card) == [CardAction.OPEN_TRANSCRIPT]


# --- 5. to 7. Slack failing, and the service dying ------------------------------------------


async def test_slack_asking_to_wait_30_seconds_is_honoured_then_the_card_arrives_once(
    bench: SlackBench,
) -> None:
    bench.fake.fail_next("chat.postMessage", status=429, error="ratelimited", retry_after="30")
    escalation_id = await bench.escalate()

    await bench.deliver()

    assert bench.fake.cards_in(CARD_CHANNEL) == []
    (waiting,) = bench.pending()
    assert waiting.due_at == bench.clock.now + timedelta(seconds=30)
    bench.clock.advance(seconds=29)
    await bench.deliver()
    assert len(bench.fake.calls_to("chat.postMessage")) == 1  # not a moment too soon

    bench.clock.advance(seconds=1)
    await bench.deliver()

    assert len(bench.fake.cards_in(CARD_CHANNEL)) == 1
    assert bench.card_ts(escalation_id) is not None
    assert bench.pending() == []


async def test_while_slack_is_down_the_card_waits_with_backoff_and_arrives_once_it_is_back(
    bench: SlackBench,
) -> None:
    for _ in range(4):
        bench.fake.fail_next("chat.postMessage", status=500)
    escalation_id = await bench.escalate()

    for failures in range(1, 5):
        await bench.deliver()
        (waiting,) = bench.pending()
        assert waiting.attempts == failures
        assert waiting.due_at > bench.clock.now
        assert "Slack" in (waiting.last_error or "")
        assert bench.fake.cards_in(CARD_CHANNEL) == []
        assert await bench.deliver() == 0  # nothing is due before the backoff runs out
        bench.clock.now = waiting.due_at

    await bench.deliver()

    assert len(bench.fake.cards_in(CARD_CHANNEL)) == 1
    assert bench.card_ts(escalation_id) is not None
    assert bench.pending() == []
    assert await bench.deliver() == 0


async def test_when_slack_answers_again_cards_held_back_by_the_outage_go_out_at_once(
    bench: SlackBench,
) -> None:
    # Slack fails Ben's card three times: his next try is two to four seconds away.
    for _ in range(3):
        bench.fake.fail_next("chat.postMessage", status=500)
    ben = await bench.escalate("c-ben", "Ben")
    await bench.deliver()
    for _ in range(2):
        (waiting,) = bench.pending()
        bench.clock.now = waiting.due_at
        await bench.deliver()
    (waiting,) = bench.pending()
    assert waiting.attempts == 3
    assert waiting.due_at > bench.clock.now

    # Slack is back: Ana's new card gets through, so Ben's no longer waits out its backoff.
    ana = await bench.escalate("c-ana", "Ana")
    await bench.deliver()
    assert bench.card_ts(ana) is not None
    (waiting,) = bench.pending()
    assert waiting.due_at == bench.clock.now
    await bench.deliver()

    assert bench.card_ts(ben) is not None
    assert len(bench.fake.cards_in(CARD_CHANNEL)) == 2


async def test_a_worker_that_died_holding_the_card_leaves_it_to_the_next_process(
    bench: SlackBench, fake_slack: FakeSlack, rules_path: Path, tmp_path: Path
) -> None:
    escalation_id = await bench.escalate()
    with bench.service.database.session() as session:  # a worker takes the row, then dies
        (taken,) = outbox.lease_due(
            session=session, now=bench.clock.now, limit=10, lease_seconds=60
        )
    assert taken.kind == "post_card"

    async for restarted in restart(bench, fake_slack, rules_path, tmp_path):
        assert await restarted.deliver() == 0  # the dead worker's lease still holds
        bench.clock.advance(seconds=60)
        await restarted.deliver()
        await restarted.deliver()

        assert len(fake_slack.cards_in(CARD_CHANNEL)) == 1
        assert restarted.card_ts(escalation_id) is not None


class ProcessDied(BaseException):
    """The process is killed: nothing after this point runs, not even `except Exception`."""


async def crash_while_posting(bench: SlackBench, *, after_slack_answers: bool) -> int:
    """An escalation whose card post kills the process, just after Slack accepted it or just
    before; returns the escalation's id."""
    escalation_id = await bench.escalate()
    notifier = bench.service.notifiers["slack"]
    real_post = notifier.post

    async def post_then_die(card: Card, channel: str) -> MessageRef:
        if after_slack_answers:
            await real_post(card, channel)  # Slack has the card; our commit never happens
        raise ProcessDied

    notifier.post = post_then_die  # type: ignore[method-assign]
    with pytest.raises(ProcessDied):
        await bench.deliver()
    return escalation_id


def restart(
    bench: SlackBench, fake_slack: FakeSlack, rules_path: Path, tmp_path: Path
) -> AsyncIterator[SlackBench]:
    """A new process on the same database and Slack, at the same time."""
    return start_bench(
        bench.service.database, fake_slack, rules_path, tmp_path / "restarted", bench.clock
    )


async def test_a_crash_between_slacks_answer_and_the_commit_still_shows_one_card(
    bench: SlackBench, fake_slack: FakeSlack, rules_path: Path, tmp_path: Path
) -> None:
    escalation_id = await crash_while_posting(bench, after_slack_answers=True)
    (posted,) = fake_slack.cards_in(CARD_CHANNEL)
    assert bench.card_ts(escalation_id) is None  # Slack shows it; the database never heard

    async for restarted in restart(bench, fake_slack, rules_path, tmp_path):
        bench.clock.advance(seconds=60)  # the dead worker's lease runs out
        await restarted.deliver()

        assert fake_slack.cards_in(CARD_CHANNEL) == [posted]
        assert len(fake_slack.calls_to("chat.postMessage")) == 1
        assert restarted.card_ts(escalation_id) == posted["ts"]
        assert restarted.pending() == []
        # A new process knows the channel only by name: it looks the id up, then the history.
        looked = [call.method for call in fake_slack.calls if call.method.startswith("conv")]
        assert looked == ["conversations.list", "conversations.history"]
        (history,) = fake_slack.calls_to("conversations.history")
        assert history.args["channel"] == CARD_CHANNEL
        assert float(history.args["oldest"]) < float(posted["ts"])
        # The card found is the card edited from then on.
        await restarted.click_on_card(CardAction.CLAIM, escalation_id, ANA)
        await restarted.deliver()
        assert "Claimed by *ana*" in shown(fake_slack.message(CARD_CHANNEL, posted["ts"]))


async def test_a_crash_before_slack_answered_leaves_the_next_process_to_post_one_card(
    bench: SlackBench, fake_slack: FakeSlack, rules_path: Path, tmp_path: Path
) -> None:
    escalation_id = await crash_while_posting(bench, after_slack_answers=False)
    assert fake_slack.cards_in(CARD_CHANNEL) == []

    async for restarted in restart(bench, fake_slack, rules_path, tmp_path):
        bench.clock.advance(seconds=60)
        await restarted.deliver()

        assert len(fake_slack.calls_to("conversations.history")) == 1  # looked, found nothing
        (card,) = fake_slack.cards_in(CARD_CHANNEL)
        assert restarted.card_ts(escalation_id) == card["ts"]
        assert restarted.pending() == []


async def test_while_slack_cannot_say_whether_the_card_is_there_it_is_not_posted_again(
    bench: SlackBench, fake_slack: FakeSlack, rules_path: Path, tmp_path: Path
) -> None:
    escalation_id = await crash_while_posting(bench, after_slack_answers=True)
    (posted,) = fake_slack.cards_in(CARD_CHANNEL)
    fake_slack.fail_next("conversations.history", status=500)

    async for restarted in restart(bench, fake_slack, rules_path, tmp_path):
        bench.clock.advance(seconds=60)
        await restarted.deliver()

        (waiting,) = restarted.pending()
        assert waiting.attempts == 1
        assert "Slack" in (waiting.last_error or "")
        assert len(fake_slack.calls_to("chat.postMessage")) == 1  # no blind second post
        bench.clock.now = waiting.due_at
        await restarted.deliver()

        assert fake_slack.cards_in(CARD_CHANNEL) == [posted]
        assert restarted.card_ts(escalation_id) == posted["ts"]
        assert restarted.pending() == []


async def test_when_slack_cannot_say_for_long_the_card_is_posted_rather_than_held_back(
    bench: SlackBench, fake_slack: FakeSlack, rules_path: Path, tmp_path: Path
) -> None:
    escalation_id = await crash_while_posting(bench, after_slack_answers=False)
    for _ in range(20):
        fake_slack.fail_next("conversations.history", status=500)

    async for restarted in restart(bench, fake_slack, rules_path, tmp_path):
        bench.clock.advance(seconds=60)
        searches = DeliveryPolicy().search_attempts  # the service keeps the default
        for failed in range(1, searches):
            await restarted.deliver()
            (waiting,) = restarted.pending()
            assert waiting.attempts == failed
            assert fake_slack.cards_in(CARD_CHANNEL) == []
            bench.clock.now = waiting.due_at

        await restarted.deliver()

        assert len(fake_slack.calls_to("conversations.history")) == searches
        (card,) = fake_slack.cards_in(CARD_CHANNEL)
        assert restarted.card_ts(escalation_id) == card["ts"]
        assert restarted.pending() == []


async def test_when_the_bot_may_not_read_the_channel_the_card_is_posted_rather_than_lost(
    bench: SlackBench, fake_slack: FakeSlack, rules_path: Path, tmp_path: Path
) -> None:
    escalation_id = await crash_while_posting(bench, after_slack_answers=False)
    # Public channels take posts from a bot that is not a member, but not history reads.
    fake_slack.fail_next("conversations.history", error="not_in_channel")

    async for restarted in restart(bench, fake_slack, rules_path, tmp_path):
        bench.clock.advance(seconds=60)
        await restarted.deliver()

        (card,) = fake_slack.cards_in(CARD_CHANNEL)
        assert restarted.card_ts(escalation_id) == card["ts"]
        assert restarted.pending() == []


# --- 8. the customer keeps writing ----------------------------------------------------------


async def test_new_customer_messages_arrive_as_one_reply_in_the_cards_thread(
    bench: SlackBench,
) -> None:
    escalation_id = await bench.escalate_and_deliver()
    await bench.post_conversation(
        conversation(
            "c-angry",
            message("m6", "customer", "hello?? anyone there", 60),
            message("m7", "customer", "my email is ana@example.com", 61),
        )
    )

    await bench.deliver()

    ts = bench.card_ts(escalation_id)
    assert ts is not None
    (reply,) = bench.fake.replies_to(CARD_CHANNEL, ts)
    assert reply["text"] == (
        "Customer (10:01): hello?? anyone there\nCustomer (10:01): my email is [email]"
    )
    assert len(bench.fake.cards_in(CARD_CHANNEL)) == 1
    assert bench.pending() == []
    assert bench.pending("console") == []


async def test_messages_written_while_slack_holds_the_card_back_follow_it_into_the_thread(
    bench: SlackBench,
) -> None:
    bench.fake.fail_next("chat.postMessage", status=429, error="ratelimited", retry_after="30")
    escalation_id = await bench.escalate()
    await bench.deliver()
    await bench.post_conversation(
        conversation("c-angry", message("m6", "customer", "still waiting", 60))
    )
    await bench.deliver()
    assert bench.fake.cards_in(CARD_CHANNEL) == []

    bench.clock.advance(minutes=5)  # past the Retry-After and any backoff of the reply
    await bench.deliver()
    await bench.deliver()

    ts = bench.card_ts(escalation_id)
    assert ts is not None
    (reply,) = bench.fake.replies_to(CARD_CHANNEL, ts)
    assert reply["text"] == "Customer (10:01): still waiting"
    assert bench.pending() == []


# --- 9. who may click -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("secret", "age_seconds"),
    [("a-guessed-secret", 0), ("test-signing-secret", 6 * 60)],
    ids=["wrong secret", "replayed after five minutes"],
)
async def test_a_click_with_a_bad_or_stale_signature_is_refused_and_changes_nothing(
    bench: SlackBench, secret: str, age_seconds: int
) -> None:
    escalation_id = await bench.escalate_and_deliver()
    body = (
        "payload=%7B%22type%22%3A%22block_actions%22%2C%22actions%22%3A%5B%7B%22action_id%22%3A"
        f"%22{CardAction.CLAIM}%22%2C%22value%22%3A%22{escalation_id}%22%7D%5D%7D"
    )

    response = await bench.post_signed(
        body,
        "application/x-www-form-urlencoded",
        secret=secret,
        timestamp=int(time.time()) - age_seconds,
    )

    assert response.status == 401
    assert bench.escalation(escalation_id).status == "open"
    assert await bench.deliver() == 0


async def test_a_click_on_a_malformed_or_unknown_escalation_is_answered_privately(
    bench: SlackBench,
) -> None:
    await bench.escalate_and_deliver()

    for value in ("not-a-number", "-3", "", "99"):
        response = await bench.click(CardAction.CLAIM, value, BEN)
        assert response.status == 200
    await bench.click(CardAction.RESOLVE, "99", BEN)
    await bench.click(CardAction.RELEASE, "1x", BEN)

    calls = bench.fake.calls_to("chat.postEphemeral")
    assert [(call.args["user"], call.args["text"]) for call in calls] == [
        (BEN.id, UNKNOWN_ESCALATION)
    ] * 6
    assert bench.fake.calls_to("views.open") == []
    assert bench.fake.calls_to("chat.update") == []


async def test_link_buttons_are_acknowledged_and_change_nothing(bench: SlackBench) -> None:
    escalation_id = await bench.escalate_and_deliver()

    for action in (CardAction.OPEN_TRANSCRIPT, OPEN_PLATFORM_ACTION):
        await bench.click_on_card(action, escalation_id, BEN)

    assert bench.escalation(escalation_id).status == "open"
    assert await bench.deliver() == 0
