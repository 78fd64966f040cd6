"""The rule engine: rules, signals, the incremental `assess`, hand-off summaries and redaction."""

from engine.assess import assess
from engine.assessment import Assessment, Decision, HandoffSummary, Reason, SummaryMessage
from engine.redact import redact, redact_for
from engine.sentiment import customer_sentiment, is_shouting, vader_compound
from engine.signals import (
    asks_for_human,
    find_identifiers,
    frustration_phrases,
    is_bot_fallback,
    is_correction,
    is_fallback_intent,
    is_fallback_phrasing,
)
from engine.state import ConversationState, reset_escalation
from engine.summary import summarize

__all__ = [
    "Assessment",
    "ConversationState",
    "Decision",
    "HandoffSummary",
    "Reason",
    "SummaryMessage",
    "asks_for_human",
    "assess",
    "customer_sentiment",
    "find_identifiers",
    "frustration_phrases",
    "is_bot_fallback",
    "is_correction",
    "is_fallback_intent",
    "is_fallback_phrasing",
    "is_shouting",
    "redact",
    "redact_for",
    "reset_escalation",
    "summarize",
    "vader_compound",
]
