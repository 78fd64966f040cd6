"""Customer sentiment: VADER, corrected where support chats fool it, and only for customers."""

from __future__ import annotations

import pytest

from engine.sentiment import customer_sentiment
from engine.signals import message_words
from tests.engine.engine_factory import Chat


def sentiment(text: str, *, after_fallback: bool = False) -> float:
    lowered = text.lower()
    return customer_sentiment(
        text, lowered=lowered, words=message_words(lowered), after_fallback=after_fallback
    )


@pytest.mark.parametrize(
    ("text", "after_fallback", "expected"),
    [
        ("great job.", True, -0.6249),
        ("great job.", False, 0.6249),
        ("thanks for nothing", False, -0.4404),
        ("oh great, another useless answer", False, -0.4),
        (":) not", False, -0.4588),
        ("not happy :(", False, -0.1511),
        ("WHERE IS MY ORDER???", False, -0.3),
        ("where is my order", False, 0.0),
        ("THANK YOU SO MUCH!!!", False, 0.5229),
    ],
)
def test_sarcasm_negated_emoticons_and_shouting_are_read_the_way_agents_read_them(
    text: str, after_fallback: bool, expected: float
) -> None:
    assert sentiment(text, after_fallback=after_fallback) == pytest.approx(expected)


def test_a_customer_who_turns_sour_is_reported_with_the_trend() -> None:
    chat = Chat()
    chat.customer("Hi! I love your shop, thanks for the quick delivery last time")
    chat.bot("Glad to hear it! How can I help?")
    chat.customer("my new order is late and the box arrived damaged")
    chat.bot("Sorry to hear that. Can you share the order number?")
    chat.customer("this is terrible, I am really angry")
    chat.bot("I understand. Let me check.")
    assessment = chat.customer("awful service, I hate this")

    sentiment_reason = assessment.reasons[0]
    assert sentiment_reason.text == "sentiment fell from +0.81 to -0.66 (turns 1-7)"
    assert sentiment_reason.points == 30.0
    assert sentiment_reason.event_ids == ("e3", "e5", "e7")


def test_one_angry_message_counts_only_half() -> None:
    chat = Chat()
    assessment = chat.customer("the app is broken and I am very angry")

    assert chat.reason_texts() == ["negative sentiment -0.77 (turn 1)"]
    # -0.77 is past `strong_below` (-0.6): the full weight (30), halved for a lone message.
    assert assessment.reasons[0].points == 15.0


def test_the_bots_own_apologies_are_not_scored() -> None:
    chat = Chat()
    chat.customer("where is my parcel")
    assessment = chat.bot("I'm terribly sorry, that is awful. It is on its way.")

    assert assessment.reasons == ()
    assert [point.event_id for point in chat.state.sentiments] == ["e1"]


def test_sentiment_recovers_as_the_window_moves_on() -> None:
    chat = Chat()
    chat.customer("this is terrible and I am angry")
    chat.customer("awful, just awful")
    chat.customer("ok that worked, thank you")
    chat.customer("great, thanks a lot for the help")
    assessment = chat.customer("perfect, have a nice day")

    assert [reason.signal for reason in assessment.reasons] == []


def test_neutral_questions_after_an_enthusiastic_greeting_are_not_a_drop() -> None:
    chat = Chat()
    chat.customer("Hi! I love your shop, you are all wonderful")
    chat.customer("how do I change my delivery address")
    chat.customer("and where do I find my invoices")
    assessment = chat.customer("is there a student discount")

    assert assessment.reasons == ()


def test_an_attachment_without_words_does_not_dilute_the_window() -> None:
    chat = Chat()
    chat.customer("this is awful, I am so angry")
    chat.customer("")

    assert [point.event_id for point in chat.state.sentiments] == ["e1"]
