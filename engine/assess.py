"""The incremental rule engine: one event in, the updated state and an Assessment out.

`assess` is pure in the sense that matters for replay: no I/O, no clock reads (time comes with the
event) and no globals besides the cached VADER analyzer, so the same events and rules always give
the same answers. For speed it updates the given state in place and returns that same object;
callers that need the state from before the event take `state.copy()` first.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

from engine.assessment import Assessment, Decision, Reason
from engine.events import ConversationEvent, ConversationMeta, EventType, Role
from engine.redact import redact_for
from engine.routing import route_for
from engine.rules import (
    CorrectionSignal,
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
    MIN_REPEAT_TOKENS,
    asks_for_human_in,
    confusion_phrase,
    find_identifiers,
    frustration_phrases,
    gives_up,
    is_bot_fallback,
    is_correction,
    message_words,
    most_similar,
    repetition_tokens,
)
from engine.state import (
    MAX_BOT_TRIED,
    MAX_IDENTIFIERS,
    MAX_WANTS,
    ConversationState,
    Hit,
    RecentMessage,
    SentimentPoint,
)

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


# --- per-message updates -------------------------------------------------------------------------


def _on_customer(
    state: ConversationState,
    event: ConversationEvent,
    text: str,
    lowered: str,
    words: frozenset[str],
    rules: Rules,
) -> None:
    signals = rules.signals
    turn = state.turns
    tokens = repetition_tokens(words, lowered)

    asked = False
    if signals.human_request.enabled and state.human_requested_at is None:
        asked = asks_for_human_in(lowered, words, signals.human_request.extra_phrases)
        if asked:
            state.human_requested_at = event.timestamp
            state.human_request_quote = redact_for(_quote(text), rules)
            state.human_request_event = event.event_id

    # The bot's last reply failed the customer: a fallback, or the same answer again.
    bot_failed = state.last_bot_fallback or _bot_just_repeated(state)
    gave_up = gives_up(lowered, words, after_failure=bot_failed)
    # An attachment or sticker has no words to score; a neutral 0 would dilute the window.
    if signals.sentiment.enabled and words:
        compound, sarcasm = read_customer(
            text,
            lowered=lowered,
            words=words,
            # "No, thank you anyway" after a failure is resignation, not sarcastic praise.
            after_fallback=bot_failed and gave_up is None,
        )
        if sarcasm is not None and signals.frustration.enabled:
            state.frustrations.append(Hit(turn, event.event_id, f"{sarcasm} (sarcastic)"))
        state.sentiments.append(SentimentPoint(turn, event.event_id, compound))
        window = signals.sentiment.window
        recent = list(state.sentiments)[-window:]
        mean = sum(point.compound for point in recent) / len(recent)
        state.sentiment_mean = mean
        state.sentiment_trend.append(round(mean, 3))
        if state.best_sentiment is None or mean > state.best_sentiment:
            state.best_sentiment = mean
            state.best_sentiment_turn = turn

    if signals.frustration.enabled:
        found = frustration_phrases(lowered, signals.frustration.extra_phrases, words)
        for phrase in found[:2]:
            state.frustrations.append(Hit(turn, event.event_id, phrase))

    if signals.correction.enabled and state.turns > 1:
        confused = confusion_phrase(lowered, words)
        if confused is not None:
            state.corrections.append(Hit(turn, event.event_id, confused))
        elif state.after_bot_answer and not state.after_bot_question and is_correction(lowered):
            state.corrections.append(Hit(turn, event.event_id, ""))
    if gave_up is not None:
        # Giving up right after the bot failed is leaving without a resolution, in words.
        if bot_failed and signals.abandonment.enabled:
            state.abandoned = True
        elif signals.frustration.enabled:
            state.frustrations.append(Hit(turn, event.event_id, gave_up))
    if signals.shouting.enabled and is_shouting(text):
        state.shouts.append(Hit(turn, event.event_id, redact_for(_quote(text, SHOUT_CHARS), rules)))
    if state.awaiting_reply_since is None:
        state.awaiting_reply_since = event.timestamp
    state.after_bot_answer = False
    state.after_bot_question = False

    repeated = False
    if len(tokens) >= MIN_REPEAT_TOKENS:
        repetition = signals.repetition
        if repetition.enabled:
            previous = list(state.customer_tokens)[-repetition.lookback :]
            if most_similar(tokens, previous) >= repetition.similarity:
                state.repeats.append(Hit(turn, event.event_id, "customer"))
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


def _bot_just_repeated(state: ConversationState) -> bool:
    # Called for a customer message, whose turn is already counted: the bot spoke the turn before.
    if not state.repeats:
        return False
    last = state.repeats[-1]
    return last.what == "bot" and last.turn == state.turns - 1


def _on_reply(state: ConversationState, event: ConversationEvent, rules: Rules) -> None:
    """A bot or agent replied: note whether the customer was left waiting too long."""
    since = state.awaiting_reply_since
    if since is None:
        return
    state.awaiting_reply_since = None
    config = rules.signals.slow_reply
    waited = (event.timestamp - since).total_seconds() / 60
    if config.enabled and waited >= config.minutes:
        state.waits.append(Hit(state.turns, event.event_id, str(int(waited))))


def _on_bot(
    state: ConversationState,
    event: ConversationEvent,
    text: str,
    lowered: str,
    words: frozenset[str],
    rules: Rules,
) -> bool:
    """Update the state for a bot message; True when it was a fallback."""
    fallbacks = rules.signals.fallbacks
    turn = state.turns
    fallback = is_bot_fallback(
        event,
        lowered,
        low_confidence=fallbacks.low_confidence,
        extra_phrases=fallbacks.extra_phrases,
        words=words,
    )
    _on_reply(state, event, rules)
    state.last_bot_fallback = fallback
    state.after_bot_answer = not fallback
    state.after_bot_question = not fallback and text.rstrip().endswith("?")
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
        tried = event.intent or _clip(" ".join(text.split()), BOT_TRIED_CHARS)
        if tried and tried not in state.bot_tried:
            state.bot_tried.append(tried)
    tokens = repetition_tokens(words, lowered)
    if len(tokens) >= MIN_REPEAT_TOKENS:
        repetition = rules.signals.repetition
        if repetition.enabled:
            previous = list(state.bot_tokens)[-repetition.lookback :]
            threshold = max(repetition.similarity, BOT_LOOP_SIMILARITY)
            if most_similar(tokens, previous) >= threshold:
                state.repeats.append(Hit(turn, event.event_id, "bot"))
        state.bot_tokens.append(tokens)
    return False


def _remember_message(
    state: ConversationState,
    event: ConversationEvent,
    role: Role,
    text: str,
    words: frozenset[str] | None,
) -> None:
    state.recent.append(
        RecentMessage(role, _clip(text, RECENT_CHARS), event.timestamp, event.event_id)
    )
    if len(state.identifiers) < MAX_IDENTIFIERS:
        for identifier in find_identifiers(text, words):
            if identifier not in state.identifiers and len(state.identifiers) < MAX_IDENTIFIERS:
                state.identifiers.append(identifier)


# --- scoring -------------------------------------------------------------------------------------


def _remembered(state: ConversationState, name: str, rules: Rules, key: object) -> Any:
    """The value memoised under `name` for these rules and key, or `_MISSING`."""
    entry = state.memo.get(name)
    if entry is not None and entry[0] is rules and entry[1] == key:
        return entry[2]
    return _MISSING


def _sentiment_reason(state: ConversationState, rules: Rules) -> Reason | None:
    config = rules.signals.sentiment
    mean = state.sentiment_mean
    if not config.enabled or mean is None or not state.sentiments:
        return None
    key = (state.sentiments[-1].event_id, mean, state.best_sentiment, state.best_sentiment_turn)
    remembered = _remembered(state, "sentiment", rules, key)
    if remembered is not _MISSING:
        return cast("Reason | None", remembered)
    reason = _build_sentiment_reason(state, config, mean)
    state.memo["sentiment"] = (rules, key, reason)
    return reason


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


def _human_reason(state: ConversationState, rules: Rules) -> Reason | None:
    config = rules.signals.human_request
    asked_at = state.human_requested_at
    if not config.enabled or asked_at is None:
        return None
    remembered = _remembered(state, "human_request", rules, asked_at)
    if remembered is not _MISSING:
        return cast("Reason", remembered)
    text = f'asked for a human at {asked_at:%H:%M}: "{state.human_request_quote}"'
    ids = (state.human_request_event,) if state.human_request_event else ()
    reason = Reason("human_request", round(float(config.weight), 1), text, ids)
    state.memo["human_request"] = (rules, asked_at, reason)
    return reason


def _fallback_reason(state: ConversationState, rules: Rules) -> Reason | None:
    config = rules.signals.fallbacks
    streak = state.fallback_streak
    if not config.enabled or streak < config.streak:
        return None
    key = (streak, state.fallback_first_turn)
    remembered = _remembered(state, "fallbacks", rules, key)
    if remembered is not _MISSING:
        return cast("Reason", remembered)
    strength = min(1.0, (streak - config.streak + 1) / (config.full_at - config.streak + 1))
    where = _turns(state.fallback_first_turn, state.fallback_last_turn)
    text = (
        f"the bot failed {streak} times in a row ({where})"
        if streak > 1
        else f"the bot failed once ({where})"
    )
    reason = Reason(
        "fallbacks", round(config.weight * strength, 1), text, tuple(state.fallback_events)
    )
    state.memo["fallbacks"] = (rules, key, reason)
    return reason


def _first_live(hits: deque[Hit], state: ConversationState, memory: int) -> int:
    # Old trouble stops counting, so a conversation that got back on track can recover. Hits are
    # in turn order, so the live ones are a suffix.
    cutoff = state.turns - memory
    start = 0
    for hit in hits:
        if hit.turn > cutoff:
            break
        start += 1
    return start


def _repetition_reason(state: ConversationState, rules: Rules) -> Reason | None:
    config = rules.signals.repetition
    if not config.enabled or not state.repeats:
        return None
    start = _first_live(state.repeats, state, config.memory)
    key = (len(state.repeats), state.repeats[-1].event_id, start)
    remembered = _remembered(state, "repetition", rules, key)
    if remembered is not _MISSING:
        return cast("Reason | None", remembered)
    reason = _build_repetition_reason(list(state.repeats)[start:], config)
    state.memo["repetition"] = (rules, key, reason)
    return reason


def _build_repetition_reason(hits: list[Hit], config: RepetitionSignal) -> Reason | None:
    if not hits or len(hits) < config.min_repeats:
        return None
    customer = sum(1 for hit in hits if hit.what == "customer")
    bot = len(hits) - customer
    parts = []
    if customer:
        parts.append(
            "the customer repeated themselves" + ("" if customer == 1 else f" {customer} times")
        )
    if bot:
        parts.append("the bot repeated itself" + ("" if bot == 1 else f" {bot} times"))
    text = f"{' and '.join(parts)} ({_turns(hits[0].turn, hits[-1].turn)})"
    # Full weight two repeats after the first that counts: a loop of three is enough alone.
    strength = min(1.0, len(hits) / (config.min_repeats + 2))
    ids = tuple(hit.event_id for hit in hits)
    return Reason("repetition", round(config.weight * strength, 1), text, ids)


def _frustration_reason(state: ConversationState, rules: Rules) -> Reason | None:
    config = rules.signals.frustration
    if not config.enabled or not state.frustrations:
        return None
    start = _first_live(state.frustrations, state, config.memory)
    key = (len(state.frustrations), state.frustrations[-1].event_id, start)
    remembered = _remembered(state, "frustration", rules, key)
    if remembered is not _MISSING:
        return cast("Reason | None", remembered)
    reason = _build_frustration_reason(list(state.frustrations)[start:], config)
    state.memo["frustration"] = (rules, key, reason)
    return reason


def _build_frustration_reason(hits: list[Hit], config: FrustrationSignal) -> Reason | None:
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


def _describe_corrections(hits: list[Hit]) -> str:
    # States stored before the phrase was kept say "correction" for a plain correction.
    phrases = (hit.what for hit in hits if hit.what and hit.what != "correction")
    quoted = list(dict.fromkeys(f'"{phrase}"' for phrase in phrases))[:3]
    said = f": {', '.join(quoted)}" if quoted else ""
    return "the customer corrected the bot" + _times(len(hits)) + said


def _describe_shouting(hits: list[Hit]) -> str:
    return f'shouting: "{hits[0].what}"' if len(hits) == 1 else f"shouting in {len(hits)} messages"


def _describe_waits(hits: list[Hit]) -> str:
    longest = max(int(hit.what) for hit in hits)
    if len(hits) == 1:
        return f"the customer waited {longest} min for a reply"
    return f"the customer was left waiting{_times(len(hits))}, up to {longest} min"


def _hits_reason(
    state: ConversationState,
    rules: Rules,
    name: str,
    hits: deque[Hit],
    config: CorrectionSignal | ShoutingSignal | SlowReplySignal,
    describe: Callable[[list[Hit]], str],
) -> Reason | None:
    """The reason of a signal that counts recent evidence: one hit 60%, two or more in full."""
    if not config.enabled or not hits:
        return None
    start = _first_live(hits, state, config.memory)
    key = (len(hits), hits[-1].event_id, start)
    remembered = _remembered(state, name, rules, key)
    if remembered is not _MISSING:
        return cast("Reason | None", remembered)
    live = list(hits)[start:]
    reason = None
    if live:
        strength = min(1.0, 0.6 + 0.4 * (len(live) - 1))
        text = f"{describe(live)} ({_turns(live[0].turn, live[-1].turn)})"
        ids = tuple(dict.fromkeys(hit.event_id for hit in live))
        reason = Reason(name, round(config.weight * strength, 1), text, ids)
    state.memo[name] = (rules, key, reason)
    return reason


def _minutes(state: ConversationState) -> float:
    if state.started_at is None or state.last_at is None:
        return 0.0
    return (state.last_at - state.started_at).total_seconds() / 60


def _reasons(
    state: ConversationState, event: ConversationEvent, rules: Rules, meta: ConversationMeta
) -> list[Reason]:
    signals = rules.signals
    reasons = [
        reason
        for reason in (
            _human_reason(state, rules),
            _fallback_reason(state, rules),
            _sentiment_reason(state, rules),
            _repetition_reason(state, rules),
            _frustration_reason(state, rules),
            _hits_reason(
                state,
                rules,
                "correction",
                state.corrections,
                signals.correction,
                _describe_corrections,
            ),
            _hits_reason(
                state, rules, "shouting", state.shouts, signals.shouting, _describe_shouting
            ),
            _hits_reason(
                state, rules, "slow_reply", state.waits, signals.slow_reply, _describe_waits
            ),
        )
        if reason is not None
    ]
    long_conversation = signals.long_conversation
    if long_conversation.enabled and state.turns >= long_conversation.turns:
        reasons.append(
            Reason(
                "long_conversation",
                round(float(long_conversation.weight), 1),
                f"{state.turns} messages so far",
            )
        )
    long_duration = signals.long_duration
    minutes = _minutes(state)
    if long_duration.enabled and minutes >= long_duration.minutes:
        whole_minutes = int(minutes)
        duration = _remembered(state, "long_duration", rules, whole_minutes)
        if duration is _MISSING:
            duration = Reason(
                "long_duration",
                round(float(long_duration.weight), 1),
                f"running for {whole_minutes} min",
            )
            state.memo["long_duration"] = (rules, whole_minutes, duration)
        reasons.append(duration)
    abandonment = signals.abandonment
    if abandonment.enabled and state.abandoned:
        reasons.append(
            Reason(
                "abandonment",
                round(float(abandonment.weight), 1),
                "the customer left without a resolution"
                if state.ended
                else "the customer gave up after the bot failed them",
                (event.event_id,) if event.type is EventType.SESSION_END else (),
            )
        )
    tier_config = signals.customer_tier
    tier = meta.customer.tier
    if reasons and tier_config.enabled and tier is not None:
        tier_reason = _remembered(state, "customer_tier", rules, tier)
        if tier_reason is _MISSING:
            factor = tier_config.tiers.get(tier, tier_config.tiers.get(tier.lower(), 0.0))
            tier_reason = (
                Reason(
                    "customer_tier",
                    round(tier_config.weight * min(1.0, factor), 1),
                    f"{tier} customer",
                )
                if factor > 0
                else None
            )
            state.memo["customer_tier"] = (rules, tier, tier_reason)
        if tier_reason is not None:
            reasons.append(tier_reason)
    reasons.sort(key=lambda reason: reason.points, reverse=True)
    return reasons


def _level_for(score: float, rules: Rules) -> Level | None:
    chosen: Level | None = None
    for level in rules.levels:
        if level.min_score <= score and (chosen is None or level.min_score > chosen.min_score):
            chosen = level
    return chosen


def _level_named(name: str, rules: Rules) -> Level | None:
    for level in rules.levels:
        if level.name == name:
            return level
    return None


# --- the engine ----------------------------------------------------------------------------------


def _advance_clock(state: ConversationState, timestamp: datetime) -> None:
    # Events can arrive out of order; the state's time never goes backwards.
    if state.started_at is None or timestamp < state.started_at:
        state.started_at = timestamp
    if state.last_at is None or timestamp > state.last_at:
        state.last_at = timestamp


def _decide(
    state: ConversationState,
    event: ConversationEvent,
    rules: Rules,
    level: Level | None,
    score: float,
    bot_answer: bool,
    bot_fallback: bool,
) -> Decision:
    recovery = rules.recovery
    if score >= recovery.below_score or bot_fallback:
        state.recovery_answers = 0
    elif bot_answer:
        state.recovery_answers += 1

    if state.escalated_level is not None:
        if event.type is EventType.SESSION_END:
            state.escalated_level = None
            return Decision.ENDED
        current = _level_named(state.escalated_level, rules)
        current_min = current.min_score if current is not None else -1.0
        if level is not None and level.notify and level.min_score > current_min:
            state.escalated_level = level.name
            return Decision.UPGRADE
        if state.human_requested_at is None and state.recovery_answers >= recovery.bot_answers:
            state.escalated_level = None
            state.recovery_answers = 0
            return Decision.RECOVERED
        return Decision.NONE

    if level is not None and level.notify and not state.handed_off:
        state.escalated_level = level.name
        state.recovery_answers = 0
        return Decision.OPEN
    return Decision.NONE


def _team_for(
    state: ConversationState, rules: Rules, meta: ConversationMeta, level: str
) -> str | None:
    key = (id(meta), level)
    entry = state.memo.get("team")
    # The meta object itself is kept in the entry so its id cannot be reused by another one.
    if entry is not None and entry[0] is rules and entry[1] == key and entry[2][0] is meta:
        return cast("str | None", entry[2][1])
    teams = route_for(
        rules,
        customer_tier=meta.customer.tier,
        platform=meta.platform,
        language=meta.language,
        metadata=meta.metadata,
        level=level,
    )
    team = teams[0] if teams else None
    state.memo["team"] = (rules, key, (meta, team))
    return team


def assess(
    state: ConversationState, event: ConversationEvent, rules: Rules, meta: ConversationMeta
) -> tuple[ConversationState, Assessment]:
    """Apply one event to the conversation's state and say what it means for escalation.

    Updates `state` in place and returns it with the Assessment.
    """
    _advance_clock(state, event.timestamp)
    bot_answer = False
    bot_fallback = False

    if event.type is EventType.MESSAGE:
        role = event.role
        text = event.text or ""
        if role is Role.CUSTOMER:
            state.turns += 1
            lowered = text.lower()
            words = message_words(lowered)
            _on_customer(state, event, text, lowered, words, rules)
            _remember_message(state, event, role, text, words)
        elif role is Role.BOT:
            state.turns += 1
            lowered = text.lower()
            words = message_words(lowered)
            bot_fallback = _on_bot(state, event, text, lowered, words, rules)
            bot_answer = not bot_fallback
            _remember_message(state, event, role, text, words)
        elif role is Role.AGENT:
            # A person is already talking to the customer: no new escalation from here on.
            state.handed_off = True
            _on_reply(state, event, rules)
            _remember_message(state, event, role, text, None)
    elif event.type is EventType.HANDOFF:
        state.handed_off = True
    elif event.type is EventType.SESSION_END:
        outcome = (event.outcome or "").lower()
        unresolved = not outcome or outcome in UNRESOLVED_OUTCOMES
        if not state.ended and unresolved:
            state.abandoned = (
                state.abandoned or state.score >= rules.signals.abandonment.after_score
            )
        state.ended = True

    reasons = _reasons(state, event, rules, meta)
    score = round(min(100.0, sum(reason.points for reason in reasons)), 1)
    level = _level_for(score, rules)
    decision = _decide(state, event, rules, level, score, bot_answer, bot_fallback)
    state.score = score

    team = _team_for(state, rules, meta, level.name) if level is not None else None
    assessment = Assessment(
        event_id=event.event_id,
        score=score,
        level=level.name if level is not None else None,
        notify=level.notify if level is not None else False,
        reasons=tuple(reasons),
        team=team,
        decision=decision,
        mention=level.mention if level is not None else None,
    )
    return state, assessment
