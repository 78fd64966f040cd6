"""Bot fallbacks in a row: however the platform says it, and however the bot words it."""

from __future__ import annotations

import pytest

from engine import is_fallback_intent, is_fallback_phrasing
from tests.engine.engine_factory import Chat


@pytest.mark.parametrize(
    "intent",
    [
        "sys.no-match",
        "Default Fallback Intent",
        "nlu_fallback",
        "FallbackIntent",
        "AMAZON.FallbackIntent",
        "None",
        "anything_else",
        "sys.no-input-default",
    ],
)
def test_platform_fallback_intents_are_recognised(intent: str) -> None:
    assert is_fallback_intent(intent)


@pytest.mark.parametrize("intent", ["order_status", "welcome", "track.parcel", "noneditable"])
def test_ordinary_intents_are_not_fallbacks(intent: str) -> None:
    assert not is_fallback_intent(intent)


@pytest.mark.parametrize(
    "text",
    [
        "Sorry, I didn't get that.",
        "I'm not sure I understand.",
        "Could you rephrase?",
        "Sorry, can you say that again?",
        "I'm still learning and don't know how to help with that yet.",
        "Das habe ich leider nicht verstanden.",
        "Lo siento, no te entendí.",
        "Désolé, je n'ai pas compris.",
        "Desculpe, não entendi.",
    ],
)
def test_fallback_phrasing_is_recognised(text: str) -> None:
    assert is_fallback_phrasing(text.lower())


@pytest.mark.parametrize(
    "text",
    [
        "Your order is on its way and arrives Friday.",
        "Did you get the confirmation email?",
        "I understand, let me check that for you.",
    ],
)
def test_real_answers_are_not_fallback_phrasing(text: str) -> None:
    assert not is_fallback_phrasing(text.lower())


def test_admin_phrases_extend_the_fallback_phrasing() -> None:
    assert is_fallback_phrasing("hmm, beats me!", ("beats me",))


def test_three_fallbacks_in_a_row_are_reported_with_their_turns() -> None:
    chat = Chat()
    chat.customer("my parcel never came")
    chat.bot("Sorry, I didn't get that.")
    chat.customer("the parcel, it did not arrive")
    chat.bot("Hmm.", intent="Default Fallback Intent")
    chat.customer("PARCEL NOT ARRIVED")
    assessment = chat.bot("Let me see.", fallback=True)

    fallbacks = next(reason for reason in assessment.reasons if reason.signal == "fallbacks")
    assert fallbacks.text == "the bot failed 3 times in a row (turns 2-6)"
    assert fallbacks.points == 23.3
    assert fallbacks.event_ids == ("e2", "e4", "e6")


@pytest.mark.parametrize(("streak", "points"), [(1, None), (2, 11.7), (3, 23.3), (4, 35.0)])
def test_fallback_points_ramp_from_the_streak_to_full(streak: int, points: float | None) -> None:
    chat = Chat()
    for _ in range(streak):
        chat.customer("hello?")
        assessment = chat.bot("", confidence=0.1)

    found = [reason.points for reason in assessment.reasons if reason.signal == "fallbacks"]
    assert found == ([] if points is None else [points])


def test_a_real_answer_resets_the_streak() -> None:
    chat = Chat()
    chat.bot("Sorry, I didn't get that.")
    chat.bot("Could you rephrase?")
    assessment = chat.bot("Your refund was sent on Monday.", intent="refund_status", confidence=0.9)

    assert assessment.reasons == ()
    assert chat.state.fallback_streak == 0
