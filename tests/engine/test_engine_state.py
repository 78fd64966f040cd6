"""The conversation state: one small JSON row that replays exactly and does not grow."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import ConversationState, assess
from engine.events import ConversationEvent, EventType, Role
from engine.state import Hit, RecentMessage, SentimentPoint, reset_escalation
from tests.engine.engine_factory import START, Chat

LINES = [
    (Role.CUSTOMER, "hi there"),
    (Role.BOT, "Hello! How can I help you today?"),
    (Role.CUSTOMER, "my order #48213 has not arrived, I am getting angry"),
    (Role.BOT, "Sorry, I didn't get that."),
    (Role.CUSTOMER, "ORDER 48213 NOT ARRIVED!!!"),
    (Role.BOT, "Could you rephrase?"),
    (Role.CUSTOMER, "great job. can I talk to a person? my email is ann@example.com"),
    (Role.BOT, "Your order is on its way and should arrive within 3 days."),
]


def play(chat: Chat, count: int) -> None:
    for index in range(count):
        role, text = LINES[index % len(LINES)]
        if role is Role.CUSTOMER:
            chat.customer(f"{text} ({index})")
        else:
            chat.bot(text)


def test_the_state_survives_a_json_round_trip_and_replays_identically() -> None:
    original = Chat()
    play(original, 7)
    stored = json.loads(json.dumps(original.state.to_dict()))
    restored = ConversationState.from_dict(stored)

    assert restored.to_dict() == original.state.to_dict()

    event = ConversationEvent(
        "next", EventType.MESSAGE, START + timedelta(hours=1), Role.CUSTOMER, "still waiting!!"
    )
    _, from_original = assess(original.state, event, original.rules, original.meta)
    _, from_restored = assess(restored, event, original.rules, original.meta)
    assert from_restored == from_original


def test_every_time_is_stored_as_its_own_text() -> None:
    # The last event's time is written once and reused; every other time keeps its own text.
    chat = Chat()
    play(chat, 7)
    state = chat.state
    stored = state.to_dict()
    assert state.started_at is not None
    assert state.last_at is not None
    assert state.started_at != state.last_at
    assert stored["started_at"] == state.started_at.isoformat()
    assert stored["last_at"] == state.last_at.isoformat()
    assert stored["human_requested_at"] == (
        state.human_requested_at.isoformat() if state.human_requested_at else None
    )
    assert [message[2] for message in stored["recent"]] == [
        message.timestamp.isoformat() for message in state.recent
    ]
    assert len({message[2] for message in stored["recent"]}) == len(state.recent)


def test_a_fresh_state_round_trips_too() -> None:
    fresh = ConversationState.new()

    assert ConversationState.from_dict(fresh.to_dict()).to_dict() == fresh.to_dict()


def test_copy_keeps_the_state_from_before_an_event() -> None:
    chat = Chat()
    play(chat, 3)
    before = chat.state.copy()
    chat.customer("can I talk to a person")

    assert before.turns == 3
    assert before.human_requested_at is None
    assert chat.state.turns == 4


def test_an_unknown_state_version_is_refused() -> None:
    data = ConversationState.new().to_dict() | {"v": 99}

    with pytest.raises(ValueError, match=r"^unsupported conversation state version: 99$"):
        ConversationState.from_dict(data)


def test_the_state_stays_bounded_however_long_the_conversation() -> None:
    short = Chat()
    play(short, 100)
    long = Chat()
    play(long, 2000)

    short_size = len(json.dumps(short.state.to_dict()))
    long_size = len(json.dumps(long.state.to_dict()))
    # Only the digits grow: event ids and turn numbers are two characters longer after 2,000.
    assert long_size - short_size <= 400


# Field values `assess` would not produce, for the written-out JSON: any text (quotes,
# backslashes, controls, astral characters), any float json can write, times in other zones.
_texts = st.text(max_size=12)
_floats = st.floats(allow_nan=True, allow_infinity=True)
_times = st.none() | st.datetimes(
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), timezone.min])
)
_hits = st.lists(st.builds(Hit, st.integers(-5, 10**6), _texts, _texts), max_size=3)


@settings(max_examples=150, deadline=None)
@given(
    turns=st.integers(0, 10**9),
    times=st.tuples(_times, _times, _times, _times),
    numbers=st.tuples(st.none() | _floats, st.none() | _floats, _floats),
    trend=st.lists(_floats | st.integers(-3, 3), max_size=3),
    texts=st.tuples(st.none() | _texts, st.none() | _texts, st.none() | _texts),
    flags=st.lists(st.booleans(), min_size=6, max_size=6),
    points=st.lists(st.tuples(st.integers(0, 99), _texts, _floats), max_size=3),
    hits=st.tuples(_hits, _hits, _hits, _hits, _hits),
    tokens=st.lists(st.frozensets(_texts, max_size=3), max_size=3),
    lists=st.tuples(st.lists(_texts, max_size=2), st.lists(_texts, max_size=2)),
    recent=st.lists(
        st.tuples(st.sampled_from(list(Role)), _texts, st.datetimes(timezones=st.just(UTC))),
        max_size=3,
    ),
)
def test_the_written_out_state_is_the_text_json_dumps_writes(
    turns: int,
    times: tuple[datetime | None, ...],
    numbers: tuple[float | None, float | None, float],
    trend: list[float],
    texts: tuple[str | None, str | None, str | None],
    flags: list[bool],
    points: list[tuple[int, str, float]],
    hits: tuple[list[Hit], ...],
    tokens: list[frozenset[str]],
    lists: tuple[list[str], list[str]],
    recent: list[tuple[Role, str, datetime]],
) -> None:
    state = ConversationState(
        turns=turns,
        started_at=times[0],
        last_at=times[1],
        human_requested_at=times[2],
        awaiting_reply_since=times[3],
        sentiment_mean=numbers[0],
        best_sentiment=numbers[1],
        score=numbers[2],
        human_request_quote=texts[0],
        human_request_event=texts[1],
        escalated_level=texts[2],
        last_bot_fallback=flags[0],
        after_bot_answer=flags[1],
        after_bot_question=flags[2],
        ended=flags[3],
        abandoned=flags[4],
        handed_off=flags[5],
        wants=lists[0],
        bot_tried=lists[1],
        identifiers=lists[0] + lists[1],
    )
    state.sentiments.extend(SentimentPoint(*point) for point in points)
    state.sentiment_trend.extend(trend)
    state.fallback_events.extend(lists[1])
    names = ("repeats", "frustrations", "corrections", "shouts", "waits")
    for name, found in zip(names, hits, strict=True):
        getattr(state, name).extend(found)
    state.customer_tokens.extend(tokens)
    state.bot_tokens.extend(reversed(tokens))
    # One message at the last event's time (the same object), the others at their own.
    state.recent.extend(
        RecentMessage(
            role, text, state.last_at if index == 0 and state.last_at else at, f"e{index}"
        )
        for index, (role, text, at) in enumerate(recent)
    )

    assert state.to_json() == json.dumps(state.to_dict())


def test_a_fresh_state_is_written_out_as_json_dumps_writes_it() -> None:
    fresh = ConversationState.new()

    assert fresh.to_json() == json.dumps(fresh.to_dict())
    assert json.loads(fresh.to_json()) == fresh.to_dict()


def test_a_state_written_out_again_and_again_gives_what_json_dumps_gives() -> None:
    # `to_json` reuses the text of each item it wrote the call before (a state kept between
    # posts); items come and go, are replaced by equal ones, or cleared in between.
    state = ConversationState.new()
    state.last_at = START

    def written() -> str:
        text = state.to_json(remember=True)
        assert text == json.dumps(state.to_dict())
        assert state.written
        return text

    for number in range(30):  # past every list's bound: the oldest items drop out
        at = START + timedelta(seconds=number)
        state.sentiments.append(SentimentPoint(number, f"e{number}", number / 40 - 0.5))
        state.sentiment_trend.append(round(number / 40, 3))
        state.recent.append(RecentMessage(Role.CUSTOMER, f'Zoë says {number} "hi"', at, "x"))
        state.repeats.append(Hit(number, f"e{number}", "where is my order"))
        written()
    # An item replaced by another, equal or not, at the same place.
    state.recent[-1] = RecentMessage(Role.BOT, "another", START, "x")
    state.sentiments[0] = SentimentPoint(*state.sentiments[0])
    state.sentiment_trend[0] = 0.75
    before = written()
    assert '"another"' in before
    assert written() == before  # written again with nothing changed
    reset_escalation(state)
    state.recent.clear()
    assert '"recent": []' in written()
    assert ConversationState.from_dict(json.loads(written())).to_json() == written()
    state.sentiments.append(SentimentPoint(99, "e99", 0.25))
    assert state.to_json() == json.dumps(state.to_dict())  # (not remembering: forgets)
    assert state.written is None
