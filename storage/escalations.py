"""Escalations: opening, the claim/release/resolve lifecycle, the hand-off log, cards, stats.

Every transition is a single compare-and-set UPDATE (`... WHERE id = :id AND status = 'open'`),
so two concurrent clicks cannot both win on either database, and each one writes its
`handoff_events` row in the same transaction.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    String,
    and_,
    bindparam,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Dialect
from sqlmodel import Session

from engine.assessment import Assessment, Reason
from storage import _pgpipeline, conversations, outbox, tables
from storage._pgarrays import text_array
from storage._pgrows import Arrays, insert_columns, unnest
from storage._prepared import driver_connection, execute
from storage._sql import MAX_PARAMETERS, chunks, connection, is_postgres, upsert
from storage.codec import reasons_from_json, reasons_to_json

_escalations = tables.escalations
_handoff_events = tables.handoff_events
_card_messages = tables.card_messages

CLOSED_STATUSES = ("resolved", "expired", "recovered")


class EscalationStatus(StrEnum):
    """Where an escalation is in its life."""

    OPEN = "open"
    CLAIMED = "claimed"
    RESOLVED = "resolved"
    EXPIRED = "expired"
    RECOVERED = "recovered"


class EscalationAlreadyActive(Exception):
    """The conversation already has an open or claimed escalation."""

    def __init__(self, conversation_id: str, escalation_id: int | None) -> None:
        super().__init__(
            f"conversation {conversation_id!r} already has active escalation {escalation_id}"
        )
        self.conversation_id = conversation_id
        self.escalation_id = escalation_id


@dataclass(frozen=True, slots=True)
class EscalationRecord:
    """An escalation as stored."""

    id: int
    conversation_id: str
    status: EscalationStatus
    level: str
    score: float
    reasons: tuple[Reason, ...]
    team: str | None
    mention: str | None
    summary: dict[str, Any]  # `storage.codec.summary_from_json` turns it into a HandoffSummary
    snapshot: dict[str, Any]
    opened_at: datetime
    opened_at_event_id: str | None
    claimed_by: str | None
    claimed_by_name: str | None
    claimed_at: datetime | None
    closed_at: datetime | None
    closed_by: str | None
    outcome: str | None
    note: str | None
    updated_at: datetime

    @property
    def active(self) -> bool:
        """Whether it still waits for, or is with, a human."""
        return self.status in (EscalationStatus.OPEN, EscalationStatus.CLAIMED)


@dataclass(frozen=True, slots=True)
class ActiveEscalation:
    """What ingest needs of a conversation's open or claimed escalation: which one it is, whose
    channels show its card, and its level. Read at every post to a conversation already seen,
    where the whole row (its summary, reasons and snapshot decoded from JSON) cost a tenth of
    the post."""

    id: int
    conversation_id: str
    team: str | None
    level: str

    @classmethod
    def of(cls, record: EscalationRecord) -> ActiveEscalation:
        """The parts of a whole escalation that ingest keeps."""
        return cls(record.id, record.conversation_id, record.team, record.level)


class Refusal(StrEnum):
    """Why a claim, release or resolve did not happen."""

    UNKNOWN = "unknown"  # no escalation with that id
    ALREADY_CLAIMED = "already_claimed"  # someone (see `escalation.claimed_by_name`) has it
    NOT_CLAIMED = "not_claimed"  # release/resolve of an escalation nobody holds
    NOT_CLAIMER = "not_claimer"  # release/resolve by someone other than the claimer
    CLOSED = "closed"  # resolved, expired or recovered meanwhile


@dataclass(frozen=True, slots=True)
class TransitionOutcome:
    """The result of claim/release/resolve: the escalation as it stands, and why if refused."""

    ok: bool
    escalation: EscalationRecord | None  # None only when the id is unknown
    refusal: Refusal | None = None

    @property
    def won(self) -> bool:
        """Whether this caller's transition happened (reads well after a claim)."""
        return self.ok

    @property
    def message(self) -> str:
        """A plain sentence for the person who acted, saying why when refused."""
        record = self.escalation
        if self.ok:
            return "Done."
        if self.refusal is Refusal.UNKNOWN or record is None:
            return "This escalation no longer exists."
        holder = record.claimed_by_name or record.claimed_by or "someone else"
        if self.refusal is Refusal.ALREADY_CLAIMED:
            return f"{holder} has already claimed this escalation."
        if self.refusal is Refusal.NOT_CLAIMER:
            return f"Only {holder}, who claimed it, or an admin can do that."
        if self.refusal is Refusal.CLOSED:
            return f"This escalation is already {record.status.value}."
        return "Nobody has claimed this escalation."


ClaimOutcome = TransitionOutcome


@dataclass(frozen=True, slots=True)
class HandoffEventRecord:
    """One step of an escalation's life."""

    id: int
    escalation_id: int
    at: datetime
    kind: str
    actor_id: str | None
    actor_name: str | None
    surface: str | None
    from_status: str | None
    to_status: str | None
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CardMessageRecord:
    """Where one card of an escalation lives."""

    escalation_id: int
    surface: str
    channel: str
    message_id: str
    posted_at: datetime


@dataclass(frozen=True, slots=True)
class EscalationStats:
    """Numbers for one window (usually a day)."""

    opened: int  # escalations opened in the window
    claimed: int  # escalations claimed (at least once) in the window
    resolved: int  # escalations resolved in the window
    open_unclaimed: int  # escalations waiting for a human right now
    median_time_to_claim_seconds: float | None  # of those opened in the window and claimed


# The statements run whenever a conversation escalates or its escalation changes level are built
# once (per dialect where ON CONFLICT differs) and run with a dict of values: SQLAlchemy then
# compiles each once and reuses it, where building a fresh `insert(...).values(...)` per call
# (coercing every value, a cache key per statement) cost more than the database's own work.
# An INSERT or UPDATE without `.values()` writes the columns named in the dict; the names of the
# other values start with `b_` so that none is taken for a column.
_LOG_STEP = insert(_handoff_events).returning(_handoff_events.c.id)
_BY_ID = select(_escalations).where(_escalations.c.id == bindparam("b_id"))
_LEVEL_OF = select(_escalations.c.level).where(_escalations.c.id == bindparam("b_id"))
# The active escalations of conversations are read with the one-active index's own predicate,
# in its words: SQLite uses a partial index only for a query whose WHERE names the index's
# condition (literals, not parameters), and otherwise read every open or claimed escalation
# through the status index (EXPLAIN QUERY PLAN), at every post to a conversation already seen.
_ACTIVE_OF = select(_escalations).where(
    _escalations.c.conversation_id == bindparam("b_conversation_id"), tables.ACTIVE_PREDICATE
)
# (The active condition as literals: an expanding IN would not compile to fixed placeholders.)
_UPGRADE = (
    update(_escalations)
    .where(_escalations.c.id == bindparam("b_id"), tables.ACTIVE_PREDICATE)
    .returning(*_escalations.c)
)
_CLOSE_UNCLAIMED = (
    update(_escalations)
    .where(
        _escalations.c.id == bindparam("b_id"),
        _escalations.c.status == EscalationStatus.OPEN.value,
    )
    .returning(_escalations.c.id)
)


# On SQLite (PostgreSQL's is `_open_arrays`). ON CONFLICT DO NOTHING against the one-active
# partial index: a refused insert writes nothing, and raises nothing.
_OPEN = (
    sqlite.insert(_escalations)
    .on_conflict_do_nothing(
        index_elements=[_escalations.c.conversation_id], index_where=tables.ACTIVE_PREDICATE
    )
    .returning(_escalations.c.id)
)


def _record(row: Mapping[Any, Any]) -> EscalationRecord:
    return EscalationRecord(
        id=row["id"],
        conversation_id=row["conversation_id"],
        status=EscalationStatus(row["status"]),
        level=row["level"],
        score=row["score"],
        reasons=reasons_from_json(row["reasons"]),
        team=row["team"],
        mention=row["mention"],
        summary=row["summary"] or {},
        snapshot=row["snapshot"] or {},
        opened_at=row["opened_at"],
        opened_at_event_id=row["opened_at_event_id"],
        claimed_by=row["claimed_by"],
        claimed_by_name=row["claimed_by_name"],
        claimed_at=row["claimed_at"],
        closed_at=row["closed_at"],
        closed_by=row["closed_by"],
        outcome=row["outcome"],
        note=row["note"],
        updated_at=row["updated_at"],
    )


def record_handoff_event(
    *,
    session: Session,
    escalation_id: int,
    kind: str,
    now: datetime,
    actor_id: str | None = None,
    actor_name: str | None = None,
    surface: str | None = None,
    from_status: str | None = None,
    to_status: str | None = None,
    detail: dict[str, Any] | None = None,
) -> int:
    """Log one step (a transition, an SLA re-alert, a platform hand-off call); returns its id."""
    returned = execute(
        connection(session),
        _LOG_STEP,
        {
            "escalation_id": escalation_id,
            "at": now,
            "kind": kind,
            "actor_id": actor_id,
            "actor_name": actor_name,
            "surface": surface,
            "from_status": from_status,
            "to_status": to_status,
            "detail": detail,
        },
    )
    return int(returned[0]["id"])


@dataclass(frozen=True, slots=True)
class NewEscalation:
    """An escalation to open: the conversation's, at the assessment's level, with its summary,
    its snapshot of the team's settings and the (surface, channel) pairs its card is asked for
    in (`outbox.enqueue_card_post`)."""

    conversation_id: str
    assessment: Assessment
    summary: dict[str, Any]
    snapshot: dict[str, Any]
    now: datetime
    cards: Sequence[tuple[str, str]] = ()
    reasons: list[dict[str, Any]] = field(init=False)  # the assessment's, as stored

    def __post_init__(self) -> None:
        if self.assessment.level is None:
            raise ValueError("an escalation needs a level; the assessment has none")
        object.__setattr__(self, "reasons", reasons_to_json(self.assessment.reasons))

    @property
    def level(self) -> str:
        """The level it opens at."""
        level = self.assessment.level
        assert level is not None  # (`__post_init__`)
        return level

    @property
    def detail(self) -> dict[str, Any]:
        """The detail of its "opened" step."""
        assessment = self.assessment
        return {
            "level": assessment.level,
            "score": assessment.score,
            "event_id": assessment.event_id,
        }

    def values(self) -> dict[str, Any]:
        """Its row's values, by column."""
        assessment = self.assessment
        return {
            "conversation_id": self.conversation_id,
            "status": EscalationStatus.OPEN.value,
            "level": assessment.level,
            "score": assessment.score,
            "reasons": self.reasons,
            "team": assessment.team,
            "mention": assessment.mention,
            "summary": self.summary,
            "snapshot": self.snapshot,
            "opened_at": self.now,
            "opened_at_event_id": assessment.event_id,
            "updated_at": self.now,
        }

    def record(self, escalation_id: int) -> EscalationRecord:
        """Its record once opened as `escalation_id`: built from the values rather than read
        back, which would decode its JSON (the summary) again."""
        opened_at = self.now.astimezone(UTC)
        return _record(
            {
                **self.values(),
                **_NOT_YET,
                "id": escalation_id,
                "score": float(self.assessment.score),
                "opened_at": opened_at,
                "updated_at": opened_at,
            }
        )


# The columns an escalation just opened has no value in yet.
_NOT_YET = dict.fromkeys(
    ("claimed_by", "claimed_by_name", "claimed_at", "closed_at", "closed_by", "outcome", "note")
)


def open_escalation(
    *,
    session: Session,
    conversation_id: str,
    assessment: Assessment,
    summary: dict[str, Any],
    snapshot: dict[str, Any],
    now: datetime,
    cards: Sequence[tuple[str, str]] = (),
) -> EscalationRecord:
    """Open an escalation for the conversation at the assessment's level, log its "opened"
    step, and ask for its card in each (surface, channel) of `cards` (`outbox.enqueue_card_post`).

    Raises EscalationAlreadyActive when the conversation already has an open or claimed one
    (and writes nothing).
    """
    new = NewEscalation(conversation_id, assessment, summary, snapshot, now, tuple(cards))
    return open_new(session=session, escalation=new)


def open_new(*, session: Session, escalation: NewEscalation) -> EscalationRecord:
    """`open_escalation` of a `NewEscalation`.

    On PostgreSQL the escalation, its step and its cards are one statement (`open_statement`),
    sent through `_pgpipeline`: one round trip, during which the ingest's event loop serves other
    requests (`storage.loopwait`). On SQLite they run in process, one after the other.
    """
    conn = connection(session)
    cid = escalation.conversation_id
    escalation_id: int | None
    if conn.dialect.name == "postgresql":
        statement = open_statement(session=session, escalations=[escalation], refused_quietly=True)
        (result,) = conversations.run_postgres(session=session, statements=[statement])
        escalation_id = opened_ids(result).get(cid)
    else:
        returned = execute(conn, _OPEN, escalation.values())
        escalation_id = int(returned[0]["id"]) if returned else None
        if escalation_id is not None:
            record_handoff_event(
                session=session,
                escalation_id=escalation_id,
                kind=OPENED,
                now=escalation.now,
                to_status=EscalationStatus.OPEN.value,
                detail=escalation.detail,
            )
            for surface, channel in escalation.cards:
                outbox.enqueue_card_post(
                    session=session,
                    escalation_id=escalation_id,
                    surface=surface,
                    channel=channel,
                    now=escalation.now,
                )
    if escalation_id is None:
        existing = active_escalation(session=session, conversation_id=cid)
        raise EscalationAlreadyActive(cid, existing.id if existing else None)
    return escalation.record(escalation_id)


OPENED = "opened"  # the hand-off step of an escalation's opening

# The columns `open_statement` writes: the escalations', their steps' (beside the escalation's
# id) and the card rows' (beside the escalation's id and the dedupe key), with the conversation
# whose escalation each step and card is of, and the channel a card's key names.
_OPEN_KEYS = (
    "conversation_id",
    "status",
    "level",
    "score",
    "reasons",
    "team",
    "mention",
    "summary",
    "snapshot",
    "opened_at",
    "opened_at_event_id",
    "updated_at",
)
_OPENED_STEP_KEYS = ("at", "kind", "to_status", "detail")
_CARD_KEYS = ("kind", "surface", "payload", "status", "attempts", "due_at", "created_at")
_OPEN_ARRAYS: dict[tuple[str, bool], Arrays] = {}


def _open_arrays(dialect: Dialect, refused_quietly: bool) -> Arrays:
    """`open_statement`'s statement, built once per driver and kind."""
    statement = _OPEN_ARRAYS.get((dialect.driver, refused_quietly))
    if statement is not None:
        return statement
    of = ("of", Column("of", String()))  # the conversation a step or a card is of
    opened, opened_names, opened_values = insert_columns(_escalations, _OPEN_KEYS, dialect)
    step, step_names, step_values = insert_columns(_handoff_events, _OPENED_STEP_KEYS, dialect)
    card, card_names, card_values = insert_columns(tables.outbox, _CARD_KEYS, dialect)
    step.append(of)
    card += [of, ("channel", Column("channel", String()))]
    step_at = len(opened) + 1  # (where each part's placeholders start)
    card_at = step_at + len(step)
    refused = f"ON CONFLICT (conversation_id) WHERE {tables.ACTIVE_PREDICATE.text} DO NOTHING"
    key = outbox.post_card_key_sql("opened.id", 'v."surface"', "v.channel")
    sql = f"""
        WITH opened AS (
            INSERT INTO {_escalations.name} ({opened_names})
            SELECT {opened_values}
            FROM {unnest(opened, dialect)} WITH ORDINALITY AS v({opened_names}, ord)
            ORDER BY v.ord
            {refused if refused_quietly else ""}
            RETURNING id, conversation_id
        ), step AS (
            INSERT INTO {_handoff_events.name} (escalation_id, {step_names})
            SELECT opened.id, {step_values}
            FROM {unnest(step, dialect, step_at)} AS v({step_names}, of)
            JOIN opened ON opened.conversation_id = v.of
            ORDER BY opened.id
        ), card AS (
            INSERT INTO {tables.outbox.name} (escalation_id, {card_names}, dedupe_key)
            SELECT opened.id, {card_values}, {key}
            FROM {unnest(card, dialect, card_at)} WITH ORDINALITY
                AS v({card_names}, of, channel, ord)
            JOIN opened ON opened.conversation_id = v.of
            ORDER BY opened.id, v.ord
        )
        SELECT id, conversation_id FROM opened
    """  # noqa: S608 - only the schema's names are interpolated
    statement = _OPEN_ARRAYS[(dialect.driver, refused_quietly)] = Arrays(
        sql, opened + step + card, dialect, keep_plan=True
    )
    return statement


def opens_later(session: Session) -> bool:
    """Whether escalations can be opened by a statement sent with other writes
    (`open_statement`: on PostgreSQL)."""
    return is_postgres(session)


def open_statement(
    *, session: Session, escalations: Sequence[NewEscalation], refused_quietly: bool = False
) -> _pgpipeline.Statement:
    """The PostgreSQL statement that opens `escalations` (of different conversations), with
    each one's "opened" step and card rows, for `_pgpipeline` (the ingest sends it with its
    other writes); `opened_ids` reads its answer.

    An escalation of a conversation that has an active one fails the statement (a unique
    violation, the transaction then failed), or with `refused_quietly`, is left out of it,
    step and cards with it."""
    if not opens_later(session):
        raise ValueError("open_statement is for PostgreSQL; on SQLite, open_escalation")
    named = [new.conversation_id for new in escalations]
    if len(set(named)) < len(named):  # (steps and cards find their escalation by conversation)
        raise ValueError(f"a conversation is named twice in one opening: {sorted(named)}")
    rows = [new.values() for new in escalations]
    opened = [[row[key] for row in rows] for key in _OPEN_KEYS]
    steps = [
        (new.now, OPENED, EscalationStatus.OPEN.value, new.detail, new.conversation_id)
        for new in escalations
    ]
    cards = [
        (
            outbox.POST_CARD,
            surface,
            {"channel": channel},
            outbox.PENDING,
            0,  # attempts
            new.now,  # due
            new.now,  # created
            new.conversation_id,
            channel,
        )
        for new in escalations
        for surface, channel in new.cards
    ]
    dialect = connection(session).dialect
    return _open_arrays(dialect, refused_quietly).from_columns(
        opened + _columns(steps, 5) + _columns(cards, 9)
    )


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[Sequence[Any]]:
    """Rows of `width` values as one list per column."""
    return (
        [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]
    )


def opened_ids(result: _pgpipeline.Result) -> dict[str, int]:
    """The ids of the escalations `open_statement` opened, by conversation."""
    return {conversation_id: int(escalation_id) for escalation_id, conversation_id in result.rows()}


def get_escalation(*, session: Session, escalation_id: int) -> EscalationRecord | None:
    """The escalation, or None for an unknown id."""
    row = connection(session).execute(_BY_ID, {"b_id": escalation_id}).mappings().one_or_none()
    return _record(row) if row is not None else None


def active_escalation(*, session: Session, conversation_id: str) -> EscalationRecord | None:
    """The conversation's open or claimed escalation, if any."""
    row = (
        connection(session)
        .execute(_ACTIVE_OF, {"b_conversation_id": conversation_id})
        .mappings()
        .one_or_none()
    )
    return _record(row) if row is not None else None


def active_escalations(
    *, session: Session, conversation_ids: Sequence[str]
) -> dict[str, ActiveEscalation]:
    """The open or claimed escalations of several conversations in one statement (per 30,000
    ids), as ingest keeps them, by conversation id (none: not in the answer)."""
    conn = connection(session)
    if conn.dialect.name == "postgresql":
        (result,) = conversations.run_postgres(
            session=session, statements=[_active_statement(list(conversation_ids))]
        )
        return _active_from(result)
    found: dict[str, ActiveEscalation] = {}
    for chunk in chunks(list(dict.fromkeys(conversation_ids)), MAX_PARAMETERS):
        sql = _active_sqlite(len(chunk))
        with driver_connection(conn, sql) as driver:
            for row in driver.execute(sql, chunk).fetchall():
                found[row[1]] = ActiveEscalation(*row)
    return found


# The columns of an `ActiveEscalation`, in its order.
_ACTIVE_COLUMNS = "id, conversation_id, team, level"


@lru_cache(maxsize=64)
def _active_sqlite(count: int) -> str:
    """`active_escalations`' statement on SQLite for `count` conversation ids. The one-active
    index is named: for a list of more than a few ids SQLite chose the status index instead
    (EXPLAIN QUERY PLAN), reading every open escalation at every group of posts: 192 µs for 30
    ids with 1,000 escalations open, growing with them, where the index takes 55 µs."""
    marks = ", ".join(["?"] * count)
    return (
        f"SELECT {_ACTIVE_COLUMNS} FROM escalations INDEXED BY uq_escalations_one_active "  # noqa: S608
        f"WHERE conversation_id IN ({marks}) AND {tables.ACTIVE_PREDICATE.text}"
    )


def known_and_active(
    *, session: Session, event_ids: Mapping[str, Sequence[str]]
) -> tuple[dict[str, set[str]], dict[str, ActiveEscalation]]:
    """For the conversations of `event_ids` ({conversation id: event ids}): those event ids
    already stored (`conversations.known_event_ids_of`) and the open or claimed escalations
    (`active_escalations`). On PostgreSQL both are read in one round trip (`known_and_active_
    statements`, which a caller can also send with statements of its own)."""
    if not event_ids:
        return {}, {}
    dialect = connection(session).dialect
    if dialect.name != "postgresql":
        known = conversations.known_event_ids_of(session=session, event_ids=event_ids)
        return known, active_escalations(session=session, conversation_ids=list(event_ids))
    results = conversations.run_postgres(
        session=session, statements=known_and_active_statements(event_ids)
    )
    return known_and_active_from(results, event_ids)


def known_and_active_statements(
    event_ids: Mapping[str, Sequence[str]],
) -> list[_pgpipeline.Statement]:
    """`known_and_active` as PostgreSQL statements for `_pgpipeline` (read their results with
    `known_and_active_from`)."""
    return [conversations.known_event_ids_statement(event_ids), _active_statement(list(event_ids))]


def known_and_active_from(
    results: Sequence[_pgpipeline.Result], event_ids: Mapping[str, Sequence[str]]
) -> tuple[dict[str, set[str]], dict[str, ActiveEscalation]]:
    """The answer of `known_and_active_statements(event_ids)`, as `known_and_active` gives it."""
    known_result, active_result = results
    return (
        conversations.known_event_ids_from(known_result, event_ids),
        _active_from(active_result),
    )


# The open and claimed escalations of an array of conversations (`_pgpipeline`'s numbered
# parameter), with the one-active index's own condition.
_ACTIVE_POSTGRES = (
    f"SELECT {_ACTIVE_COLUMNS} FROM escalations "  # noqa: S608 - the schema's names only
    f"WHERE conversation_id = ANY($1::text[]) AND {tables.ACTIVE_PREDICATE.text}"
).encode()


def _active_statement(conversation_ids: Sequence[str]) -> _pgpipeline.Statement:
    """`active_escalations` as a PostgreSQL statement for `_pgpipeline` (read its result with
    `_active_from`)."""
    return _ACTIVE_POSTGRES, [text_array(list(dict.fromkeys(conversation_ids)))]


def _active_from(result: _pgpipeline.Result) -> dict[str, ActiveEscalation]:
    """The answer of `_active_statement`, as `active_escalations` gives it."""
    return {row[1]: ActiveEscalation(*row) for row in result.rows()}


def upgrade_escalation(
    *,
    session: Session,
    escalation_id: int,
    assessment: Assessment,
    summary: dict[str, Any],
    now: datetime,
) -> EscalationRecord | None:
    """Raise an active escalation to the assessment's level; None when it is no longer active."""
    # Straight on the driver (`execute`), the level before read alone: SQLAlchemy's
    # per-execution work, and a whole row read back (its summary decoded) to learn one column,
    # cost more than the rest of an upgrade (3% of the writer's instructions at 100 events/post
    # when posts escalate, `writer_bench --angry`).
    conn = connection(session)
    before = execute(conn, _LEVEL_OF, {"b_id": escalation_id})
    values: dict[str, Any] = {
        "b_id": escalation_id,
        "score": assessment.score,
        "reasons": reasons_to_json(assessment.reasons),
        "summary": summary,
        "updated_at": now,
    }
    # No level or mention keeps the stored one (the column is left out of the SET).
    if assessment.level is not None:
        values["level"] = assessment.level
    if assessment.mention is not None:
        values["mention"] = assessment.mention
    rows = execute(conn, _UPGRADE, values)
    if not rows:
        return None
    record = _record(rows[0])
    record_handoff_event(
        session=session,
        escalation_id=escalation_id,
        kind="upgraded",
        now=now,
        from_status=record.status.value,
        to_status=record.status.value,
        detail={
            "from_level": before[0]["level"] if before else None,
            "to_level": record.level,
            "score": record.score,
            "event_id": assessment.event_id,
        },
    )
    return record


def close_unclaimed(
    *,
    session: Session,
    escalation_id: int,
    status: str,
    now: datetime,
    detail: dict[str, Any] | None = None,
) -> bool:
    """Close an escalation nobody claimed as "expired" or "recovered".

    Compare-and-set: only while it is still open, so a claim that came first wins.
    """
    if status not in (EscalationStatus.EXPIRED, EscalationStatus.RECOVERED):
        raise ValueError(f"close_unclaimed closes as 'expired' or 'recovered', not {status!r}")
    result = connection(session).execute(
        _CLOSE_UNCLAIMED,
        {"b_id": escalation_id, "status": status, "closed_at": now, "updated_at": now},
    )
    if result.one_or_none() is None:
        return False
    record_handoff_event(
        session=session,
        escalation_id=escalation_id,
        kind=str(status),
        now=now,
        from_status=EscalationStatus.OPEN.value,
        to_status=str(status),
        detail=detail,
    )
    return True


def _refusal(
    session: Session, escalation_id: int, *, wanted: EscalationStatus, actor_id: str
) -> TransitionOutcome:
    """Explain why a compare-and-set matched nothing."""
    current = get_escalation(session=session, escalation_id=escalation_id)
    if current is None:
        return TransitionOutcome(ok=False, escalation=None, refusal=Refusal.UNKNOWN)
    if current.status.value in CLOSED_STATUSES:
        refusal = Refusal.CLOSED
    elif wanted is EscalationStatus.OPEN:
        refusal = (
            Refusal.ALREADY_CLAIMED
            if current.status is EscalationStatus.CLAIMED
            else Refusal.NOT_CLAIMED
        )
    elif current.status is EscalationStatus.OPEN:
        refusal = Refusal.NOT_CLAIMED
    else:
        refusal = Refusal.NOT_CLAIMER if current.claimed_by != actor_id else Refusal.NOT_CLAIMED
    return TransitionOutcome(ok=False, escalation=current, refusal=refusal)


def _transition(
    *,
    session: Session,
    escalation_id: int,
    held: ColumnElement[bool],
    from_status: EscalationStatus,
    to_status: EscalationStatus,
    values: dict[str, Any],
    kind: str,
    actor_id: str,
    actor_name: str,
    surface: str,
    now: datetime,
    detail: dict[str, Any] | None = None,
) -> TransitionOutcome:
    """Compare-and-set `from_status` -> `to_status` where `held`, log it, or say why not."""
    row = (
        connection(session)
        .execute(
            update(_escalations)
            .where(_escalations.c.id == escalation_id, held)
            .values(status=to_status.value, **values, updated_at=now)
            .returning(*_escalations.c)
        )
        .mappings()
        .one_or_none()
    )
    if row is None:
        return _refusal(session, escalation_id, wanted=from_status, actor_id=actor_id)
    record_handoff_event(
        session=session,
        escalation_id=escalation_id,
        kind=kind,
        now=now,
        actor_id=actor_id,
        actor_name=actor_name,
        surface=surface,
        from_status=from_status.value,
        to_status=to_status.value,
        detail=detail,
    )
    return TransitionOutcome(ok=True, escalation=_record(row))


def claim(
    *,
    session: Session,
    escalation_id: int,
    actor_id: str,
    actor_name: str,
    surface: str,
    now: datetime,
) -> ClaimOutcome:
    """Take an open escalation. Of two concurrent claims exactly one wins; the other is told why."""
    return _transition(
        session=session,
        escalation_id=escalation_id,
        held=_escalations.c.status == EscalationStatus.OPEN.value,
        from_status=EscalationStatus.OPEN,
        to_status=EscalationStatus.CLAIMED,
        values={"claimed_by": actor_id, "claimed_by_name": actor_name, "claimed_at": now},
        kind="claimed",
        actor_id=actor_id,
        actor_name=actor_name,
        surface=surface,
        now=now,
    )


def held_by(actor_id: str, allow_admin: bool) -> ColumnElement[bool]:
    """Claimed by `actor_id`, or claimed at all when an admin acts: who may act on a claim."""
    if allow_admin:
        return _escalations.c.status == EscalationStatus.CLAIMED.value
    return and_(
        _escalations.c.status == EscalationStatus.CLAIMED.value,
        _escalations.c.claimed_by == actor_id,
    )


def release(
    *,
    session: Session,
    escalation_id: int,
    actor_id: str,
    actor_name: str,
    surface: str,
    now: datetime,
    allow_admin: bool = False,
) -> TransitionOutcome:
    """Give a claimed escalation back to the queue: the claimer only, unless `allow_admin`."""
    previous = get_escalation(session=session, escalation_id=escalation_id)
    return _transition(
        session=session,
        escalation_id=escalation_id,
        held=held_by(actor_id, allow_admin),
        from_status=EscalationStatus.CLAIMED,
        to_status=EscalationStatus.OPEN,
        values={"claimed_by": None, "claimed_by_name": None, "claimed_at": None},
        kind="released",
        actor_id=actor_id,
        actor_name=actor_name,
        surface=surface,
        now=now,
        detail={"claimed_by": previous.claimed_by if previous is not None else None},
    )


def resolve(
    *,
    session: Session,
    escalation_id: int,
    actor_id: str,
    actor_name: str,
    surface: str,
    now: datetime,
    outcome: str,
    note: str | None = None,
    allow_admin: bool = False,
) -> TransitionOutcome:
    """Close a claimed escalation with an outcome: the claimer only, unless `allow_admin`."""
    return _transition(
        session=session,
        escalation_id=escalation_id,
        held=held_by(actor_id, allow_admin),
        from_status=EscalationStatus.CLAIMED,
        to_status=EscalationStatus.RESOLVED,
        values={"closed_at": now, "closed_by": actor_id, "outcome": outcome, "note": note},
        kind="resolved",
        actor_id=actor_id,
        actor_name=actor_name,
        surface=surface,
        now=now,
        detail={"outcome": outcome, "note": note},
    )


def list_escalations(
    *,
    session: Session,
    status: str | Sequence[str] | None = None,
    team: str | Sequence[str] | None = None,
    claimed_by: str | None = None,
    conversation_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
    oldest_first: bool = False,
) -> list[EscalationRecord]:
    """Escalations filtered by status, team, claimer and opening time (since <= opened < until).

    Newest first unless `oldest_first` (the open queue reads oldest first).
    """
    statement = select(_escalations)
    if status is not None:
        statuses = [status] if isinstance(status, str) else list(status)
        statement = statement.where(_escalations.c.status.in_(statuses))
    if team is not None:
        teams = [team] if isinstance(team, str) else list(team)
        statement = statement.where(_escalations.c.team.in_(teams))
    if claimed_by is not None:
        statement = statement.where(_escalations.c.claimed_by == claimed_by)
    if conversation_id is not None:
        statement = statement.where(_escalations.c.conversation_id == conversation_id)
    if since is not None:
        statement = statement.where(_escalations.c.opened_at >= since)
    if until is not None:
        statement = statement.where(_escalations.c.opened_at < until)
    if oldest_first:
        statement = statement.order_by(_escalations.c.opened_at, _escalations.c.id)
    else:
        statement = statement.order_by(_escalations.c.opened_at.desc(), _escalations.c.id.desc())
    statement = statement.limit(limit).offset(offset)
    return [_record(row) for row in connection(session).execute(statement).mappings()]


def handoff_history(*, session: Session, escalation_id: int) -> list[HandoffEventRecord]:
    """Every logged step of the escalation, oldest first."""
    result = connection(session).execute(
        select(_handoff_events)
        .where(_handoff_events.c.escalation_id == escalation_id)
        .order_by(_handoff_events.c.at, _handoff_events.c.id)
    )
    return [
        HandoffEventRecord(
            id=row["id"],
            escalation_id=row["escalation_id"],
            at=row["at"],
            kind=row["kind"],
            actor_id=row["actor_id"],
            actor_name=row["actor_name"],
            surface=row["surface"],
            from_status=row["from_status"],
            to_status=row["to_status"],
            detail=row["detail"] or {},
        )
        for row in result.mappings()
    ]


def record_card_message(
    *,
    session: Session,
    escalation_id: int,
    surface: str,
    channel: str,
    message_id: str,
    now: datetime,
) -> None:
    """Remember where a card was posted; a re-post to the same channel replaces the id."""
    statement = upsert(session, _card_messages).values(
        escalation_id=escalation_id,
        surface=surface,
        channel=channel,
        message_id=message_id,
        posted_at=now,
    )
    connection(session).execute(
        statement.on_conflict_do_update(
            index_elements=[
                _card_messages.c.escalation_id,
                _card_messages.c.surface,
                _card_messages.c.channel,
            ],
            set_={
                "message_id": statement.excluded.message_id,
                "posted_at": statement.excluded.posted_at,
            },
        )
    )


def card_messages(*, session: Session, escalation_id: int) -> list[CardMessageRecord]:
    """Every place the escalation's card was posted, in posting order."""
    result = connection(session).execute(
        select(_card_messages)
        .where(_card_messages.c.escalation_id == escalation_id)
        .order_by(_card_messages.c.posted_at, _card_messages.c.id)
    )
    return [
        CardMessageRecord(
            escalation_id=row["escalation_id"],
            surface=row["surface"],
            channel=row["channel"],
            message_id=row["message_id"],
            posted_at=row["posted_at"],
        )
        for row in result.mappings()
    ]


def today_stats(*, session: Session, day_start: datetime, day_end: datetime) -> EscalationStats:
    """Opened, claimed and resolved in [day_start, day_end), the open queue now, and the
    median time from opening to first claim of the window's escalations."""
    db = connection(session)
    e = _escalations
    h = _handoff_events
    in_window_opened = and_(e.c.opened_at >= day_start, e.c.opened_at < day_end)
    opened, open_unclaimed = db.execute(
        select(
            func.count().filter(in_window_opened),
            func.count().filter(e.c.status == EscalationStatus.OPEN.value),
        ).select_from(e)
    ).one()
    claimed, resolved = db.execute(
        select(
            func.count(h.c.escalation_id.distinct()).filter(h.c.kind == "claimed"),
            func.count(h.c.escalation_id.distinct()).filter(h.c.kind == "resolved"),
        ).where(
            h.c.at >= day_start,
            h.c.at < day_end,
            or_(h.c.kind == "claimed", h.c.kind == "resolved"),
        )
    ).one()
    # Durations are taken in Python: the subtraction of timestamps differs between the two
    # databases (and SQLite stores text), and a day's escalations are few.
    first_claims = (
        select(h.c.escalation_id, func.min(h.c.at).label("first_claimed_at"))
        .where(h.c.kind == "claimed")
        .group_by(h.c.escalation_id)
        .subquery()
    )
    pairs = db.execute(
        select(e.c.opened_at, first_claims.c.first_claimed_at)
        .join(first_claims, first_claims.c.escalation_id == e.c.id)
        .where(in_window_opened)
    ).all()
    durations = [
        (first_claimed_at - opened_at).total_seconds() for opened_at, first_claimed_at in pairs
    ]
    return EscalationStats(
        opened=int(opened),
        claimed=int(claimed),
        resolved=int(resolved),
        open_unclaimed=int(open_unclaimed),
        median_time_to_claim_seconds=statistics.median(durations) if durations else None,
    )
