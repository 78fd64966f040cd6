"""Whatever a platform sends, the engine answers, and its state replays exactly."""

from __future__ import annotations

import json
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from engine import ConversationState, assess
from engine.events import ConversationEvent, ConversationMeta, Customer, EventType, Role
from tests.engine.engine_factory import START, make_rules

RULES = make_rules()
META = ConversationMeta(customer=Customer(tier="enterprise"))

events = st.lists(
    st.tuples(
        st.sampled_from(list(EventType)),
        st.none() | st.sampled_from(list(Role)),
        st.none() | st.text(max_size=60),
        st.integers(min_value=-600, max_value=3600),
        st.none() | st.sampled_from(["order_status", "sys.no-match", "None"]),
        st.none() | st.floats(min_value=0, max_value=1),
        st.none() | st.booleans(),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(events)
def test_any_event_sequence_is_assessed_and_replays_from_json(
    sequence: list[
        tuple[EventType, Role | None, str | None, int, str | None, float | None, bool | None]
    ],
) -> None:
    state = ConversationState.new()
    replayed = ConversationState.new()
    for number, (kind, role, text, offset, intent, confidence, fallback) in enumerate(sequence):
        event = ConversationEvent(
            f"e{number}",
            kind,
            START + timedelta(seconds=offset),
            role,
            text,
            intent=intent,
            confidence=confidence,
            fallback=fallback,
        )
        state, assessment = assess(state, event, RULES, META)
        replayed = ConversationState.from_dict(json.loads(json.dumps(replayed.to_dict())))
        replayed, replayed_assessment = assess(replayed, event, RULES, META)

        assert 0 <= assessment.score <= 100
        assert replayed_assessment == assessment
        # The state as saved: the text `json.dumps` would write of its dict (each item's text
        # remembered from one event to the next, as for a state kept between posts).
        assert state.to_json(remember=True) == json.dumps(state.to_dict())
    assert replayed.to_dict() == state.to_dict()
