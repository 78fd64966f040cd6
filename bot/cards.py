"""The platform-neutral escalation card: one model, rendered natively by each chat surface."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from engine.assessment import HandoffSummary


class CardStatus(StrEnum):
    OPEN = "open"
    CLAIMED = "claimed"
    RESOLVED = "resolved"
    EXPIRED = "expired"  # the conversation ended before anyone claimed
    RECOVERED = "recovered"  # the bot recovered before anyone claimed


class CardAction(StrEnum):
    """Buttons on a card. The value is the action id both surfaces send back on a click."""

    CLAIM = "escalation_claim"
    RELEASE = "escalation_release"
    RESOLVE = "escalation_resolve"
    HAND_BACK = "escalation_hand_back"
    # The claimer's answer to an idle reminder: restarts the clock that would release it.
    STILL_ON_IT = "escalation_still_on_it"
    OPEN_TRANSCRIPT = "escalation_open_transcript"


# How a hand-off ended, as (stored value, label); every surface offers and shows the same list.
RESOLVE_OUTCOMES: tuple[tuple[str, str], ...] = (
    ("solved", "Solved"),
    ("workaround", "Workaround given"),
    ("needs_follow_up", "Needs follow-up"),
    ("not_an_issue", "Not an issue"),
    ("duplicate", "Duplicate"),
)


# Outcomes set by an action rather than chosen in the resolve form.
HANDED_BACK = "handed_back"
_OUTCOME_LABELS = {**dict(RESOLVE_OUTCOMES), HANDED_BACK: "Handed back to the bot"}


def outcome_label(outcome: str | None) -> str:
    """The label of a stored outcome (an unknown value shows as written)."""
    return _OUTCOME_LABELS.get(outcome or "", outcome or "resolved")


@dataclass(frozen=True, slots=True)
class Card:
    """What an escalation card shows, whatever the surface."""

    escalation_id: int
    conversation_id: str
    status: CardStatus
    level: str
    score: float
    mention: str | None
    team: str
    platform: str
    customer_name: str | None
    customer_tier: str | None
    opened_at: datetime
    reasons: tuple[str, ...]
    summary: HandoffSummary
    transcript_url: str | None
    platform_url: str | None
    claimed_by: str | None = None
    claimed_at: datetime | None = None
    closed_by: str | None = None
    closed_at: datetime | None = None
    outcome: str | None = None
    note: str | None = None
    # Free-form status lines appended by the lifecycle ("SLA: re-alerted @here at 10:14").
    notices: tuple[str, ...] = ()
    # The claimer was reminded that nobody has answered the customer, and has not said yet
    # whether they are still on it (the card offers *Still on it* while this holds).
    reminder_open: bool = False

    @property
    def actions(self) -> tuple[CardAction, ...]:
        """The buttons that make sense in the card's current status."""
        if self.status is CardStatus.OPEN:
            return (CardAction.CLAIM, CardAction.OPEN_TRANSCRIPT)
        if self.status is CardStatus.CLAIMED:
            still_on_it = (CardAction.STILL_ON_IT,) if self.reminder_open else ()
            return (
                *still_on_it,
                CardAction.RELEASE,
                CardAction.HAND_BACK,
                CardAction.RESOLVE,
                CardAction.OPEN_TRANSCRIPT,
            )
        return (CardAction.OPEN_TRANSCRIPT,)


def format_wait(seconds: float) -> str:
    """A short human duration: "45s", "2m 10s", "1h 05m", "2d 3h"."""
    total = max(0, int(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"
