"""The conversation state: one small JSON row that replays exactly and does not grow."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from engine import ConversationState, assess
from engine.events import ConversationEvent, EventType, Role
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
