"""Statements compiled once and run straight on the driver (the hot write paths).

SQLAlchemy's per-execution machinery (building the execution context, processing every
parameter and result column through the dialect) costs more than SQLite's own work for the
small statements ingest runs for every post. These helpers compile a statement once, convert
values with each column's own SQLAlchemy type (so the stored text is what `Connection.execute`
would store), and run it on the driver connection inside the session's transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ClauseElement, Connection, Executable
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.compiler import SQLCompiler

from storage.types import UtcDateTime, sqlite_utc_text


@contextmanager
def driver_connection(conn: Connection, sql: str) -> Iterator[Any]:
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


class SqliteTimes:
    """`sqlite_utc_text`, remembering the texts of the datetimes it converted last.

    One post's arrival time is written as the conversation's creation and update time, the
    events' arrival time and the state's update time, and an event's time as its own, the
    conversation's first and last: the same objects, converted once each. Datetimes cannot
    change, so the same object always has the same text. The object is kept beside its text:
    while it is remembered, its id cannot be given to another object.
    """

    LIMIT = 1024  # forgotten all at once past this (a group holds at most 256 posts)

    def __init__(self) -> None:
        self._seen: dict[int, tuple[datetime, str]] = {}

    def __call__(self, value: datetime) -> str:
        seen = self._seen.get(id(value))
        if seen is not None and seen[0] is value:
            return seen[1]
        text = sqlite_utc_text(value)
        if len(self._seen) >= self.LIMIT:
            self._seen.clear()
        self._seen[id(value)] = (value, text)  # one store: other threads see all or nothing
        return text


_SQLITE_TIMES = SqliteTimes()


def bind_processor(kind: Any, dialect: Dialect) -> Callable[[Any], Any] | None:
    """The column type's conversion of a value on its way to the driver (None: as it is)."""
    if isinstance(kind, UtcDateTime) and dialect.name == "sqlite":
        return _SQLITE_TIMES  # the same text as the two conversions below, in one step
    process: Callable[[Any], Any] | None = kind.dialect_impl(dialect).bind_processor(dialect)
    return process


class Results:
    """RETURNING rows as {column: value}, each value converted back by its column's type."""

    def __init__(self, columns: Sequence[str], types: Sequence[Any], dialect: Dialect) -> None:
        self.columns = tuple(columns)
        self.types = tuple(types)
        self.dialect = dialect
        self.processors: tuple[Any, ...] | None = None

    def prime(self, codes: Sequence[Any]) -> None:
        """Work out each column's conversion from the driver's type codes (psycopg's oids;
        SQLite has none)."""
        codes = [*codes, *[None] * (len(self.types) - len(codes))]
        self.processors = tuple(
            kind.dialect_impl(self.dialect).result_processor(self.dialect, code)
            for kind, code in zip(self.types, codes, strict=True)
        )

    def row(self, returned: Sequence[Any], description: Any) -> dict[str, Any]:
        """A RETURNING row as {column: value}, converted back (`description`, the cursor's,
        is read only for the first row, unless `prime` came first)."""
        processors = self.processors
        if processors is None:
            self.prime([column[1] for column in description] if description else [])
            processors = self.processors
            assert processors is not None
        return {
            name: value if process is None or value is None else process(value)
            for name, value, process in zip(self.columns, returned, processors, strict=True)
        }


class Prepared:
    """A statement compiled once for SQLite and run straight on sqlite3.

    sqlite3 keeps the statement prepared in its statement cache, and the values get each
    column's own SQLAlchemy conversion on the way in (UTC datetimes, JSON) and out (RETURNING);
    what is skipped is SQLAlchemy's per-execution machinery, which cost more than the database's
    own work. Several rows go through `executemany` (one loop in sqlite3).
    """

    def __init__(self, statement: ClauseElement, dialect: Dialect, keys: Iterable[str]) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect, column_keys=list(keys)))
        if compiled.escaped_bind_names:
            raise ValueError("prepared statements take plain parameter names only")
        if compiled.positiontup is None:
            raise ValueError("prepared statements take positional (`?`) placeholders only")
        self.sql = compiled.string
        # `?` placeholders in order; a name may repeat (`b_first` fills three `?`). One
        # conversion per name, written to every place the name takes.
        self.names = tuple(compiled.positiontup)
        places: dict[str, list[int]] = {}
        for index, name in enumerate(self.names):
            places.setdefault(name, []).append(index)
        binds = compiled.binds
        self.conversions = tuple(
            (name, process, tuple(where))
            for name, where in places.items()
            if (process := bind_processor(binds[name].type, dialect)) is not None
        )
        returned = compiled._result_columns or []  # (key, name, objects, type) of RETURNING
        self.results = Results(
            [column.keyname for column in returned], [column.type for column in returned], dialect
        )

    def parameters(self, values: Mapping[str, Any]) -> list[Any]:
        """The values as the driver takes them (in placeholder order), converted."""
        converted = [values[name] for name in self.names]
        for name, process, places in self.conversions:
            value = values[name]
            if value is not None:
                value = process(value)
                for place in places:
                    converted[place] = value
        return converted

    def returning(self, driver: Any, parameters: Sequence[Any]) -> tuple[list[Any], Any]:
        """Run once per parameter set; the rows all the runs returned and their description."""
        rows: list[Any] = []
        description = None
        for values in parameters:  # in-process: a call per run costs next to nothing
            cursor = driver.execute(self.sql, values)
            rows.extend(cursor.fetchall())
            description = cursor.description
        return rows, description

    def many(self, driver: Any, parameters: Sequence[Any]) -> Any:
        """Run once per parameter set (no RETURNING); the cursor, whose rowcount is the total."""
        return driver.executemany(self.sql, parameters)


_COMPILED: dict[tuple[int, frozenset[str], str], tuple[Executable, Prepared]] = {}


def prepared(statement: Executable, dialect: Dialect, keys: Iterable[str]) -> Prepared:
    """`statement` compiled for SQLite with the value names `keys`, once per statement, set of
    names and driver."""
    names = frozenset(keys)
    key = (id(statement), names, dialect.driver)
    entry = _COMPILED.get(key)
    if entry is None or entry[0] is not statement:  # (an id is only unique while alive)
        entry = _COMPILED[key] = (
            statement,
            Prepared(cast(ClauseElement, statement), dialect, names),
        )
    return entry[1]


def execute(
    conn: Connection, statement: Executable, values: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Run `statement` once with `values` (named as for `Connection.execute`); the rows it
    returns (RETURNING) as {column: value}, converted back by each column's type.

    On SQLite it runs straight on sqlite3, compiled once per statement and set of value names.
    On PostgreSQL it goes through `Connection.execute`, where the round trip, not SQLAlchemy,
    is the larger cost (and psycopg prepares a statement it runs often).
    """
    if conn.dialect.name != "sqlite":
        return [dict(row) for row in conn.execute(statement, values).mappings()]
    compiled = prepared(statement, conn.dialect, values)
    with driver_connection(conn, compiled.sql) as driver:
        rows, description = compiled.returning(driver, [compiled.parameters(values)])
    return [compiled.results.row(row, description) for row in rows]
