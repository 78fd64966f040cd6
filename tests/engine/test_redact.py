"""Personal data masking (engine.redact), on its own."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.redact import redact

ALL = ("email", "phone", "card", "iban")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("card 4111 1111 1111 1111 please", "card [card] please"),
        ("card 4111 1111 1111 1112 please", "card 4111 1111 1111 1112 please"),  # fails Luhn
        ("call me on +44 20 7946 0958", "call me on [phone]"),
        ("my order 12345", "my order 12345"),
        ("booked for 2026-03-02", "booked for 2026-03-02"),
        ("IBAN GB82 WEST 1234 5698 7654 32 thanks", "IBAN [iban] thanks"),
        ("write to jane.doe@example.com", "write to [email]"),
        ("no numbers here at all", "no numbers here at all"),
        # Superscripts are "digits" to str.isdigit but not decimal digits: nothing to mask.
        ("x² + y² = z²", "x² + y² = z²"),
        # Decimal digits of other scripts count as digits, as in the patterns themselves.
        ("رقم ٠١٢٣٤٥٦٧٨٩٠١", "رقم [phone]"),
    ],
)
def test_each_kind_is_masked_and_lookalikes_are_left(text: str, expected: str) -> None:
    assert redact(text, ALL) == expected


def test_only_the_kinds_asked_for_are_masked() -> None:
    text = "jane@example.com, +44 20 7946 0958"
    assert redact(text, ["email"]) == "[email], +44 20 7946 0958"
    assert redact(text, ["phone"]) == "jane@example.com, [phone]"


@given(st.text(alphabet=st.characters(blacklist_categories=["Nd"]), max_size=200))
def test_text_without_decimal_digits_or_at_signs_comes_back_unchanged(text: str) -> None:
    text = text.replace("@", "")
    assert redact(text, ALL) == text
