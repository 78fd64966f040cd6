"""How engine values are written to JSON columns and read back."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from operator import attrgetter
from typing import Any

from engine import jsontext
from engine.assessment import HandoffSummary, Reason, SummaryMessage
from engine.events import Role


def reasons_to_json(reasons: Iterable[Reason]) -> list[dict[str, Any]]:
    """Reasons as a JSON list, in the engine's order."""
    return [
        {
            "signal": reason.signal,
            "points": reason.points,
            "text": reason.text,
            "event_ids": list(reason.event_ids),
        }
        for reason in reasons
    ]


# A reason's signal and points: what the score adds up and the dashboard's markers compare.
_weight = attrgetter("signal", "points")


def weights(reasons: Iterable[Reason]) -> list[tuple[str, float]]:
    """Each reason's signal and points, in order: what two events' reasons are compared by
    when only their words may differ (a loop's turns, a count)."""
    return list(map(_weight, reasons))


def _reason_text(reason: Reason) -> str:
    """`json.dumps` of one reason's `reasons_to_json` item, written out: the same text (keys in
    that order, ASCII escapes, json's separators) at half the cost of going through the
    encoder's Python layers, which dominate for a value this small."""
    return (
        f'{{"signal": {jsontext.quote(reason.signal)}, "points": {jsontext.number(reason.points)}, '
        f'"text": {jsontext.quote(reason.text)}, "event_ids": {jsontext.texts(reason.event_ids)}}}'
    )


class ReasonsText:
    """`json.dumps(reasons_to_json(reasons))`, kept for the last tuple of reasons.

    The engine hands the same tuple from event to event while a conversation's reasons hold,
    and a batch's events are stored one after another: a run of them is encoded once. Each
    reason is written out by `_reason_text`.
    """

    def __init__(self) -> None:
        self._last: tuple[tuple[Reason, ...], str] = ((), "[]")

    def __call__(self, reasons: tuple[Reason, ...]) -> str:
        last = self._last
        if reasons is last[0]:
            return last[1]
        text = f"[{', '.join(map(_reason_text, reasons))}]"
        self._last = (reasons, text)  # one store: other threads see all or nothing
        return text


def reasons_from_json(value: Iterable[Mapping[str, Any]] | None) -> tuple[Reason, ...]:
    """Reasons read back from `reasons_to_json`."""
    if not value:
        return ()
    return tuple(
        Reason(
            signal=str(item["signal"]),
            points=float(item["points"]),
            text=str(item["text"]),
            event_ids=tuple(str(event_id) for event_id in item.get("event_ids", ())),
        )
        for item in value
    )


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _parse_time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def summary_to_json(summary: HandoffSummary) -> dict[str, Any]:
    """A hand-off summary as a JSON object."""
    return {
        "wants": list(summary.wants),
        "bot_tried": list(summary.bot_tried),
        "recent": [
            {
                "role": message.role.value,
                "text": message.text,
                "timestamp": message.timestamp.isoformat(),
                "event_id": message.event_id,
            }
            for message in summary.recent
        ],
        "sentiment_trend": list(summary.sentiment_trend),
        "identifiers": list(summary.identifiers),
        "turns": summary.turns,
        "started_at": _time(summary.started_at),
        "last_at": _time(summary.last_at),
    }


def summary_from_json(value: Mapping[str, Any]) -> HandoffSummary:
    """A hand-off summary read back from `summary_to_json`."""
    return HandoffSummary(
        wants=tuple(value.get("wants", ())),
        bot_tried=tuple(value.get("bot_tried", ())),
        recent=tuple(
            SummaryMessage(
                role=Role(message["role"]),
                text=message["text"],
                timestamp=datetime.fromisoformat(message["timestamp"]),
                event_id=message["event_id"],
            )
            for message in value.get("recent", ())
        ),
        sentiment_trend=tuple(float(point) for point in value.get("sentiment_trend", ())),
        identifiers=tuple(value.get("identifiers", ())),
        turns=int(value.get("turns", 0)),
        started_at=_parse_time(value.get("started_at")),
        last_at=_parse_time(value.get("last_at")),
    )
