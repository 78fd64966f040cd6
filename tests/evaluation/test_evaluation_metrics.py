"""Precision, recall, F1 and earliness of escalation decisions, on tiny literal sets."""

from datetime import UTC, datetime, timedelta

import pytest

from bot.evaluate import LabelledConversation, score
from engine.events import ConversationEvent, ConversationMeta, EventType, InboundBatch, Role

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def conversation(
    conversation_id: str, needs_human: bool, needs_human_from: str | None = None
) -> LabelledConversation:
    events = tuple(
        ConversationEvent(
            event_id=f"e{index}",
            type=EventType.MESSAGE,
            timestamp=START + timedelta(seconds=20 * index),
            role=Role.CUSTOMER if index % 2 == 0 else Role.BOT,
            text=f"message {index}",
        )
        for index in range(6)
    )
    batch = InboundBatch(conversation_id, ConversationMeta(), events)
    return LabelledConversation(batch, needs_human, needs_human_from, dataset="literal")


def test_precision_recall_and_f1_come_from_the_four_counts() -> None:
    conversations = [
        conversation("needed-and-escalated-1", True),
        conversation("needed-and-escalated-2", True),
        conversation("needed-but-missed-1", True),
        conversation("needed-but-missed-2", True),
        conversation("escalated-for-nothing", False),
        conversation("quiet-1", False),
        conversation("quiet-2", False),
        conversation("quiet-3", False),
    ]
    scores = score(conversations, [3, 1, None, None, 2, None, None, None])

    assert (scores.true_positives, scores.false_positives) == (2, 1)
    assert (scores.false_negatives, scores.true_negatives) == (2, 3)
    assert scores.precision == pytest.approx(2 / 3)
    assert scores.recall == pytest.approx(0.5)
    assert scores.f1 == pytest.approx(4 / 7)
    assert scores.false_positive_ids == ("escalated-for-nothing",)
    assert scores.false_negative_ids == ("needed-but-missed-1", "needed-but-missed-2")


def test_earliness_counts_events_between_the_labelled_point_and_the_escalation() -> None:
    conversations = [
        conversation("one-event-early", True, "e2"),
        conversation("right-on-the-point", True, "e2"),
        conversation("three-events-late", True, "e1"),
        conversation("no-labelled-point", True),
        conversation("missed", True, "e3"),
    ]
    earliness = score(conversations, [1, 2, 4, 5, None]).earliness

    assert earliness.offsets == (-1, 0, 3)
    assert (earliness.early, earliness.on_time, earliness.late) == (1, 1, 1)
    assert earliness.median == 0.0
    assert earliness.mean == pytest.approx(2 / 3)


def test_a_detector_that_never_escalates_scores_zero_instead_of_dividing_by_zero() -> None:
    conversations = [conversation("needed", True, "e1"), conversation("fine", False)]
    scores = score(conversations, [None, None])

    assert (scores.precision, scores.recall, scores.f1) == (0.0, 0.0, 0.0)
    assert scores.earliness.median is None
    assert scores.earliness.to_json() == {
        "measured": 0,
        "early": 0,
        "on_time": 0,
        "late": 0,
        "median_offset": None,
        "mean_offset": None,
    }


def test_a_perfect_detector_scores_one() -> None:
    conversations = [conversation("needed", True, "e3"), conversation("fine", False)]
    scores = score(conversations, [3, None])

    assert (scores.precision, scores.recall, scores.f1) == (1.0, 1.0, 1.0)
    assert scores.to_json()["earliness"]["on_time"] == 1


def test_scoring_needs_one_escalation_point_per_conversation() -> None:
    with pytest.raises(ValueError, match="one escalation point per conversation"):
        score([conversation("only", True)], [])
