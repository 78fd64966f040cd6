"""What the engine remembers about one conversation: compact, bounded, and JSON round-trippable.

Everything that grows with the conversation is a counter or a bounded deque, so one database row
per conversation holds it and the cost of an event does not depend on how long the chat has run.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache, partial
from operator import attrgetter
from typing import Any, NamedTuple, TypeVar

from engine import jsontext
from engine.events import Role

STATE_VERSION = 1

_I = TypeVar("_I")

# Bounds. The sentiment window and the repetition lookback are capped at 20 by the rules models.
MAX_SENTIMENTS = 20
MAX_RECENT_TOKEN_SETS = 20
MAX_HITS = 10
MAX_FALLBACK_IDS = 10
MAX_TREND = 12
MAX_RECENT_MESSAGES = 6
MAX_WANTS = 2
MAX_BOT_TRIED = 6
MAX_IDENTIFIERS = 10


# Tuples rather than dataclasses: the garbage collector stops tracking tuples of plain values.
class Hit(NamedTuple):
    """One piece of evidence for a counting signal: where it happened and what it was."""

    turn: int
    event_id: str
    what: str


class RecentMessage(NamedTuple):
    """One of the last few messages, for the hand-off summary."""

    role: Role
    text: str
    timestamp: datetime
    event_id: str


class SentimentPoint(NamedTuple):
    """One customer message's corrected sentiment."""

    turn: int
    event_id: str
    compound: float


def _dt(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


# `to_json`'s pieces (`engine.jsontext` for plain values): each gives exactly what `json.dumps`
# writes for the value. Each role as its JSON string (`.value` is a Python-level property on
# CPython 3.11):
_ROLE_JSON = {role: jsontext.quote(role.value) for role in Role}


def _json_time(value: datetime | None) -> str:
    # An ISO time is plain ASCII with nothing to escape.
    if value is None:
        return "null"
    if value.tzinfo is UTC and not value.microsecond:  # what connectors give, most of the time
        # `isoformat`'s text, printf-formatted from the fields: it costs isoformat twice as
        # much to read and write the offset.
        return '"%04d-%02d-%02dT%02d:%02d:%02d+00:00"' % _date_and_time(value)  # noqa: UP031
    return f'"{value.isoformat()}"'


_date_and_time = attrgetter("year", "month", "day", "hour", "minute", "second")  # one C call


def _hit_json(hit: Hit) -> str:
    return f"[{hit.turn!r}, {jsontext.quote(hit.event_id)}, {jsontext.quote(hit.what)}]"


def _sentiment_json(point: SentimentPoint) -> str:
    return f"[{point.turn!r}, {jsontext.quote(point.event_id)}, {jsontext.number(point.compound)}]"


def _message_json(message: RecentMessage, time: str) -> str:
    """A recent message's text, its time's text given (most are the last event's)."""
    return (
        f"[{_ROLE_JSON[message.role]}, {jsontext.quote(message.text)}, "
        f"{time}, {jsontext.quote(message.event_id)}]"
    )


def _message_json_alone(message: RecentMessage) -> str:
    return _message_json(message, _json_time(message.timestamp))


# An item's text as `to_json` last wrote it: {id(item): (item, writer, text)}. The entry holds
# the item, so its id cannot be another object's while the entry lives.
_Written = dict[int, tuple[Any, Callable[[Any], str], str]]
_NOTHING_WRITTEN: _Written = {}  # (never written to)


def _joined(
    items: Iterable[_I], write: Callable[[_I], str], before: _Written, now: _Written | None
) -> str:
    """The items' texts joined by ", ": each taken from `before` (the last `to_json`'s) when the
    very item was written there by `write`, else written; every item's entry goes into `now`
    (None: each written, nothing remembered)."""
    if now is None:
        return ", ".join(map(write, items))
    texts = []
    for item in items:
        entry = before.get(id(item))
        if entry is None or entry[0] is not item or entry[1] is not write:
            entry = (item, write, write(item))
        now[id(item)] = entry
        texts.append(entry[2])
    return ", ".join(texts)


def _json_hits(hits: deque[Hit], before: _Written, now: _Written | None) -> str:
    if not hits:
        return "[]"
    return f"[{_joined(hits, _hit_json, before, now)}]"


@lru_cache(maxsize=4096)
def _token_set_text(tokens: frozenset[str]) -> str:
    """A token set's JSON text, its tokens sorted. Kept: a state is saved after every batch,
    its token sets (up to forty) mostly the same as at the save before, and writing them out
    again took a quarter of `to_json` (posts to conversations already seen); bots and customers
    repeat themselves too."""
    return jsontext.texts(sorted(tokens))


def _json_token_sets(sets: deque[frozenset[str]]) -> str:
    if not sets:
        return "[]"
    return f"[{', '.join(map(_token_set_text, sets))}]"


def _parse_dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


@dataclass(slots=True)
class ConversationState:
    """The engine's memory of one conversation. `assess` updates it in place and returns it."""

    # Customer and bot messages so far; agent and system messages are not turns.
    turns: int = 0
    started_at: datetime | None = None
    last_at: datetime | None = None

    # sentiment
    sentiments: deque[SentimentPoint] = field(default_factory=partial(deque, maxlen=MAX_SENTIMENTS))
    sentiment_mean: float | None = None
    best_sentiment: float | None = None
    best_sentiment_turn: int = 0
    sentiment_trend: deque[float] = field(default_factory=partial(deque, maxlen=MAX_TREND))

    # explicit request for a human (sticky)
    human_requested_at: datetime | None = None
    human_request_quote: str | None = None
    human_request_event: str | None = None

    # bot fallbacks
    fallback_streak: int = 0
    fallback_first_turn: int = 0
    fallback_last_turn: int = 0
    fallback_events: deque[str] = field(default_factory=partial(deque, maxlen=MAX_FALLBACK_IDS))
    last_bot_fallback: bool = False

    # repetition: the last few substantive messages as token sets, and the repeats found
    customer_tokens: deque[frozenset[str]] = field(
        default_factory=partial(deque, maxlen=MAX_RECENT_TOKEN_SETS)
    )
    bot_tokens: deque[frozenset[str]] = field(
        default_factory=partial(deque, maxlen=MAX_RECENT_TOKEN_SETS)
    )
    repeats: deque[Hit] = field(default_factory=partial(deque, maxlen=MAX_HITS))

    # frustration phrases
    frustrations: deque[Hit] = field(default_factory=partial(deque, maxlen=MAX_HITS))

    # corrections of bot answers, shouting, and customers left waiting for a reply
    corrections: deque[Hit] = field(default_factory=partial(deque, maxlen=MAX_HITS))
    shouts: deque[Hit] = field(default_factory=partial(deque, maxlen=MAX_HITS))
    waits: deque[Hit] = field(default_factory=partial(deque, maxlen=MAX_HITS))
    awaiting_reply_since: datetime | None = None
    # The previous message was a real bot answer (not a fallback) / that answer asked a question.
    after_bot_answer: bool = False
    after_bot_question: bool = False

    # session end
    ended: bool = False
    abandoned: bool = False

    # escalation
    score: float = 0.0
    escalated_level: str | None = None
    recovery_answers: int = 0
    handed_off: bool = False

    # hand-off summary material
    wants: list[str] = field(default_factory=list)
    bot_tried: list[str] = field(default_factory=list)
    recent: deque[RecentMessage] = field(default_factory=partial(deque, maxlen=MAX_RECENT_MESSAGES))
    identifiers: list[str] = field(default_factory=list)

    # What the engine derived from the fields above (reasons, score, level, team), reused while
    # their inputs stay the same; private to `engine.assess`. Never stored: a state read back, or
    # reset, starts without it.
    derived: Any = field(default=None, repr=False, compare=False)
    # The texts of the items of its lists as `to_json(remember=True)` last wrote them
    # (`_Written`): a state kept between posts (`bot.pipeline.SavedStates`) is written out again
    # at every post, most of its items the same. Never stored either.
    written: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def new(cls) -> ConversationState:
        """The state of a conversation before its first event."""
        return cls()

    @property
    def escalated(self) -> bool:
        """True while an escalation the engine opened is still open."""
        return self.escalated_level is not None

    def copy(self) -> ConversationState:
        """An independent copy, for callers that must keep the state before an event."""
        return ConversationState.from_dict(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        """The state as plain JSON-ready values."""
        last = self.last_at
        last_text = _dt(last)

        def text(value: datetime | None) -> str | None:
            # Most times here are the last event's (all of them, after a first event).
            return last_text if value is last else _dt(value)

        return {
            "v": STATE_VERSION,
            "turns": self.turns,
            "started_at": text(self.started_at),
            "last_at": last_text,
            "sentiments": [[p.turn, p.event_id, p.compound] for p in self.sentiments],
            "sentiment_mean": self.sentiment_mean,
            "best_sentiment": self.best_sentiment,
            "best_sentiment_turn": self.best_sentiment_turn,
            "sentiment_trend": list(self.sentiment_trend),
            "human_requested_at": text(self.human_requested_at),
            "human_request_quote": self.human_request_quote,
            "human_request_event": self.human_request_event,
            "fallback_streak": self.fallback_streak,
            "fallback_first_turn": self.fallback_first_turn,
            "fallback_last_turn": self.fallback_last_turn,
            "fallback_events": list(self.fallback_events),
            "last_bot_fallback": self.last_bot_fallback,
            "customer_tokens": [sorted(tokens) for tokens in self.customer_tokens],
            "bot_tokens": [sorted(tokens) for tokens in self.bot_tokens],
            "repeats": [[hit.turn, hit.event_id, hit.what] for hit in self.repeats],
            "frustrations": [[hit.turn, hit.event_id, hit.what] for hit in self.frustrations],
            "corrections": [[hit.turn, hit.event_id, hit.what] for hit in self.corrections],
            "shouts": [[hit.turn, hit.event_id, hit.what] for hit in self.shouts],
            "waits": [[hit.turn, hit.event_id, hit.what] for hit in self.waits],
            "awaiting_reply_since": text(self.awaiting_reply_since),
            "after_bot_answer": self.after_bot_answer,
            "after_bot_question": self.after_bot_question,
            "ended": self.ended,
            "abandoned": self.abandoned,
            "score": self.score,
            "escalated_level": self.escalated_level,
            "recovery_answers": self.recovery_answers,
            "handed_off": self.handed_off,
            "wants": list(self.wants),
            "bot_tried": list(self.bot_tried),
            "recent": [[m.role.value, m.text, text(m.timestamp), m.event_id] for m in self.recent],
            "identifiers": list(self.identifiers),
        }

    def to_json(self, *, remember: bool = False) -> str:
        """`json.dumps(self.to_dict())`, written out: the same text, without building the dict
        and walking it again (the state is saved after every batch of every conversation).
        Flags are written inline and an empty list costs no join: most of a state is empty most
        of the time, and a call per field would cost more than its text. With `remember`, the
        texts of its lists' items are kept with the state (`written`), and the next call takes
        those of the items still there: for a state written out again at the next post
        (`bot.pipeline.SavedStates`); without, it forgets them."""
        last = self.last_at
        last_text = _json_time(last)
        started = self.started_at
        asked = self.human_requested_at
        waiting = self.awaiting_reply_since
        before: _Written = self.written or _NOTHING_WRITTEN
        now: _Written | None
        if remember:
            now = {}
            sentiments = _joined(self.sentiments, _sentiment_json, before, now)
            recent = _joined(self.recent, _message_json_alone, before, now)
            trend = _joined(self.sentiment_trend, jsontext.number, before, now)
        else:  # (most states are written once: a conversation's first post)
            now = None
            sentiments = ", ".join(map(_sentiment_json, self.sentiments))
            recent = ", ".join(
                _message_json(
                    message,
                    last_text if message.timestamp is last else _json_time(message.timestamp),
                )
                for message in self.recent
            )
            trend = ", ".join(map(jsontext.number, self.sentiment_trend))
        self.written = now
        fallback_events, wants, tried, identifiers = (
            self.fallback_events,
            self.wants,
            self.bot_tried,
            self.identifiers,
        )
        return (
            f'{{"v": {STATE_VERSION!r}, "turns": {self.turns!r}, '
            f'"started_at": {last_text if started is last else _json_time(started)}, '
            f'"last_at": {last_text}, '
            f'"sentiments": [{sentiments}], '
            f'"sentiment_mean": {jsontext.number(self.sentiment_mean)}, '
            f'"best_sentiment": {jsontext.number(self.best_sentiment)}, '
            f'"best_sentiment_turn": {self.best_sentiment_turn!r}, '
            f'"sentiment_trend": [{trend}], '
            f'"human_requested_at": {last_text if asked is last else _json_time(asked)}, '
            f'"human_request_quote": {jsontext.text(self.human_request_quote)}, '
            f'"human_request_event": {jsontext.text(self.human_request_event)}, '
            f'"fallback_streak": {self.fallback_streak!r}, '
            f'"fallback_first_turn": {self.fallback_first_turn!r}, '
            f'"fallback_last_turn": {self.fallback_last_turn!r}, '
            f'"fallback_events": {jsontext.texts(fallback_events) if fallback_events else "[]"}, '
            f'"last_bot_fallback": {"true" if self.last_bot_fallback else "false"}, '
            f'"customer_tokens": {_json_token_sets(self.customer_tokens)}, '
            f'"bot_tokens": {_json_token_sets(self.bot_tokens)}, '
            f'"repeats": {_json_hits(self.repeats, before, now)}, '
            f'"frustrations": {_json_hits(self.frustrations, before, now)}, '
            f'"corrections": {_json_hits(self.corrections, before, now)}, '
            f'"shouts": {_json_hits(self.shouts, before, now)}, '
            f'"waits": {_json_hits(self.waits, before, now)}, '
            f'"awaiting_reply_since": {last_text if waiting is last else _json_time(waiting)}, '
            f'"after_bot_answer": {"true" if self.after_bot_answer else "false"}, '
            f'"after_bot_question": {"true" if self.after_bot_question else "false"}, '
            f'"ended": {"true" if self.ended else "false"}, '
            f'"abandoned": {"true" if self.abandoned else "false"}, '
            f'"score": {jsontext.number(self.score)}, '
            f'"escalated_level": {jsontext.text(self.escalated_level)}, '
            f'"recovery_answers": {self.recovery_answers!r}, '
            f'"handed_off": {"true" if self.handed_off else "false"}, '
            f'"wants": {jsontext.texts(wants) if wants else "[]"}, '
            f'"bot_tried": {jsontext.texts(tried) if tried else "[]"}, '
            f'"recent": [{recent}], '
            f'"identifiers": {jsontext.texts(identifiers) if identifiers else "[]"}}}'
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConversationState:
        """Rebuild a state from `to_dict` output (e.g. read back from the database)."""
        if data.get("v") != STATE_VERSION:
            raise ValueError(f"unsupported conversation state version: {data.get('v')!r}")
        state = cls(
            turns=data["turns"],
            started_at=_parse_dt(data["started_at"]),
            last_at=_parse_dt(data["last_at"]),
            sentiment_mean=data["sentiment_mean"],
            best_sentiment=data["best_sentiment"],
            best_sentiment_turn=data["best_sentiment_turn"],
            human_requested_at=_parse_dt(data["human_requested_at"]),
            human_request_quote=data["human_request_quote"],
            human_request_event=data["human_request_event"],
            fallback_streak=data["fallback_streak"],
            fallback_first_turn=data["fallback_first_turn"],
            fallback_last_turn=data["fallback_last_turn"],
            last_bot_fallback=data["last_bot_fallback"],
            ended=data["ended"],
            abandoned=data["abandoned"],
            score=data["score"],
            escalated_level=data["escalated_level"],
            recovery_answers=data["recovery_answers"],
            handed_off=data["handed_off"],
            wants=list(data["wants"]),
            bot_tried=list(data["bot_tried"]),
            identifiers=list(data["identifiers"]),
            awaiting_reply_since=_parse_dt(data.get("awaiting_reply_since")),
            after_bot_answer=data.get("after_bot_answer", False),
            after_bot_question=data.get("after_bot_question", False),
        )
        state.sentiments.extend(SentimentPoint(t, e, c) for t, e, c in data["sentiments"])
        state.sentiment_trend.extend(data["sentiment_trend"])
        state.fallback_events.extend(data["fallback_events"])
        state.customer_tokens.extend(frozenset(tokens) for tokens in data["customer_tokens"])
        state.bot_tokens.extend(frozenset(tokens) for tokens in data["bot_tokens"])
        state.repeats.extend(Hit(t, e, w) for t, e, w in data["repeats"])
        state.frustrations.extend(Hit(t, e, w) for t, e, w in data["frustrations"])
        # Added after the first release of version 1; absent means none yet.
        for name in ("corrections", "shouts", "waits"):
            getattr(state, name).extend(Hit(t, e, w) for t, e, w in data.get(name, ()))
        state.recent.extend(
            RecentMessage(Role(role), text, datetime.fromisoformat(ts), event_id)
            for role, text, ts, event_id in data["recent"]
        )
        return state


def reset_escalation(state: ConversationState) -> ConversationState:
    """Forget the escalation and the trouble behind it, after an agent resolved it.

    The conversation may escalate again later, but only on new trouble: the human request, the
    fallback streak, repeats, frustration and the sentiment window start afresh. Turns and
    duration are facts about the conversation and stay.
    """
    state.escalated_level = None
    state.recovery_answers = 0
    state.handed_off = False
    state.human_requested_at = None
    state.human_request_quote = None
    state.human_request_event = None
    state.fallback_streak = 0
    state.fallback_events.clear()
    state.last_bot_fallback = False
    state.repeats.clear()
    state.frustrations.clear()
    state.corrections.clear()
    state.shouts.clear()
    state.waits.clear()
    state.sentiments.clear()
    state.sentiment_mean = None
    state.best_sentiment = None
    state.best_sentiment_turn = 0
    state.abandoned = False
    state.score = 0.0
    state.derived = None
    return state
