"""Customer sentiment: VADER's compound score, corrected where VADER misreads support chats."""

from __future__ import annotations

import re
import string
from functools import lru_cache
from typing import Any

from vaderSentiment.vaderSentiment import (
    BOOSTER_DICT,
    C_INCR,
    N_SCALAR,
    NEGATE,
    SPECIAL_CASES,
    SentimentIntensityAnalyzer,
    normalize,
)

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
    """VADER's compound score for `text`, in [-1, 1], through the package's own
    `polarity_scores` (the reference `compound` is checked against, and the benchmarks' yardstick),
    with the analyzer built once per process."""
    return float(_analyzer().polarity_scores(text)["compound"])


_NEGATE = frozenset(NEGATE)
_SO_THIS = ("so", "this")


def _negated(word: str) -> bool:
    # VADER's negated([word]) for a lower-cased word.
    return word in _NEGATE or "n't" in word


def _valence(
    words: list[str], lowered: list[str], index: int, is_cap_diff: bool, lexicon: dict[str, float]
) -> float:
    """VADER's `sentiment_valence` for the lexicon word at `index`, step for step, with the
    lower-cased words computed once (VADER lower-cases every word again at each step)."""
    item = words[index]
    word = lowered[index]
    valence = lexicon[word]
    last = len(words) - 1
    if word == "no" and index != last and lowered[index + 1] in lexicon:
        valence = 0.0
    if (
        (index > 0 and lowered[index - 1] == "no")
        or (index > 1 and lowered[index - 2] == "no")
        or (index > 2 and lowered[index - 3] == "no" and lowered[index - 1] in ("or", "nor"))
    ):
        valence = lexicon[word] * N_SCALAR
    if item.isupper() and is_cap_diff:
        if valence > 0:
            valence += C_INCR
        else:
            valence -= C_INCR
    for start in range(3):
        before = index - (start + 1)
        if index > start and lowered[before] not in lexicon:
            # scalar_inc_dec
            scalar = 0.0
            modifier = lowered[before]
            if modifier in BOOSTER_DICT:
                scalar = BOOSTER_DICT[modifier]
                if valence < 0:
                    scalar *= -1
                if words[before].isupper() and is_cap_diff:
                    if valence > 0:
                        scalar += C_INCR
                    else:
                        scalar -= C_INCR
            if start == 1 and scalar != 0:
                scalar = scalar * 0.95
            if start == 2 and scalar != 0:
                scalar = scalar * 0.9
            valence = valence + scalar
            valence = _negation_check(valence, lowered, start, index)
            if start == 2:
                valence = _special_idioms_check(valence, lowered, index)
    # _least_check
    if index > 1 and lowered[index - 1] not in lexicon and lowered[index - 1] == "least":
        if lowered[index - 2] != "at" and lowered[index - 2] != "very":
            valence = valence * N_SCALAR
    elif index > 0 and lowered[index - 1] not in lexicon and lowered[index - 1] == "least":
        valence = valence * N_SCALAR
    return valence


def _negation_check(valence: float, lowered: list[str], start: int, index: int) -> float:
    if start == 0 and _negated(lowered[index - 1]):
        valence = valence * N_SCALAR
    elif start == 1:
        if lowered[index - 2] == "never" and lowered[index - 1] in _SO_THIS:
            valence = valence * 1.25
        elif lowered[index - 2] == "without" and lowered[index - 1] == "doubt":
            pass
        elif _negated(lowered[index - 2]):
            valence = valence * N_SCALAR
    elif start == 2:
        # VADER's condition, with its precedence: (never and so/this two back) or so/this one back.
        if (lowered[index - 3] == "never" and lowered[index - 2] in _SO_THIS) or (
            lowered[index - 1] in _SO_THIS
        ):
            valence = valence * 1.25
        elif lowered[index - 3] == "without" and (
            lowered[index - 2] == "doubt" or lowered[index - 1] == "doubt"
        ):
            pass
        elif _negated(lowered[index - 3]):
            valence = valence * N_SCALAR
    return valence


def _special_idioms_check(valence: float, lowered: list[str], index: int) -> float:
    # Only reached with index >= 3, as in VADER.
    one_zero = f"{lowered[index - 1]} {lowered[index]}"
    two_one_zero = f"{lowered[index - 2]} {lowered[index - 1]} {lowered[index]}"
    two_one = f"{lowered[index - 2]} {lowered[index - 1]}"
    three_two_one = f"{lowered[index - 3]} {lowered[index - 2]} {lowered[index - 1]}"
    three_two = f"{lowered[index - 3]} {lowered[index - 2]}"
    for sequence in (one_zero, two_one_zero, two_one, three_two_one, three_two):
        if sequence in SPECIAL_CASES:
            valence = SPECIAL_CASES[sequence]
            break
    if len(lowered) - 1 > index:
        zero_one = f"{lowered[index]} {lowered[index + 1]}"
        if zero_one in SPECIAL_CASES:
            valence = SPECIAL_CASES[zero_one]
    if len(lowered) - 1 > index + 1:
        zero_one_two = f"{lowered[index]} {lowered[index + 1]} {lowered[index + 2]}"
        if zero_one_two in SPECIAL_CASES:
            valence = SPECIAL_CASES[zero_one_two]
    for n_gram in (three_two_one, three_two, two_one):
        if n_gram in BOOSTER_DICT:
            valence = valence + BOOSTER_DICT[n_gram]
    return valence


def fast_compound(text: str) -> float:
    """VADER's compound score for `text`, equal to `vader_compound` for every text, about three
    times faster.

    `polarity_scores` spends most of its time on work that cannot change the compound score of a
    typical message: it rebuilds the text character by character looking for emojis, runs its
    valence rules on every word (only lexicon words get a valence), and works out the pos/neg/neu
    shares. Here the text is rebuilt only when it holds an emoji, VADER's valence rules
    (`_valence`, step for step) run only on the lexicon words (a word's valence depends on its
    neighbours, never on the valences before it), VADER's own `_but_check` runs when "but" is
    there, and the sum, punctuation emphasis, normalisation and rounding are VADER's, in VADER's
    order.
    """
    analyzer = _analyzer()
    if not text.isascii() and not analyzer.emojis.keys().isdisjoint(text):
        return vader_compound(text)
    text = text.strip()
    punctuation = _PUNCTUATION
    # SentiText._strip_punc_if_word
    words = [
        token if len(stripped := token.strip(punctuation)) <= 2 else stripped
        for token in text.split()
    ]
    lexicon = analyzer.lexicon
    lowered = [word.lower() for word in words]
    positions = [index for index, word in enumerate(lowered) if word in lexicon]
    if not positions:
        return 0.0  # every valence is 0: VADER's sum is 0 and so is its compound
    count = len(words)
    last = count - 1
    # VADER's allcap_differential: some, but not all, words are in capitals.
    is_cap_diff = 0 < count - sum(map(str.isupper, words)) < count
    sentiments: list[float] = [0] * count
    for index in positions:
        word = lowered[index]
        # polarity_scores skips booster words and the "kind" of "kind of" (valence 0).
        if word in BOOSTER_DICT or (word == "kind" and index < last and lowered[index + 1] == "of"):
            continue
        sentiments[index] = _valence(words, lowered, index, is_cap_diff, lexicon)
    if "but" in lowered:
        sentiments = analyzer._but_check(words, sentiments)
    total = float(sum(sentiments))
    # _punctuation_emphasis: up to four "!", and two or more "?".
    exclamations = text.count("!")
    if exclamations > 4:
        exclamations = 4
    questions = text.count("?")
    question_emphasis: float = 0
    if questions > 1:
        question_emphasis = questions * 0.18 if questions <= 3 else 0.96
    emphasis = exclamations * 0.292 + question_emphasis
    if total > 0:
        total += emphasis
    elif total < 0:
        total -= emphasis
    return round(normalize(total), 4)  # type: ignore[no-any-return]


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
    compound = 0.0 if has_no_sentiment_words(text, lowered, words) else fast_compound(text)
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
