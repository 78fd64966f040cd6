"""Literal conversations for engine tests: a rules factory and a chat that assesses as it goes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from engine import Assessment, ConversationState, assess
from engine.events import ConversationEvent, ConversationMeta, Customer, EventType, Role
from engine.rules import Level, Route, Rules, Signals, Team

START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def make_rules(**overrides: Any) -> Rules:
    """Rules with three levels (watch 20, escalate 50, urgent 80) and one team."""
    fields: dict[str, Any] = {
        "levels": (
            Level(name="watch", min_score=20, notify=False),
            Level(name="escalate", min_score=50),
            Level(name="urgent", min_score=80, mention="@here"),
        ),
        "teams": {"support": Team()},
        "routes": Route(team="support"),
        "signals": Signals(),
    }
    fields.update(overrides)
    return Rules(**fields)


class Chat:
    """One conversation driven line by line; each line is assessed at once, 30 seconds apart."""

    def __init__(self, rules: Rules | None = None, *, tier: str | None = None) -> None:
        self.rules = rules or make_rules()
        self.meta = ConversationMeta(platform="generic", customer=Customer(id="c1", tier=tier))
        self.state = ConversationState.new()
        self.clock = START
        self.count = 0
        self.last: Assessment | None = None

    def event(
        self, event_type: EventType, gap: timedelta | None = None, **fields: Any
    ) -> Assessment:
        """Assess one event of the given type, `gap` after the previous one."""
        self.clock += timedelta(seconds=30) if gap is None else gap
        self.count += 1
        event = ConversationEvent(
            event_id=f"e{self.count}", type=event_type, timestamp=self.clock, **fields
        )
        self.state, self.last = assess(self.state, event, self.rules, self.meta)
        return self.last

    def customer(self, text: str, gap: timedelta | None = None) -> Assessment:
        """The customer says `text`."""
        return self.event(EventType.MESSAGE, gap, role=Role.CUSTOMER, text=text)

    def bot(self, text: str, gap: timedelta | None = None, **fields: Any) -> Assessment:
        """The bot answers `text` (with intent, confidence or fallback flag if given)."""
        return self.event(EventType.MESSAGE, gap, role=Role.BOT, text=text, **fields)

    def agent(self, text: str) -> Assessment:
        """A human agent writes in the conversation."""
        return self.event(EventType.MESSAGE, role=Role.AGENT, text=text)

    def end(self, outcome: str | None = None) -> Assessment:
        """The session ends."""
        return self.event(EventType.SESSION_END, outcome=outcome)

    def reason_texts(self) -> list[str]:
        """The reasons of the last assessment, as a card shows them."""
        assert self.last is not None
        return [reason.text for reason in self.last.reasons]
