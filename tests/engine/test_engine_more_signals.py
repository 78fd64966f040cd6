"""Corrections of bot answers, shouting, and customers left waiting for a reply."""

from __future__ import annotations

from datetime import timedelta

import pytest

from engine.sentiment import is_shouting
from engine.signals import is_correction
from tests.engine.engine_factory import Chat


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("no, I meant the other order", True),
        ("Nope.", True),
        ("that's not what I asked", True),
        ("wrong, it was yesterday", True),
        ("nein, das andere Paket", True),
        ("not now", False),
        ("I know", False),
        ("nothing else", False),
    ],
)
def test_corrections_are_recognised(text: str, expected: bool) -> None:
    assert is_correction(text.lower()) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("WHERE IS MY ORDER", True),
        ("where is my order???", True),
        ("seriously?!", True),
        ("OK", False),
        ("I ordered from the UK", False),
    ],
)
def test_shouting_is_capitals_or_piled_up_punctuation(text: str, expected: bool) -> None:
    assert is_shouting(text) is expected


def test_the_customer_correcting_an_answer_is_a_reason() -> None:
    chat = Chat()
    chat.customer("when does my order arrive")
    chat.bot("Your order arrives on Friday.", intent="order_status")
    assessment = chat.customer("no, I meant the replacement order")

    correction = next(reason for reason in assessment.reasons if reason.signal == "correction")
    assert (correction.text, correction.points, correction.event_ids) == (
        'the customer corrected the bot: "i meant" (turn 3)',
        9.0,
        ("e3",),
    )


def test_saying_no_to_a_question_is_not_a_correction() -> None:
    chat = Chat()
    chat.bot("Is there anything else I can help with?", intent="anything_more")
    assessment = chat.customer("no thanks, bye")

    assert "correction" not in [reason.signal for reason in assessment.reasons]


def test_shouting_is_quoted() -> None:
    chat = Chat()
    chat.customer("WHERE IS MY REFUND")

    assert 'shouting: "WHERE IS MY REFUND" (turn 1)' in chat.reason_texts()


def test_a_customer_left_waiting_for_a_reply_is_a_reason() -> None:
    chat = Chat()
    chat.customer("hello, my parcel is missing")
    chat.customer("hello?")
    assessment = chat.bot("Sorry for the wait! Let me look.", gap=timedelta(minutes=7))

    assert chat.reason_texts() == ["the customer waited 7 min for a reply (turn 3)"]
    assert assessment.reasons[0].points == 6.0
