"""The engine's VADER score equals the package's, for every text.

`fast_compound` skips the parts of VADER's `polarity_scores` that cannot change a compound score;
these tests hold it to `polarity_scores` itself on the evaluation corpora, on texts built to reach
every rule VADER has (boosters, negations, "no", "never so", "without doubt", "least", "kind of",
"but", capitals, "!" and "?", emoticons, emojis) and on arbitrary text.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from vaderSentiment.vaderSentiment import BOOSTER_DICT, NEGATE, SPECIAL_CASES, SentiText

from engine.sentiment import _analyzer, _valence, fast_compound, vader_compound

DATA = Path(__file__).resolve().parents[2] / "evaluation" / "data"


def _strings(value: Any, into: list[str]) -> None:
    if isinstance(value, str):
        into.append(value)
    elif isinstance(value, dict):
        for item in value.values():
            _strings(item, into)
    elif isinstance(value, list):
        for item in value:
            _strings(item, into)


def _corpus() -> list[str]:
    texts: list[str] = []
    for path in sorted(DATA.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                _strings(json.loads(line), texts)
    return texts


def test_every_string_of_the_evaluation_corpora_scores_as_vader_scores_it() -> None:
    texts = _corpus()
    assert len(texts) > 10_000
    differ = [text for text in texts if fast_compound(text) != vader_compound(text)]
    assert differ == []


# Words that reach VADER's rules, in any case; a few from each of its tables.
_RULE_WORDS = (
    sorted(BOOSTER_DICT)[:40]
    + sorted(NEGATE)[:30]
    + sorted(" ".join(SPECIAL_CASES).split())
    + [
        "good",
        "great",
        "bad",
        "terrible",
        "love",
        "hate",
        "happy",
        "sad",
        "ridiculous",
        "helpful",
        "useless",
        "no",
        "not",
        "never",
        "so",
        "this",
        "without",
        "doubt",
        "least",
        "at",
        "very",
        "kind",
        "of",
        "sort",
        "but",
        "BUT",
        "or",
        "nor",
        "isn't",
        "GREAT",
        "Bad",
        ":)",
        ":(",
        ":-)",
        ":D",
        "<3",
        "lol",
        "wtf",
        "ok",
        "the",
        "order",
        "refund",
        "agent",
    ]
)
_PUNCTUATION = ["", "!", "!!", "!!!!!", "?", "??", "????", ".", ",", "...", "'", '"']
_EMOJI = ["😀", "😡", "👍", "💔", "☺️", "é", "—", "ß"]


@st.composite
def _rule_texts(draw: st.DrawFn) -> str:
    parts = draw(
        st.lists(
            st.tuples(
                st.sampled_from(_RULE_WORDS),
                st.sampled_from(_PUNCTUATION),
                st.sampled_from(["lower", "upper", "title", "same"]),
                st.sampled_from([" ", " ", " ", "  ", "\t", "\n", ""]),
            ),
            max_size=14,
        )
    )
    pieces: list[str] = []
    for word, punctuation, case, space in parts:
        if case == "lower":
            word = word.lower()
        elif case == "upper":
            word = word.upper()
        elif case == "title":
            word = word.title()
        pieces.append(word + punctuation + space)
    if draw(st.booleans()):
        pieces.insert(draw(st.integers(0, len(pieces))), draw(st.sampled_from(_EMOJI)) + " ")
    return "".join(pieces)


@settings(max_examples=3000, deadline=None)
@given(_rule_texts())
def test_texts_that_reach_every_vader_rule_score_as_vader_scores_them(text: str) -> None:
    assert fast_compound(text) == vader_compound(text)


@settings(max_examples=2000, deadline=None)
@given(_rule_texts())
def test_each_lexicon_word_gets_the_valence_vader_gives_it(text: str) -> None:
    # Stricter than the rounded compound score: every word's valence, unrounded.
    analyzer = _analyzer()
    sentitext = SentiText(text.strip())
    words = sentitext.words_and_emoticons
    lowered = [word.lower() for word in words]
    for index, word in enumerate(lowered):
        if word in analyzer.lexicon:
            expected = analyzer.sentiment_valence(0, sentitext, words[index], index, [])[0]
            got = _valence(words, lowered, index, sentitext.is_cap_diff, analyzer.lexicon)
            assert got == expected, (text, index)


@settings(max_examples=1000, deadline=None)
@given(st.text(max_size=80))
def test_arbitrary_text_scores_as_vader_scores_it(text: str) -> None:
    assert fast_compound(text) == vader_compound(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "!!!",
        "good good but good good",
        "not bad but not great either",
        "I kind of like it",
        "kind of",
        "no good",
        "no no no",
        "at least it works",
        "least helpful bot ever",
        "never so happy",
        "without doubt the best",
        "the bomb",
        "GREAT job but TERRIBLE app",
        "this is great 😀",
        "😡😡😡",
        "I ❤ it",
        "good:)",
        "great!!!! ??",
    ],
)
def test_hand_picked_edge_cases_score_as_vader_scores_them(text: str) -> None:
    assert fast_compound(text) == vader_compound(text)
