"""When an escalation opens, upgrades, recovers or ends, and when the engine stays quiet."""

from __future__ import annotations

from datetime import timedelta

from engine import Decision, reset_escalation
from engine.events import EventType
from engine.rules import FallbackSignal, Signals
from tests.engine.engine_factory import START, Chat, make_rules

# Two fallbacks in a row are worth 60 points: enough for "escalate" (50) on their own.
TOUCHY_BOT = make_rules(signals=Signals(fallbacks=FallbackSignal(weight=60, streak=2, full_at=2)))


def fail_twice(chat: Chat) -> None:
    chat.customer("I need to update my card")
    chat.bot("Sorry, I didn't get that.")
    chat.customer("update my payment card")
    chat.bot("Could you rephrase?")


def test_reaching_a_notifying_level_opens_an_escalation_once() -> None:
    chat = Chat(TOUCHY_BOT)
    chat.customer("I need to update my card")
    first = chat.bot("Sorry, I didn't get that.")
    chat.customer("update my payment card")
    opened = chat.bot("Could you rephrase?")
    still = chat.customer("hello??")

    assert (first.decision, first.level) == (Decision.NONE, None)
    assert (opened.decision, opened.level, opened.notify) == (Decision.OPEN, "escalate", True)
    assert (opened.team, opened.mention) == ("support", None)
    assert still.decision is Decision.NONE


def fail_three_times(chat: Chat) -> None:
    fail_twice(chat)
    chat.customer("payment card change")
    chat.bot("I'm not sure I understand.")


def test_a_watch_level_is_recorded_but_opens_nothing() -> None:
    chat = Chat()
    fail_three_times(chat)
    assessment = chat.last
    assert assessment is not None

    assert (assessment.level, assessment.notify, assessment.decision) == (
        "watch",
        False,
        Decision.NONE,
    )


def test_a_higher_level_upgrades_the_open_escalation() -> None:
    chat = Chat(TOUCHY_BOT)
    fail_twice(chat)
    upgraded = chat.customer("this is useless, get me a human")

    assert (upgraded.decision, upgraded.level, upgraded.mention) == (
        Decision.UPGRADE,
        "urgent",
        "@here",
    )
    assert upgraded.score == 100.0


def test_the_escalation_recovers_after_enough_real_bot_answers() -> None:
    chat = Chat(TOUCHY_BOT)
    fail_twice(chat)
    chat.customer("my visa card")
    first_answer = chat.bot("You can update your card under Settings > Payment.", intent="card")
    chat.customer("found it")
    second_answer = chat.bot("Great! Anything else I can help with?", intent="anything_more")

    assert first_answer.decision is Decision.NONE
    assert second_answer.decision is Decision.RECOVERED
    assert not chat.state.escalated


def test_a_fallback_between_answers_restarts_the_recovery_count() -> None:
    chat = Chat(TOUCHY_BOT)
    fail_twice(chat)
    chat.bot("You can update your card under Settings > Payment.", intent="card")
    chat.bot("Sorry, I didn't get that.")
    after_fallback = chat.bot("Anything else I can help with?", intent="anything_more")
    recovered = chat.bot("Have a nice day!", intent="goodbye")

    assert after_fallback.decision is Decision.NONE
    assert recovered.decision is Decision.RECOVERED


def test_the_session_ending_while_escalated_ends_the_escalation() -> None:
    chat = Chat(TOUCHY_BOT)
    fail_twice(chat)
    ended = chat.end()

    assert ended.decision is Decision.ENDED
    assert not chat.state.escalated


def test_a_platform_handoff_means_no_new_escalation() -> None:
    chat = Chat()
    chat.event(EventType.HANDOFF)
    assessment = chat.customer("can I talk to a person")

    assert (assessment.level, assessment.decision) == ("escalate", Decision.NONE)


def test_an_agent_in_the_conversation_means_no_new_escalation() -> None:
    chat = Chat()
    chat.agent("Hi, I'm Sam from support, how can I help?")
    assessment = chat.customer("I want a real human, not you bot")

    assert assessment.decision is Decision.NONE


def test_after_an_agent_resolves_it_only_new_trouble_escalates_again() -> None:
    chat = Chat()
    assert chat.customer("agent please").decision is Decision.OPEN

    chat.state = reset_escalation(chat.state)
    quiet = chat.customer("thanks, all sorted")
    again = chat.customer("one more thing, can I talk to someone about my invoice?")

    assert (quiet.decision, quiet.score) == (Decision.NONE, 0.0)
    assert again.decision is Decision.OPEN


def test_time_never_goes_backwards_when_events_arrive_out_of_order() -> None:
    chat = Chat()
    chat.customer("hello")
    chat.customer("my order is late", gap=timedelta(minutes=25))
    late_arrival = chat.customer("is anyone there", gap=timedelta(minutes=-20))

    assert chat.state.last_at == START + timedelta(minutes=25, seconds=30)
    assert [reason.text for reason in late_arrival.reasons] == ["running for 25 min"]


def test_a_long_conversation_is_a_reason_of_its_own() -> None:
    chat = Chat()
    questions = [
        "how do I export my data",
        "can I add a second user",
        "where do invoices go",
        "is there a dark mode",
        "what happens when my trial ends",
        "do you support single sign-on",
        "can I pay yearly",
        "how do I delete a project",
    ]
    for number, question in enumerate(questions):
        chat.customer(question)
        assessment = chat.bot(f"Answer {number}: see the help centre.", intent=f"faq_{number}")

    assert chat.reason_texts() == ["16 messages so far"]
    assert assessment.score == 10.0


def test_the_customer_tier_adds_points_only_to_existing_trouble() -> None:
    calm = Chat(tier="enterprise")
    calm_assessment = calm.customer("hello, how do I export my data?")
    troubled = Chat(tier="enterprise")
    troubled.customer("this is ridiculous")

    assert calm_assessment.reasons == ()
    assert troubled.reason_texts() == [
        "enterprise customer",
        'frustration: "this is ridiculous" (turn 1)',
        "negative sentiment -0.36 (turn 1)",
    ]


def test_leaving_after_trouble_without_resolution_is_abandonment() -> None:
    chat = Chat()
    fail_three_times(chat)
    abandoned = chat.end()

    assert abandoned.reasons[-1].text == "the customer left without a resolution"
    assert abandoned.reasons[-1].event_ids == ("e7",)


def test_a_resolved_session_is_not_abandonment() -> None:
    chat = Chat()
    fail_three_times(chat)
    resolved = chat.end(outcome="resolved")

    assert "abandonment" not in [reason.signal for reason in resolved.reasons]
