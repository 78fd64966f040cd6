"""A customer asking for a person, in five languages, and not fooled by negation."""

from __future__ import annotations

import pytest

from engine import Decision, asks_for_human
from tests.engine.engine_factory import Chat

ASKS = [
    "can I talk to a person",
    "agent please",
    "Representative!",
    "I want a real human",
    "let me speak to someone",
    "operator",
    "connect me to support",
    "live agent",
    "HUMAN",
    "why can't I talk to a person?",
    "I don't need a bot, I need a human",
    "is there no way to talk to a human?",
    "Ich möchte mit einem Menschen sprechen",
    "Verbinden Sie mich bitte mit einem Mitarbeiter",
    "Quiero hablar con una persona",
    "necesito un agente humano",
    "Je veux parler à un conseiller",
    "je voudrais parler à quelqu'un",
    "Quero falar com um atendente",
    "preciso falar com uma pessoa",
]

DOES_NOT_ASK = [
    "I don't need a human",
    "no agent needed",
    "I'd like to fix it without talking to anyone",
    "I don't want to speak to a person, just tell me my balance",
    "where is my order?",
    "the agent at the store told me to write here",
    "I talked to the person at the counter",
    "Ich brauche keinen Menschen",
    "no quiero hablar con una persona",
    "je ne veux pas parler à un humain",
    "não quero falar com um atendente",
]


@pytest.mark.parametrize("text", ASKS)
def test_explicit_requests_for_a_person_are_recognised(text: str) -> None:
    assert asks_for_human(text)


@pytest.mark.parametrize("text", DOES_NOT_ASK)
def test_negated_or_unrelated_mentions_of_people_are_not_requests(text: str) -> None:
    assert not asks_for_human(text)


def test_admin_phrases_extend_the_detector() -> None:
    assert not asks_for_human("get me a grown-up")
    assert asks_for_human("get me a grown-up", extra_phrases=("grown-up",))
    assert not asks_for_human("I don't want a grown-up", extra_phrases=("grown-up",))


def test_asking_for_a_person_opens_an_escalation_with_the_customer_quoted() -> None:
    chat = Chat()
    chat.customer("hi")
    chat.bot("Hello! How can I help?", intent="welcome")

    assessment = chat.customer("can I talk to a person")

    assert assessment.decision is Decision.OPEN
    assert assessment.level == "escalate"
    assert assessment.team == "support"
    assert chat.reason_texts() == ['asked for a human at 10:01: "can I talk to a person"']
    assert assessment.reasons[0].event_ids == ("e3",)


def test_the_request_is_sticky_and_never_recovers_by_itself() -> None:
    chat = Chat()
    chat.customer("agent please")
    for number in range(6):
        chat.bot(f"Your parcel {number} is in the depot and leaves today.", intent="order_status")
        assessment = chat.customer("ok thanks")

    assert assessment.decision is Decision.NONE
    assert chat.state.escalated
    assert chat.reason_texts() == ['asked for a human at 10:00: "agent please"']


def test_the_quoted_request_is_redacted() -> None:
    chat = Chat()
    chat.customer("call me at +44 20 7946 0958 or get me a human")

    assert chat.reason_texts() == [
        'asked for a human at 10:00: "call me at [phone] or get me a human"'
    ]
