"""Conversations and their events: the per-conversation lock, event inserts, transcripts."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    ClauseElement,
    ColumnElement,
    Connection,
    Executable,
    RowMapping,
    bindparam,
    case,
    func,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.compiler import SQLCompiler
from sqlmodel import Session

from engine.assessment import Assessment, Decision, Reason
from engine.events import ConversationEvent, ConversationMeta, Customer, EventType, Role
from storage import tables
from storage._sql import MAX_PARAMETERS, chunks, connection
from storage.codec import reasons_from_json, reasons_to_json
from storage.types import UtcDateTime, sqlite_utc_text

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


def _record(row: Mapping[Any, Any]) -> ConversationRecord:
    metadata = row["metadata"] or {}
    return ConversationRecord(
        id=row["id"],
        meta=ConversationMeta(
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
        ),
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
    """One conversation's new events with the engine's verdicts, to insert (`store`)."""

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
    state: dict[str, Any]
    score: float
    level: str | None
    status: str  # "active" or "ended"
    last_event_at: datetime | None
    first_event_at: datetime | None = None
    now: datetime | None = None


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
    """`lock_conversation` for several different conversations; the records by id.

    The upserts run in the order of the conversation ids, whatever the order of `requests`: two
    writers locking overlapping sets of conversations take the row locks in the same order, so
    neither can wait for the other while holding a lock the other needs (no deadlock). On
    PostgreSQL they travel in one round trip (psycopg pipelines them), one statement each.
    """
    ordered = sorted(requests, key=lambda request: request.conversation_id)
    for first, second in itertools.pairwise(ordered):
        if first.conversation_id == second.conversation_id:
            raise ValueError(f"conversation {first.conversation_id!r} is named twice")
    if not ordered:
        return {}
    conn = connection(session)
    prepared = _prepared("lock", conn.dialect)
    parameters = [prepared.parameters(_lock_values(request)) for request in ordered]
    with _driver(conn, prepared.sql) as driver:
        rows, description = prepared.returning(driver, parameters)
    records = [_record(prepared.row(row, description)) for row in rows]
    return {record.id: record for record in records}


def _lock_values(request: LockRequest) -> dict[str, Any]:
    meta = request.meta
    customer = meta.customer
    return {
        "id": request.conversation_id,
        "platform": meta.platform,
        "customer_id": customer.id,
        "customer_name": customer.name,
        "customer_tier": customer.tier,
        "customer_email": customer.email,
        "metadata": dict(meta.metadata),
        "language": meta.language,
        "link": meta.link,
        "score": 0.0,
        "status": "active",
        "created_at": request.now,
        "updated_at": request.now,
    }


# The keys each prepared statement is compiled for (every caller passes all of them).
_LOCK_KEYS = (
    "id",
    "platform",
    "customer_id",
    "customer_name",
    "customer_tier",
    "customer_email",
    "metadata",
    "language",
    "link",
    "score",
    "status",
    "created_at",
    "updated_at",
)
_EVENT_KEYS = tuple(column.key for column in _events.columns if column is not _events.c.pk)
_BATCH_VALUES = frozenset({"received_at"})  # the same for every event of a batch


@contextmanager
def _driver(conn: Connection, sql: str) -> Iterator[Any]:
    """The connection's driver connection (sqlite3 or psycopg), inside the transaction.

    The driver's errors come out as SQLAlchemy's (IntegrityError, OperationalError, ...), as
    from `Connection.execute`, and a lost connection is invalidated.
    """
    dialect = conn.dialect
    pooled = conn.connection
    try:
        yield pooled.driver_connection
    except dialect.loaded_dbapi.Error as error:
        lost = dialect.is_disconnect(error, pooled.dbapi_connection, None)
        if lost:
            conn.invalidate(error)
        raise DBAPIError.instance(
            sql,
            None,
            error,
            dialect.loaded_dbapi.Error,
            dialect=dialect,
            connection_invalidated=lost,
        ) from error


def _bind_processor(kind: Any, dialect: Dialect) -> Callable[[Any], Any] | None:
    """The column type's conversion of a value on its way to the driver (None: as it is)."""
    if isinstance(kind, UtcDateTime) and dialect.name == "sqlite":
        return sqlite_utc_text  # the same text as the two conversions below, in one step
    process: Callable[[Any], Any] | None = kind.dialect_impl(dialect).bind_processor(dialect)
    return process


class _Prepared:
    """A statement compiled once for a dialect and run straight on the driver.

    The driver keeps the statement prepared (sqlite3 in its statement cache, psycopg on the
    server after a few runs), and the values get each column's own SQLAlchemy conversion on the
    way in (UTC datetimes, JSON) and out (RETURNING); what is skipped is SQLAlchemy's
    per-execution machinery, which cost more than the database's own work. Several rows go
    through `executemany`: one loop in sqlite3, one round trip on PostgreSQL (psycopg sends the
    statements as a pipeline, each executed in turn).
    """

    def __init__(self, statement: ClauseElement, dialect: Dialect, keys: Iterable[str]) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect, column_keys=list(keys)))
        if compiled.escaped_bind_names:
            raise ValueError("prepared statements take plain parameter names only")
        self.sql = compiled.string
        self.dialect = dialect
        # SQLite takes `?` placeholders in order (a name may repeat), psycopg `%(name)s` ones.
        self.positional = compiled.positiontup is not None
        binds = compiled.binds
        self.names = tuple(compiled.positiontup if self.positional else binds)  # type: ignore[arg-type]
        # One conversion per name, written to every place the name takes (SQLite repeats a
        # name used twice: `b_first` fills three `?`).
        places: dict[str, list[Any]] = {}
        for index, name in enumerate(self.names):
            places.setdefault(name, []).append(index if self.positional else name)
        self.conversions = tuple(
            (name, process, tuple(where))
            for name, where in places.items()
            if (process := _bind_processor(binds[name].type, dialect)) is not None
        )
        returned = compiled._result_columns or []  # (key, name, objects, type) of RETURNING
        self.columns = tuple(column.keyname for column in returned)
        self.types = tuple(column.type for column in returned)
        self.results: tuple[Any, ...] | None = None

    def parameters(
        self, values: Mapping[str, Any], *, like: Any = None, same: frozenset[str] = frozenset()
    ) -> Any:
        """The values as the driver takes them (a list or a dict), converted.

        The values named in `same` are taken, already converted, from `like`: what this method
        returned for an earlier run with the same values there (a batch's arrival time).
        """
        converted: Any = (
            [values[name] for name in self.names]
            if self.positional
            else {name: values[name] for name in self.names}
        )
        for name, process, keys in self.conversions:  # a list takes places, a dict names
            if like is not None and name in same:
                for key in keys:
                    converted[key] = like[key]
                continue
            value = values[name]
            if value is not None:
                value = process(value)
                for key in keys:
                    converted[key] = value
        return converted

    def returning(self, driver: Any, parameters: Sequence[Any]) -> tuple[list[Any], Any]:
        """Run once per parameter set; the rows all the runs returned and their description."""
        if self.positional:  # sqlite3: in-process, a call per run costs next to nothing
            rows: list[Any] = []
            description = None
            for values in parameters:
                cursor = driver.execute(self.sql, values)
                rows.extend(cursor.fetchall())
                description = cursor.description
            return rows, description
        with driver.cursor() as cursor:
            cursor.executemany(self.sql, parameters, returning=True)
            description = cursor.description  # the same for every run (built on each call)
            rows = cursor.fetchall()
            while cursor.nextset():
                rows.extend(cursor.fetchall())
            return rows, description

    def many(self, driver: Any, parameters: Sequence[Any]) -> Any:
        """Run once per parameter set (no RETURNING); the cursor, whose rowcount is the total
        (read it after a surrounding psycopg pipeline has ended)."""
        if self.positional:
            return driver.executemany(self.sql, parameters)
        cursor = driver.cursor()
        cursor.executemany(self.sql, parameters)
        return cursor

    def row(self, returned: Sequence[Any], description: Any) -> dict[str, Any]:
        """A RETURNING row as {column: value}, converted back."""
        results = self.results
        if results is None:
            # psycopg's type codes say which conversion a column needs (SQLite's are None).
            codes = [column[1] for column in description] if description else []
            codes += [None] * (len(self.types) - len(codes))
            results = self.results = tuple(
                kind.dialect_impl(self.dialect).result_processor(self.dialect, code)
                for kind, code in zip(self.types, codes, strict=True)
            )
        return {
            name: value if process is None or value is None else process(value)
            for name, value, process in zip(self.columns, returned, results, strict=True)
        }


_PREPARED: dict[tuple[str, str, str], _Prepared] = {}


def _prepared(name: str, dialect: Dialect) -> _Prepared:
    """The hot statement `name` ("lock", "insert_events", "save_state") for this dialect."""
    key = (name, dialect.name, dialect.driver)
    prepared = _PREPARED.get(key)
    if prepared is None:
        if name == "lock":
            prepared = _Prepared(
                cast(ClauseElement, _lock_statement(dialect.name)), dialect, _LOCK_KEYS
            )
        elif name == "insert_events":
            statement = _insert_events_statement(dialect.name)
            prepared = _Prepared(cast(ClauseElement, statement), dialect, _EVENT_KEYS)
        else:
            prepared = _Prepared(cast(ClauseElement, _SAVE_STATE), dialect, ())
        _PREPARED[key] = prepared
    return prepared


# Hot-path statements are built once per dialect and reused: building and cache-keying a fresh
# upsert per event cost more than running it. Values travel as execute parameters.
_LOCK_STATEMENTS: dict[str, Executable] = {}
_KNOWN_EVENTS = select(_events.c.event_id).where(
    _events.c.conversation_id == bindparam("conversation_id"),
    _events.c.event_id.in_(bindparam("event_ids", expanding=True)),
)
_KNOWN_PAIRS = select(_events.c.conversation_id, _events.c.event_id).where(
    tuple_(_events.c.conversation_id, _events.c.event_id).in_(bindparam("pairs", expanding=True))
)


def _lock_statement(dialect: str) -> Executable:
    statement = _LOCK_STATEMENTS.get(dialect)
    if statement is not None:
        return statement
    insert = (
        postgresql.insert(_conversations)
        if dialect == "postgresql"
        else sqlite.insert(_conversations)
    )
    excluded = insert.excluded
    stored_metadata = _conversations.c["metadata"]
    merged_metadata: ColumnElement[Any]
    if dialect == "postgresql":
        merged_metadata = func.coalesce(stored_metadata, text("'{}'::jsonb")).op("||")(
            excluded["metadata"]
        )
    else:
        merged_metadata = func.json_patch(
            func.coalesce(stored_metadata, text("'{}'")), excluded["metadata"]
        )

    def keep_unless_given(name: str) -> ColumnElement[Any]:
        return func.coalesce(excluded[name], _conversations.c[name])

    statement = insert.on_conflict_do_update(
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
    _LOCK_STATEMENTS[dialect] = statement
    return statement


def _insert_events_statement(dialect: str) -> Executable:
    insert = postgresql.insert(_events) if dialect == "postgresql" else sqlite.insert(_events)
    return insert.on_conflict_do_nothing(
        index_elements=[_events.c.conversation_id, _events.c.event_id]
    )


def get_conversation(*, session: Session, conversation_id: str) -> ConversationRecord | None:
    """The conversation, or None when no event of it was ever stored."""
    row = (
        connection(session)
        .execute(select(_conversations).where(_conversations.c.id == conversation_id))
        .mappings()
        .one_or_none()
    )
    return _record(row) if row is not None else None


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
    one statement (per 15,000 ids) instead of one per conversation."""
    found: dict[str, set[str]] = {conversation_id: set() for conversation_id in event_ids}
    pairs = list(
        dict.fromkeys(
            (conversation_id, event_id)
            for conversation_id, ids in event_ids.items()
            for event_id in ids
        )
    )
    conn = connection(session)
    for chunk in chunks(pairs, MAX_PARAMETERS // 2):
        for conversation_id, event_id in conn.execute(_KNOWN_PAIRS, {"pairs": list(chunk)}):
            found[conversation_id].add(event_id)
    return found


def _event_values(
    conversation_id: str,
    event: ConversationEvent,
    assessment: Assessment | None,
    received_at: datetime,
) -> dict[str, Any]:
    return {
        "conversation_id": conversation_id,
        "event_id": event.event_id,
        "type": event.type.value,
        "role": event.role.value if event.role is not None else None,
        "text": event.text,
        "intent": event.intent,
        "confidence": event.confidence,
        "fallback": event.fallback,
        "outcome": event.outcome,
        "timestamp": event.timestamp,
        "received_at": received_at,
        "extra": dict(event.extra) if event.extra else None,
        "score": assessment.score if assessment is not None else None,
        "level": assessment.level if assessment is not None else None,
        "reasons": reasons_to_json(assessment.reasons) if assessment is not None else None,
        "decision": assessment.decision.value if assessment is not None else None,
    }


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
) -> int:
    """Insert events (as `insert_events`), then save states (as `save_state`), for any number of
    conversations: one `executemany` per statement, and on PostgreSQL one round trip in all.

    Returns how many event rows were inserted (already stored event ids are skipped). The
    conversations must exist (`lock_conversations`). `commit=True` also commits the session's
    transaction (on PostgreSQL in the same round trip): the caller must have nothing more to
    run in it, and its own commit then has nothing left to do. Not inside a savepoint.
    """
    if commit and session.in_nested_transaction():
        raise ValueError("store(commit=True) inside a savepoint")
    for change in states:
        if change.status not in ("active", "ended"):
            raise ValueError(
                f"conversation status must be 'active' or 'ended', not {change.status!r}"
            )
    conn = connection(session)
    dialect = conn.dialect
    inserting = _prepared("insert_events", dialect)
    saving = _prepared("save_state", dialect)
    event_parameters: list[Any] = []
    for batch in events:
        converted = None  # the batch's arrival time is converted once
        for event, verdict in batch.rows:
            values = _event_values(batch.conversation_id, event, verdict, batch.received_at)
            converted = inserting.parameters(values, like=converted, same=_BATCH_VALUES)
            event_parameters.append(converted)
    state_parameters = [saving.parameters(_state_values(change)) for change in states]
    if not event_parameters and not state_parameters and not commit:
        return 0
    inserted = None
    with _driver(conn, inserting.sql if event_parameters else saving.sql) as driver:
        if inserting.positional:  # sqlite3
            if event_parameters:
                inserted = inserting.many(driver, event_parameters)
            if state_parameters:
                saving.many(driver, state_parameters)
            if commit:
                driver.commit()
        else:
            # psycopg sends every statement (and the COMMIT) and waits for the server once,
            # when the pipeline ends. A failed statement aborts the rest, COMMIT included.
            with driver.pipeline():
                if event_parameters:
                    inserted = inserting.many(driver, event_parameters)
                if state_parameters:
                    saving.many(driver, state_parameters)
                if commit:
                    driver.execute("COMMIT")
    # sqlite3 and psycopg count only the rows inserted, not those ON CONFLICT skipped.
    return int(inserted.rowcount) if inserted is not None else 0


def _state_values(change: StateUpdate) -> dict[str, Any]:
    last = change.last_event_at
    return {
        "b_id": change.conversation_id,
        "b_state": change.state,
        "b_score": change.score,
        "b_level": change.level,
        "b_status": change.status,
        "b_updated_at": change.now if change.now is not None else datetime.now(UTC),
        "b_last": last,
        "b_first": change.first_event_at if change.first_event_at is not None else last,
    }


def _save_state_statement() -> Executable:
    stored_first = _conversations.c.first_event_at
    given_first = bindparam("b_first", type_=UtcDateTime())
    return (
        update(_conversations)
        .where(_conversations.c.id == bindparam("b_id"))
        .values(
            state=bindparam("b_state", type_=_conversations.c.state.type),
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


def _stored_event(row: RowMapping) -> StoredEvent:
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
        reasons=reasons_from_json(row["reasons"]),
        decision=Decision(row["decision"]) if row["decision"] is not None else None,
    )


def transcript(*, session: Session, conversation_id: str) -> list[StoredEvent]:
    """Every event of the conversation, by timestamp then arrival, with the verdicts."""
    result = connection(session).execute(
        select(_events)
        .where(_events.c.conversation_id == conversation_id)
        .order_by(_events.c.timestamp, _events.c.pk)
    )
    return [_stored_event(row) for row in result.mappings()]


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
