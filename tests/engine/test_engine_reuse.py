"""What the engine reuses between events never changes a verdict.

The engine keeps each reason until one of its inputs changes, and scores a message with no word
VADER knows as 0.0 without running VADER. These tests hold both to the slow way: a state read back
from JSON before every event (it starts with nothing to reuse), and VADER itself.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot.replay import read_conversations
from engine import ConversationState, assess, reset_escalation, vader_compound
from engine.events import ConversationEvent, ConversationMeta, Customer, EventType, Role
from engine.rules import (
    CorrectionSignal,
    FrustrationSignal,
    LongConversationSignal,
    LongDurationSignal,
    RepetitionSignal,
    Rules,
    ShoutingSignal,
    Signals,
    SlowReplySignal,
)
from engine.sentiment import has_no_sentiment_words
from engine.signals import (
    _FAILURE_PHRASING,
    _WORD,
    _starts_a_word,
    is_failure_phrasing,
    message_words,
)
from tests.engine.engine_factory import START, make_rules

DATA = Path(__file__).resolve().parents[2] / "evaluation" / "data"
META = ConversationMeta(customer=Customer(tier="premium"))

# Short memories, so old hits stop counting while nothing new happens; every signal on.
FORGETFUL = make_rules(
    signals=Signals(
        repetition=RepetitionSignal(memory=2, lookback=2, similarity=0.5),
        frustration=FrustrationSignal(memory=3),
        correction=CorrectionSignal(memory=2),
        shouting=ShoutingSignal(memory=1),
        slow_reply=SlowReplySignal(memory=2, minutes=0.5),
        long_conversation=LongConversationSignal(turns=6),
        long_duration=LongDurationSignal(minutes=2),
    )
)


def _conversations() -> list[tuple[ConversationMeta, tuple[ConversationEvent, ...]]]:
    found = []
    for path in sorted(DATA.glob("*.jsonl")):
        for batch, _raw in read_conversations(path):
            found.append((batch.meta, batch.events))
    return found


CONVERSATIONS = _conversations()


def _customer_texts() -> list[str]:
    return [
        event.text
        for _meta, events in CONVERSATIONS
        for event in events
        if event.role is Role.CUSTOMER and event.text
    ]


@pytest.mark.parametrize("rules", [make_rules(), FORGETFUL], ids=["default", "forgetful"])
def test_reused_reasons_give_the_verdicts_of_a_state_read_back_before_every_event(
    rules: Rules,
) -> None:
    for meta, events in CONVERSATIONS[::4]:
        kept = ConversationState.new()
        fresh = ConversationState.new()
        for event in events:
            kept, kept_assessment = assess(kept, event, rules, meta)
            fresh = ConversationState.from_dict(fresh.to_dict())
            fresh, fresh_assessment = assess(fresh, event, rules, meta)
            assert kept_assessment == fresh_assessment
        assert kept.to_dict() == fresh.to_dict()


def test_old_trouble_stops_counting_on_the_turn_it_would_without_reuse() -> None:
    kept = ConversationState.new()
    fresh = ConversationState.new()
    lines = [
        (Role.CUSTOMER, "WHERE IS MY ORDER???"),
        (Role.BOT, "Sorry, I didn't get that."),
        (Role.CUSTOMER, "this is useless, I already told you"),
        (Role.BOT, "Your order is on its way."),
        (Role.CUSTOMER, "no, that's not it"),
    ] + [(Role.BOT, f"Anything else about topic {n}?") for n in range(8)]
    for number, (role, text) in enumerate(lines):
        event = ConversationEvent(
            f"e{number}",
            EventType.MESSAGE,
            START + timedelta(minutes=number),
            role,
            text,
        )
        kept, kept_assessment = assess(kept, event, FORGETFUL, META)
        fresh = ConversationState.from_dict(fresh.to_dict())
        fresh, fresh_assessment = assess(fresh, event, FORGETFUL, META)
        assert kept_assessment == fresh_assessment
    # Shouting, frustration and the correction have all been forgotten by now.
    assert {reason.signal for reason in kept_assessment.reasons} == {
        "long_conversation",
        "long_duration",
        "customer_tier",
    }


def test_other_rules_or_a_reset_start_afresh() -> None:
    rules = [make_rules(), FORGETFUL]
    meta, events = max(CONVERSATIONS, key=lambda found: len(found[1]))
    kept = ConversationState.new()
    fresh = ConversationState.new()
    for number, event in enumerate(events):
        current = rules[number // 3 % 2]
        if number % 7 == 6:
            kept = reset_escalation(kept)
            fresh = reset_escalation(fresh)
        kept, kept_assessment = assess(kept, event, current, meta)
        fresh = ConversationState.from_dict(fresh.to_dict())
        fresh, fresh_assessment = assess(fresh, event, current, meta)
        assert kept_assessment == fresh_assessment


TRICKY = [
    "",
    "   ",
    "ok",
    "OK!!!",
    "no",
    "no no no",
    "not bad",
    "kind of",
    "but",
    "Thanks :)",
    ":) not",
    ":-D",
    "<3",
    "I'm fine, but the app isn't",
    "order #123 for jane.doe@example.com",
    "the app crashes every time",
    "can't log in",
    "WHY IS THIS SO HARD???",
    "help",
    "very very very",
    "Danke schön",
    "ça ne marche pas",
    "👍",
    "ok 👍",
    "no-one answers",
    "sort of",
    "(-:",
    "'great'",
    '"nice"',
    "lol",
]


@pytest.mark.parametrize("text", TRICKY + _customer_texts()[::3])
def test_a_message_without_sentiment_words_is_one_vader_scores_zero(text: str) -> None:
    lowered = text.lower()
    certain = has_no_sentiment_words(text, lowered)
    # With the message's words the check is quicker and may be unsure more often, never surer.
    if has_no_sentiment_words(text, lowered, message_words(lowered)):
        assert certain
    if certain:
        assert vader_compound(text) == 0.0


def test_the_sentiment_word_check_finds_most_neutral_messages() -> None:
    texts = _customer_texts()
    zero = [text for text in texts if vader_compound(text) == 0.0]
    found = [
        text
        for text in zero
        if has_no_sentiment_words(text, text.lower(), message_words(text.lower()))
    ]
    assert len(found) >= 0.8 * len(zero)


@pytest.mark.parametrize(
    "lowered",
    [*TRICKY, "don't_do_that", "a_b c-d e'f", "x\ty\nz", "Mixed Case 123abc", "~!@#$%^&*()"],
)
def test_ascii_messages_split_into_the_words_the_pattern_finds(lowered: str) -> None:
    assert message_words(lowered) == frozenset(_WORD.findall(lowered))


FAILURES = [
    "I couldn't find any flights",
    "we were not able to",
    "no results",
    "System is down",
    "it is currently unavailable",
    "I can't help with that",
    "something went wrong!",
    "nothing matching",
    "I wasn’t successful",
    "did not find a",
    "couldnt book",
    "cannot do that",
    "How can I help?",
]


def test_the_failure_word_check_never_skips_a_failure_the_pattern_finds() -> None:
    texts = FAILURES + [
        event.text for _meta, events in CONVERSATIONS for event in events if event.text
    ]
    found = 0
    for text in texts:
        lowered = text.lower()
        expected = _starts_a_word(_FAILURE_PHRASING, lowered)
        assert is_failure_phrasing(lowered, message_words(lowered)) == expected, text
        found += expected
    assert found > len(FAILURES)
