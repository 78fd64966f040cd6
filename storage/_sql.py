"""Small helpers shared by the query modules (not part of the public API)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

T = TypeVar("T")

# SQLite's default limit is 32766 bound parameters per statement; stay well below it.
MAX_PARAMETERS = 30_000


def connection(session: Session) -> Connection:
    """The session's connection, inside whatever transaction or savepoint the session is in."""
    return session.connection()


def is_postgres(session: Session) -> bool:
    """Whether the session talks to PostgreSQL (else SQLite)."""
    return session.connection().dialect.name == "postgresql"


def upsert(session: Session, table: Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that supports ON CONFLICT on this session's dialect."""
    if is_postgres(session):
        return postgresql.insert(table)
    return sqlite.insert(table)


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """`items` in consecutive slices of at most `size`."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
