"""The ingest writer's one-round-trip statements on PostgreSQL (`storage._pgpipeline`)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from psycopg import errors, pq
from sqlalchemy import text

from storage import _pgarrays, _pgpipeline
from storage.db import Database
from tests.storage.storage_helpers import end_backend

pytestmark = pytest.mark.postgres

_CREATE = "CREATE TABLE pipeline_probe (id int PRIMARY KEY, note text)"
_INSERT = b"INSERT INTO pipeline_probe SELECT * FROM unnest($1::int[], $2::text[])"
_COUNT = b"SELECT count(*) FROM pipeline_probe WHERE id = ANY($1::int[])"


@pytest.fixture
def driver(postgres_database: Database) -> Iterator[psycopg.Connection[Any]]:
    """A psycopg connection of the database's pool, with an empty probe table."""
    with postgres_database.engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS pipeline_probe"))
        connection.execute(text(_CREATE))
    with postgres_database.engine.connect() as connection:
        raw = connection.connection.driver_connection
        assert isinstance(raw, psycopg.Connection)
        yield raw
        if not raw.closed:
            raw.rollback()
    with postgres_database.engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS pipeline_probe"))


def _insert(ids: list[int], notes: list[str | None]) -> _pgpipeline.Statement:
    return _INSERT, [ids, _pgarrays.text_array(notes)]


def _stored(database: Database) -> list[tuple[int, str | None]]:
    with database.engine.connect() as connection:
        rows = connection.execute(text("SELECT id, note FROM pipeline_probe ORDER BY id"))
        return [(row[0], row[1]) for row in rows]


def test_the_statements_open_a_transaction_and_commit_it_in_one_go(
    driver: psycopg.Connection[Any], postgres_database: Database
) -> None:
    assert driver.pgconn.transaction_status == pq.TransactionStatus.IDLE
    inserted, counted = _pgpipeline.run(
        driver, [_insert([1, 2], ["a", None]), (_COUNT, [[1, 2, 3]])], commit=True
    )
    # The second statement saw the first (the same transaction), and the rows are committed.
    assert inserted.rowcount == 2
    assert counted.rows() == [(2,)]
    assert driver.pgconn.transaction_status == pq.TransactionStatus.IDLE
    assert _stored(postgres_database) == [(1, "a"), (2, None)]


def test_without_commit_the_transaction_stays_open_for_the_caller(
    driver: psycopg.Connection[Any], postgres_database: Database
) -> None:
    _pgpipeline.run(driver, [_insert([1], ["kept open"])], commit=False)
    assert driver.pgconn.transaction_status == pq.TransactionStatus.INTRANS
    # A second call joins the open transaction (no second BEGIN) and its rollback undoes both.
    _pgpipeline.run(driver, [_insert([2], ["also"])], commit=False)
    driver.rollback()
    assert _stored(postgres_database) == []


def test_a_failed_statement_raises_its_error_and_runs_nothing_after_it(
    driver: psycopg.Connection[Any], postgres_database: Database
) -> None:
    with pytest.raises(errors.UniqueViolation, match="pipeline_probe_pkey"):
        _pgpipeline.run(
            driver,
            [_insert([1], ["first"]), _insert([1], ["again"]), _insert([5], ["after"])],
            commit=True,
        )
    # Nothing was committed; the transaction is left failed for the caller to roll back, and
    # the connection works on afterwards.
    assert driver.pgconn.transaction_status == pq.TransactionStatus.INERROR
    driver.rollback()
    assert _stored(postgres_database) == []
    _pgpipeline.run(driver, [_insert([7], ["then"])], commit=True)
    assert _stored(postgres_database) == [(7, "then")]


def test_a_value_psycopg_cannot_send_fails_before_anything_is_sent(
    driver: psycopg.Connection[Any], postgres_database: Database
) -> None:
    with pytest.raises(psycopg.ProgrammingError, match="cannot adapt"):
        _pgpipeline.run(driver, [(_INSERT, [[object()], _pgarrays.text_array(["x"])])], commit=True)
    assert driver.pgconn.transaction_status == pq.TransactionStatus.IDLE
    _pgpipeline.run(driver, [_insert([3], ["still usable"])], commit=True)
    assert _stored(postgres_database) == [(3, "still usable")]


def test_in_autocommit_the_statements_are_still_one_transaction(
    driver: psycopg.Connection[Any], postgres_database: Database
) -> None:
    # PostgreSQL runs everything up to a pipeline's end as one implicit transaction.
    driver.autocommit = True
    try:
        with pytest.raises(errors.UniqueViolation):
            _pgpipeline.run(driver, [_insert([1], ["kept"]), _insert([1], ["again"])], commit=True)
    finally:
        driver.autocommit = False
    assert _stored(postgres_database) == []
    driver.autocommit = True
    try:
        _pgpipeline.run(driver, [_insert([1], ["kept"])], commit=True)
        assert driver.pgconn.transaction_status == pq.TransactionStatus.IDLE
    finally:
        driver.autocommit = False
    assert _stored(postgres_database) == [(1, "kept")]


def test_rows_come_back_as_psycopgs_cursor_loads_them(driver: psycopg.Connection[Any]) -> None:
    when = datetime(2026, 3, 2, 9, 30, 15, 250, tzinfo=UTC)
    query = (
        "SELECT $1::timestamptz, $2::jsonb, $3::float8, $4::boolean, $5::text, NULL::text, "
        "$6::numeric"
    )
    values = [when, '{"a": [1, "é"], "b": null}', 0.125, True, "caf\u00e9 \U0001f620", 1.5]
    (result,) = _pgpipeline.run(driver, [(query.encode(), values)], commit=False)
    expected = driver.execute(
        "SELECT %s::timestamptz, %s::jsonb, %s::float8, %s::boolean, %s::text, NULL::text, "
        "%s::numeric",
        values,
    ).fetchall()
    assert result.rows() == expected
    assert result.rows()[0][0] == when
    assert result.type_codes[:4] == [1184, 3802, 701, 16]


def test_a_pipeline_larger_than_the_socket_buffers_goes_through(
    driver: psycopg.Connection[Any], postgres_database: Database
) -> None:
    # About 12 MB each way: sending must go on while the server's answers come back.
    count = 3000
    notes: list[str | None] = [f"{index:05d}" + "x" * 4000 for index in range(count)]
    statements = [_insert(list(range(count)), notes), (_COUNT, [list(range(count))])]
    inserted, counted = _pgpipeline.run(driver, statements, commit=True)
    assert inserted.rowcount == count
    assert counted.rows() == [(count,)]
    stored = _stored(postgres_database)
    assert len(stored) == count
    assert stored[-1] == (count - 1, notes[-1])


def test_a_connection_lost_on_the_way_is_closed_and_its_error_raised(
    driver: psycopg.Connection[Any], postgres_database: Database
) -> None:
    end_backend(postgres_database, driver.info.backend_pid)
    with pytest.raises(psycopg.OperationalError):
        _pgpipeline.run(driver, [_insert([1], ["lost"])], commit=True)
    assert driver.closed
    assert _stored(postgres_database) == []


def test_nothing_to_run_sends_nothing(driver: psycopg.Connection[Any]) -> None:
    assert _pgpipeline.run(driver, [], commit=True) == []
    assert driver.pgconn.transaction_status == pq.TransactionStatus.IDLE
    _pgpipeline.run(driver, [(_COUNT, [[1]])], commit=False)
    # A bare COMMIT ends a transaction left open.
    assert _pgpipeline.run(driver, [], commit=True) == []
    assert driver.pgconn.transaction_status == pq.TransactionStatus.IDLE


def test_the_statements_are_planned_afresh_each_time_not_prepared(
    driver: psycopg.Connection[Any],
) -> None:
    # A plan PostgreSQL keeps for a prepared statement is made once, from the statistics of
    # that moment: on a new database the state's UPDATE got a hash join over a sequential scan
    # of conversations, and kept it, every group reading the whole table, until the next
    # analyze. Unnamed statements are planned with the statistics of the day.
    for number in range(12):
        _pgpipeline.run(driver, [_insert([number], ["n"]), (_COUNT, [[number]])], commit=True)
    assert _prepared(driver) == []


# Statements whose plans are kept (each test's own SQL, so that no test finds another's prepared).
_KEPT_INSERT = _pgpipeline.keep_plan(_INSERT + b" -- kept")
_KEPT_COUNT = _pgpipeline.keep_plan(
    b"SELECT count(*) FROM unnest($1::int[]) AS v(id) WHERE v.id IS NOT NULL -- kept"
)


def _prepared(driver: psycopg.Connection[Any]) -> list[tuple[str, int]]:
    """The statements prepared on the connection: (SQL, times executed generically or not)."""
    rows = driver.execute(
        "SELECT statement, generic_plans + custom_plans FROM pg_prepared_statements"
        " ORDER BY statement"
    ).fetchall()
    return [(row[0], row[1]) for row in rows]


def test_a_kept_statement_is_prepared_once_per_connection_and_run_by_name(
    driver: psycopg.Connection[Any], postgres_database: Database
) -> None:
    for number in range(8):
        (inserted,) = _pgpipeline.run(
            driver, [(_KEPT_INSERT, [[number, number + 100], ["a", None]])], commit=True
        )
        assert inserted.rowcount == 2
    # One statement, prepared on the first run and executed by every run; the unkept ones
    # beside it are still planned afresh.
    _pgpipeline.run(driver, [(_COUNT, [[1]])], commit=True)
    assert _prepared(driver) == [(_KEPT_INSERT.decode(), 8)]
    assert len(_stored(postgres_database)) == 16
    # Another connection prepares it for itself.
    with postgres_database.engine.connect() as connection:
        other = connection.connection.driver_connection
        assert isinstance(other, psycopg.Connection)
        assert other is not driver
        _pgpipeline.run(other, [(_KEPT_INSERT, [[500], ["b"]])], commit=True)
        assert _prepared(other) == [(_KEPT_INSERT.decode(), 1)]
    assert _prepared(driver) == [(_KEPT_INSERT.decode(), 8)]


def test_a_kept_statement_named_twice_in_one_run_is_prepared_once(
    driver: psycopg.Connection[Any],
) -> None:
    first, second = _pgpipeline.run(
        driver, [(_KEPT_COUNT, [[1, 2]]), (_KEPT_COUNT, [[3, None, 4, 5]])], commit=True
    )
    assert (first.rows(), second.rows()) == ([(2,)], [(3,)])
    assert _prepared(driver) == [(_KEPT_COUNT.decode(), 2)]


def test_values_dumped_as_other_types_get_a_statement_of_their_own(
    driver: psycopg.Connection[Any],
) -> None:
    # A list of integers is sent as an integer array, a list of NULLs as psycopg's default:
    # a statement prepared for the one could not read the other.
    (counted,) = _pgpipeline.run(driver, [(_KEPT_COUNT, [[1, 2]])], commit=True)
    (nulls,) = _pgpipeline.run(driver, [(_KEPT_COUNT, [[None, None]])], commit=True)
    (again,) = _pgpipeline.run(driver, [(_KEPT_COUNT, [[7]])], commit=True)
    assert (counted.rows(), nulls.rows(), again.rows()) == ([(2,)], [(0,)], [(1,)])
    assert sorted(count for _, count in _prepared(driver)) == [1, 2]


def test_a_kept_statement_skipped_by_a_failure_is_prepared_next_time(
    driver: psycopg.Connection[Any], postgres_database: Database
) -> None:
    # The duplicate key fails the pipeline before the kept statement's preparation, which the
    # server skips: it is not taken as prepared.
    with pytest.raises(errors.UniqueViolation):
        _pgpipeline.run(
            driver,
            [_insert([1], ["x"]), _insert([1], ["x"]), (_KEPT_INSERT, [[2], ["y"]])],
            commit=True,
        )
    driver.rollback()
    assert _prepared(driver) == []
    _pgpipeline.run(driver, [(_KEPT_INSERT, [[2], ["y"]])], commit=True)
    assert _stored(postgres_database) == [(2, "y")]
    assert _prepared(driver) == [(_KEPT_INSERT.decode(), 1)]


def test_statements_dropped_behind_its_back_are_prepared_again(
    driver: psycopg.Connection[Any], postgres_database: Database
) -> None:
    _pgpipeline.run(driver, [(_KEPT_INSERT, [[1], ["before"]])], commit=True)
    driver.execute("DEALLOCATE ALL")
    # The first run after fails (the server no longer knows the name) and nothing of it is
    # stored; the next prepares the statement again.
    with pytest.raises(errors.InvalidSqlStatementName):
        _pgpipeline.run(driver, [(_KEPT_INSERT, [[2], ["lost"]])], commit=True)
    driver.rollback()
    _pgpipeline.run(driver, [(_KEPT_INSERT, [[3], ["after"]])], commit=True)
    assert _stored(postgres_database) == [(1, "before"), (3, "after")]


def test_a_statement_the_server_kept_but_this_side_forgot_fails_one_run(
    driver: psycopg.Connection[Any], postgres_database: Database
) -> None:
    _pgpipeline.run(driver, [(_KEPT_INSERT, [[1], ["before"]])], commit=True)
    _pgpipeline._PREPARED.pop(driver)  # (as if its record had been lost)
    # Preparing it again fails (the server has it), and the run with it; it is known again.
    with pytest.raises(errors.DuplicatePreparedStatement):
        _pgpipeline.run(driver, [(_KEPT_INSERT, [[2], ["lost"]])], commit=True)
    driver.rollback()
    _pgpipeline.run(driver, [(_KEPT_INSERT, [[3], ["after"]])], commit=True)
    assert _stored(postgres_database) == [(1, "before"), (3, "after")]
    assert _prepared(driver) == [(_KEPT_INSERT.decode(), 2)]
