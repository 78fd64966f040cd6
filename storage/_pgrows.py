"""PostgreSQL statements that take their rows as one array per column (`unnest`), for the
ingest's writes (`storage.conversations`, `storage.outbox`); the arrays of text travel in
PostgreSQL's binary format (`storage._pgarrays`)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import JSON, Boolean, Column, Float, Integer, String, Table
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeEngine

from storage import _pgpipeline
from storage._pgarrays import text_array
from storage._prepared import Results, bind_processor
from storage.types import UtcDateTime

# The PostgreSQL array type for each kind of column, the first that matches.
_ARRAY_TYPES: tuple[tuple[type[TypeEngine[Any]], str], ...] = (
    (UtcDateTime, "timestamptz[]"),
    # JSON is sent as its text and cast on the server (`insert_columns`): psycopg would encode
    # each value through its own Python-level JSON dumper.
    (JSON, "text[]"),
    (Float, "float8[]"),
    (Boolean, "boolean[]"),
    (Integer, "int8[]"),
    # Not varchar(n)[]: that cast would cut a value too long for the column, which the column
    # itself refuses (as it refuses it from a plain INSERT).
    (String, "text[]"),
)


def array_type(kind: TypeEngine[Any], dialect: Dialect) -> str:
    """The PostgreSQL type of an array of the column type's values."""
    for kind_of, array in _ARRAY_TYPES:
        if isinstance(kind, kind_of):
            return array
    raise TypeError(f"no array type for {kind!r}")


def array_conversion(kind: TypeEngine[Any], dialect: Dialect) -> Callable[[Any], Any] | None:
    """What each value of a column's array goes through (None: as it is)."""
    if isinstance(kind, JSON):
        return json.dumps  # the text the JSON column's own conversion writes
    process = bind_processor(kind, dialect)
    if isinstance(kind, Float) and process is None:
        # psycopg cannot send a list mixing ints and floats (an int is a fine float here).
        return float
    return process


def converted(values: Iterable[Any], process: Callable[[Any], Any]) -> list[Any]:
    """`process` applied to each value but None; a value repeated in a row (a batch's
    arrival time, the clock of a round) is converted once."""
    converted: list[Any] = []
    last: Any = None
    result: Any = None
    for value in values:
        if value is not last:
            last = value
            result = None if value is None else process(value)
        converted.append(result)
    return converted


class Arrays:
    """A PostgreSQL statement taking its rows as one array per column (`unnest`).

    Any number of rows is one statement, and its text is always the same (with `keep_plan`,
    prepared once per connection by `_pgpipeline`): psycopg and the server handle one statement
    where a statement per row (sent as a pipeline) cost them more than the rows themselves. Each
    value gets its column type's SQLAlchemy conversion on the way in, and RETURNING rows on the
    way out, as with `Prepared`.
    """

    def __init__(
        self,
        sql: str,
        columns: Sequence[tuple[str, Column[Any]]],
        dialect: Dialect,
        returning: Sequence[Column[Any]] = (),
        *,
        keep_plan: bool = False,
    ) -> None:
        self.sql = sql
        self.command = sql.encode()  # as `_pgpipeline` sends it
        if keep_plan:  # prepared once per connection (`_pgpipeline.keep_plan`)
            _pgpipeline.keep_plan(self.command)
        self.columns = tuple(
            (
                name,
                array_conversion(column.type, dialect),
                array_type(column.type, dialect) == "text[]",
            )
            for name, column in columns
        )
        self.results = Results(
            [column.key for column in returning], [column.type for column in returning], dialect
        )

    def parameters(self, rows: Sequence[Mapping[str, Any]]) -> _pgpipeline.Statement:
        """The statement with the rows' values ({name: value} each), one array per column."""
        return self.from_columns([[row[name] for row in rows] for name, _, _ in self.columns])

    def from_columns(self, values: Iterable[Sequence[Any]]) -> _pgpipeline.Statement:
        """The statement with each column's values (in the order of `columns`) as its array,
        converted."""
        parameters: list[Any] = []
        for (_, process, as_text), column in zip(self.columns, values, strict=True):
            array = list(column) if process is None else converted(column, process)
            parameters.append(text_array(array) if as_text else array)
        return self.command, parameters


def unnest(columns: Sequence[tuple[str, Column[Any]]], dialect: Dialect, start: int = 1) -> str:
    """`unnest($1::text[], ...)`: the arrays of `Arrays.parameters`, a row per index (their
    placeholders numbered from `start`, for a statement with several).

    The arrays travel in binary: psycopg writes the text form of an array in Python, escaping
    each element with a regular expression, which cost more than the statements per row did.
    """
    arrays = ", ".join(
        f"${place}::{array_type(column.type, dialect)}"
        for place, (_, column) in enumerate(columns, start=start)
    )
    return f"unnest({arrays})"


def insert_columns(
    table: Table, keys: Sequence[str], dialect: Dialect
) -> tuple[list[tuple[str, Column[Any]]], str, str]:
    """The columns an `unnest` INSERT takes, their quoted names ("a, b") and the same read from
    the unnested row ("v.a, v.b")."""
    quote = dialect.identifier_preparer.quote
    columns = [(key, table.c[key]) for key in keys]
    names = ", ".join(quote(column.name) for _, column in columns)
    values = ", ".join(
        f"v.{quote(column.name)}::{column.type.compile(dialect=dialect).lower()}"
        if isinstance(column.type, JSON)  # its JSON text (`array_type`), read as jsonb
        else f"v.{quote(column.name)}"
        for _, column in columns
    )
    return columns, names, values
