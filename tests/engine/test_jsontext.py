"""The written-out JSON pieces are exactly what `json.dumps` writes for each value."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from engine import jsontext


@given(st.none() | st.floats(allow_nan=True, allow_infinity=True) | st.integers())
def test_a_number_is_written_as_json_dumps_writes_it(value: float | None) -> None:
    assert jsontext.number(value) == json.dumps(value)


@given(st.none() | st.text())
def test_a_text_is_written_as_json_dumps_writes_it(value: str | None) -> None:
    assert jsontext.text(value) == json.dumps(value)


@given(st.lists(st.text(), max_size=4))
def test_a_list_of_texts_is_written_as_json_dumps_writes_it(values: list[str]) -> None:
    assert jsontext.texts(values) == json.dumps(values)
    assert jsontext.texts(tuple(values)) == json.dumps(values)
