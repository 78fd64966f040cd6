"""The customer saying the same thing again, and the bot going round in a loop."""

from __future__ import annotations

from collections import deque

from engine.rules import RepetitionSignal, Signals
from engine.signals import similarity, token_set
from engine.state import Hit
from tests.engine.engine_factory import Chat, make_rules


def test_token_set_similarity_ignores_case_punctuation_and_order() -> None:
    first = token_set("Where is my refund?!")
    second = token_set("my refund, where is it")

    assert similarity(first, second) == 0.8


def test_a_customer_rephrasing_the_same_question_is_a_repeat() -> None:
    chat = Chat()
    chat.customer("Where is my refund for order 1234?")
    chat.bot("Refunds take 5-7 business days.", intent="refund_policy")
    assessment = chat.customer("where is my REFUND for order 1234")

    assert chat.reason_texts() == ["the customer repeated themselves (turn 3)"]
    # One repeat is a third of the weight (20): a hint, not yet a loop.
    assert assessment.reasons[0].points == 6.7
    assert assessment.reasons[0].event_ids == ("e3",)


def test_short_answers_like_yes_and_no_are_not_repeats() -> None:
    chat = Chat()
    for _ in range(3):
        chat.customer("no")
        chat.customer("Yes!")
        assessment = chat.customer("ok thanks")

    assert assessment.reasons == ()


def test_the_bot_asking_the_same_question_again_is_a_loop() -> None:
    chat = Chat()
    chat.customer("I want to change my delivery address")
    chat.bot("Can you give me your order number please?", intent="ask_order_number")
    chat.customer("it is the one from yesterday")
    assessment = chat.bot("Can you give me your order number please?", intent="ask_order_number")

    assert chat.reason_texts() == ["the bot repeated itself (turn 4)"]
    assert assessment.reasons[0].event_ids == ("e4",)


def test_repeats_on_both_sides_add_up() -> None:
    chat = Chat()
    chat.customer("I want to change my delivery address")
    chat.bot("Can you give me your order number please?")
    chat.customer("I want to change my delivery address!")
    assessment = chat.bot("Can you give me your order number please?")

    assert chat.reason_texts() == [
        "the customer repeated themselves and the bot repeated itself (turns 3-4)"
    ]
    assert assessment.reasons[0].points == 13.3


def test_the_bot_sending_the_same_menu_four_times_escalates_on_its_own() -> None:
    chat = Chat(make_rules(signals=Signals(repetition=RepetitionSignal(weight=50))))
    menu = "Please choose: 1) Balance 2) Cards 3) Payments"
    chat.customer("I need to report a fraudulent transaction.")
    chat.bot(menu)
    for answer in ("2", "Cards. Fraud.", "cards"):
        chat.customer(answer)
        assessment = chat.bot(menu)

    assert chat.reason_texts() == ["the bot repeated itself 3 times (turns 4-8)"]
    assert (assessment.score, assessment.level) == (50.0, "escalate")


def test_old_repeats_stop_counting() -> None:
    chat = Chat()
    chat.customer("where is my refund for order 1234")
    chat.customer("where is my refund for order 1234")
    for number in range(12):
        assessment = chat.customer(f"and what about voucher number {number}")

    assert [reason.signal for reason in assessment.reasons] == []


def test_a_loop_longer_than_the_state_keeps_is_worded_from_its_last_repeats() -> None:
    chat = Chat(make_rules(signals=Signals(repetition=RepetitionSignal(weight=50, memory=40))))
    menu = "Please choose: 1) Balance 2) Cards 3) Payments"
    chat.customer("I need to report a fraudulent transaction.")
    for _ in range(13):
        chat.bot(menu)
        assessment = chat.customer("I need to report a fraudulent transaction")

    # The state keeps the last 10 repeats (turns 18-27): 5 on each side.
    (loop,) = [reason for reason in assessment.reasons if reason.signal == "repetition"]
    assert loop.text == (
        "the customer repeated themselves 5 times and the bot repeated itself 5 times (turns 18-27)"
    )
    assert loop.points == 50.0
    assert loop.event_ids == tuple(f"e{turn}" for turn in range(18, 28))


def test_repeats_in_a_state_built_by_hand_beyond_its_usual_length_are_all_counted() -> None:
    chat = Chat(make_rules(signals=Signals(repetition=RepetitionSignal(memory=40))))
    chat.state.turns = 11
    chat.state.repeats = deque(Hit(turn, f"e{turn}", "customer") for turn in range(1, 12))

    assessment = chat.customer("ok")

    (reason,) = assessment.reasons
    assert reason.text == "the customer repeated themselves 11 times (turns 1-11)"
    assert reason.points == 20.0
