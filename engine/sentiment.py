"""Customer sentiment: VADER's compound score, corrected where VADER misreads support chats."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

# A positive emoticon next to a "not" reads as sarcasm (":) not"), VADER scores it positive.
_NEGATED_EMOTICON = re.compile(
    r"(?::-?\)|:-?d\b|;-?\)|🙂|😊|😀|😃|👍)\s*(?:not|no|nope)\b|\bnot\s*(?::-?\)|:-?d\b|🙂|😊|👍)"
)
# Phrases that are sarcastic wherever they appear.
_SARCASM_ALWAYS = re.compile(
    r"\b(?:thanks? (?:a lot )?for nothing|oh (?:great|wonderful|perfect|brilliant|nice|fantastic|"
    r"awesome|joy|good)|just (?:great|perfect|wonderful|brilliant)|yeah,? right|"
    r"very funny|what a (?:great|wonderful) (?:help|bot|service))\b"
)
# Praise that is sarcastic when it answers a fallback ("great job." after "I didn't get that").
_PRAISE = re.compile(
    r"\b(?:great|good|nice|brilliant|fantastic|wonderful|awesome|perfect|excellent|amazing|"
    r"thanks|thank you|helpful|well done|super|lovely)\b"
)
_SHORT_MESSAGE_TOKENS = 6
# How much shouting or "!!!"/"???" pushes a neutral or negative message further down.
_SHOUT_PENALTY = 0.3
_SARCASM_FLOOR = -0.4


@lru_cache(maxsize=1)
def _analyzer() -> Any:
    # Building the analyzer reads VADER's lexicon files; do it once per process.
    return SentimentIntensityAnalyzer()


def vader_compound(text: str) -> float:
    """VADER's compound score for `text`, in [-1, 1], with the analyzer built once per process."""
    return float(_analyzer().polarity_scores(text)["compound"])


def _shouting(text: str) -> bool:
    letters = 0
    upper = 0
    for char in text:
        if char.isalpha():
            letters += 1
            if char.isupper():
                upper += 1
    return letters >= 8 and upper >= 0.7 * letters


def customer_sentiment(text: str, *, lowered: str, after_fallback: bool) -> float:
    """Sentiment of one customer message in [-1, 1], corrected for sarcasm, negated emoticons and
    shouting; `lowered` is `text.lower()` (the caller already has it), `after_fallback` says the
    bot's last reply was a fallback."""
    compound = vader_compound(text)
    if compound > 0:
        if _NEGATED_EMOTICON.search(lowered) or _SARCASM_ALWAYS.search(lowered):
            compound = min(-compound, _SARCASM_FLOOR)
        elif (
            after_fallback
            and lowered.count(" ") < _SHORT_MESSAGE_TOKENS
            and _PRAISE.search(lowered)
        ):
            # Short praise right after the bot failed is nearly always sarcasm.
            compound = min(-compound, _SARCASM_FLOOR)
    if compound < 0.3 and ("!!!" in text or "???" in text or "?!" in text or _shouting(text)):
        compound = max(-1.0, compound - _SHOUT_PENALTY)
    return compound
