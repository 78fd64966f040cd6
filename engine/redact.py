"""Masking personal data before text leaves for a chat channel: emails, phones, cards, IBANs."""

from __future__ import annotations

import re
from collections.abc import Iterable

from engine.rules import Rules

PLACEHOLDERS = {"email": "[email]", "phone": "[phone]", "card": "[card]", "iban": "[iban]"}

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[a-zA-Z]{2,}")
# Country code, two check digits, then 11-30 letters or digits, optionally grouped by spaces.
_IBAN = re.compile(r"\b[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]){11,30}\b")
# 13-19 digits, optionally grouped by single spaces or dashes (how people paste card numbers).
_CARD = re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])")
# An optional "+" or "00" prefix, then digits with the separators phone numbers are written with.
_PHONE = re.compile(r"(?<![\w#])(?:\+|00)?\(?\d[\d ()./-]{5,}\d(?![\w])")
_PHONE_DIGITS = (8, 15)
_BARE_PHONE_DIGITS = 10
# Dates share the phone pattern's shape; they are not personal data and agents need them.
_DATE = re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4}")


# Every number pattern above needs a decimal digit (`\d`) to match at all.
_ANY_DIGIT = re.compile(r"\d")


def luhn_valid(digits: str) -> bool:
    """True when a string of digits passes the Luhn check that payment card numbers carry."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def iban_valid(candidate: str) -> bool:
    """True when a string is an IBAN whose ISO 13616 mod-97 check holds."""
    compact = candidate.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    numeric = "".join(str(int(char, 36)) for char in rearranged)
    return int(numeric) % 97 == 1


def _mask_iban(match: re.Match[str]) -> str:
    whole = match.group(0)
    candidate = whole
    # The pattern may run on into the next word ("... 3000 thanks"); drop words until it checks.
    while not iban_valid(candidate):
        cut = candidate.rfind(" ")
        if cut < 4:
            return whole
        candidate = candidate[:cut]
    return PLACEHOLDERS["iban"] + whole[len(candidate) :]


def _mask_card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return PLACEHOLDERS["card"] if luhn_valid(digits) else match.group(0)


def _mask_phone(match: re.Match[str]) -> str:
    text = match.group(0)
    digit_count = sum(char.isdigit() for char in text)
    low, high = _PHONE_DIGITS
    if not low <= digit_count <= high or _DATE.fullmatch(text):
        return text
    # A bare run of digits shorter than a national number is more likely an order number.
    if text.isdigit() and digit_count < _BARE_PHONE_DIGITS:
        return text
    return PLACEHOLDERS["phone"]


def redact(text: str, kinds: Iterable[str]) -> str:
    """Replace each kind of personal data in `text` with its placeholder ("[email]"...)."""
    wanted = set(kinds)
    # Cheap exits: every kind needs either an "@" or a digit to be present at all.
    has_digit = _ANY_DIGIT.search(text) is not None
    if "email" in wanted and "@" in text:
        text = _EMAIL.sub(PLACEHOLDERS["email"], text)
    if not has_digit:
        return text
    # IBANs and cards before phones: a phone pattern would otherwise eat their digit groups.
    if "iban" in wanted:
        text = _IBAN.sub(_mask_iban, text)
    if "card" in wanted:
        text = _CARD.sub(_mask_card, text)
    if "phone" in wanted:
        text = _PHONE.sub(_mask_phone, text)
    return text


def redact_for(text: str, rules: Rules) -> str:
    """Redact any text a card shows as the rules say (unchanged when redaction is off)."""
    if not rules.redaction.enabled:
        return text
    return redact(text, rules.redaction.kinds)
