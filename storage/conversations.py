"""Conversations and their events: the per-conversation lock, event inserts, transcripts."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
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
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlmodel import Session

from engine.assessment import Assessment, Decision, Reason
from engine.events import ConversationEvent, ConversationMeta, Customer, EventType, Role
from storage import tables
from storage._sql import MAX_PARAMETERS, chunks, connection
from storage.codec import reasons_from_json, reasons_to_json
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


def lock_conversation(
    *, session: Session, conversation_id: str, meta: ConversationMeta, now: datetime
) -> ConversationRecord:
    """Create or update the conversation with `meta` and lock it until the transaction ends.

    Fields the new meta leaves empty keep their stored value; metadata keys are merged, the new
    value winning. On PostgreSQL the upsert's row lock serialises every writer of this
    conversation (one statement: ON CONFLICT DO UPDATE locks the row like SELECT ... FOR UPDATE
    would); on SQLite the transaction already holds the database write lock.
    """
    customer = meta.customer
    conn = connection(session)
    values = {
        "id": conversation_id,
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
        "created_at": now,
        "updated_at": now,
    }
    if conn.dialect.name == "sqlite":
        prepared = _sqlite_prepared("lock", conn.dialect, values)
        (returned,) = prepared.run(conn, values).fetchall()
        return _record(prepared.row(returned))
    row = conn.execute(_lock_statement(conn.dialect.name), values).mappings().one()
    return _record(row)


class _SqlitePrepared:
    """A statement compiled once to SQLite's SQL text and run straight on the driver.

    sqlite3 keeps the prepared statement in its own cache, and the values get each column's own
    SQLAlchemy conversion on the way in (UTC datetimes, JSON text) and out (RETURNING); what is
    skipped is SQLAlchemy's per-execution machinery, which cost more than SQLite's work.
    """

    def __init__(self, statement: ClauseElement, dialect: Dialect, keys: Iterable[str]) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect, column_keys=list(keys)))
        self.sql = compiled.string
        binds = compiled.binds
        self.names = tuple(compiled.positiontup or ())
        self.binds = tuple(
            binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in self.names
        )
        returned = compiled._result_columns or []  # (key, name, objects, type) of RETURNING
        self.columns = tuple(column.keyname for column in returned)
        self.results = tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in returned
        )

    def parameters(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        """The values in the statement's order, converted for the driver."""
        return tuple(
            value if process is None or value is None else process(value)
            for value, process in zip(
                [values[name] for name in self.names], self.binds, strict=True
            )
        )

    def run(self, conn: Connection, values: Mapping[str, Any]) -> Any:
        """Execute on the connection's driver connection; the sqlite3 cursor."""
        return conn.connection.driver_connection.execute(  # type: ignore[union-attr]
            self.sql, self.parameters(values)
        )

    def row(self, returned: Sequence[Any]) -> dict[str, Any]:
        """A RETURNING row as {column: value}, converted back."""
        return {
            name: value if process is None or value is None else process(value)
            for name, value, process in zip(self.columns, returned, self.results, strict=True)
        }


_SQLITE_PREPARED: dict[str, _SqlitePrepared] = {}


def _sqlite_prepared(name: str, dialect: Dialect, values: Mapping[str, Any]) -> _SqlitePrepared:
    """The statement `name` compiled for the keys of `values` (each caller passes fixed keys)."""
    prepared = _SQLITE_PREPARED.get(name)
    if prepared is None:
        statement = _lock_statement(dialect.name) if name == "lock" else _SAVE_STATE
        prepared = _SqlitePrepared(cast(ClauseElement, statement), dialect, values)
        _SQLITE_PREPARED[name] = prepared
    return prepared


# Hot-path statements are built once per dialect and reused: building and cache-keying a fresh
# upsert per event cost more than running it. Values travel as execute parameters.
_LOCK_STATEMENTS: dict[str, Executable] = {}
_INSERT_EVENT_STATEMENTS: dict[str, Executable] = {}
_KNOWN_EVENTS = select(_events.c.event_id).where(
    _events.c.conversation_id == bindparam("conversation_id"),
    _events.c.event_id.in_(bindparam("event_ids", expanding=True)),
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
    statement = _INSERT_EVENT_STATEMENTS.get(dialect)
    if statement is None:
        insert = postgresql.insert(_events) if dialect == "postgresql" else sqlite.insert(_events)
        statement = (
            insert.on_conflict_do_nothing(
                index_elements=[_events.c.conversation_id, _events.c.event_id]
            )
            # RETURNING counts what was inserted; psycopg reports no rowcount for this form.
            .returning(_events.c.pk)
        )
        _INSERT_EVENT_STATEMENTS[dialect] = statement
    return statement


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
    if not rows:
        return 0
    values = [
        _event_values(conversation_id, event, assessment, received_at) for event, assessment in rows
    ]
    conn = connection(session)
    if conn.dialect.name == "sqlite":
        # One plain INSERT, prepared once by sqlite3 and run over every row with executemany:
        # in-process SQLite answers in microseconds, so SQLAlchemy's per-row work was the cost.
        sql, columns, processors = _sqlite_insert_events(conn.dialect)
        rows_out = [
            tuple(
                value if process is None or value is None else process(value)
                for value, process in zip((row[name] for name in columns), processors, strict=True)
            )
            for row in values
        ]
        # sqlite3 counts only the rows inserted, not those ON CONFLICT skipped.
        return int(conn.exec_driver_sql(sql, rows_out).rowcount)
    # One prepared INSERT run over all rows: SQLAlchemy sends them as multi-row VALUES pages
    # ("insertmanyvalues"), so a 100-event post is a few round trips, compiled once per process.
    result = conn.execute(_insert_events_statement(conn.dialect.name), values)
    return len(result.all())


_SqliteInsert = tuple[str, tuple[str, ...], tuple[Callable[[Any], Any] | None, ...]]
_SQLITE_INSERT_EVENTS: list[_SqliteInsert] = []


def _sqlite_insert_events(dialect: Dialect) -> _SqliteInsert:
    """The events INSERT as SQL text, its columns, and each column's own bind conversion
    (the same SQLAlchemy applies: UTC datetimes, JSON text)."""
    if not _SQLITE_INSERT_EVENTS:
        columns = tuple(
            column.name for column in _events.columns if column.name != _events.c.pk.name
        )
        processors = tuple(
            _events.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in columns
        )
        # Every name comes from the table definition, none from input.
        names = ", ".join(f'"{name}"' for name in columns)
        sql = (
            f'INSERT INTO "{_events.name}" ({names}) '  # noqa: S608
            f"VALUES ({', '.join('?' for _ in columns)}) "
            "ON CONFLICT (conversation_id, event_id) DO NOTHING"
        )
        _SQLITE_INSERT_EVENTS.append((sql, columns, processors))
    return _SQLITE_INSERT_EVENTS[0]


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
    if status not in ("active", "ended"):
        raise ValueError(f"conversation status must be 'active' or 'ended', not {status!r}")
    first = first_event_at if first_event_at is not None else last_event_at
    values = {
        "b_id": conversation_id,
        "b_state": state,
        "b_score": score,
        "b_level": level,
        "b_status": status,
        "b_updated_at": now if now is not None else datetime.now(UTC),
        "b_last": last_event_at,
        "b_first": first,
    }
    conn = connection(session)
    if conn.dialect.name == "sqlite":
        _sqlite_prepared("save_state", conn.dialect, values).run(conn, values)
        return
    conn.execute(_SAVE_STATE, values)


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
