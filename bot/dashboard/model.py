"""What the pages and the API show about single conversations: per-turn markers, explanations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.replay import ConversationResult
from engine.assessment import Decision, Reason
from engine.events import InboundBatch
from storage.conversations import StoredEvent

# A signal "moved" at a turn when its points changed by at least this much (as replay --explain).
_MOVE = 0.05

DECISION_TEXT = {
    Decision.OPEN: "Escalated: a card was posted for a human",
    Decision.UPGRADE: "Escalation upgraded to a higher level",
    Decision.RECOVERED: "The bot recovered: the escalation closed unclaimed",
    Decision.ENDED: "The conversation ended while escalated",
}


@dataclass(frozen=True, slots=True)
class Marker:
    """A signal that fired or grew at one turn."""

    signal: str
    points: float  # by how much it grew
    text: str


@dataclass(frozen=True, slots=True)
class Turn:
    """One stored event with the markers the page shows beside it."""

    stored: StoredEvent
    markers: tuple[Marker, ...]

    @property
    def decision(self) -> str | None:
        """The decision taken at this turn, unless it was none."""
        decision = self.stored.decision
        return None if decision in (None, Decision.NONE) else str(decision)

    @property
    def decision_text(self) -> str:
        """The decision as a warning line."""
        decision = self.stored.decision
        return DECISION_TEXT.get(decision, "") if decision is not None else ""


def _points(reasons: Sequence[Reason]) -> dict[str, Reason]:
    return {reason.signal: reason for reason in reasons}


def turns(events: Sequence[StoredEvent]) -> list[Turn]:
    """Each event with the signals that first fired or grew at it."""
    result: list[Turn] = []
    previous: dict[str, Reason] = {}
    for stored in events:
        if stored.score is None:  # stored without a verdict (e.g. before the engine saw it)
            result.append(Turn(stored, ()))
            continue
        now = _points(stored.reasons)
        markers = []
        for signal, reason in now.items():
            before = previous[signal].points if signal in previous else 0.0
            if reason.points - before >= _MOVE:
                markers.append(Marker(signal, round(reason.points - before, 2), reason.text))
        result.append(Turn(stored, tuple(markers)))
        previous = now
    return result


@dataclass(frozen=True, slots=True)
class ExplainedTurn:
    """One line of `replay --explain`: the verdict after an event and which signals moved."""

    event_id: str
    who: str
    score: float
    level: str | None
    moved: tuple[str, ...]  # "fallback +20"
    text: str
    decision: str | None

    def to_json(self) -> dict[str, Any]:
        """The line as the API returns it."""
        return {
            "event_id": self.event_id,
            "who": self.who,
            "score": round(self.score, 2),
            "level": self.level,
            "moved": list(self.moved),
            "text": self.text,
            "decision": self.decision,
        }


def explain(batch: InboundBatch, result: ConversationResult) -> list[ExplainedTurn]:
    """The per-event explanation of a replayed conversation, as `replay --explain` prints it."""
    lines: list[ExplainedTurn] = []
    previous: dict[str, float] = {}
    for event, assessment in zip(batch.events, result.assessments, strict=True):
        now = {reason.signal: reason.points for reason in assessment.reasons}
        moved = tuple(
            f"{signal} {now.get(signal, 0.0) - previous.get(signal, 0.0):+.0f}"
            for signal in sorted(set(now) | set(previous))
            if abs(now.get(signal, 0.0) - previous.get(signal, 0.0)) >= _MOVE
        )
        lines.append(
            ExplainedTurn(
                event_id=event.event_id,
                who=event.role.value if event.role else event.type.value,
                score=assessment.score,
                level=assessment.level,
                moved=moved,
                text=event.text or "",
                decision=None
                if assessment.decision is Decision.NONE
                else assessment.decision.value,
            )
        )
        previous = now
    return lines


def describe(result: ConversationResult) -> str:
    """The one-paragraph verdict `replay` prints for a conversation."""
    decisive = result.decisive
    if decisive is None:
        return f"{result.conversation_id}: no events"
    if not result.escalated:
        return (
            f"{result.conversation_id}: not escalated "
            f"(peak {decisive.score:.0f}, level {decisive.level or 'none'})"
        )
    lines = [
        f"{result.conversation_id}: ESCALATED at event {result.escalated_at_event} -> "
        f"level {decisive.level}, score {decisive.score:.0f}, team {decisive.team or '-'}"
    ]
    lines.extend(f"    - {reason.text}" for reason in decisive.reasons)
    return "\n".join(lines)
