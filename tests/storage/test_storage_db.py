"""The database handle: migrations, sessions, savepoints, time zones, URLs."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from greenlet import getcurrent, greenlet
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert, inspect, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlmodel import Session

from storage import conversations, tables
from storage._prepared import SqliteTimes
from storage.db import (
    LATEST_VERSION,
    Database,
    WriteLockBusy,
    default_database_url,
    normalize_url,
    redact_url,
)
from storage.types import UtcDateTime, sqlite_utc_text
from tests.storage.storage_helpers import META, T0, kill_pooled_connection, message


def test_migrating_a_migrated_database_changes_nothing(database: Database) -> None:
    assert database.schema_version() == LATEST_VERSION
    assert database.migrate() == []
    assert database.migrate() == []
    with database.engine.connect() as connection:
        versions = connection.execute(select(tables.schema_version.c.version)).scalars().all()
    assert versions == [LATEST_VERSION]


def test_a_new_database_is_created_at_the_latest_version(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'nested' / 'fresh.db'}")
    try:
        assert database.schema_version() is None
        assert database.migrate() == [LATEST_VERSION]
        assert database.schema_version() == LATEST_VERSION
    finally:
        database.dispose()


@pytest.mark.postgres
def test_a_new_postgres_database_is_created_at_the_latest_version(
    postgres_url_factory: Callable[[], str],
) -> None:
    database = Database(postgres_url_factory())
    try:
        assert database.schema_version() is None
        assert database.migrate() == [LATEST_VERSION]
        assert database.migrate() == []
    finally:
        database.dispose()


def test_work_commits_when_the_block_succeeds(database: Database) -> None:
    with database.session() as session:
        conversations.lock_conversation(session=session, conversation_id="c1", meta=META, now=T0)
    with database.session() as session:
        assert conversations.get_conversation(session=session, conversation_id="c1") is not None


def test_work_is_rolled_back_when_the_block_raises(database: Database) -> None:
    def handle_webhook() -> None:
        with database.session() as session:
            conversations.lock_conversation(
                session=session, conversation_id="c1", meta=META, now=T0
            )
            raise RuntimeError("webhook handler failed")

    with pytest.raises(RuntimeError, match="webhook handler failed"):
        handle_webhook()
    with database.session() as session:
        assert conversations.get_conversation(session=session, conversation_id="c1") is None


def _store_post_that_breaks_a_foreign_key(session: Session) -> None:
    with session.begin_nested():
        conversations.lock_conversation(session=session, conversation_id="bad", meta=META, now=T0)
        session.connection().execute(
            insert(tables.events).values(
                conversation_id="nobody",
                event_id="x",
                type="message",
                timestamp=T0,
                received_at=T0,
            )
        )


def test_a_failed_post_in_a_group_commit_leaves_the_other_posts_intact(
    database: Database,
) -> None:
    """The service commits many webhook posts at once, each in its own savepoint."""
    with database.session() as session:
        with session.begin_nested():
            conversations.lock_conversation(
                session=session, conversation_id="good", meta=META, now=T0
            )
            conversations.insert_events(
                session=session,
                conversation_id="good",
                rows=[(message("e1"), None)],
                received_at=T0,
            )
        with pytest.raises(IntegrityError):
            _store_post_that_breaks_a_foreign_key(session)
        with session.begin_nested():
            conversations.lock_conversation(
                session=session, conversation_id="also-good", meta=META, now=T0
            )
    with database.session() as session:
        assert conversations.get_conversation(session=session, conversation_id="good")
        assert conversations.get_conversation(session=session, conversation_id="also-good")
        assert conversations.get_conversation(session=session, conversation_id="bad") is None
        assert [
            stored.event.event_id
            for stored in conversations.transcript(session=session, conversation_id="good")
        ] == ["e1"]


def test_times_come_back_timezone_aware_in_utc(database: Database) -> None:
    paris = timezone(timedelta(hours=1))
    local = datetime(2025, 3, 14, 10, 30, tzinfo=paris)
    with database.session() as session:
        conversations.lock_conversation(session=session, conversation_id="c1", meta=META, now=local)
    with database.session() as session:
        record = conversations.get_conversation(session=session, conversation_id="c1")
    assert record is not None
    assert record.created_at == datetime(2025, 3, 14, 9, 30, tzinfo=UTC)
    assert record.created_at.tzinfo is UTC


def test_naive_times_are_refused(database: Database) -> None:
    with (
        pytest.raises(Exception, match="naive datetime"),
        database.session() as session,
    ):
        conversations.lock_conversation(
            session=session, conversation_id="c1", meta=META, now=datetime(2025, 3, 14, 9, 0)
        )


@settings(max_examples=500, deadline=None)
@given(
    moment=st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.one_of(
            st.just(UTC),
            st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23)).map(
                timezone
            ),
            st.timezones(),
        ),
    )
)
def test_the_fast_sqlite_time_text_is_what_sqlalchemy_would_store(moment: datetime) -> None:
    # The hot insert path converts times in one step; the text must be the one SQLAlchemy's own
    # conversions (UtcDateTime, then SQLite's DATETIME) give, or stored times would not compare.
    dialect = sqlite.dialect()
    column = UtcDateTime()
    convert = column.dialect_impl(dialect).bind_processor(dialect)
    assert convert is not None
    assert sqlite_utc_text(moment) == convert(moment)


def test_the_fast_sqlite_time_text_refuses_naive_times() -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        sqlite_utc_text(datetime(2025, 3, 14, 9, 0))


def test_remembered_sqlite_times_give_each_object_its_own_text() -> None:
    times = SqliteTimes()
    start = datetime(2025, 3, 14, 9, 0, 0, 250, tzinfo=UTC)
    seen: list[datetime] = []
    # Far more objects than are remembered (so it forgets, and the ids of dropped objects are
    # handed out again), each converted twice, some equal in time but in another zone.
    for index in range(3 * SqliteTimes.LIMIT):
        moment = start + timedelta(seconds=index)
        if index % 3 == 0:
            moment = moment.astimezone(timezone(timedelta(hours=5)))
        assert times(moment) == sqlite_utc_text(moment)
        assert times(moment) == sqlite_utc_text(moment)
        if index % 7 == 0:
            seen.append(moment)
    for moment in seen:
        assert times(moment) == sqlite_utc_text(moment)
    with pytest.raises(ValueError, match="naive datetime"):
        times(datetime(2025, 3, 14, 9, 0))


def test_sqlite_runs_in_wal_mode_with_foreign_keys(sqlite_database: Database) -> None:
    with sqlite_database.session() as session:
        connection = session.connection()
        assert connection.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
        assert connection.execute(text("PRAGMA synchronous")).scalar_one() == 1  # NORMAL
        assert connection.execute(text("PRAGMA wal_autocheckpoint")).scalar_one() == 10_000


def test_none_is_bound_as_null_through_its_adapter(sqlite_database: Database) -> None:
    # The adapter only makes binding None cheaper: it is NULL as before, however it is asked.
    assert sqlite3.adapters[(type(None), sqlite3.PrepareProtocol)](None) is None
    with sqlite_database.session() as session:
        conn = session.connection()
        row = conn.exec_driver_sql("SELECT ? IS NULL, typeof(?), ? = 0", (None, None, None)).one()
    assert tuple(row) == (1, "null", None)


def test_a_read_only_session_reads_while_a_writer_holds_the_lock(
    sqlite_database: Database,
) -> None:
    with sqlite_database.session() as writer:
        conversations.lock_conversation(session=writer, conversation_id="c1", meta=META, now=T0)
        with sqlite_database.session(read_only=True) as reader:
            # WAL: the reader sees the last committed state and does not wait for the writer.
            assert conversations.get_conversation(session=reader, conversation_id="c1") is None


def _raw_sqlite(database: Database, timeout: float) -> sqlite3.Connection:
    """A connection of another program to the same file, outside the Database."""
    path = database.url.database
    assert path is not None
    return sqlite3.connect(path, timeout=timeout, isolation_level=None)


def test_a_write_session_holds_the_write_lock_from_its_start(sqlite_database: Database) -> None:
    other = _raw_sqlite(sqlite_database, timeout=0)
    try:
        with sqlite_database.session() as writer:
            writer.connection()  # nothing written yet
            with pytest.raises(sqlite3.OperationalError, match="database is locked"):
                other.execute("BEGIN IMMEDIATE")
        with sqlite_database.session(read_only=True) as reader:
            reader.connection()
            other.execute("BEGIN IMMEDIATE")  # a reader leaves the write lock free
            other.execute("ROLLBACK")
    finally:
        other.close()


def test_a_write_session_waits_for_another_writer_then_fails_as_sqlalchemy_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("storage.db.SQLITE_BUSY_TIMEOUT_MS", 300)
    database = Database(f"sqlite:///{tmp_path / 'locked.db'}")
    database.migrate()
    other = _raw_sqlite(database, timeout=0)
    try:
        other.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        with (
            pytest.raises(OperationalError, match="database is locked"),
            database.session() as writer,
        ):
            writer.connection()
        assert time.monotonic() - started >= 0.25  # it waited its busy timeout first
        other.execute("ROLLBACK")
        with database.session() as writer:  # free again: the pool's connection still works
            conversations.lock_conversation(session=writer, conversation_id="c", meta=META, now=T0)
    finally:
        other.close()
        database.dispose()


def test_a_session_that_must_not_wait_fails_at_once_when_another_program_writes(
    sqlite_database: Database,
) -> None:
    other = _raw_sqlite(sqlite_database, timeout=0)
    try:
        other.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        with (
            pytest.raises(WriteLockBusy, match="another writer"),
            sqlite_database.session(wait=False),
        ):
            pytest.fail("the block ran without the write lock")
        assert time.monotonic() - started < 5  # (its busy timeout is 30 s)
        other.execute("ROLLBACK")
        with sqlite_database.session(wait=False) as writer:  # free: it takes the lock
            with pytest.raises(sqlite3.OperationalError, match="database is locked"):
                other.execute("BEGIN IMMEDIATE")
            conversations.lock_conversation(session=writer, conversation_id="c", meta=META, now=T0)
            # ... and its connection waits its busy timeout again for what comes next.
            assert writer.connection().execute(text("PRAGMA busy_timeout")).scalar_one() == 30_000
        with sqlite_database.session(read_only=True) as reader:
            assert conversations.get_conversation(session=reader, conversation_id="c") is not None
    finally:
        other.close()


def test_a_session_that_must_not_wait_fails_at_once_when_another_thread_writes(
    sqlite_database: Database,
) -> None:
    holding, release = threading.Event(), threading.Event()

    def writer() -> None:
        with sqlite_database.session() as session:
            session.connection()
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert holding.wait(10)
        with (
            pytest.raises(WriteLockBusy, match="another thread"),
            sqlite_database.session(wait=False),
        ):
            pytest.fail("the block ran without the write lock")
    finally:
        release.set()
        thread.join(10)
    with sqlite_database.session(wait=False) as session:
        conversations.lock_conversation(session=session, conversation_id="c", meta=META, now=T0)


def _open_session(database: Database, **options: bool) -> None:
    with database.session(**options):
        pass


def test_only_sqlite_writers_can_ask_not_to_wait(database: Database) -> None:
    with pytest.raises(ValueError, match=r"session\(wait=False\) is for SQLite writers"):
        _open_session(database, read_only=True, wait=False)
    if database.dialect == "postgresql":
        with pytest.raises(ValueError, match="is for SQLite writers"):
            _open_session(database, wait=False)


def test_the_default_database_is_a_sqlite_file_under_var(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ESCALATIONS_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    assert default_database_url() == "sqlite:///var/escalations.db"
    assert (tmp_path / "var").is_dir()


def test_the_database_url_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESCALATIONS_DATABASE_URL", "postgresql://app:secret@db:5432/esc")
    assert default_database_url() == "postgresql://app:secret@db:5432/esc"


def test_plain_postgres_urls_use_psycopg_3() -> None:
    assert normalize_url("postgresql://app@db/esc") == "postgresql+psycopg://app@db/esc"
    assert normalize_url("postgres://app@db/esc") == "postgresql+psycopg://app@db/esc"
    assert normalize_url("sqlite:///x.db") == "sqlite:///x.db"


def test_the_password_never_shows_in_logs_or_reprs() -> None:
    url = "postgresql://app:hunter2@db:5432/esc"
    assert "hunter2" not in redact_url(url)
    database = Database(url)
    try:
        assert "hunter2" not in repr(database)
        assert database.dialect == "postgresql"
    finally:
        database.dispose()


def test_an_unsupported_database_is_refused_with_a_clear_message() -> None:
    with pytest.raises(ValueError, match="unsupported database"):
        Database("mysql://app:hunter2@db/esc")


@pytest.mark.postgres
def test_a_pooled_connection_the_server_dropped_is_replaced_before_use(
    postgres_database: Database,
) -> None:
    kill_pooled_connection(postgres_database)
    with postgres_database.session() as session:
        assert session.execute(text("SELECT 1")).scalar_one() == 1


@pytest.mark.postgres
def test_without_the_ping_a_dropped_connection_fails_once_then_is_replaced(
    postgres_database: Database,
) -> None:
    kill_pooled_connection(postgres_database)
    with (
        pytest.raises(DBAPIError) as failed,
        postgres_database.session(ping=False) as session,
    ):
        conversations.lock_conversation(session=session, conversation_id="c1", meta=META, now=T0)
    assert failed.value.connection_invalidated
    with postgres_database.session(ping=False) as session:
        conversations.lock_conversation(session=session, conversation_id="c1", meta=META, now=T0)
    with postgres_database.session() as session:
        assert conversations.get_conversation(session=session, conversation_id="c1")


@pytest.mark.postgres
def test_a_session_without_the_ping_leaves_the_others_of_its_thread_pinged(
    postgres_database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The ingest runs its groups as greenlets on the loop's thread: one group's session(ping=False)
    # must not spare the ping of a session opened meanwhile on the same thread.
    database = postgres_database
    pings: list[str] = []
    ping = database.engine.dialect.do_ping

    def counted_ping(connection: Any) -> bool:
        pings.append("ping")
        return ping(connection)

    monkeypatch.setattr(database.engine.dialect, "do_ping", counted_ping)
    with database.session() as session, database.session() as other:  # two pooled connections
        session.execute(text("SELECT 1"))
        other.execute(text("SELECT 1"))
    pings.clear()

    def unpinged_group() -> None:
        with database.session(ping=False) as session:
            session.execute(text("SELECT 1"))
            getcurrent().parent.switch()  # waits, as a group waits for the server
            session.execute(text("SELECT 2"))

    group = greenlet(unpinged_group)
    group.switch()
    assert pings == []
    with database.session() as session:  # meanwhile, on the same thread
        session.execute(text("SELECT 1"))
    assert pings == ["ping"]
    group.switch()
    assert group.dead
    assert pings == ["ping"]


_TIMELINE_INDEX = "ix_events_conversation_timestamp"


def _event_indexes(database: Database) -> set[str]:
    with database.engine.connect() as connection:
        return {str(index["name"]) for index in inspect(connection).get_indexes("events")}


def _as_version(database: Database, version: int, *changes: str) -> None:
    """Make a fresh database what an older `version` created: the latest schema, `changes`
    (SQL) undoing what came after it, and the version stamped."""
    database.migrate()
    with database.engine.begin() as connection:
        for change in changes:
            connection.execute(text(change))
        connection.execute(delete(tables.schema_version))
        connection.execute(
            insert(tables.schema_version), [{"version": version, "applied_at": datetime.now(UTC)}]
        )


def _as_version_2(database: Database) -> None:
    """What version 2 created: the events' timeline index included (and the state as JSONB on
    PostgreSQL, which this test does not look at)."""
    _as_version(
        database, 2, f"CREATE INDEX {_TIMELINE_INDEX} ON events (conversation_id, timestamp, pk)"
    )


def _upgrade_drops_the_timeline_index_and_keeps_reads_in_order(database: Database) -> None:
    _as_version_2(database)
    with database.session() as session:
        conversations.lock_conversation(session=session, conversation_id="c1", meta=META, now=T0)
        for number, seconds in ((1, 30), (2, 10), (3, 20), (4, 10)):
            conversations.insert_events(
                session=session,
                conversation_id="c1",
                rows=[(message(f"e{number}", at=T0 + timedelta(seconds=seconds)), None)],
                received_at=T0,
            )
    assert _TIMELINE_INDEX in _event_indexes(database)

    assert database.migrate() == [3, 4]

    assert _TIMELINE_INDEX not in _event_indexes(database)
    assert database.migrate() == []
    with database.session() as session:
        read = conversations.transcript(session=session, conversation_id="c1")
    # By time, and two events of the same time in the order they arrived.
    assert [stored.event.event_id for stored in read] == ["e2", "e4", "e3", "e1"]


def _unique_names(database: Database) -> set[str]:
    with database.engine.connect() as connection:
        return {
            str(constraint["name"])
            for constraint in inspect(connection).get_unique_constraints("events")
        }


def test_a_new_database_has_no_events_timeline_index(database: Database) -> None:
    assert _TIMELINE_INDEX not in _event_indexes(database)
    # What the reads of a conversation's events go through instead.
    assert "uq_events_conversation_event" in _event_indexes(database) | _unique_names(database)


def test_an_older_sqlite_database_loses_the_timeline_index(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'v2.db'}")
    try:
        _upgrade_drops_the_timeline_index_and_keeps_reads_in_order(database)
    finally:
        database.dispose()


@pytest.mark.postgres
def test_an_older_postgres_database_loses_the_timeline_index(
    postgres_url_factory: Callable[[], str],
) -> None:
    database = Database(postgres_url_factory())
    try:
        _upgrade_drops_the_timeline_index_and_keeps_reads_in_order(database)
    finally:
        database.dispose()


def _state_type(database: Database) -> str:
    with database.engine.connect() as connection:
        columns = inspect(connection).get_columns("conversations")
    return next(str(column["type"]) for column in columns if column["name"] == "state").upper()


@pytest.mark.postgres
def test_an_older_postgres_database_keeps_its_states_as_the_text_written(
    postgres_url_factory: Callable[[], str],
) -> None:
    database = Database(postgres_url_factory())
    try:
        # What version 3 created: the state as JSONB, which gives back another text.
        _as_version(
            database,
            3,
            "ALTER TABLE conversations ALTER COLUMN state TYPE jsonb USING state::jsonb",
        )
        with database.session() as session:
            conversations.lock_conversation(
                session=session, conversation_id="c1", meta=META, now=T0
            )
            conversations.save_state(
                session=session,
                conversation_id="c1",
                state={"v": 1, "turns": 2, "note": "Zoë"},
                score=0.5,
                level=None,
                status="active",
                last_event_at=T0,
            )
        assert _state_type(database) == "JSONB"

        assert database.migrate() == [4]

        assert _state_type(database) == "JSON"
        assert database.migrate() == []
        with database.session() as session:
            record = conversations.get_conversation(session=session, conversation_id="c1")
        assert record is not None
        assert record.state == {"v": 1, "turns": 2, "note": "Zoë"}
        # From now on the text read back is the text written, spaces and key order included.
        written = '{"v": 1,  "turns": 3, "a": "Zo\\u00eb"}'
        with database.session() as session:
            conversations.store(
                session=session,
                events=(),
                states=[conversations.StateUpdate("c1", written, 0.5, None, "active", T0, now=T0)],
            )
        with database.session() as session:
            locked = conversations.lock_for_store(
                session=session, requests=[conversations.LockRequest("c1", META, T0)]
            )
        assert locked.state_texts == {"c1": written}
    finally:
        database.dispose()


def test_a_new_database_keeps_states_as_the_text_written(database: Database) -> None:
    assert _state_type(database) == "JSON"
