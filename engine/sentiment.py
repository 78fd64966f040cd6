"""Customer sentiment: VADER's compound score, corrected where VADER misreads support chats."""

from __future__ import annotations

import re
import string
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
    r"very funny|what a (?:great|wonderful) (?:help|bot|service)|"
    r"(?:just |really )?love (?:waiting|being (?:ignored|on hold|kept waiting)))\b"
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


def _lexicon() -> dict[str, float]:
    return _analyzer().lexicon  # type: ignore[no-any-return]


def has_no_sentiment_words(text: str, lowered: str, words: frozenset[str] | None = None) -> bool:
    """True when VADER is certain to score `text` 0.0: it has no word VADER knows.

    VADER gives a word a valence only when its lexicon has the word, lower-cased, as VADER
    splits it (on white space, punctuation stripped unless that leaves two characters or fewer);
    everything else (negation, boosters, "but", "!!!") only scales valences that are there.
    Emojis are read as their descriptions first, so text that is not ASCII is never certain.
    `lowered` is `text.lower()`, and `words`, when given, `message_words(lowered)`.
    """
    if not text.isascii():
        return False
    lexicon = _lexicon()
    if words is not None:
        # A token of letters and digits only is one of `words`, and VADER looks it up as it is;
        # a word of `words` in the lexicon may not be a token, so it only means "not certain".
        if not lexicon.keys().isdisjoint(words):
            return False
        tokens = [token for token in lowered.split() if not token.isalnum()]
    else:
        tokens = lowered.split()
    for token in tokens:
        stripped = token.strip(_PUNCTUATION)
        if (stripped if len(stripped) > 2 else token) in lexicon:
            return False
    return True


_PUNCTUATION = string.punctuation
_NEGATION_WORDS = frozenset({"not", "no", "nope"})
_SARCASM_ANCHORS = frozenset(
    {"nothing", "oh", "just", "yeah", "funny", "what", "great", "wonderful", "perfect", "love"}
)
_SHOUT_MIN_CHARS = 8


def _shouting(text: str) -> bool:
    # str.isupper: every cased character is upper case, and there is at least one.
    return len(text) >= _SHOUT_MIN_CHARS and text.isupper()


def is_shouting(text: str) -> bool:
    """True when a message is written in capitals or leans on "!!!", "???" or "?!"."""
    return "!!!" in text or "???" in text or "?!" in text or _shouting(text)


def customer_sentiment(
    text: str, *, lowered: str, words: frozenset[str], after_fallback: bool
) -> float:
    """Sentiment of one customer message in [-1, 1], corrected for sarcasm, negated emoticons
    and shouting; `lowered` and `words` are the message lower-cased and split (the caller has
    them), `after_fallback` says the bot's last reply was a fallback."""
    compound, _sarcasm = read_customer(
        text, lowered=lowered, words=words, after_fallback=after_fallback
    )
    return compound


def read_customer(
    text: str, *, lowered: str, words: frozenset[str], after_fallback: bool
) -> tuple[float, str | None]:
    """`customer_sentiment` and, when the message is sarcastic, the sarcastic words (for a
    reason on the card); None otherwise."""
    # A third or more of support messages have no word VADER knows; those score 0.0 without it.
    compound = 0.0 if has_no_sentiment_words(text, lowered, words) else vader_compound(text)
    sarcasm: str | None = None
    if compound > 0:
        negated_emoticon = (
            _NEGATED_EMOTICON.search(lowered) if not _NEGATION_WORDS.isdisjoint(words) else None
        )
        always = _SARCASM_ALWAYS.search(lowered) if not _SARCASM_ANCHORS.isdisjoint(words) else None
        found = negated_emoticon or always
        if found is None and after_fallback and lowered.count(" ") < _SHORT_MESSAGE_TOKENS:
            # Short praise right after the bot failed is nearly always sarcasm.
            found = _PRAISE.search(lowered)
        if found is not None:
            compound = min(-compound, _SARCASM_FLOOR)
            sarcasm = found.group(0)
    if compound < 0.3 and is_shouting(text):
        compound = max(-1.0, compound - _SHOUT_PENALTY)
    return compound, sarcasm
