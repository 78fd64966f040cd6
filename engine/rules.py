"""The rules an admin writes in `rules.yaml`: the models, each checking its own invariants.

Loading (with file, line and key path in every error) lives in `engine.rules_loader`.
"""

from __future__ import annotations

import zoneinfo
from datetime import date, time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Strict(BaseModel):
    """Every rules model: unknown keys are errors, values are not coerced across types."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# --- signals -------------------------------------------------------------------------------------


class SignalBase(Strict):
    enabled: bool = True
    weight: float = Field(ge=0, le=100)


class SentimentSignal(SignalBase):
    """Negative customer sentiment (VADER compound), over a rolling window and as a trend."""

    weight: float = Field(default=30, ge=0, le=100)
    window: int = Field(default=3, ge=1, le=20)
    negative_below: float = Field(default=-0.25, ge=-1, le=1)
    # At or below this average the signal adds its full weight: strong anger alone is enough.
    strong_below: float = Field(default=-0.6, ge=-1, le=1)
    drop: float = Field(default=0.6, gt=0, le=2)


class HumanRequestSignal(SignalBase):
    """The customer explicitly asks for a person."""

    weight: float = Field(default=70, ge=0, le=100)
    extra_phrases: tuple[str, ...] = ()


class FallbackSignal(SignalBase):
    """Consecutive bot fallbacks (platform flag, fallback intent, low confidence or phrasing)."""

    weight: float = Field(default=35, ge=0, le=100)
    streak: int = Field(default=2, ge=1, le=50)
    full_at: int = Field(default=4, ge=1, le=50)
    low_confidence: float | None = Field(default=0.3, ge=0, le=1)
    extra_phrases: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _full_at_not_below_streak(self) -> FallbackSignal:
        if self.full_at < self.streak:
            raise ValueError(f"full_at ({self.full_at}) must be at least streak ({self.streak})")
        return self


class RepetitionSignal(SignalBase):
    """The customer repeating themselves, or the bot repeating itself (a loop)."""

    weight: float = Field(default=20, ge=0, le=100)
    similarity: float = Field(default=0.75, gt=0, le=1)
    lookback: int = Field(default=4, ge=1, le=20)
    min_repeats: int = Field(default=1, ge=1, le=20)
    # A repeat stops counting this many turns after it happened.
    memory: int = Field(default=12, ge=1, le=500)


class LongConversationSignal(SignalBase):
    weight: float = Field(default=10, ge=0, le=100)
    turns: int = Field(default=16, ge=1)


class LongDurationSignal(SignalBase):
    weight: float = Field(default=10, ge=0, le=100)
    minutes: float = Field(default=20, gt=0)


class CustomerTierSignal(SignalBase):
    """Points added by the customer's tier (only when another signal already fired)."""

    weight: float = Field(default=15, ge=0, le=100)
    tiers: dict[str, float] = Field(default_factory=lambda: {"enterprise": 1.0, "premium": 0.5})


class AbandonmentSignal(SignalBase):
    """The session ended after trouble (score above `after_score`) with no resolution."""

    weight: float = Field(default=20, ge=0, le=100)
    after_score: float = Field(default=20, ge=0, le=100)


class FrustrationSignal(SignalBase):
    """Support jargon the sentiment lexicon misses: "still waiting", "third time", "useless bot"."""

    weight: float = Field(default=20, ge=0, le=100)
    extra_phrases: tuple[str, ...] = ()
    # A frustrated message stops counting this many turns after it was sent.
    memory: int = Field(default=12, ge=1, le=500)


class CorrectionSignal(SignalBase):
    """The customer correcting a bot answer: "no", "nope, that's not it" (not a yes/no reply)."""

    weight: float = Field(default=15, ge=0, le=100)
    memory: int = Field(default=12, ge=1, le=500)


class ShoutingSignal(SignalBase):
    """The customer writing in capitals or with "!!!" / "???"."""

    weight: float = Field(default=10, ge=0, le=100)
    memory: int = Field(default=8, ge=1, le=500)


class SlowReplySignal(SignalBase):
    """The customer left waiting: a long gap between their message and the next reply."""

    weight: float = Field(default=10, ge=0, le=100)
    minutes: float = Field(default=5, gt=0)
    memory: int = Field(default=12, ge=1, le=500)


class Signals(Strict):
    sentiment: SentimentSignal = Field(default_factory=SentimentSignal)
    human_request: HumanRequestSignal = Field(default_factory=HumanRequestSignal)
    fallbacks: FallbackSignal = Field(default_factory=FallbackSignal)
    repetition: RepetitionSignal = Field(default_factory=RepetitionSignal)
    long_conversation: LongConversationSignal = Field(default_factory=LongConversationSignal)
    long_duration: LongDurationSignal = Field(default_factory=LongDurationSignal)
    customer_tier: CustomerTierSignal = Field(default_factory=CustomerTierSignal)
    abandonment: AbandonmentSignal = Field(default_factory=AbandonmentSignal)
    frustration: FrustrationSignal = Field(default_factory=FrustrationSignal)
    correction: CorrectionSignal = Field(default_factory=CorrectionSignal)
    shouting: ShoutingSignal = Field(default_factory=ShoutingSignal)
    slow_reply: SlowReplySignal = Field(default_factory=SlowReplySignal)


# --- levels --------------------------------------------------------------------------------------


class Level(Strict):
    name: str = Field(min_length=1, max_length=40)
    min_score: float = Field(ge=0, le=100)
    # A notifying level posts a card; lower levels are only recorded ("watch").
    notify: bool = True
    # Who to mention when a card of this level is posted, e.g. "@here" or a user group id.
    mention: str | None = None


class Recovery(Strict):
    """When an unclaimed escalation closes as recovered: the score fell and the bot answered."""

    below_score: float = Field(default=25, ge=0, le=100)
    bot_answers: int = Field(default=2, ge=1, le=50)


class Redaction(Strict):
    enabled: bool = True
    kinds: tuple[Literal["email", "phone", "card", "iban"], ...] = ("email", "phone", "card")


# --- teams and routes ----------------------------------------------------------------------------


class SlackTarget(Strict):
    channel: str = Field(min_length=1)
    mention: str | None = None


class TeamsTarget(Strict):
    channel: str = Field(min_length=1)


class SlaStep(Strict):
    after_minutes: float = Field(gt=0)
    action: Literal["remind", "mention", "handoff"]
    target: str | None = None  # a mention ("@here", "<!subteam^S1>") or, for handoff, a team name


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class BusinessHours(Strict):
    """When a team is at work; outside these hours its SLA chain waits."""

    timezone: str = "UTC"
    days: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri")
    start: str = "09:00"
    end: str = "17:00"
    # Whole days off, as "YYYY-MM-DD" in the team's time zone.
    holidays: tuple[str, ...] = ()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"'{value}' is not a known time zone") from None
        return value

    @field_validator("start", "end")
    @classmethod
    def _clock_time(cls, value: str) -> str:
        try:
            time.fromisoformat(value)
        except ValueError:
            raise ValueError(f"'{value}' is not a time of day like \"09:00\"") from None
        return value

    @field_validator("holidays")
    @classmethod
    def _dates(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for text in value:
            try:
                date.fromisoformat(text)
            except ValueError:
                raise ValueError(f"'{text}' is not a date like \"2026-12-25\"") from None
        return value

    @model_validator(mode="after")
    def _start_before_end(self) -> BusinessHours:
        if time.fromisoformat(self.start) >= time.fromisoformat(self.end):
            raise ValueError(f"start ({self.start}) must be before end ({self.end})")
        return self


class Sla(Strict):
    claim_within_minutes: float = Field(default=10, gt=0)
    steps: tuple[SlaStep, ...] = ()
    # Without business hours the chain runs around the clock.
    business_hours: BusinessHours | None = None
    # A team that takes unclaimed escalations outside business hours; without one the chain waits.
    after_hours: str | None = None


class Idle(Strict):
    """A claimed escalation nobody answers: remind the claimer, then give it back to the queue.

    Both clocks count wall minutes: a claim is a promise that someone is at work now.
    """

    # Minutes after the claim (or the last "Still on it") with no agent message before the
    # claimer is reminded in the card's thread.
    remind_after_minutes: float = Field(default=10, gt=0, le=24 * 60)
    # Minutes after that reminder, still without an answer, before the escalation returns to
    # the queue; null: remind only, never release.
    release_after_minutes: float | None = Field(default=10, gt=0, le=24 * 60)


class Digest(Strict):
    cron: str = "0 9 * * 1-5"
    timezone: str = "UTC"


class Team(Strict):
    slack: SlackTarget | None = None
    teams: TeamsTarget | None = None
    sla: Sla = Field(default_factory=Sla)
    digest: Digest | None = None
    # Chat user ids (Slack "U…", Teams AAD object ids) who may release or resolve anyone's claim.
    admins: tuple[str, ...] = ()
    # Chat user ids of the team's agents: App Home and "queue" show them their teams' escalations.
    agents: tuple[str, ...] = ()
    pause_bot_on_claim: bool = True
    # Reminders for claimed escalations with no agent reply; None: the claimer is never nudged.
    idle: Idle | None = None


class RouteMatch(Strict):
    customer_tier: tuple[str, ...] | None = None
    platform: tuple[str, ...] | None = None
    language: tuple[str, ...] | None = None
    metadata: dict[str, str] | None = None
    min_level: str | None = None

    @field_validator("customer_tier", "platform", "language", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        # One value or a list of values; the strict tuple check that follows runs in Python mode
        # even when the input came in as JSON, so a list must become a tuple here.
        if isinstance(value, str):
            return (value,)
        return tuple(value) if isinstance(value, list) else value


class Route(Strict):
    match: RouteMatch | None = None
    team: str | None = None
    continue_: bool = Field(default=False, alias="continue")
    routes: tuple[Route, ...] = ()


# --- the whole file ------------------------------------------------------------------------------


class Rules(Strict):
    version: Literal[1] = 1
    signals: Signals = Field(default_factory=Signals)
    levels: tuple[Level, ...]
    recovery: Recovery = Field(default_factory=Recovery)
    redaction: Redaction = Field(default_factory=Redaction)
    teams: dict[str, Team]
    routes: Route
    # Base URL of the dashboard, for transcript links on cards.
    dashboard_url: str | None = None
