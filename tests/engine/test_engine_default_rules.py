"""The shipped rules.yaml: each strong sign of trouble escalates alone, weak signs need company."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.assessment import Decision
from engine.rules import Rules
from engine.rules_loader import load_rules_file
from engine.signals import (
    asks_for_human,
    confusion_phrase,
    gives_up,
    is_failure_phrasing,
    message_words,
)
from tests.engine.engine_factory import Chat

DEFAULT_RULES = Path(__file__).resolve().parents[2] / "rules.yaml"


@pytest.fixture(scope="module")
def default_rules() -> Rules:
    return load_rules_file(DEFAULT_RULES)


@pytest.mark.parametrize(
    "text",
    [
        "Can someone from your team call me back about it?",
        "I'd rather talk it through with a person.",
        "Thanks, but could I speak to a member of staff instead?",
        "¿Me puede pasar con un agente?",
    ],
)
def test_these_requests_for_a_person_are_recognised(text: str) -> None:
    assert asks_for_human(text)


@pytest.mark.parametrize(
    "text",
    [
        "How do I apply to become a sales representative?",
        "Are there any jobs as a customer service agent?",
    ],
)
def test_asking_about_a_job_is_not_asking_for_a_person(text: str) -> None:
    assert not asks_for_human(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Sorry, I was unable to make the reservation.", True),
        ("I couldn't find any orders under that email.", True),
        ("There are no results for 'blue kettle'.", True),
        ("Sorry, something went wrong on our side.", True),
        ("Your table has been reserved.", False),
        ("I can help you with that.", False),
    ],
)
def test_the_bot_saying_it_could_not_do_it_is_a_failure(text: str, expected: bool) -> None:
    assert is_failure_phrasing(text.lower()) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("what?", "what"),
        ("What do you mean?", "what do you mean"),
        ("That makes no sense", "makes no sense"),
        ("I never said that", "i never said"),
        ("what time do you open?", None),
    ],
)
def test_the_customer_lost_by_a_reply_is_recognised(text: str, expected: str | None) -> None:
    lowered = text.lower()
    assert confusion_phrase(lowered, message_words(lowered)) == expected


@pytest.mark.parametrize(
    ("text", "after_failure", "expected"),
    [
        ("forget it", False, "forget it"),
        ("Alright, thank you anyway, I'll wait.", False, "thank you anyway"),
        ("No, thank you.", True, "no, thank you."),
        ("No, thank you.", False, None),
        ("No, can you try 6 pm instead?", True, None),
    ],
)
def test_giving_up_is_recognised(text: str, after_failure: bool, expected: str | None) -> None:
    lowered = text.lower()
    assert gives_up(lowered, message_words(lowered), after_failure=after_failure) == expected


def test_three_failed_bot_replies_in_a_row_escalate_a_polite_customer(
    default_rules: Rules,
) -> None:
    chat = Chat(default_rules)
    chat.customer("Hello, I'd like to change my delivery address please.")
    chat.bot("Sorry, I didn't get that.", fallback=True)
    chat.customer("I would like to update the address for my order.")
    second = chat.bot("Sorry, I didn't get that.", fallback=True)
    chat.customer("The delivery address, for order 5521.")
    third = chat.bot("Sorry, I didn't get that.", fallback=True)

    assert second.decision is Decision.NONE
    assert third.decision is Decision.OPEN
    assert "the bot failed 3 times in a row (turns 2-6)" in chat.reason_texts()


def test_strong_anger_alone_escalates(default_rules: Rules) -> None:
    chat = Chat(default_rules)
    chat.customer("I was charged twice for the same order.")
    chat.bot("Refunds take 5-10 business days.")
    angry = chat.customer("This is absolutely unacceptable, I am furious. This is a scam.")

    assert angry.decision is Decision.OPEN
    assert [reason.signal for reason in angry.reasons] == ["sentiment", "frustration"]


def test_giving_up_right_after_a_failure_escalates(default_rules: Rules) -> None:
    chat = Chat(default_rules)
    chat.customer("Book a table for two at 7 pm at Addis.")
    chat.bot("Sorry, I was unable to make the reservation. Anything else?")
    gave_up = chat.customer("No, thank you anyway.")

    assert gave_up.decision is Decision.OPEN
    assert chat.reason_texts() == [
        "the customer gave up after the bot failed them",
        "the bot failed once (turn 2)",
    ]


def test_declining_after_a_good_answer_is_just_goodbye(default_rules: Rules) -> None:
    chat = Chat(default_rules)
    chat.customer("Book a table for two at 7 pm at Addis.")
    chat.bot("Your table has been reserved. Anything else?")
    goodbye = chat.customer("No, thank you.")

    assert (goodbye.score, goodbye.decision) == (0.0, Decision.NONE)


def test_sarcasm_after_the_bot_repeats_itself_is_frustration(default_rules: Rules) -> None:
    chat = Chat(default_rules)
    chat.customer("The discount code SPRING10 is not applied at checkout.")
    chat.bot("Discount codes can be entered at checkout.")
    chat.customer("I did enter it at checkout, it says invalid.")
    chat.bot("Discount codes can be entered at checkout.")
    sarcastic = chat.customer("Wow, so helpful. Genius.")

    assert 'frustration: "helpful (sarcastic)" (turn 5)' in chat.reason_texts()
    assert sarcastic.decision is Decision.OPEN


def test_one_failure_and_one_what_stay_below_escalate(default_rules: Rules) -> None:
    chat = Chat(default_rules)
    chat.customer("Do you have the blue kettle in stock?")
    chat.bot("I couldn't find that product.")
    assessment = chat.customer("what?")

    assert assessment.level == "watch"
    assert assessment.decision is Decision.NONE
