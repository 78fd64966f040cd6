"""The delivery outbox: durable work items (post/update a card, reply, call a platform).

Rows are written in the same transaction as the state change that needs them and taken by the
delivery worker with a lease, so a crashed worker's rows come back when the lease runs out.

A pending row with a `dedupe_key` absorbs later enqueues of the same key (the newest payload
wins), so ten quick transitions cost one card edit. Leasing clears the key: an edit enqueued
while a delivery is in flight must not merge into the row being sent with older content.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Executable, RowMapping, case, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from storage import _pgpipeline, tables
from storage._pgrows import Arrays, insert_columns, unnest
from storage._prepared import driver_connection, execute, prepared
from storage._sql import connection, is_postgres

_outbox = tables.outbox

PENDING = "pending"
DONE = "done"
FAILED = "failed"


# `enqueue` runs for every card, reply and edit: its two statements are built once (the
# coalescing one per dialect) and run with a dict of the row's values, so SQLAlchemy compiles
# each once instead of building, coercing and cache-keying a new statement per call.
_ENQUEUE = insert(_outbox).returning(_outbox.c.id)


def _coalescing_statement(insert_into: postgresql.Insert | sqlite.Insert) -> Executable:
    """A pending row with the same dedupe key takes the new payload and the earlier due time."""
    excluded = insert_into.excluded
    return insert_into.on_conflict_do_update(
        index_elements=[_outbox.c.dedupe_key],
        index_where=tables.PENDING_PREDICATE,
        set_={
            "payload": excluded.payload,
            "due_at": case(
                (excluded.due_at < _outbox.c.due_at, excluded.due_at), else_=_outbox.c.due_at
            ),
        },
    ).returning(_outbox.c.id)


_ENQUEUE_COALESCING = {
    "postgresql": _coalescing_statement(postgresql.insert(_outbox)),
    "sqlite": _coalescing_statement(sqlite.insert(_outbox)),
}


# `enqueue_many`'s rows: the columns it writes, the statement on SQLite (run with executemany,
# so without RETURNING), and PostgreSQL's from arrays, built once per driver.
_ENQUEUE_KEYS = (
    "kind",
    "surface",
    "escalation_id",
    "payload",
    "status",
    "attempts",
    "due_at",
    "created_at",
)
_ENQUEUE_ROWS = insert(_outbox)
_ENQUEUE_ARRAYS: dict[str, Arrays] = {}


def _enqueue_arrays(conn: Connection) -> Arrays:
    statement = _ENQUEUE_ARRAYS.get(conn.dialect.driver)
    if statement is None:
        columns, names, values = insert_columns(_outbox, _ENQUEUE_KEYS, conn.dialect)
        # In the order given (WITH ORDINALITY), as one `enqueue` after another would number them.
        sql = f"""
            INSERT INTO {_outbox.name} ({names})
            SELECT {values} FROM {unnest(columns, conn.dialect)} WITH ORDINALITY AS v({names}, ord)
            ORDER BY v.ord
        """  # noqa: S608 - only the schema's names are interpolated
        statement = _ENQUEUE_ARRAYS[conn.dialect.driver] = Arrays(
            sql, columns, conn.dialect, keep_plan=True
        )
    return statement


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """A delivery for `enqueue_many`: a row of its own (no dedupe key), due at `due_at`."""

    kind: str
    surface: str | None
    escalation_id: int | None
    payload: dict[str, Any]
    due_at: datetime


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """A leased delivery to make."""

    id: int
    kind: str
    surface: str | None
    escalation_id: int | None
    payload: dict[str, Any]
    attempts: int  # failed tries so far (retry_later and give_up count them)
    due_at: datetime
    leased_until: datetime | None
    created_at: datetime
    last_error: str | None


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """How far behind delivery is."""

    depth: int  # pending rows
    oldest_age_seconds: float | None  # age of the oldest pending row
    failed: int  # rows given up on


def _item(row: RowMapping) -> OutboxItem:
    return OutboxItem(
        id=row["id"],
        kind=row["kind"],
        surface=row["surface"],
        escalation_id=row["escalation_id"],
        payload=row["payload"] or {},
        attempts=row["attempts"],
        due_at=row["due_at"],
        leased_until=row["leased_until"],
        created_at=row["created_at"],
        last_error=row["last_error"],
    )


def enqueue(
    *,
    session: Session,
    kind: str,
    surface: str | None,
    escalation_id: int | None,
    payload: dict[str, Any],
    due_at: datetime,
    dedupe_key: str | None = None,
    now: datetime | None = None,
) -> int:
    """Add a delivery; returns its row id.

    With a `dedupe_key` that a pending row already has, that row takes the new payload and the
    earlier due time instead, and its id is returned.
    """
    conn = connection(session)
    values = {
        "kind": kind,
        "surface": surface,
        "escalation_id": escalation_id,
        "payload": payload,
        "status": PENDING,
        "attempts": 0,
        "due_at": due_at,
        "created_at": now if now is not None else due_at,
        "dedupe_key": dedupe_key,
    }
    statement: Executable
    if dedupe_key is None:
        statement = _ENQUEUE
    else:
        statement = _ENQUEUE_COALESCING[
            "postgresql" if conn.dialect.name == "postgresql" else "sqlite"
        ]
    return int(execute(conn, statement, values)[0]["id"])


POST_CARD = "post_card"


def post_card_key(escalation_id: int, surface: str, channel: str) -> str:
    """The dedupe key of the row that posts an escalation's card to a channel: asked again (an
    SLA hand-off to the same team) while it is pending, the one row stays."""
    return f"post:{escalation_id}:{surface}:{channel}"


def post_card_key_sql(escalation_id: str, surface: str, channel: str) -> str:
    """`post_card_key` as a PostgreSQL expression of three SQL expressions (an id, two texts)."""
    return f"'post:' || {escalation_id} || ':' || {surface} || ':' || {channel}"


def enqueue_card_post(
    *, session: Session, escalation_id: int, surface: str, channel: str, now: datetime
) -> int:
    """Ask for the escalation's card in a channel, due now; returns the row's id."""
    return enqueue(
        session=session,
        kind=POST_CARD,
        surface=surface,
        escalation_id=escalation_id,
        payload={"channel": channel},
        due_at=now,
        dedupe_key=post_card_key(escalation_id, surface, channel),
        now=now,
    )


def enqueue_many(
    *, session: Session, deliveries: Sequence[NewDelivery], later: bool = False
) -> list[_pgpipeline.Statement]:
    """Add deliveries, in order, as `enqueue` would one after another (each created at its due
    time), in one statement: an `executemany` on SQLite, one INSERT from arrays on PostgreSQL,
    where each `enqueue` is a round trip of its own.

    With `later`, the PostgreSQL statement is returned unsent instead, for the caller to send
    with its own writes in one round trip (the ingest: `conversations.store(also=...)`); SQLite
    writes at once. Returns the statements left to send (none without `later`)."""
    if not deliveries:
        return []
    conn = connection(session)
    rows = [
        {
            "kind": delivery.kind,
            "surface": delivery.surface,
            "escalation_id": delivery.escalation_id,
            "payload": delivery.payload,
            "status": PENDING,
            "attempts": 0,
            "due_at": delivery.due_at,
            "created_at": delivery.due_at,
        }
        for delivery in deliveries
    ]
    if conn.dialect.name == "postgresql":
        arrays = _enqueue_arrays(conn)
        statement = arrays.parameters(rows)
        if later:
            return [statement]
        with driver_connection(conn, arrays.sql) as driver:
            _pgpipeline.run(driver, [statement], commit=False)
        return []
    compiled = prepared(_ENQUEUE_ROWS, conn.dialect, _ENQUEUE_KEYS)
    with driver_connection(conn, compiled.sql) as driver:
        compiled.many(driver, [compiled.parameters(row) for row in rows])
    return []


def lease_due(
    *, session: Session, now: datetime, limit: int, lease_seconds: float
) -> list[OutboxItem]:
    """Take up to `limit` due rows for `lease_seconds`, oldest due first.

    On PostgreSQL the rows are picked with FOR UPDATE SKIP LOCKED, so concurrent workers
    (other replicas) never take the same row; on SQLite the write lock serialises them.
    """
    picked = (
        select(_outbox.c.id)
        .where(
            _outbox.c.status == PENDING,
            _outbox.c.due_at <= now,
            or_(_outbox.c.leased_until.is_(None), _outbox.c.leased_until <= now),
        )
        .order_by(_outbox.c.due_at, _outbox.c.id)
        .limit(limit)
    )
    if is_postgres(session):
        picked = picked.with_for_update(skip_locked=True)
    result = connection(session).execute(
        update(_outbox)
        .where(_outbox.c.id.in_(picked.scalar_subquery()))
        .values(
            leased_until=now + timedelta(seconds=lease_seconds),
            dedupe_key=None,
        )
        .returning(*_outbox.c)
    )
    items = [_item(row) for row in result.mappings()]
    # RETURNING does not promise any order.
    items.sort(key=lambda item: (item.due_at, item.id))
    return items


def complete(*, session: Session, item_id: int, now: datetime) -> None:
    """Mark a delivery done."""
    connection(session).execute(
        update(_outbox)
        .where(_outbox.c.id == item_id)
        .values(status=DONE, done_at=now, leased_until=None)
    )


def retry_later(*, session: Session, item_id: int, due_at: datetime, error: str) -> None:
    """Release a failed delivery to be tried again at `due_at`."""
    connection(session).execute(
        update(_outbox)
        .where(_outbox.c.id == item_id)
        .values(due_at=due_at, leased_until=None, last_error=error, attempts=_outbox.c.attempts + 1)
    )


# The prefix of `last_error` for a delivery the surface asked us to delay (429 Retry-After).
RATE_LIMITED = "rate limited: "


def bring_forward(*, session: Session, surface: str, now: datetime) -> int:
    """Make the surface's deliveries that wait out a backoff due now; returns how many.

    Called once the surface answers again after an outage, so that cards queued during it do
    not each wait out their own (up to minutes long) backoff. Deliveries the surface itself asked
    to delay (`Retry-After`) keep their time.
    """
    result = connection(session).execute(
        update(_outbox)
        .where(
            _outbox.c.status == PENDING,
            _outbox.c.surface == surface,
            _outbox.c.attempts > 0,
            _outbox.c.due_at > now,
            or_(_outbox.c.leased_until.is_(None), _outbox.c.leased_until <= now),
            or_(_outbox.c.last_error.is_(None), ~_outbox.c.last_error.startswith(RATE_LIMITED)),
        )
        .values(due_at=now)
    )
    return int(result.rowcount or 0)


def give_up(*, session: Session, item_id: int, error: str, now: datetime) -> None:
    """Mark a delivery failed for good (NotFound, Forbidden, too many attempts)."""
    connection(session).execute(
        update(_outbox)
        .where(_outbox.c.id == item_id)
        .values(
            status=FAILED,
            done_at=now,
            leased_until=None,
            last_error=error,
            attempts=_outbox.c.attempts + 1,
        )
    )


def stats(*, session: Session, now: datetime) -> OutboxStats:
    """Depth, age of the oldest pending row and the number of failed rows."""
    depth, oldest, failed = (
        connection(session)
        .execute(
            select(
                func.count().filter(_outbox.c.status == PENDING),
                func.min(_outbox.c.created_at).filter(_outbox.c.status == PENDING),
                func.count().filter(_outbox.c.status == FAILED),
            )
        )
        .one()
    )
    return OutboxStats(
        depth=int(depth),
        oldest_age_seconds=(now - oldest).total_seconds() if oldest is not None else None,
        failed=int(failed),
    )


def next_due_at(*, session: Session) -> datetime | None:
    """When the next pending row becomes available (due, and its lease, if any, run out)."""
    available_at = case(
        (_outbox.c.leased_until > _outbox.c.due_at, _outbox.c.leased_until),
        else_=_outbox.c.due_at,
    )
    result = connection(session).execute(
        select(func.min(available_at)).where(_outbox.c.status == PENDING)
    )
    value: datetime | None = result.scalar_one_or_none()
    return value


def pending(*, session: Session, escalation_id: int | None = None) -> list[OutboxItem]:
    """Pending rows (for the dashboard and tests), oldest due first."""
    statement = select(_outbox).where(_outbox.c.status == PENDING)
    if escalation_id is not None:
        statement = statement.where(_outbox.c.escalation_id == escalation_id)
    statement = statement.order_by(_outbox.c.due_at, _outbox.c.id)
    return [_item(row) for row in connection(session).execute(statement).mappings()]
