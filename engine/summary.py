"""The hand-off summary: what an agent needs to continue, built cheaply from the state alone."""

from __future__ import annotations

from engine.assessment import HandoffSummary, SummaryMessage
from engine.redact import redact_for
from engine.rules import Rules
from engine.state import ConversationState


def summarize(state: ConversationState, rules: Rules) -> HandoffSummary:
    """The hand-off summary of a conversation, redacted as the rules say."""

    def clean(text: str) -> str:
        return redact_for(text, rules)

    identifiers = tuple(dict.fromkeys(clean(identifier) for identifier in state.identifiers))
    return HandoffSummary(
        wants=tuple(clean(text) for text in state.wants),
        bot_tried=tuple(clean(text) for text in state.bot_tried),
        recent=tuple(
            SummaryMessage(message.role, clean(message.text), message.timestamp, message.event_id)
            for message in state.recent
        ),
        sentiment_trend=tuple(state.sentiment_trend),
        identifiers=identifiers,
        turns=state.turns,
        started_at=state.started_at,
        last_at=state.last_at,
    )
