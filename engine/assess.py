"""The incremental rule engine: one event in, the updated state and an Assessment out.

`assess` is pure in the sense that matters for replay: no I/O, no clock reads (time comes with the
event) and no globals besides caches of pure functions (the VADER analyzer, each Rules object's
settings flattened, the reading of a bot text), so the same events and rules always give the same
answers. For speed it updates the given state in place and returns that same object; callers that
need the state from before the event take `state.copy()` first.

What costs the time, per event: VADER on customer messages (skipped when no word of the message
is in its lexicon: the score is then 0.0 anyway), the detectors' patterns (each run only when a
word it needs is present), and the reasons, which are rebuilt only when their inputs change (see
`_Derived`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from functools import lru_cache
from itertools import islice
from operator import attrgetter
from typing import Any, NamedTuple, TypeVar, cast

from engine.assessment import Assessment, Decision, Reason
from engine.events import ConversationEvent, ConversationMeta, EventType, Role
from engine.redact import redact_for
from engine.routing import route_for
from engine.rules import (
    CorrectionSignal,
    FallbackSignal,
    FrustrationSignal,
    Level,
    RepetitionSignal,
    Rules,
    SentimentSignal,
    ShoutingSignal,
    SlowReplySignal,
)
from engine.sentiment import is_shouting, read_customer
from engine.signals import (
    MAX_TOKENS,
    MIN_REPEAT_TOKENS,
    asks_for_human_in,
    confusion_phrase,
    find_identifiers,
    frustration_phrases,
    gives_up,
    is_correction,
    is_failure_phrasing,
    is_fallback_intent,
    is_fallback_phrasing,
    message_words,
    most_similar,
    token_set,
)
from engine.state import (
    MAX_BOT_TRIED,
    MAX_HITS,
    MAX_IDENTIFIERS,
    MAX_WANTS,
    ConversationState,
    Hit,
    RecentMessage,
    SentimentPoint,
)

# Enum members as module globals, for the code run at every event: `EventType.MESSAGE` is a look-up
# on the enum class (about 65 ns on CPython 3.11, a global about 5), several of them an event.
_MESSAGE, _HANDOFF, _SESSION_END = EventType.MESSAGE, EventType.HANDOFF, EventType.SESSION_END
_CUSTOMER, _BOT, _AGENT = Role.CUSTOMER, Role.BOT, Role.AGENT
_NO_DECISION, _OPEN, _UPGRADE = Decision.NONE, Decision.OPEN, Decision.UPGRADE
_RECOVERED, _ENDED = Decision.RECOVERED, Decision.ENDED

# A bot reply must be this close to an earlier one to count as the bot repeating itself; bots
# reuse templates ("Your order #1 ..." / "Your order #2 ..."), so this is stricter than for people.
BOT_LOOP_SIMILARITY = 0.9
QUOTE_CHARS = 80
SHOUT_CHARS = 40
WANT_CHARS = 300
RECENT_CHARS = 500
BOT_TRIED_CHARS = 120
# With a single customer message the sentiment mean is one message's opinion: count it half.
SINGLE_MESSAGE_SENTIMENT_FACTOR = 0.5
_MISSING = object()
UNRESOLVED_OUTCOMES = frozenset({"abandoned", "timeout", "timed_out", "dropped"})

_GREETING_WORDS = frozenset(
    {
        "hi",
        "hello",
        "hey",
        "hiya",
        "yo",
        "hallo",
        "hola",
        "bonjour",
        "salut",
        "ola",
        "olá",
        "oi",
        "moin",
        "servus",
        "good",
        "morning",
        "afternoon",
        "evening",
        "day",
        "there",
        "thanks",
        "thank",
        "you",
        "ok",
        "okay",
        "yes",
        "no",
        "yeah",
        "yep",
        "nope",
        "please",
        "pls",
        "guten",
        "tag",
        "morgen",
        "buenos",
        "buenas",
        "dias",
        "días",
        "tardes",
        "bom",
        "dia",
        "boa",
        "tarde",
        "bonsoir",
        "merci",
        "danke",
        "gracias",
        "obrigado",
        "obrigada",
        "again",
        "bot",
    }
)


def _quote(text: str, limit: int = QUOTE_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _is_substantive(tokens: frozenset[str]) -> bool:
    return any(len(token) >= 3 and token not in _GREETING_WORDS for token in tokens)


def _signed(value: float) -> str:
    return f"{value:+.2f}"


def _turns(first: int, last: int) -> str:
    return f"turn {last}" if first == last else f"turns {first}-{last}"


# --- the rules, flattened once -------------------------------------------------------------------


# Builds a counting signal's reason from its live hits and its settings (one per signal).
_CountingBuild = Callable[[Sequence[Hit], Any], Reason | None]


class _Plan:
    """The parts of one Rules object that every event reads, as plain attributes.

    Reading `rules.signals.sentiment.window` walks three models; an event reads a few dozen such
    settings, so they are looked up once per Rules object instead.
    """

    __slots__ = (
        "abandonment",
        "abandonment_after_score",
        "abandonment_on",
        "bot_loop_similarity",
        "correction_on",
        "counting",
        "duration_minutes",
        "duration_points",
        "fallbacks",
        "fallbacks_extra",
        "fallbacks_low_confidence",
        "fallbacks_on",
        "fallbacks_streak",
        "frustration",
        "frustration_extra",
        "frustration_on",
        "human_extra",
        "human_on",
        "human_points",
        "level_min",
        "levels",
        "long_points",
        "long_turns",
        "recovery_answers",
        "recovery_below",
        "repetition",
        "repetition_lookback",
        "repetition_on",
        "repetition_similarity",
        "rules",
        "sentiment",
        "sentiment_on",
        "sentiment_window",
        "shouting_on",
        "signals",
        "slow_reply_minutes",
        "slow_reply_on",
        "teams",
        "tier",
        "tier_on",
    )

    def __init__(self, rules: Rules) -> None:
        signals = rules.signals
        self.rules = rules
        # The first team routed to, by the facts routing reads (`_team_for`).
        self.teams: dict[tuple[Any, ...], str | None] = {}
        self.signals = signals
        self.sentiment = signals.sentiment
        self.sentiment_on = signals.sentiment.enabled
        self.sentiment_window = signals.sentiment.window
        self.human_on = signals.human_request.enabled
        self.human_extra = signals.human_request.extra_phrases
        self.human_points = round(float(signals.human_request.weight), 1)
        self.fallbacks = signals.fallbacks
        self.fallbacks_on = signals.fallbacks.enabled
        self.fallbacks_streak = signals.fallbacks.streak
        self.fallbacks_low_confidence = signals.fallbacks.low_confidence
        self.fallbacks_extra = signals.fallbacks.extra_phrases
        self.repetition = signals.repetition
        self.repetition_on = signals.repetition.enabled
        self.repetition_lookback = signals.repetition.lookback
        self.repetition_similarity = signals.repetition.similarity
        self.bot_loop_similarity = max(signals.repetition.similarity, BOT_LOOP_SIMILARITY)
        self.frustration = signals.frustration
        self.frustration_on = signals.frustration.enabled
        self.frustration_extra = signals.frustration.extra_phrases
        self.correction_on = signals.correction.enabled
        self.shouting_on = signals.shouting.enabled
        self.slow_reply_on = signals.slow_reply.enabled
        self.slow_reply_minutes = signals.slow_reply.minutes
        long_conversation = signals.long_conversation
        self.long_turns = long_conversation.turns if long_conversation.enabled else None
        self.long_points = round(float(long_conversation.weight), 1)
        long_duration = signals.long_duration
        self.duration_minutes = long_duration.minutes if long_duration.enabled else None
        self.duration_points = round(float(long_duration.weight), 1)
        self.abandonment = signals.abandonment
        self.abandonment_on = signals.abandonment.enabled
        self.abandonment_after_score = signals.abandonment.after_score
        self.tier = signals.customer_tier
        self.tier_on = signals.customer_tier.enabled
        self.levels = rules.levels
        # The first level of each name, as `_level_named` would find it.
        self.level_min: dict[str, float] = {}
        for level in rules.levels:
            self.level_min.setdefault(level.name, level.min_score)
        self.recovery_below = rules.recovery.below_score
        self.recovery_answers = rules.recovery.bot_answers
        # The counting signals that are on: (hits in the state, memo in _Derived, settings,
        # reason builder), in the order their reasons are listed.
        self.counting: tuple[tuple[str, str, Any, _CountingBuild], ...] = tuple(
            (hits, memo, config, build)
            for on, hits, memo, config, build in (
                (
                    self.repetition_on,
                    "repeats",
                    "repetition",
                    _RepetitionTerms(signals.repetition),
                    _build_repetition_reason,
                ),
                (
                    self.frustration_on,
                    "frustrations",
                    "frustration",
                    signals.frustration,
                    _build_frustration_reason,
                ),
                (
                    self.correction_on,
                    "corrections",
                    "correction",
                    signals.correction,
                    _build_correction_reason,
                ),
                (self.shouting_on, "shouts", "shouting", signals.shouting, _build_shouting_reason),
                (
                    self.slow_reply_on,
                    "waits",
                    "slow_reply",
                    signals.slow_reply,
                    _build_slow_reply_reason,
                ),
            )
            if on
        )


# Plans by the identity of their Rules (Rules holds dicts, so it cannot be a dict key itself);
# each entry keeps its Rules alive, so an id cannot be reused while its entry exists.
_PLANS: dict[int, _Plan] = {}
_MAX_PLANS = 16
_MAX_ROUTED = 4096  # routings kept per plan


def _plan_for(rules: Rules) -> _Plan:
    plan = _PLANS.get(id(rules))
    if plan is not None and plan.rules is rules:
        return plan
    if len(_PLANS) >= _MAX_PLANS:
        _PLANS.clear()
    plan = _PLANS[id(rules)] = _Plan(rules)
    return plan


# --- what was derived from the state, for reuse --------------------------------------------------

_NEVER = 1 << 62

# A named tuple built from a tuple of all its fields in order, in C: calling the class runs its
# Python-level `__new__` (twice the cost). For the few built at every event.
_new = tuple.__new__


class _HitsMemo:
    """A counting signal's reason, valid while its newest hit is `last` and the turn count is
    below `until` (the turn at which its oldest live hit stops counting)."""

    __slots__ = ("last", "reason", "until")

    def __init__(self) -> None:
        self.last: Hit | None = None
        self.until = 0
        self.reason: Reason | None = None


class _Derived:
    """Reasons, score, level and team computed for the state's current inputs, reused while those
    inputs stay the same. Never stored: a state read back, or reset, starts without it."""

    __slots__ = (
        "abandonment",
        "abandonment_key",
        "correction",
        "duration",
        "duration_minutes",
        "fallbacks",
        "fallbacks_key",
        "found",
        "frustration",
        "human",
        "human_at",
        "level",
        "level_score",
        "long",
        "long_turns",
        "plan",
        "reasons",
        "repetition",
        "score",
        "sentiment",
        "sentiment_point",
        "shouting",
        "slow_reply",
        "team_meta",
        "teams",
        "tier",
        "tier_reason",
    )

    def __init__(self, plan: _Plan) -> None:
        self.plan = plan
        self.human_at: datetime | None = None
        self.human: Reason | None = None
        self.fallbacks_key: tuple[int, int] | None = None
        self.fallbacks: Reason | None = None
        self.sentiment_point: SentimentPoint | None = None
        self.sentiment: Reason | None = None
        self.repetition = _HitsMemo()
        self.frustration = _HitsMemo()
        self.correction = _HitsMemo()
        self.shouting = _HitsMemo()
        self.slow_reply = _HitsMemo()
        self.long_turns = -1
        self.long: Reason | None = None
        self.duration_minutes = -1
        self.duration: Reason | None = None
        self.abandonment_key: tuple[bool, str | None] | None = None
        self.abandonment: Reason | None = None
        self.tier: object = _MISSING
        self.tier_reason: Reason | None = None
        self.found: list[Reason] | None = None
        self.reasons: tuple[Reason, ...] = ()
        self.score: float = 0.0
        self.level_score: float | None = None
        self.level: Level | None = None
        self.team_meta: ConversationMeta | None = None
        # The first team for each level, for `team_meta`.
        self.teams: dict[str, str | None] = {}


def _derived(state: ConversationState, rules: Rules) -> _Derived:
    derived = state.derived
    if derived is not None and derived.plan.rules is rules:
        return cast("_Derived", derived)
    derived = state.derived = _Derived(_plan_for(rules))
    return derived


# --- per-message updates -------------------------------------------------------------------------


def _on_customer(
    state: ConversationState,
    event: ConversationEvent,
    text: str,
    lowered: str,
    words: frozenset[str],
    plan: _Plan,
) -> None:
    rules = plan.rules
    turn = state.turns
    tokens = words if len(words) <= MAX_TOKENS else token_set(lowered)

    asked = False
    if plan.human_on and state.human_requested_at is None:
        asked = asks_for_human_in(lowered, words, plan.human_extra)
        if asked:
            state.human_requested_at = event.timestamp
            state.human_request_quote = redact_for(_quote(text), rules)
            state.human_request_event = event.event_id

    # The bot's last reply failed the customer: a fallback, or the same answer again.
    bot_failed = state.last_bot_fallback or _bot_just_repeated(state)
    gave_up = gives_up(lowered, words, after_failure=bot_failed)
    # An attachment or sticker has no words to score; a neutral 0 would dilute the window.
    if plan.sentiment_on and words:
        compound, sarcasm = read_customer(
            text,
            lowered=lowered,
            words=words,
            # "No, thank you anyway" after a failure is resignation, not sarcastic praise.
            after_fallback=bot_failed and gave_up is None,
        )
        if sarcasm is not None and plan.frustration_on:
            state.frustrations.append(Hit(turn, event.event_id, f"{sarcasm} (sarcastic)"))
        sentiments = state.sentiments
        sentiments.append(_new(SentimentPoint, (turn, event.event_id, compound)))
        window = plan.sentiment_window
        count = len(sentiments)
        # The same additions in the same order as summing the last `window` points.
        if count <= window:
            mean = sum([point.compound for point in sentiments]) / count
        else:
            recent = [point.compound for point in islice(sentiments, count - window, count)]
            mean = sum(recent) / window
        state.sentiment_mean = mean
        state.sentiment_trend.append(round(mean, 3))
        if state.best_sentiment is None or mean > state.best_sentiment:
            state.best_sentiment = mean
            state.best_sentiment_turn = turn

    if plan.frustration_on:
        found = frustration_phrases(lowered, plan.frustration_extra, words)
        for phrase in found[:2]:
            state.frustrations.append(Hit(turn, event.event_id, phrase))

    if plan.correction_on and turn > 1:
        confused = confusion_phrase(lowered, words)
        if confused is not None:
            state.corrections.append(Hit(turn, event.event_id, confused))
        elif state.after_bot_answer and not state.after_bot_question and is_correction(lowered):
            state.corrections.append(Hit(turn, event.event_id, ""))
    if gave_up is not None:
        # Giving up right after the bot failed is leaving without a resolution, in words.
        if bot_failed and plan.abandonment_on:
            state.abandoned = True
        elif plan.frustration_on:
            state.frustrations.append(Hit(turn, event.event_id, gave_up))
    if plan.shouting_on and is_shouting(text):
        state.shouts.append(Hit(turn, event.event_id, redact_for(_quote(text, SHOUT_CHARS), rules)))
    if state.awaiting_reply_since is None:
        state.awaiting_reply_since = event.timestamp
    state.after_bot_answer = False
    state.after_bot_question = False

    repeated = False
    if len(tokens) >= MIN_REPEAT_TOKENS:
        if plan.repetition_on:
            previous = _last(state.customer_tokens, plan.repetition_lookback)
            if most_similar(tokens, previous) >= plan.repetition_similarity:
                state.repeats.append(_new(Hit, (turn, event.event_id, "customer")))
                repeated = True
        state.customer_tokens.append(tokens)

    # "agent please" says who they want, not what they want.
    short_request = asked and len(tokens) <= 4
    if (
        len(state.wants) < MAX_WANTS
        and not repeated
        and not short_request
        and _is_substantive(tokens)
    ):
        state.wants.append(_clip(text.strip(), WANT_CHARS))


def _last(items: deque[frozenset[str]], count: int) -> Iterable[frozenset[str]]:
    """The last `count` items, oldest first (what `list(items)[-count:]` holds)."""
    size = len(items)
    return items if size <= count else islice(items, size - count, size)


def _bot_just_repeated(state: ConversationState) -> bool:
    # Called for a customer message, whose turn is already counted: the bot spoke the turn before.
    if not state.repeats:
        return False
    last = state.repeats[-1]
    return last.what == "bot" and last.turn == state.turns - 1


def _on_reply(state: ConversationState, event: ConversationEvent, plan: _Plan) -> None:
    """A bot or agent replied: note whether the customer was left waiting too long."""
    since = state.awaiting_reply_since
    if since is None:
        return
    state.awaiting_reply_since = None
    waited = (event.timestamp - since).total_seconds() / 60
    if plan.slow_reply_on and waited >= plan.slow_reply_minutes:
        state.waits.append(Hit(state.turns, event.event_id, str(int(waited))))


class _BotText(NamedTuple):
    """What a bot message's text alone says, the same every time the bot sends that text."""

    lowered: str
    words: frozenset[str]
    tokens: frozenset[str]
    # Worded like a fallback or a failure (the event's flag, intent and confidence aside).
    fallback_worded: bool
    question: bool
    tried: str
    identifiers: tuple[str, ...]


@lru_cache(maxsize=2048)
def _read_bot_text(text: str, extra_phrases: tuple[str, ...]) -> _BotText:
    # Bots send the same templates over and over ("Sorry, I didn't get that."), so the reading
    # of a text is kept; it depends on nothing else but the rules' extra fallback phrases.
    lowered = text.lower()
    words = message_words(lowered)
    return _BotText(
        lowered,
        words,
        words if len(words) <= MAX_TOKENS else token_set(lowered),
        is_fallback_phrasing(lowered, extra_phrases, words) or is_failure_phrasing(lowered, words),
        text.rstrip().endswith("?"),
        _clip(" ".join(text.split()), BOT_TRIED_CHARS),
        tuple(find_identifiers(text, words)),
    )


def _on_bot(
    state: ConversationState, event: ConversationEvent, reading: _BotText, plan: _Plan
) -> bool:
    """Update the state for a bot message; True when it was a fallback."""
    turn = state.turns
    # What `is_bot_fallback` says, with the wording read once per text.
    low_confidence = plan.fallbacks_low_confidence
    confidence = event.confidence
    fallback = bool(
        event.fallback
        or (event.intent and is_fallback_intent(event.intent))
        or (low_confidence is not None and confidence is not None and confidence < low_confidence)
        or reading.fallback_worded
    )
    _on_reply(state, event, plan)
    state.last_bot_fallback = fallback
    state.after_bot_answer = not fallback
    state.after_bot_question = not fallback and reading.question
    if fallback:
        if state.fallback_streak == 0:
            state.fallback_first_turn = turn
            state.fallback_events.clear()
        state.fallback_streak += 1
        state.fallback_last_turn = turn
        state.fallback_events.append(event.event_id)
        return True

    state.fallback_streak = 0
    state.fallback_events.clear()
    if len(state.bot_tried) < MAX_BOT_TRIED:
        tried = event.intent or reading.tried
        if tried and tried not in state.bot_tried:
            state.bot_tried.append(tried)
    tokens = reading.tokens
    if len(tokens) >= MIN_REPEAT_TOKENS:
        if plan.repetition_on:
            previous = _last(state.bot_tokens, plan.repetition_lookback)
            if most_similar(tokens, previous) >= plan.bot_loop_similarity:
                state.repeats.append(_new(Hit, (turn, event.event_id, "bot")))
        state.bot_tokens.append(tokens)
    return False


def _remember_message(
    state: ConversationState,
    event: ConversationEvent,
    role: Role,
    text: str,
    words: frozenset[str] | None,
    found: Iterable[str] | None = None,
) -> None:
    """Keep the message for the summary, with the identifiers in it (`found` when known)."""
    kept = text if len(text) <= RECENT_CHARS else _clip(text, RECENT_CHARS)
    state.recent.append(_new(RecentMessage, (role, kept, event.timestamp, event.event_id)))
    identifiers = state.identifiers
    if len(identifiers) < MAX_IDENTIFIERS:
        for identifier in find_identifiers(text, words) if found is None else found:
            if identifier not in identifiers and len(identifiers) < MAX_IDENTIFIERS:
                identifiers.append(identifier)


# --- scoring -------------------------------------------------------------------------------------
#
# Each reason is built from a few inputs in the state and rebuilt only when one of them changed:
# a new hit, sentiment point or fallback, a hit growing too old to count, another turn or minute.


def _build_sentiment_reason(
    state: ConversationState, config: SentimentSignal, mean: float
) -> Reason | None:
    below = 0.0
    if mean < config.negative_below:
        span = max(0.05, config.negative_below - config.strong_below)
        below = min(1.0, 0.5 + 0.5 * (config.negative_below - mean) / span)
    dropped = 0.0
    best = state.best_sentiment if state.best_sentiment is not None else mean
    # A drop only counts once the customer is actually negative: neutral questions after an
    # enthusiastic "hi, love your shop!" are not trouble.
    if mean < 0 and best - mean >= config.drop:
        dropped = min(1.0, 0.5 + 0.5 * (best - mean - config.drop) / config.drop)
    strength = max(below, dropped)
    if strength <= 0:
        return None
    window = list(state.sentiments)[-config.window :]
    if len(state.sentiments) == 1:
        strength *= SINGLE_MESSAGE_SENTIMENT_FACTOR
    last_turn = window[-1].turn
    if dropped >= below:
        text = (
            f"sentiment fell from {_signed(best)} to {_signed(mean)} "
            f"({_turns(state.best_sentiment_turn, last_turn)})"
        )
    else:
        over = "" if len(window) == 1 else f" over the last {len(window)} messages"
        text = f"negative sentiment {_signed(mean)}{over} ({_turns(window[0].turn, last_turn)})"
    ids = tuple(point.event_id for point in window)
    return Reason("sentiment", round(config.weight * strength, 1), text, ids)


def _build_human_reason(state: ConversationState, asked_at: datetime, points: float) -> Reason:
    # What "%H:%M" gives, without strftime (which asks the C library about time zones).
    text = (
        f"asked for a human at {asked_at.hour:02d}:{asked_at.minute:02d}: "
        f'"{state.human_request_quote}"'
    )
    ids = (state.human_request_event,) if state.human_request_event else ()
    return Reason("human_request", points, text, ids)


def _build_fallback_reason(state: ConversationState, config: FallbackSignal) -> Reason:
    streak = state.fallback_streak
    strength = min(1.0, (streak - config.streak + 1) / (config.full_at - config.streak + 1))
    where = _turns(state.fallback_first_turn, state.fallback_last_turn)
    text = (
        f"the bot failed {streak} times in a row ({where})"
        if streak > 1
        else f"the bot failed once ({where})"
    )
    return Reason(
        "fallbacks", round(config.weight * strength, 1), text, tuple(state.fallback_events)
    )


def _first_live(hits: deque[Hit], turns: int, memory: int) -> int:
    # Old trouble stops counting, so a conversation that got back on track can recover. Hits are
    # in turn order, so the live ones are a suffix.
    cutoff = turns - memory
    start = 0
    for hit in hits:
        if hit.turn > cutoff:
            break
        start += 1
    return start


def _who_repeated(customer: int, bot: int) -> str:
    """Who repeated themselves how often, in the repetition reason's words ("the customer
    repeated themselves 2 times and the bot repeated itself")."""
    parts = []
    if customer:
        parts.append(
            "the customer repeated themselves" + ("" if customer == 1 else f" {customer} times")
        )
    if bot:
        parts.append("the bot repeated itself" + ("" if bot == 1 else f" {bot} times"))
    return " and ".join(parts)


def _repetition_points(weight: float, min_repeats: int, count: int) -> float:
    # Full weight two repeats after the first that counts: a loop of three is enough alone.
    return round(weight * min(1.0, count / (min_repeats + 2)), 1)


class _RepetitionTerms:
    """The repetition signal's settings, with its points for each count of live repeats and its
    words for each split between customer and bot worked out once per rules: a loop builds the
    reason again at nearly every event, and working them out each time (two cached calls and a
    call to word the turns) cost more than the rest of the build."""

    __slots__ = ("memory", "min_repeats", "points", "weight", "who")

    def __init__(self, config: RepetitionSignal) -> None:
        self.memory = config.memory
        self.min_repeats = config.min_repeats
        self.weight = config.weight
        # A state holds at most MAX_HITS repeats (its deque's length).
        counts = range(MAX_HITS + 1)
        self.points = tuple(
            _repetition_points(config.weight, config.min_repeats, count) for count in counts
        )
        # who[customer][bot]
        self.who = tuple(
            tuple(_who_repeated(customer, bot) for bot in counts) for customer in counts
        )


def _build_repetition_reason(hits: Sequence[Hit], terms: _RepetitionTerms) -> Reason | None:
    count = len(hits)
    if not count or count < terms.min_repeats:
        return None
    # The hits' turns, event ids and whos in one step (a loop builds this at nearly every event).
    # Every hit has the three fields; `strict=` would cost a fifth of the step (keyword parsing).
    turns, ids, whats = zip(*hits)  # noqa: B905
    customer = whats.count("customer")
    bot = count - customer
    if count <= MAX_HITS:
        who = terms.who[customer][bot]
        points = terms.points[count]
    else:  # (more repeats than a state keeps: a state built by hand)
        who = _who_repeated(customer, bot)
        points = _repetition_points(terms.weight, terms.min_repeats, count)
    first = turns[0]
    last = turns[-1]
    text = f"{who} (turn {last})" if first == last else f"{who} (turns {first}-{last})"
    return _new(Reason, ("repetition", points, text, ids))


def _build_frustration_reason(hits: Sequence[Hit], config: FrustrationSignal) -> Reason | None:
    if not hits:
        return None
    phrases = list(dict.fromkeys(hit.what for hit in hits))[:3]
    quoted = ", ".join(f'"{phrase}"' for phrase in phrases)
    text = f"frustration: {quoted} ({_turns(hits[0].turn, hits[-1].turn)})"
    strength = min(1.0, 0.6 + 0.4 * (len(hits) - 1))
    ids = tuple(dict.fromkeys(hit.event_id for hit in hits))
    return Reason("frustration", round(config.weight * strength, 1), text, ids)


def _times(count: int) -> str:
    return "" if count == 1 else f" {count} times"


def _describe_corrections(hits: Sequence[Hit]) -> str:
    # States stored before the phrase was kept say "correction" for a plain correction.
    phrases = (hit.what for hit in hits if hit.what and hit.what != "correction")
    quoted = list(dict.fromkeys(f'"{phrase}"' for phrase in phrases))[:3]
    said = f": {', '.join(quoted)}" if quoted else ""
    return "the customer corrected the bot" + _times(len(hits)) + said


def _describe_shouting(hits: Sequence[Hit]) -> str:
    return f'shouting: "{hits[0].what}"' if len(hits) == 1 else f"shouting in {len(hits)} messages"


def _describe_waits(hits: Sequence[Hit]) -> str:
    longest = max(int(hit.what) for hit in hits)
    if len(hits) == 1:
        return f"the customer waited {longest} min for a reply"
    return f"the customer was left waiting{_times(len(hits))}, up to {longest} min"


def _counted_reason(
    name: str,
    describe: Callable[[Sequence[Hit]], str],
    live: Sequence[Hit],
    config: CorrectionSignal | ShoutingSignal | SlowReplySignal,
) -> Reason | None:
    """The reason of a signal that counts recent evidence: one hit 60%, two or more in full."""
    if not live:
        return None
    strength = min(1.0, 0.6 + 0.4 * (len(live) - 1))
    text = f"{describe(live)} ({_turns(live[0].turn, live[-1].turn)})"
    ids = tuple(dict.fromkeys(hit.event_id for hit in live))
    return Reason(name, round(config.weight * strength, 1), text, ids)


def _build_correction_reason(live: Sequence[Hit], config: CorrectionSignal) -> Reason | None:
    return _counted_reason("correction", _describe_corrections, live, config)


def _build_shouting_reason(live: Sequence[Hit], config: ShoutingSignal) -> Reason | None:
    return _counted_reason("shouting", _describe_shouting, live, config)


def _build_slow_reply_reason(live: Sequence[Hit], config: SlowReplySignal) -> Reason | None:
    return _counted_reason("slow_reply", _describe_waits, live, config)


_Config = TypeVar(
    "_Config",
    "_RepetitionTerms",
    FrustrationSignal,
    CorrectionSignal,
    ShoutingSignal,
    SlowReplySignal,
)


def _hits_reason(
    memo: _HitsMemo,
    hits: deque[Hit],
    turns: int,
    config: _Config,
    build: Callable[[Sequence[Hit], _Config], Reason | None],
) -> Reason | None:
    """The reason of a counting signal over its live hits, from `memo` while still valid."""
    last = hits[-1]
    if last is memo.last and turns < memo.until:
        return memo.reason
    memory = config.memory
    start = _first_live(hits, turns, memory)
    memo.last = last
    memo.until = hits[start].turn + memory if start < len(hits) else _NEVER
    # All of them as they are (the usual case), or a copy of the live ones.
    memo.reason = reason = build(hits if not start else list(islice(hits, start, None)), config)
    return reason


# A reason's points, read without a Python-level call (sorting calls the key once per reason).
_points = attrgetter("points")


@lru_cache(maxsize=1024)
def _score(points: float) -> float:
    """The score of reasons worth `points` in all. Kept: rounding a float to a decimal costs
    more than the rest of a loop's scoring, and scores take few values."""
    return round(min(100.0, points), 1)


def _reasons(
    state: ConversationState,
    event: ConversationEvent,
    derived: _Derived,
    meta: ConversationMeta,
) -> tuple[tuple[Reason, ...], float]:
    """The reasons, strongest first, and the score they add up to."""
    plan = derived.plan
    turns = state.turns
    found: list[Reason] = []
    append = found.append

    asked_at = state.human_requested_at
    if asked_at is not None and plan.human_on:
        if asked_at is not derived.human_at:
            derived.human = _build_human_reason(state, asked_at, plan.human_points)
            derived.human_at = asked_at
        append(cast("Reason", derived.human))

    streak = state.fallback_streak
    if plan.fallbacks_on and streak >= plan.fallbacks_streak:
        key = (streak, state.fallback_first_turn)
        if key != derived.fallbacks_key:
            derived.fallbacks = _build_fallback_reason(state, plan.fallbacks)
            derived.fallbacks_key = key
        append(cast("Reason", derived.fallbacks))

    sentiments = state.sentiments
    mean = state.sentiment_mean
    if plan.sentiment_on and mean is not None and sentiments:
        point = sentiments[-1]
        if point is not derived.sentiment_point:
            derived.sentiment = _build_sentiment_reason(state, plan.sentiment, mean)
            derived.sentiment_point = point
        if derived.sentiment is not None:
            append(derived.sentiment)

    for hits_name, memo_name, config, build in plan.counting:
        hits = getattr(state, hits_name)
        if hits:
            memo = getattr(derived, memo_name)
            # `_hits_reason`'s reuse test, without the call when the memo holds.
            if hits[-1] is memo.last and turns < memo.until:
                reason = memo.reason
            else:
                reason = _hits_reason(memo, hits, turns, config, build)
            if reason is not None:
                append(reason)

    long_turns = plan.long_turns
    if long_turns is not None and turns >= long_turns:
        if turns != derived.long_turns:
            derived.long = _new(
                Reason, ("long_conversation", plan.long_points, f"{turns} messages so far", ())
            )
            derived.long_turns = turns
        append(cast("Reason", derived.long))
    duration_minutes = plan.duration_minutes
    if duration_minutes is not None:
        started_at = state.started_at
        last_at = state.last_at
        if started_at is None or last_at is None:
            minutes = 0.0
        else:
            minutes = (last_at - started_at).total_seconds() / 60
        if minutes >= duration_minutes:
            whole_minutes = int(minutes)
            if whole_minutes != derived.duration_minutes:
                derived.duration = Reason(
                    "long_duration", plan.duration_points, f"running for {whole_minutes} min"
                )
                derived.duration_minutes = whole_minutes
            append(cast("Reason", derived.duration))
    if plan.abandonment_on and state.abandoned:
        ended_here = event.event_id if event.type is _SESSION_END else None
        abandonment_key = (state.ended, ended_here)
        if abandonment_key != derived.abandonment_key:
            derived.abandonment = Reason(
                "abandonment",
                round(float(plan.abandonment.weight), 1),
                "the customer left without a resolution"
                if state.ended
                else "the customer gave up after the bot failed them",
                (ended_here,) if ended_here is not None else (),
            )
            derived.abandonment_key = abandonment_key
        append(cast("Reason", derived.abandonment))
    tier = meta.customer.tier
    if found and plan.tier_on and tier is not None:
        if tier != derived.tier:
            tiers = plan.tier.tiers
            factor = tiers.get(tier, tiers.get(tier.lower(), 0.0))
            derived.tier_reason = (
                Reason(
                    "customer_tier",
                    round(plan.tier.weight * min(1.0, factor), 1),
                    f"{tier} customer",
                )
                if factor > 0
                else None
            )
            derived.tier = tier
        if derived.tier_reason is not None:
            append(derived.tier_reason)

    # The same reasons as last time (the same objects, mostly): the same order and score.
    if found == derived.found:
        return derived.reasons, derived.score
    derived.found = found
    ordered = found.copy()
    if len(ordered) > 1:
        ordered.sort(key=_points, reverse=True)
    score = _score(sum(map(_points, ordered)))
    derived.reasons = reasons = tuple(ordered)
    derived.score = score
    return reasons, score


def _level_for(score: float, levels: tuple[Level, ...]) -> Level | None:
    chosen: Level | None = None
    for level in levels:
        if level.min_score <= score and (chosen is None or level.min_score > chosen.min_score):
            chosen = level
    return chosen


# --- the engine ----------------------------------------------------------------------------------


def _decide(
    state: ConversationState,
    event: ConversationEvent,
    plan: _Plan,
    level: Level | None,
    score: float,
    bot_answer: bool,
    bot_fallback: bool,
) -> Decision:
    if score >= plan.recovery_below or bot_fallback:
        state.recovery_answers = 0
    elif bot_answer:
        state.recovery_answers += 1

    if state.escalated_level is not None:
        if event.type is _SESSION_END:
            state.escalated_level = None
            return _ENDED
        current_min = plan.level_min.get(state.escalated_level, -1.0)
        if level is not None and level.notify and level.min_score > current_min:
            state.escalated_level = level.name
            return _UPGRADE
        if state.human_requested_at is None and state.recovery_answers >= plan.recovery_answers:
            state.escalated_level = None
            state.recovery_answers = 0
            return _RECOVERED
        return _NO_DECISION

    if level is not None and level.notify and not state.handed_off:
        state.escalated_level = level.name
        state.recovery_answers = 0
        return _OPEN
    return _NO_DECISION


def _team_for(derived: _Derived, meta: ConversationMeta, level: str) -> str | None:
    if meta is not derived.team_meta:
        # The meta object itself is kept, so its identity stands for its contents.
        derived.team_meta = meta
        derived.teams = {}
    teams = derived.teams
    if level in teams:
        return teams[level]
    # A conversation read back from the database starts a new `_Derived` at each post: the
    # routing of the same facts is kept with the rules' plan (walking the routing tree again cost
    # a post to a conversation already seen 2.8% of its instructions, `writer_bench --seen`).
    plan = derived.plan
    metadata = meta.metadata
    key = (
        meta.customer.tier,
        meta.platform,
        meta.language,
        tuple(metadata.items()) if metadata else (),
        level,
    )
    routed_teams = plan.teams
    if key in routed_teams:
        team = routed_teams[key]
    else:
        routed = route_for(
            plan.rules,
            customer_tier=meta.customer.tier,
            platform=meta.platform,
            language=meta.language,
            metadata=metadata,
            level=level,
        )
        team = routed[0] if routed else None
        if len(routed_teams) >= _MAX_ROUTED:  # (facts as many as the metadata can vary)
            routed_teams.clear()
        routed_teams[key] = team
    teams[level] = team
    return team


def assess(
    state: ConversationState, event: ConversationEvent, rules: Rules, meta: ConversationMeta
) -> tuple[ConversationState, Assessment]:
    """Apply one event to the conversation's state and say what it means for escalation.

    Updates `state` in place and returns it with the Assessment.
    """
    derived = state.derived
    if derived is None or derived.plan.rules is not rules:
        derived = _derived(state, rules)
    plan = derived.plan
    # Events can arrive out of order; the state's time never goes backwards.
    timestamp = event.timestamp
    if state.started_at is None or timestamp < state.started_at:
        state.started_at = timestamp
    if state.last_at is None or timestamp > state.last_at:
        state.last_at = timestamp
    bot_answer = False
    bot_fallback = False

    kind = event.type
    if kind is _MESSAGE:
        role = event.role
        text = event.text or ""
        if role is _CUSTOMER:
            state.turns += 1
            lowered = text.lower()
            words = message_words(lowered)
            _on_customer(state, event, text, lowered, words, plan)
            _remember_message(state, event, role, text, words)
        elif role is _BOT:
            state.turns += 1
            reading = _read_bot_text(text, plan.fallbacks_extra)
            bot_fallback = _on_bot(state, event, reading, plan)
            bot_answer = not bot_fallback
            _remember_message(state, event, role, text, reading.words, reading.identifiers)
        elif role is _AGENT:
            # A person is already talking to the customer: no new escalation from here on.
            state.handed_off = True
            _on_reply(state, event, plan)
            _remember_message(state, event, role, text, None)
    elif kind is _HANDOFF:
        state.handed_off = True
    elif kind is _SESSION_END:
        outcome = (event.outcome or "").lower()
        unresolved = not outcome or outcome in UNRESOLVED_OUTCOMES
        if not state.ended and unresolved:
            state.abandoned = state.abandoned or state.score >= plan.abandonment_after_score
        state.ended = True

    reasons, score = _reasons(state, event, derived, meta)
    if score != derived.level_score:
        derived.level = _level_for(score, plan.levels)
        derived.level_score = score
    level = derived.level
    decision = _decide(state, event, plan, level, score, bot_answer, bot_fallback)
    state.score = score

    if level is None:
        return state, _new(
            Assessment, (event.event_id, score, None, False, reasons, None, decision, None)
        )
    name = level.name
    teams = derived.teams
    team = (
        teams[name]
        if meta is derived.team_meta and name in teams
        else _team_for(derived, meta, name)
    )
    return state, _new(
        Assessment,
        (event.event_id, score, name, level.notify, reasons, team, decision, level.mention),
    )
