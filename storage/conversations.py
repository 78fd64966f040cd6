"""Conversations and their events: the per-conversation lock, event inserts, transcripts."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from operator import itemgetter
from typing import Any, ClassVar, Self, cast

from sqlalchemy import (
    JSON,
    Column,
    ColumnElement,
    Connection,
    Executable,
    RowMapping,
    Text,
    bindparam,
    case,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Dialect
from sqlmodel import Session

from engine.assessment import Assessment, Decision, Reason
from engine.events import ConversationEvent, ConversationMeta, Customer, EventType, Role
from storage import _pgpipeline, tables
from storage._pgarrays import text_array
from storage._pgrows import Arrays, insert_columns, unnest
from storage._prepared import Prepared, Results, driver_connection, prepared
from storage._sql import MAX_PARAMETERS, chunks, connection
from storage.codec import ReasonsText, reasons_from_json, reasons_to_json, weights
from storage.types import UtcDateTime

_conversations = tables.conversations
_events = tables.events


@dataclass(frozen=True, slots=True)
class ConversationRecord:
    """A conversation as stored: its merged meta and the engine's running state."""

    id: str
    meta: ConversationMeta
    state: dict[str, Any] | None  # None until the engine has seen an event
    score: float
    level: str | None
    status: str  # "active" or "ended"
    first_event_at: datetime | None
    last_event_at: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One event of a transcript with the engine's verdict right after it."""

    event: ConversationEvent
    received_at: datetime
    score: float | None
    level: str | None
    reasons: tuple[Reason, ...]
    decision: Decision | None


def _meta(row: Mapping[Any, Any]) -> ConversationMeta:
    metadata = row["metadata"] or {}
    return ConversationMeta(
        platform=row["platform"],
        customer=Customer(
            id=row["customer_id"],
            name=row["customer_name"],
            tier=row["customer_tier"],
            email=row["customer_email"],
        ),
        metadata={str(key): str(value) for key, value in metadata.items()},
        language=row["language"],
        link=row["link"],
    )


def _record(row: Mapping[Any, Any]) -> ConversationRecord:
    return ConversationRecord(
        id=row["id"],
        meta=_meta(row),
        state=row["state"],
        score=row["score"],
        level=row["level"],
        status=row["status"],
        first_event_at=row["first_event_at"],
        last_event_at=row["last_event_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


@dataclass(frozen=True, slots=True)
class LockRequest:
    """A conversation to create or update with a post's meta, and lock (`lock_conversations`)."""

    conversation_id: str
    meta: ConversationMeta
    now: datetime


@dataclass(frozen=True, slots=True)
class EventRows:
    """One conversation's new events with the engine's verdicts, to insert (`store`).

    An event's reasons are stored only where their weights (signals and points) differ from
    those of the event before it in `rows`; otherwise the column is NULL beside a score, and
    reads (`transcript`) carry the reasons before it forward. A loop changes its reasons'
    words at nearly every event (turns, counts) and their weights at a few: the words of the
    events in between, the largest part of their rows, are not kept. The first event of every
    `rows` has its reasons, so that no read has to look beyond one post's events.
    """

    conversation_id: str
    rows: Sequence[tuple[ConversationEvent, Assessment | None]]
    received_at: datetime


@dataclass(frozen=True, slots=True)
class StateUpdate:
    """The engine's state and verdict after a batch of a conversation's events (`store`).

    `first_event_at` only ever moves earlier; it defaults to `last_event_at`. `now` (the
    update time) defaults to the wall clock.
    """

    conversation_id: str
    # The engine's state as its dict, or already as that dict's JSON text (`to_json`).
    state: dict[str, Any] | str
    score: float
    level: str | None
    status: str  # "active" or "ended"
    last_event_at: datetime | None
    first_event_at: datetime | None = None
    now: datetime | None = None
    # A conversation `lock_for_store` has not stored yet: its row is inserted whole, this
    # request's meta with this state, instead of updated.
    create: LockRequest | None = None


@dataclass(frozen=True, slots=True)
class Locked:
    """What `lock_for_store` locked: every conversation's record by id, and the requests of the
    new ones it left for `store` to insert (on SQLite).

    `state_texts` holds the stored state of each conversation that has one, as its JSON text,
    not decoded: those records' `state` is None. The ingest goes on from the state object it
    saved as that very text when it still has it (`bot.pipeline.SavedStates`), and decodes the
    text otherwise. (Both databases keep the text as written: `tables.Conversation.state`.)
    """

    records: dict[str, ConversationRecord]
    unstored: dict[str, LockRequest]
    state_texts: dict[str, str] | None = None


def lock_conversation(
    *, session: Session, conversation_id: str, meta: ConversationMeta, now: datetime
) -> ConversationRecord:
    """Create or update the conversation with `meta` and lock it until the transaction ends.

    Fields the new meta leaves empty keep their stored value; metadata keys are merged, the new
    value winning. On PostgreSQL the upsert's row lock serialises every writer of this
    conversation (one statement: ON CONFLICT DO UPDATE locks the row like SELECT ... FOR UPDATE
    would); on SQLite the transaction already holds the database write lock.
    """
    locked = lock_conversations(session=session, requests=[LockRequest(conversation_id, meta, now)])
    return locked[conversation_id]


def lock_conversations(
    *, session: Session, requests: Sequence[LockRequest]
) -> dict[str, ConversationRecord]:
    """`lock_conversation` for several different conversations; the records by id, in the
    order they were locked.

    The upserts run in the order of the conversation ids, whatever the order of `requests`: two
    writers locking overlapping sets of conversations take the row locks in the same order, so
    neither can wait for the other while holding a lock the other needs (no deadlock). On
    PostgreSQL they are one statement (its rows sorted by id before they are upserted).
    """
    ordered = _in_id_order(requests)
    if not ordered:
        return {}
    conn = connection(session)
    if conn.dialect.name != "postgresql":
        return _lock_sqlite(conn, ordered).records
    return _lock_postgres(conn, ordered)


def _lock_postgres(
    conn: Connection,
    ordered: Sequence[LockRequest],
    also: Sequence[_pgpipeline.Statement] = (),
    answers: list[_pgpipeline.Result] | None = None,
    state_texts: dict[str, str] | None = None,
) -> dict[str, ConversationRecord]:
    """The lock on PostgreSQL, with BEGIN before it and `also` after it, in one round trip
    (`_pgpipeline`); the results of `also` are added to `answers`. Given `state_texts`, the
    stored states are put there as their JSON text instead of decoded into the records (as
    `_lock_sqlite`)."""
    statement = _postgres(conn.dialect).lock
    requested_rows = [_lock_row(request) for request in ordered]
    columns = zip(*requested_rows, strict=True)  # in the statement's order, `_LOCK_KEYS`
    with driver_connection(conn, statement.sql) as driver:
        locked, *after = _pgpipeline.run(
            driver, [statement.from_columns(columns), *also], commit=False
        )
        rows = locked.rows()
    if answers is not None:
        answers += after
    results = statement.results
    if results.processors is None:  # the conversions of the columns' types, worked out once
        results.prime(locked.type_codes[:-1])
    # The last column says whether this statement created the row: ON CONFLICT DO UPDATE
    # leaves its row lock in the new version's xmax (also on a row an earlier statement of the
    # same transaction created), a row the statement inserted has none (0). A created row's
    # record is the request's, as on SQLite, without reading it back (its JSON comes back NULL).
    requested = {request.conversation_id: request for request in ordered}
    id_at = results.columns.index("id")
    records: dict[str, ConversationRecord] = {}
    for row in rows:
        if row[-1]:
            record = _new_record(requested[row[id_at]])
        else:
            values = results.row(row[:-1], None)  # (the state as its text: `_lock_arrays`)
            if state_texts is not None:
                _hand_over_state(values, state_texts)
            elif values["state"] is not None:
                values["state"] = json.loads(values["state"])
            record = _record(values)
        records[record.id] = record
    return records


def _hand_over_state(values: dict[str, Any], state_texts: dict[str, str]) -> None:
    """Move a locked row's stored state, as its JSON text, from its `values` into `state_texts`
    (`Locked.state_texts`): the record is built without it."""
    text = values["state"]
    if text is not None:
        state_texts[values["id"]] = text
        values["state"] = None


def lock_for_store(
    *,
    session: Session,
    requests: Sequence[LockRequest],
    also: Sequence[_pgpipeline.Statement] = (),
    answers: list[_pgpipeline.Result] | None = None,
) -> Locked:
    """`lock_conversations` for a caller that saves the state of every conversation it locks
    with `store` in the same transaction (the ingest writer).

    `also` (PostgreSQL only) are the caller's own statements, sent after the lock in its round
    trip (so that they read what the locked conversations hold once locked:
    `escalations.known_and_active_statements`); their results are added to `answers`.

    On SQLite a new conversation is not inserted here: `store` inserts its row whole, with its
    first state (`StateUpdate.create`, from `Locked.unstored`), where an insert now and an update
    then would write it twice. A caller that writes another row naming it first (an escalation)
    stores it before (`create_unstored`) and saves its state as usual; foreign keys are checked
    as every row is written, so a conversation left unstored fails the row that names it. On
    PostgreSQL this is `lock_conversations`: there the insert is the lock that another replica
    waits on.
    """
    ordered = _in_id_order(requests)
    if not ordered:
        if also:
            raise ValueError("lock_for_store(also=...) needs a conversation to lock")
        return Locked({}, {})
    conn = connection(session)
    if conn.dialect.name == "postgresql":
        texts: dict[str, str] = {}
        return Locked(_lock_postgres(conn, ordered, also, answers, texts), {}, texts)
    if also:
        raise ValueError("lock_for_store(also=...) is for PostgreSQL")
    return _lock_sqlite(conn, ordered, insert_new=False, state_texts={})


def run_postgres(
    *, session: Session, statements: Sequence[_pgpipeline.Statement]
) -> list[_pgpipeline.Result]:
    """Statements for `_pgpipeline` (reads such as `known_event_ids_statement`, an escalation's
    opening), sent together in one round trip on PostgreSQL, inside the session's transaction;
    their results, in order."""
    conn = connection(session)
    if conn.dialect.name != "postgresql":
        raise ValueError("run_postgres is for PostgreSQL; on SQLite each statement is in process")
    with driver_connection(conn, statements[0][0].decode() if statements else "") as driver:
        return _pgpipeline.run(driver, statements, commit=False)


_KNOWN_PAIRS_POSTGRES = b"""
    SELECT e.conversation_id, e.event_id
    FROM events AS e
    JOIN unnest($1::text[], $2::text[]) AS v(conversation_id, event_id)
        ON e.conversation_id = v.conversation_id AND e.event_id = v.event_id
"""


def known_event_ids_statement(event_ids: Mapping[str, Iterable[str]]) -> _pgpipeline.Statement:
    """`known_event_ids_of` as a PostgreSQL statement for `_pgpipeline` (read its result with
    `known_event_ids_from`)."""
    pairs = _event_pairs(event_ids)
    conversation_ids = [pair[0] for pair in pairs]
    ids = [pair[1] for pair in pairs]
    return _KNOWN_PAIRS_POSTGRES, [text_array(conversation_ids), text_array(ids)]


def known_event_ids_from(
    result: _pgpipeline.Result, conversation_ids: Iterable[str]
) -> dict[str, set[str]]:
    """The answer of `known_event_ids_statement`, as `known_event_ids_of` gives it."""
    return _known_by_conversation(conversation_ids, result.rows())


def create_unstored(*, session: Session, requests: Sequence[LockRequest]) -> None:
    """Insert conversations `lock_for_store` left unstored, as `lock_conversations` would have:
    before another row names them, or when they get no state in the end (a batch with no
    event). Their states are then saved as any stored conversation's."""
    if requests:
        _insert_new(connection(session), requests)


def _in_id_order(requests: Sequence[LockRequest]) -> list[LockRequest]:
    ordered = sorted(requests, key=lambda request: request.conversation_id)
    for first, second in itertools.pairwise(ordered):
        if first.conversation_id == second.conversation_id:
            raise ValueError(f"conversation {first.conversation_id!r} is named twice")
    return ordered


def _lock_sqlite(
    conn: Connection,
    ordered: Sequence[LockRequest],
    *,
    insert_new: bool = True,
    state_texts: dict[str, str] | None = None,
) -> Locked:
    """`lock_conversations` on SQLite, whose transaction already holds the database's write
    lock (BEGIN IMMEDIATE): nobody else can create a conversation between the look-up and the
    insert. Known conversations are upserted (their meta merged) and read back; new ones, most
    of a busy service's posts, are inserted in one `executemany` (or, without `insert_new`, left
    for `store`) and their records built from the values, as the upsert would have returned
    them. Given `state_texts`, the stored states are put there as their JSON text instead of
    decoded into the records (`Locked.state_texts`)."""
    ids = [request.conversation_id for request in ordered]
    known: set[str] = set()
    for chunk in chunks(ids, MAX_PARAMETERS):
        sql = _KNOWN_CONVERSATIONS + "(" + ",".join("?" * len(chunk)) + ")"
        with driver_connection(conn, sql) as driver:
            known.update(row[0] for row in driver.execute(sql, list(chunk)))
    merged: dict[str, ConversationRecord] = {}
    if known:
        upsert = prepared(_LOCK, conn.dialect, _LOCK_KEYS)
        parameters = [
            upsert.parameters(_lock_values(request))
            for request in ordered
            if request.conversation_id in known
        ]
        with driver_connection(conn, upsert.sql) as driver:
            rows, description = upsert.returning(driver, parameters)
        results = upsert.results if state_texts is None else _state_as_text(upsert)
        for row in rows:
            values = results.row(row, description)
            if state_texts is not None:
                _hand_over_state(values, state_texts)  # (its text: `_state_as_text`)
            merged[values["id"]] = _record(values)
    unstored: dict[str, LockRequest] = {}
    if len(known) < len(ids):
        new = [request for request in ordered if request.conversation_id not in known]
        if insert_new:
            _insert_new(conn, new)
        else:
            unstored = {request.conversation_id: request for request in new}
    return Locked(
        {
            request.conversation_id: merged.get(request.conversation_id) or _new_record(request)
            for request in ordered
        },
        unstored,
        state_texts,
    )


_STATE_AS_TEXT: dict[int, tuple[Prepared, Results]] = {}


def _state_as_text(upsert: Prepared) -> Results:
    """The conversions of the upsert's RETURNING row, but for the state: its JSON text as
    stored, not decoded (`Locked.state_texts`)."""
    entry = _STATE_AS_TEXT.get(id(upsert))
    if entry is None or entry[0] is not upsert:  # (an id is only unique while alive)
        returned = upsert.results
        types = [
            Text() if name == "state" else kind
            for name, kind in zip(returned.columns, returned.types, strict=True)
        ]
        entry = _STATE_AS_TEXT[id(upsert)] = (
            upsert,
            Results(returned.columns, types, returned.dialect),
        )
    return entry[1]


def _insert_new(conn: Connection, requests: Sequence[LockRequest]) -> None:
    """New conversations' rows on SQLite, without a state yet."""
    create = prepared(_CREATE, conn.dialect, _LOCK_KEYS)
    row = _SqliteCreateRow.of(create)
    with driver_connection(conn, create.sql) as driver:
        create.many(driver, [row(request) for request in requests])


def _new_record(request: LockRequest) -> ConversationRecord:
    """The record of a conversation just created by `request`."""
    meta = request.meta
    now = request.now
    if now.tzinfo is not UTC:
        now = now.astimezone(UTC)
    if meta.metadata:  # (without any, the meta is already what the row reads back as)
        meta = ConversationMeta(
            platform=meta.platform,
            customer=meta.customer,
            metadata={str(key): str(value) for key, value in meta.metadata.items()},
            language=meta.language,
            link=meta.link,
        )
    return ConversationRecord(
        id=request.conversation_id,
        meta=meta,
        state=None,
        score=0.0,
        level=None,
        status="active",
        first_event_at=None,
        last_event_at=None,
        created_at=now,
        updated_at=now,
    )


def _lock_row(request: LockRequest) -> tuple[Any, ...]:
    """A lock request's column values, unconverted, in the order of `_LOCK_KEYS`."""
    meta = request.meta
    customer = meta.customer
    return (
        request.conversation_id,
        meta.platform,
        customer.id,
        customer.name,
        customer.tier,
        customer.email,
        dict(meta.metadata),
        meta.language,
        meta.link,
        0.0,
        "active",
        request.now,
        request.now,
    )


def _lock_values(request: LockRequest) -> dict[str, Any]:
    """A lock request's column values by name."""
    return dict(zip(_LOCK_KEYS, _lock_row(request), strict=True))


# A conversation's columns of its meta (`get_meta`).
_META_KEYS = (
    "platform",
    "customer_id",
    "customer_name",
    "customer_tier",
    "customer_email",
    "metadata",
    "language",
    "link",
)
# The keys each prepared statement is compiled for (every caller passes all of them).
_LOCK_KEYS = ("id", *_META_KEYS, "score", "status", "created_at", "updated_at")
_EVENT_KEYS = tuple(column.key for column in _events.columns if column is not _events.c.pk)


class _SqliteRow:
    """The base of the builders that write a prepared SQLite statement's parameters straight in
    placeholder order, with the statement's own conversions, without building a dict of the
    values and reading it back (the inserts and updates ingest runs for every post). One is made
    per prepared statement (`of`); it refuses a statement whose placeholders or conversions are
    no longer those it was written for, and tests hold its rows equal to the generic ones."""

    ORDER: ClassVar[tuple[str, ...]]  # the placeholders, in order
    CONVERTED: ClassVar[frozenset[str]]  # those a conversion turns into what sqlite3 takes
    STATEMENT: ClassVar[str]  # what the statement does, for the errors
    _built: ClassVar[dict[Prepared, Any]]

    def __init_subclass__(cls) -> None:
        cls._built = {}

    def __init__(self, statement: Prepared) -> None:
        if statement.names != self.ORDER:
            raise ValueError(f"{self.STATEMENT} placeholders changed: {statement.names}")
        conversions = {name: process for name, process, _ in statement.conversions}
        if set(conversions) != self.CONVERTED:
            raise ValueError(f"{self.STATEMENT} conversions changed: {sorted(conversions)}")
        self.conversions = conversions

    @classmethod
    def of(cls, statement: Prepared) -> Self:
        """The builder for `statement`, made once (prepared statements live as long)."""
        built = cls._built.get(statement)
        if built is None:
            built = cls._built[statement] = cls(statement)
        return cast("Self", built)


class _SqliteConversationRow(_SqliteRow):
    """The base of the builders of a new conversation's row: its meta's columns (platform to
    link, in table order), written as both of them write them."""

    def __init__(self, statement: Prepared) -> None:
        super().__init__(statement)
        self._metadata = self.conversions["metadata"]
        self._no_metadata = self._metadata({})

    def _meta(self, meta: ConversationMeta) -> tuple[Any, ...]:
        customer = meta.customer
        metadata = meta.metadata
        return (
            meta.platform,
            customer.id,
            customer.name,
            customer.tier,
            customer.email,
            self._metadata(dict(metadata)) if metadata else self._no_metadata,
            meta.language,
            meta.link,
        )


class _SqliteCreateRow(_SqliteConversationRow):
    """A new conversation's row for the SQLite insert, built straight in placeholder order.

    The same list as `creating.parameters(_lock_values(request))`, with the same conversions
    (taken from `creating`), without building the dict and reading it back: at one event a post,
    a new conversation for nearly every post.
    """

    ORDER = _LOCK_KEYS
    CONVERTED = frozenset(("metadata", "score", "created_at", "updated_at"))
    STATEMENT = "conversation insert"

    def __init__(self, creating: Prepared) -> None:
        super().__init__(creating)
        conversions = self.conversions
        self._created = conversions["created_at"]
        self._updated = conversions["updated_at"]
        self._score = conversions["score"](0.0)

    def __call__(self, request: LockRequest) -> list[Any]:
        now = request.now
        return [
            request.conversation_id,
            *self._meta(request.meta),
            self._score,
            "active",
            self._created(now),
            self._updated(now),
        ]


@dataclass(frozen=True, slots=True)
class _PostgresStatements:
    lock: Arrays
    insert_events: Arrays
    save_state: Arrays


_POSTGRES: dict[str, _PostgresStatements] = {}


def _postgres(dialect: Dialect) -> _PostgresStatements:
    """The hot statements for PostgreSQL, built once per driver."""
    statements = _POSTGRES.get(dialect.driver)
    if statements is None:
        statements = _POSTGRES[dialect.driver] = _PostgresStatements(
            lock=_lock_arrays(dialect),
            insert_events=_insert_events_arrays(dialect),
            save_state=_save_state_arrays(dialect),
        )
    return statements


def _lock_arrays(dialect: Dialect) -> Arrays:
    """What `_LOCK` does on SQLite, for any number of conversations, in one statement.

    The rows are upserted, and so locked, in the order of the conversation ids: the arrays come
    sorted, and ORDER BY sorts them again (the C collation compares code points, as Python
    does) so that the statement alone keeps every writer to the same order.
    """
    quote = dialect.identifier_preparer.quote
    columns, names, values = insert_columns(_conversations, _LOCK_KEYS, dialect)
    # A created row's record is built from its request (`lock_conversations`): its JSON
    # columns are not sent back, and the last column says which rows were created.
    # The state comes back as its text, as stored (`Locked.state_texts`).
    returning = ", ".join(
        f"CASE WHEN conversations.xmax = 0 THEN NULL ELSE conversations.{quote(column.name)}"
        f"{'::text' if column.name == 'state' else ''} END"
        if isinstance(column.type, JSON)
        else f"conversations.{quote(column.name)}"
        for column in _conversations.c
    )
    sql = f"""
        INSERT INTO conversations ({names})
        SELECT {values} FROM {unnest(columns, dialect)} AS v({names})
        ORDER BY v.id COLLATE "C"
        ON CONFLICT (id) DO UPDATE SET
            platform = excluded.platform,
            customer_id = coalesce(excluded.customer_id, conversations.customer_id),
            customer_name = coalesce(excluded.customer_name, conversations.customer_name),
            customer_tier = coalesce(excluded.customer_tier, conversations.customer_tier),
            customer_email = coalesce(excluded.customer_email, conversations.customer_email),
            metadata = coalesce(conversations.metadata, '{{}}'::jsonb) || excluded.metadata,
            language = coalesce(excluded.language, conversations.language),
            link = coalesce(excluded.link, conversations.link),
            updated_at = excluded.updated_at
        RETURNING {returning}, conversations.xmax = 0
    """  # noqa: S608 - only the schema's column names are interpolated
    # Its one plan (the arrays' rows sorted, then inserted) is kept: `_pgpipeline`.
    returned = [_STATE_TEXT if column.name == "state" else column for column in _conversations.c]
    return Arrays(sql, columns, dialect, returning=returned, keep_plan=True)


def _insert_events_arrays(dialect: Dialect) -> Arrays:
    """What `_INSERT_EVENTS` does on SQLite, for any number of events, in one statement. The
    rows are inserted in the order given (WITH ORDINALITY), so that their keys keep the order
    of arrival; an event id given twice is inserted once (ON CONFLICT sees the first)."""
    columns, names, values = insert_columns(_events, _EVENT_KEYS, dialect)
    sql = f"""
        INSERT INTO events ({names})
        SELECT {values} FROM {unnest(columns, dialect)} WITH ORDINALITY AS v({names}, ord)
        ORDER BY v.ord
        ON CONFLICT (conversation_id, event_id) DO NOTHING
    """  # noqa: S608 - only the schema's column names are interpolated
    return Arrays(sql, columns, dialect, keep_plan=True)  # one plan, as the lock's


def _save_state_arrays(dialect: Dialect) -> Arrays:
    """What `_SAVE_STATE` does on SQLite, for any number of different conversations, in one
    statement. Their rows are already locked (`lock_conversations`), in id order."""
    c = _conversations.c
    # The state comes as its JSON text (`_state_values`), which the server reads as the column's
    # type: psycopg would encode it again, one Python-level call a row, if sent as JSON.
    state_type = c.state.type.compile(dialect=dialect).lower()
    columns = [
        ("b_id", c.id),
        ("b_state", _STATE_TEXT),
        ("b_score", c.score),
        ("b_level", c.level),
        ("b_status", c.status),
        ("b_updated_at", c.updated_at),
        ("b_last", c.last_event_at),
        ("b_first", c.first_event_at),
    ]
    names = ", ".join(name for name, _ in columns)
    sql = f"""
        UPDATE conversations SET
            state = v.b_state::{state_type},
            score = v.b_score,
            level = v.b_level,
            status = v.b_status,
            updated_at = v.b_updated_at,
            last_event_at = coalesce(v.b_last, conversations.last_event_at),
            first_event_at = CASE
                WHEN v.b_first IS NULL THEN conversations.first_event_at
                WHEN conversations.first_event_at IS NULL
                    OR conversations.first_event_at > v.b_first THEN v.b_first
                ELSE conversations.first_event_at
            END
        FROM {unnest(columns, dialect)} AS v({names})
        WHERE conversations.id = v.b_id
    """  # noqa: S608 - only fixed parameter names are interpolated
    return Arrays(sql, columns, dialect)


# Hot-path statements are built once and reused: building and cache-keying a fresh upsert
# per event cost more than running it. Values travel as execute parameters.
_KNOWN_EVENTS = select(_events.c.event_id).where(
    _events.c.conversation_id == bindparam("conversation_id"),
    _events.c.event_id.in_(bindparam("event_ids", expanding=True)),
)


def _lock_statement() -> Executable:
    """The SQLite upsert of one conversation (`lock_conversation`)."""
    insert = sqlite.insert(_conversations)
    excluded = insert.excluded
    merged_metadata = func.json_patch(
        func.coalesce(_conversations.c["metadata"], text("'{}'")), excluded["metadata"]
    )

    def keep_unless_given(name: str) -> ColumnElement[Any]:
        return func.coalesce(excluded[name], _conversations.c[name])

    return insert.on_conflict_do_update(
        index_elements=[_conversations.c.id],
        set_={
            "platform": excluded.platform,
            "customer_id": keep_unless_given("customer_id"),
            "customer_name": keep_unless_given("customer_name"),
            "customer_tier": keep_unless_given("customer_tier"),
            "customer_email": keep_unless_given("customer_email"),
            "metadata": merged_metadata,
            "language": keep_unless_given("language"),
            "link": keep_unless_given("link"),
            "updated_at": excluded.updated_at,
        },
    ).returning(*_conversations.c)


_LOCK = _lock_statement()
_CREATE = sqlite.insert(_conversations)  # a conversation not stored yet (`_lock_sqlite`)
_KNOWN_CONVERSATIONS = "SELECT id FROM conversations WHERE id IN "
_INSERT_EVENTS = sqlite.insert(_events).on_conflict_do_nothing(
    index_elements=[_events.c.conversation_id, _events.c.event_id]
)
_REASONS_TEXT = ReasonsText()  # the events' reasons on SQLite, as the JSON column's text


def get_conversation(*, session: Session, conversation_id: str) -> ConversationRecord | None:
    """The conversation, or None when no event of it was ever stored."""
    row = (
        connection(session)
        .execute(select(_conversations).where(_conversations.c.id == conversation_id))
        .mappings()
        .one_or_none()
    )
    return _record(row) if row is not None else None


_META = select(*(_conversations.c[name] for name in _META_KEYS))


def get_meta(*, session: Session, conversation_id: str) -> ConversationMeta | None:
    """The conversation's meta as stored (merged from its posts), or None when no event of it
    was ever stored: what a card shows of it, without the engine's state, which
    `get_conversation` reads and decodes too (a long conversation's is several KB)."""
    row = (
        connection(session)
        .execute(_META.where(_conversations.c.id == conversation_id))
        .mappings()
        .one_or_none()
    )
    return _meta(row) if row is not None else None


def known_event_ids(
    *, session: Session, conversation_id: str, event_ids: Iterable[str]
) -> set[str]:
    """Those of `event_ids` already stored for the conversation (webhook retries, replays)."""
    wanted = list(dict.fromkeys(event_ids))
    found: set[str] = set()
    conn = connection(session)
    for chunk in chunks(wanted, MAX_PARAMETERS // 2):
        result = conn.execute(
            _KNOWN_EVENTS, {"conversation_id": conversation_id, "event_ids": list(chunk)}
        )
        found.update(result.scalars())
    return found


def known_event_ids_of(
    *, session: Session, event_ids: Mapping[str, Iterable[str]]
) -> dict[str, set[str]]:
    """`known_event_ids` for several conversations ({conversation id: event ids}) at once:
    one statement (on SQLite per 15,000 ids) instead of one per conversation."""
    conn = connection(session)
    if conn.dialect.name == "postgresql":  # the ingest's own statement, its pairs as arrays
        (result,) = run_postgres(session=session, statements=[known_event_ids_statement(event_ids)])
        return known_event_ids_from(result, event_ids)
    found = (
        (conversation_id, event_id)
        for chunk in chunks(_event_pairs(event_ids), MAX_PARAMETERS // 2)
        for conversation_id, event_id in conn.exec_driver_sql(
            _known_pairs_sqlite(len(chunk)), tuple(itertools.chain.from_iterable(chunk))
        )
    )
    return _known_by_conversation(event_ids, found)


@lru_cache(maxsize=64)
def _known_pairs_sqlite(count: int) -> str:
    """The stored pairs among `count` (conversation id, event id) pairs, on SQLite: a join that
    looks each pair up in the events' unique index. SQLite reads `(conversation_id, event_id)
    IN (VALUES ...)` by scanning the whole index (EXPLAIN QUERY PLAN: SCAN events): a post to a
    conversation already seen cost a read of every stored event (6.8 ms at 100,000 events, 4 µs
    joined), more as the table grew. CROSS JOIN keeps the pairs as the outer loop."""
    rows = ", ".join(["(?, ?)"] * count)
    return (
        f"SELECT e.conversation_id, e.event_id FROM (VALUES {rows}) AS v "  # noqa: S608 - placeholders only
        "CROSS JOIN events AS e ON e.conversation_id = v.column1 AND e.event_id = v.column2"
    )


def _event_pairs(event_ids: Mapping[str, Iterable[str]]) -> list[tuple[str, str]]:
    """The (conversation id, event id) pairs of `event_ids`, each once, in order."""
    return list(
        dict.fromkeys(
            (conversation_id, event_id)
            for conversation_id, ids in event_ids.items()
            for event_id in ids
        )
    )


def _known_by_conversation(
    conversation_ids: Iterable[str], found: Iterable[tuple[str, str]]
) -> dict[str, set[str]]:
    """The stored pairs `found`, as {conversation id: event ids} for every conversation asked."""
    known: dict[str, set[str]] = {conversation_id: set() for conversation_id in conversation_ids}
    for conversation_id, event_id in found:
        known[conversation_id].add(event_id)
    return known


def _event_row(
    conversation_id: str,
    event: ConversationEvent,
    assessment: Assessment | None,
    received_at: datetime,
    as_before: bool = False,
) -> tuple[Any, ...]:
    """An event's column values, unconverted, in the order of `_EVENT_KEYS`."""
    event_id, kind, timestamp, role, text, intent, confidence, fallback, outcome, extra = event
    if assessment is None:
        score = level = reasons = decision = None
    else:
        score, level = assessment.score, assessment.level
        # NULL: as the event before it (see `EventRows`).
        reasons = None if as_before else reasons_to_json(assessment.reasons)
        decision = _DECISION_TEXT[assessment.decision]
    return (
        conversation_id,
        event_id,
        _TYPE_TEXT[kind],
        _ROLE_TEXT[role],
        text,
        intent,
        confidence,
        fallback,
        outcome,
        timestamp,
        received_at,
        dict(extra) if extra else None,
        score,
        level,
        reasons,
        decision,
    )


def _event_values(
    conversation_id: str,
    event: ConversationEvent,
    assessment: Assessment | None,
    received_at: datetime,
    as_before: bool = False,
) -> dict[str, Any]:
    """An event's column values by name."""
    return dict(
        zip(
            _EVENT_KEYS,
            _event_row(conversation_id, event, assessment, received_at, as_before),
            strict=True,
        )
    )


# What each enum member is stored as: a dict lookup, where `.value` is a Python-level property
# read three times an event.
_TYPE_TEXT = {member: member.value for member in EventType}
_ROLE_TEXT: dict[Role | None, str | None] = {member: member.value for member in Role}
_ROLE_TEXT[None] = None
_DECISION_TEXT = {member: member.value for member in Decision}


def insert_events(
    *,
    session: Session,
    conversation_id: str,
    rows: Sequence[tuple[ConversationEvent, Assessment | None]],
    received_at: datetime,
) -> int:
    """Store events with the engine's verdicts; already stored event ids are skipped.

    Returns how many rows were inserted. The conversation row must exist (`lock_conversation`).
    """
    return store(session=session, events=[EventRows(conversation_id, rows, received_at)], states=())


def save_state(
    *,
    session: Session,
    conversation_id: str,
    state: dict[str, Any],
    score: float,
    level: str | None,
    status: str,
    last_event_at: datetime | None,
    first_event_at: datetime | None = None,
    now: datetime | None = None,
) -> None:
    """Store the engine's state and verdict after a batch of events.

    `first_event_at` only ever moves earlier; it defaults to `last_event_at`.
    """
    change = StateUpdate(
        conversation_id=conversation_id,
        state=state,
        score=score,
        level=level,
        status=status,
        last_event_at=last_event_at,
        first_event_at=first_event_at,
        now=now,
    )
    store(session=session, events=(), states=[change])


def store(
    *,
    session: Session,
    events: Sequence[EventRows],
    states: Sequence[StateUpdate],
    commit: bool = False,
    also: Sequence[_pgpipeline.Statement] = (),
    answers: list[_pgpipeline.Result] | None = None,
) -> int:
    """Insert events (as `insert_events`), then save states (as `save_state`), for any number of
    conversations: on PostgreSQL one statement each, in one round trip in all, and on SQLite
    one `executemany` each. `also` (PostgreSQL only) are the caller's own statements, sent
    first in the same round trip (`outbox.enqueue_many(later=True)`,
    `escalations.open_statement`); their results are added to `answers`, when given.

    Returns how many event rows were inserted (already stored event ids are skipped). The
    conversations must exist (`lock_conversations`), or be created by their state
    (`StateUpdate.create`, after `lock_for_store`). `commit=True` also commits the session's
    transaction (on PostgreSQL in the same round trip): the caller must have nothing more to
    run in it, and its own commit then has nothing left to do. Not inside a savepoint.
    """
    if commit and session.in_nested_transaction():
        raise ValueError("store(commit=True) inside a savepoint")
    creates = 0
    for change in states:
        if change.status not in ("active", "ended"):
            raise ValueError(
                f"conversation status must be 'active' or 'ended', not {change.status!r}"
            )
        if change.create is not None:
            if change.create.conversation_id != change.conversation_id:
                raise ValueError(
                    f"state of {change.conversation_id!r} creates {change.create.conversation_id!r}"
                )
            creates += 1
    conn = connection(session)
    if conn.dialect.name == "postgresql":
        if creates:
            raise ValueError("StateUpdate.create is for SQLite (after lock_for_store)")
        return _store_postgres(conn, events, states, also, commit=commit, answers=answers)
    if also:
        raise ValueError("store(also=...) is for PostgreSQL; on SQLite each write is in process")
    inserting = prepared(_INSERT_EVENTS, conn.dialect, _EVENT_KEYS)
    saving = prepared(_SAVE_STATE, conn.dialect, ())
    row = _SqliteEventRow.of(inserting)
    event_parameters = [
        row(batch.conversation_id, event, verdict, batch.received_at, as_before)
        for batch in events
        for event, verdict, as_before in _weighed(batch.rows)
    ]
    state_row = _SqliteStateRow.of(saving)
    create_parameters: list[list[Any]] = []
    if creates:
        creating = prepared(_CREATE_WITH_STATE, conn.dialect, _CREATE_WITH_STATE_KEYS)
        create_row = _SqliteCreateStateRow.of(creating)
        create_parameters = [create_row(change) for change in states if change.create]
        state_parameters = [state_row(change) for change in states if not change.create]
    else:
        state_parameters = [state_row(change) for change in states]
    if not event_parameters and not state_parameters and not create_parameters and not commit:
        return 0
    inserted = None
    with driver_connection(conn, inserting.sql if event_parameters else saving.sql) as driver:
        # New conversations first: their events name them.
        if create_parameters:
            creating.many(driver, create_parameters)
        if event_parameters:
            inserted = inserting.many(driver, event_parameters)
        if state_parameters:
            saving.many(driver, state_parameters)
        if commit:
            driver.commit()
    # sqlite3 counts only the rows inserted, not those ON CONFLICT skipped.
    return int(inserted.rowcount) if inserted is not None else 0


def _store_postgres(
    conn: Connection,
    events: Sequence[EventRows],
    states: Sequence[StateUpdate],
    also: Sequence[_pgpipeline.Statement],
    *,
    commit: bool,
    answers: list[_pgpipeline.Result] | None,
) -> int:
    """`store` on PostgreSQL: every event in one INSERT, every state in one UPDATE (one more
    per time a conversation is named again, see `_rounds`)."""
    postgres = _postgres(conn.dialect)
    inserting, saving = postgres.insert_events, postgres.save_state
    rows = [
        _event_row(batch.conversation_id, event, verdict, batch.received_at, as_before)
        for batch in events
        for event, verdict, as_before in _weighed(batch.rows)
    ]
    # The rows' columns in one step (in the statement's order, `_EVENT_KEYS`).
    event_parameters = inserting.from_columns(zip(*rows, strict=True)) if rows else None
    state_parameters = [
        saving.parameters([_state_values(change) for change in changes])
        for changes in _rounds(states)
    ]
    statements = [*also]
    if event_parameters is not None:
        statements.append(event_parameters)
    statements += state_parameters
    if not statements and not commit:
        return 0
    # Every statement and the COMMIT in one round trip (`_pgpipeline`); a failed statement
    # fails the rest, COMMIT included.
    sql = inserting.sql if event_parameters is not None else saving.sql
    with driver_connection(conn, sql) as driver:
        results = _pgpipeline.run(driver, statements, commit=commit)
    if answers is not None:
        answers += results[: len(also)]
    # Only the rows inserted count, not those ON CONFLICT skipped (an event id given twice is
    # inserted once).
    return results[len(also)].rowcount if event_parameters is not None else 0


def _weighed(
    rows: Iterable[tuple[ConversationEvent, Assessment | None]],
) -> Iterator[tuple[ConversationEvent, Assessment | None, bool]]:
    """Each row, and whether its verdict's reasons weigh what those of the verdict right before
    it weighed (never for the first row, a row without a verdict or the row after one)."""
    previous: tuple[Reason, ...] | None = None  # the reasons of the verdict before
    before: list[tuple[str, float]] | None = None  # their weights, once needed
    for event, verdict in rows:
        if verdict is None:
            previous = before = None
            yield event, verdict, False
            continue
        reasons = verdict.reasons
        if previous is None:  # (its weights are taken only if another row follows)
            as_before = False
        elif reasons is previous:  # the engine's own tuple again: nothing changed
            as_before = True
        else:
            if before is None:
                before = weights(previous)
            weighed = weights(reasons)
            as_before = weighed == before
            before = weighed
        previous = reasons
        yield event, verdict, as_before


class _SqliteEventRow(_SqliteRow):
    """An event's row for the SQLite insert, built straight in placeholder order.

    The same list as `inserting.parameters(_event_values(...))`, with the same conversions
    (taken from `inserting`), without building the dict and reading it back. The reasons are
    the exception: their JSON text comes from `ReasonsText`, the same text as the column's
    conversion of `reasons_to_json`, encoded once for a run of events that share them.
    """

    ORDER = (
        "conversation_id",
        "event_id",
        "type",
        "role",
        "text",
        "intent",
        "confidence",
        "fallback",
        "outcome",
        "timestamp",
        "received_at",
        "extra",
        "score",
        "level",
        "reasons",
        "decision",
    )
    CONVERTED = frozenset(
        ("confidence", "fallback", "timestamp", "received_at", "extra", "score", "reasons")
    )
    STATEMENT = "event insert"

    def __init__(self, inserting: Prepared) -> None:
        super().__init__(inserting)
        conversions = self.conversions
        self._confidence = conversions["confidence"]
        self._fallback = conversions["fallback"]
        self._time = conversions["timestamp"]
        self._received = conversions["received_at"]
        self._extra = conversions["extra"]
        self._score = conversions["score"]

    def __call__(
        self,
        conversation_id: str,
        event: ConversationEvent,
        verdict: Assessment | None,
        received_at: datetime,
        as_before: bool = False,
    ) -> list[Any]:
        # Every field at once: a named tuple unpacks in one step, where each attribute is a
        # look-up (which the interpreter does not specialise as it did for slots).
        event_id, kind, timestamp, role, text, intent, confidence, fallback, outcome, extra = event
        if verdict is None:
            score = level = reasons = decision = None
        else:
            score = self._score(verdict.score)
            level = verdict.level
            # NULL: as the event before it (see `EventRows`).
            reasons = None if as_before else _REASONS_TEXT(verdict.reasons)
            decision = _DECISION_TEXT[verdict.decision]
        return [
            conversation_id,
            event_id,
            _TYPE_TEXT[kind],
            _ROLE_TEXT[role],
            text,
            intent,
            None if confidence is None else self._confidence(confidence),
            None if fallback is None else self._fallback(fallback),
            outcome,
            self._time(timestamp),
            self._received(received_at),
            self._extra(dict(extra)) if extra else None,
            score,
            level,
            reasons,
            decision,
        ]


def _rounds(states: Sequence[StateUpdate]) -> list[list[StateUpdate]]:
    """`states` in rounds that name each conversation once, a conversation's updates in their
    order: an UPDATE ... FROM changes a row once, however many of its rows match it. Almost
    always a single round."""
    rounds: list[list[StateUpdate]] = []
    named: dict[str, int] = {}
    for change in states:
        index = named.get(change.conversation_id, 0)
        named[change.conversation_id] = index + 1
        if index == len(rounds):
            rounds.append([])
        rounds[index].append(change)
    return rounds


# The state's parameter: its JSON text, what the JSON column's own conversion (`json.dumps`)
# writes, given as text so that a state already written out (`ConversationState.to_json`) is not
# encoded again.
_STATE_TEXT = Column("state", Text())

# A conversation not stored yet, with its first state (`store`, after `lock_for_store`); the
# state is given as its JSON text, as to `_SAVE_STATE`.
_CREATE_WITH_STATE = sqlite.insert(_conversations).values(
    state=bindparam("b_state", type_=_STATE_TEXT.type)
)
_CREATE_WITH_STATE_KEYS = (*_LOCK_KEYS, "level", "first_event_at", "last_event_at")


def _state_text(state: dict[str, Any] | str) -> str:
    """A `StateUpdate`'s state as its JSON text: given as text already, or as its dict."""
    return state if isinstance(state, str) else json.dumps(state)


def _saved_times(change: StateUpdate) -> tuple[datetime | None, datetime | None, datetime]:
    """A state's first and last event times and its update time as saved: the first defaults
    to the last, the update time to the wall clock."""
    last = change.last_event_at
    first = change.first_event_at if change.first_event_at is not None else last
    return first, last, change.now if change.now is not None else datetime.now(UTC)


def _state_values(change: StateUpdate) -> dict[str, Any]:
    first, last, now = _saved_times(change)
    return {
        "b_id": change.conversation_id,
        "b_state": _state_text(change.state),
        "b_score": change.score,
        "b_level": change.level,
        "b_status": change.status,
        "b_updated_at": now,
        "b_last": last,
        "b_first": first,
    }


class _SqliteStateRow(_SqliteRow):
    """A state's parameters for the SQLite update, built straight in placeholder order: the
    same list as `saving.parameters(_state_values(change))`, with the same conversions (taken
    from `saving`), without building the dict and reading it back."""

    # `b_first` fills three places.
    ORDER = (
        "b_state",
        "b_score",
        "b_level",
        "b_status",
        "b_first",
        "b_first",
        "b_first",
        "b_last",
        "b_updated_at",
        "b_id",
    )
    CONVERTED = frozenset(("b_score", "b_first", "b_last", "b_updated_at"))
    STATEMENT = "state update"

    def __init__(self, saving: Prepared) -> None:
        super().__init__(saving)
        conversions = self.conversions
        self._score = conversions["b_score"]
        self._first = conversions["b_first"]
        self._last = conversions["b_last"]
        self._updated = conversions["b_updated_at"]

    def __call__(self, change: StateUpdate) -> list[Any]:
        first, last, now = _saved_times(change)
        first_text = None if first is None else self._first(first)
        return [
            _state_text(change.state),
            self._score(change.score),
            change.level,
            change.status,
            first_text,
            first_text,
            first_text,
            None if last is None else self._last(last),
            self._updated(now),
            change.conversation_id,
        ]


class _SqliteCreateStateRow(_SqliteConversationRow):
    """A new conversation's whole row with its first state (`StateUpdate.create`), built
    straight in placeholder order: the same list as
    `creating.parameters(_create_with_state_values(change))`, with the same conversions, and
    the same values as inserting the conversation (`_SqliteCreateRow`) and then saving the
    state (`_SqliteStateRow`) would leave in the row."""

    ORDER = (
        "id",
        "platform",
        "customer_id",
        "customer_name",
        "customer_tier",
        "customer_email",
        "metadata",
        "language",
        "link",
        "b_state",
        "score",
        "level",
        "status",
        "first_event_at",
        "last_event_at",
        "created_at",
        "updated_at",
    )
    CONVERTED = frozenset(
        ("metadata", "score", "first_event_at", "last_event_at", "created_at", "updated_at")
    )
    STATEMENT = "conversation insert with its state"

    def __init__(self, creating: Prepared) -> None:
        super().__init__(creating)
        conversions = self.conversions
        self._score = conversions["score"]
        self._first = conversions["first_event_at"]
        self._last = conversions["last_event_at"]
        self._created = conversions["created_at"]
        self._updated = conversions["updated_at"]

    def __call__(self, change: StateUpdate) -> list[Any]:
        request = change.create
        assert request is not None
        first, last, now = _saved_times(change)
        return [
            request.conversation_id,
            *self._meta(request.meta),
            _state_text(change.state),
            self._score(change.score),
            change.level,
            change.status,
            None if first is None else self._first(first),
            None if last is None else self._last(last),
            self._created(request.now),
            self._updated(now),
        ]


def _create_with_state_values(change: StateUpdate) -> dict[str, Any]:
    """`_CREATE_WITH_STATE`'s values by name (the generic way, for the tests): the lock's values
    with the saved state's."""
    assert change.create is not None
    saved = _state_values(change)
    return {
        **_lock_values(change.create),
        "b_state": saved["b_state"],
        "score": saved["b_score"],
        "level": saved["b_level"],
        "status": saved["b_status"],
        "first_event_at": saved["b_first"],
        "last_event_at": saved["b_last"],
        "updated_at": saved["b_updated_at"],
    }


def _save_state_statement() -> Executable:
    stored_first = _conversations.c.first_event_at
    given_first = bindparam("b_first", type_=UtcDateTime())
    return (
        update(_conversations)
        .where(_conversations.c.id == bindparam("b_id"))
        .values(
            state=bindparam("b_state", type_=_STATE_TEXT.type),
            score=bindparam("b_score"),
            level=bindparam("b_level"),
            status=bindparam("b_status"),
            updated_at=bindparam("b_updated_at", type_=UtcDateTime()),
            # No time given keeps the stored one.
            last_event_at=func.coalesce(
                bindparam("b_last", type_=UtcDateTime()), _conversations.c.last_event_at
            ),
            # The earliest time seen wins: a late, older event moves the start back.
            first_event_at=case(
                (given_first.is_(None), stored_first),
                (or_(stored_first.is_(None), stored_first > given_first), given_first),
                else_=stored_first,
            ),
        )
    )


# Built once: one UPDATE, compiled once per dialect, whatever the arguments.
_SAVE_STATE = _save_state_statement()


def _stored_event(row: RowMapping, reasons: tuple[Reason, ...]) -> StoredEvent:
    return StoredEvent(
        event=ConversationEvent(
            event_id=row["event_id"],
            type=EventType(row["type"]),
            timestamp=row["timestamp"],
            role=Role(row["role"]) if row["role"] is not None else None,
            text=row["text"],
            intent=row["intent"],
            confidence=row["confidence"],
            fallback=row["fallback"],
            outcome=row["outcome"],
            extra=row["extra"] or {},
        ),
        received_at=row["received_at"],
        score=row["score"],
        level=row["level"],
        reasons=reasons,
        decision=Decision(row["decision"]) if row["decision"] is not None else None,
    )


def transcript(*, session: Session, conversation_id: str) -> list[StoredEvent]:
    """Every event of the conversation, by timestamp then arrival, with the verdicts.

    Read in the order they were stored (assessed), where a verdict without reasons has those
    of the one before it (`EventRows`), then put in time order.
    """
    result = connection(session).execute(
        select(_events).where(_events.c.conversation_id == conversation_id).order_by(_events.c.pk)
    )
    stored: list[tuple[datetime, int, StoredEvent]] = []
    before: tuple[Reason, ...] = ()
    for row in result.mappings():
        reasons = row["reasons"]
        if reasons is not None or row["score"] is None:
            before = reasons_from_json(reasons)
        stored.append((row["timestamp"], row["pk"], _stored_event(row, before)))
    stored.sort(key=_time_then_arrival)
    return [event for _, _, event in stored]


_time_then_arrival = itemgetter(0, 1)


def list_conversations(
    *,
    session: Session,
    limit: int = 50,
    offset: int = 0,
    status: str | None = None,
    platform: str | None = None,
    since: datetime | None = None,
) -> list[ConversationRecord]:
    """Conversations, most recently active first; `since` keeps those active at or after it."""
    statement = select(_conversations)
    if status is not None:
        statement = statement.where(_conversations.c.status == status)
    if platform is not None:
        statement = statement.where(_conversations.c.platform == platform)
    if since is not None:
        statement = statement.where(_conversations.c.last_event_at >= since)
    statement = (
        statement.order_by(_conversations.c.last_event_at.desc().nulls_last(), _conversations.c.id)
        .limit(limit)
        .offset(offset)
    )
    return [_record(row) for row in connection(session).execute(statement).mappings()]
