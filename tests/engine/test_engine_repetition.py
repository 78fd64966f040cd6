"""The customer saying the same thing again, and the bot going round in a loop."""

from __future__ import annotations

from engine.signals import similarity, token_set
from tests.engine.engine_factory import Chat


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
    assert assessment.reasons[0].points == 10.0
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


def test_repeats_on_both_sides_add_up_to_full_strength() -> None:
    chat = Chat()
    chat.customer("I want to change my delivery address")
    chat.bot("Can you give me your order number please?")
    chat.customer("I want to change my delivery address!")
    assessment = chat.bot("Can you give me your order number please?")

    assert chat.reason_texts() == [
        "the customer repeated themselves and the bot repeated itself (turns 3-4)"
    ]
    assert assessment.reasons[0].points == 20.0


def test_old_repeats_stop_counting() -> None:
    chat = Chat()
    chat.customer("where is my refund for order 1234")
    chat.customer("where is my refund for order 1234")
    for number in range(12):
        assessment = chat.customer(f"and what about voucher number {number}")

    assert [reason.signal for reason in assessment.reasons] == []
