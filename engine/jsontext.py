"""JSON written out piece by piece: for each kind of value, exactly the text `json.dumps` (with
its default arguments) writes. For the hot paths that write a fixed layout (the engine's state,
the stored reasons) without going through the encoder's Python layers; their tests hold the
whole text equal to `json.dumps`."""

from __future__ import annotations

import json
from collections.abc import Iterable
from json.encoder import encode_basestring_ascii as quote
from math import isfinite

__all__ = ["number", "quote", "text", "texts"]


def text(value: str | None) -> str:
    """A string, or null."""
    return "null" if value is None else quote(value)


def number(value: float | None) -> str:
    """A number (NaN and the infinities as json writes them), or null."""
    if value is None:
        return "null"
    return repr(value) if isfinite(value) else json.dumps(value)


def texts(values: Iterable[str]) -> str:
    """An array of strings."""
    return f"[{', '.join(map(quote, values))}]"
