"""The ingest writer's PostgreSQL statements, sent in one round trip through libpq's pipeline.

A group's transaction runs two batches of statements: BEGIN and the lock of its conversations,
then the events, the states and COMMIT. Through psycopg's cursor the BEGIN that psycopg opens a
transaction with was a round trip of its own, and psycopg's Python machinery around each
statement (its pipeline above all) cost the writer more than the rows did: on the benchmarks'
machine a statement and a COMMIT in psycopg's pipeline took about 140 µs of CPU, the same sent
through libpq directly about 30 µs.

`run` sends the statements on the connection's libpq handle as one pipeline, opening the
transaction first as psycopg would, waits for the server once (the interpreter released while it
waits) and gives back each statement's result. The values go through the connection's own
dumpers, and rows come back through its loaders, so what is stored and read is what psycopg's
cursor would store and read. A failed statement raises psycopg's error for it, as the cursor
would; the server skips the statements after it, COMMIT included, and the transaction is left
failed for the caller to roll back.

A statement is planned afresh each time unless its SQL was given to `keep_plan`. A prepared
statement's plan is kept once made, from the statistics of that moment, and psycopg's cursor
prepared every statement after five runs: on a new database the state's UPDATE kept a hash join
over a sequential scan of conversations, every group reading the whole table until the next
analyze (the benchmark's PostgreSQL figure moved between two levels from one run to the next
with it). Parsing and planning cost the server about a fifth of its work on these statements,
so those with one possible plan (an INSERT from `unnest`, nothing joined) are kept: each is
prepared once per connection, under a name of its own, and executed by name after (the server's
CPU per post in groups of 20: 111 -> 89 µs, `bench.writer_bench`). psycopg itself prepares
nothing on the database's connections (`storage.db`): it would drop these at every rollback.
A connection whose statements were dropped anyway (DISCARD ALL), or that has one this module
lost count of, fails one run, and goes on from the next.
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Sequence
from typing import Any, NamedTuple

from psycopg import Connection, errors, pq
from psycopg.abc import Buffer
from psycopg.abc import Transformer as TransformerType
from psycopg.adapt import PyFormat, Transformer

from storage.loopwait import READ, WRITE, wait_socket

__all__ = ["Result", "keep_plan", "run"]

_SYNC = pq.ExecStatus.PIPELINE_SYNC
_FAILED = pq.ExecStatus.FATAL_ERROR
_IDLE = pq.TransactionStatus.IDLE
_COMMAND_OK = pq.ExecStatus.COMMAND_OK
_SQLSTATE = pq.DiagnosticField.SQLSTATE
_ALREADY_PREPARED = b"42P05"  # duplicate_prepared_statement

# A statement's SQL (with `$1`, `$2`, ... placeholders) and its values in that order.
Statement = tuple[bytes, Sequence[Any]]
_QUERY, _PREPARE, _EXECUTE = range(3)


class _Command(NamedTuple):
    """What `_exchange` sends: a statement with its values (`_QUERY`), a statement to prepare
    under `name` (`_PREPARE`), or a prepared statement, named by `sql`, to run (`_EXECUTE`)."""

    kind: int
    sql: bytes
    values: Sequence[Buffer | None] | None = None  # in the server's form
    types: Sequence[int] | None = None
    formats: Sequence[Any] | None = None
    name: bytes = b""


_COMMIT = _Command(_QUERY, b"COMMIT")

# The SQL of the statements whose plans are kept (`keep_plan`).
_KEPT: set[bytes] = set()
# The statements prepared on each connection, by (SQL, parameter types).
_PREPARED: weakref.WeakKeyDictionary[Connection[Any], dict[tuple[bytes, tuple[int, ...]], bytes]]
_PREPARED = weakref.WeakKeyDictionary()


def keep_plan(sql: bytes) -> bytes:
    """Have `run` prepare the statement `sql` once per connection and execute it by name after,
    its plan kept (only for a statement that has one good plan whatever the data: see above).
    Returns `sql`."""
    _KEPT.add(sql)
    return sql


class Result:
    """One statement's result: the rows it returned and the rows it changed."""

    __slots__ = ("_result", "_transformer")

    def __init__(self, result: pq.abc.PGresult, transformer: TransformerType) -> None:
        self._result = result
        self._transformer = transformer

    @property
    def rowcount(self) -> int:
        """The rows the statement inserted, updated or returned."""
        count = self._result.command_tuples
        return -1 if count is None else count

    @property
    def type_codes(self) -> list[int]:
        """The type (oid) of each column returned."""
        return [self._result.ftype(index) for index in range(self._result.nfields)]

    def rows(self) -> list[tuple[Any, ...]]:
        """The rows returned, each value loaded as psycopg's cursor would load it."""
        self._transformer.set_pgresult(self._result)
        return self._transformer.load_rows(0, self._result.ntuples, tuple)


def run(driver: Connection[Any], statements: Sequence[Statement], *, commit: bool) -> list[Result]:
    """Run `statements` in the connection's transaction, in one round trip; with `commit`,
    commit the transaction after them. A transaction is opened first when none is. (In
    autocommit the statements are still one transaction: PostgreSQL runs everything up to a
    pipeline's end as one.) Returns each statement's result, in order."""
    pgconn = driver.pgconn
    transformer: TransformerType = Transformer(driver)
    in_transaction = pgconn.transaction_status != _IDLE
    commands: list[_Command] = []
    if statements and not in_transaction and not driver.autocommit:
        commands.append(_Command(_QUERY, _begin(driver)))
        in_transaction = True
    at: list[int] = []  # each statement's command
    preparing: dict[tuple[bytes, tuple[int, ...]], tuple[int, bytes]] = {}  # {key: (at, name)}
    prepared = _PREPARED.get(driver) if _KEPT else None
    for sql, values in statements:
        dumped = transformer.dump_sequence(values, [PyFormat.BINARY] * len(values))
        types, formats = transformer.types, transformer.formats
        if sql in _KEPT:
            if prepared is None:
                prepared = _PREPARED.setdefault(driver, {})
            # Prepared for the types its values were dumped as: values dumped as other types
            # (a list of NULLs) make a statement of their own.
            key = (sql, tuple(types or ()))
            name = prepared.get(key) or preparing.get(key, (0, b""))[1]
            if not name:
                digest = hashlib.blake2b(repr(key).encode(), digest_size=8).hexdigest()
                name = f"escalations_{digest}".encode()
                preparing[key] = (len(commands), name)
                commands.append(_Command(_PREPARE, sql, types=types, name=name))
            at.append(len(commands))
            commands.append(_Command(_EXECUTE, name, dumped, formats=formats))
        else:
            at.append(len(commands))
            commands.append(_Command(_QUERY, sql, dumped, types, formats))
    if commit and in_transaction:
        commands.append(_COMMIT)
    if not commands:
        return []
    answered = _exchange(pgconn, commands)
    for key, (index, name) in preparing.items():
        # Prepared now, or already there under its name (the name stands for the SQL and its
        # types): a record of ours lost while the server kept the statement fails one run.
        done = answered[index]
        if prepared is not None and (
            done.status == _COMMAND_OK or done.error_field(_SQLSTATE) == _ALREADY_PREPARED
        ):
            prepared[key] = name
    for result in answered:
        if result.status == _FAILED:  # the first failure: the server skipped what followed
            error = errors.error_from_result(result, encoding=transformer.encoding)
            if isinstance(error, errors.InvalidSqlStatementName):
                # Its prepared statements were dropped behind our back (DEALLOCATE, DISCARD):
                # they are prepared again next time.
                _PREPARED.pop(driver, None)
            raise error
    return [Result(answered[index], transformer) for index in at]


def _begin(driver: Connection[Any]) -> bytes:
    """The BEGIN psycopg would open a transaction with on this connection."""
    parts = [b"BEGIN"]
    if driver.isolation_level is not None:
        parts += [b"ISOLATION LEVEL", driver.isolation_level.name.replace("_", " ").encode()]
    if driver.read_only is not None:
        parts.append(b"READ ONLY" if driver.read_only else b"READ WRITE")
    if driver.deferrable is not None:
        parts.append(b"DEFERRABLE" if driver.deferrable else b"NOT DEFERRABLE")
    return b" ".join(parts)


def _exchange(pgconn: pq.abc.PGconn, commands: Sequence[_Command]) -> list[pq.abc.PGresult]:
    """Send the commands as one pipeline and read every command's result (an aborted one's too)
    up to the pipeline's end. A connection left in the middle of it (lost, or interrupted) is
    closed: it could not be used again."""
    pgconn.enter_pipeline_mode()
    try:
        for kind, sql, values, types, formats, name in commands:
            if kind == _QUERY:
                pgconn.send_query_params(sql, values, types, formats)
            elif kind == _EXECUTE:
                pgconn.send_query_prepared(sql, values, formats)
            else:
                pgconn.send_prepare(name, sql, types)
        pgconn.pipeline_sync()
        fileno = pgconn.socket
        # Send everything; results that come back meanwhile are read in, so that the server is
        # never kept waiting on a full socket while this side is still sending.
        while pgconn.flush():
            if wait_socket(fileno, READ | WRITE) & READ:
                pgconn.consume_input()
        results: list[pq.abc.PGresult] = []
        while True:
            if pgconn.is_busy():
                wait_socket(fileno, READ)
                pgconn.consume_input()
                continue
            result = pgconn.get_result()
            if result is None:  # the end of one command's results
                continue
            if result.status == _SYNC:
                break
            results.append(result)
        pgconn.exit_pipeline_mode()
    except BaseException:
        pgconn.finish()
        raise
    return results
