"""The database handle: engine, sessions, and schema migrations for SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Connection, Engine, create_engine, event, func, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.pool import ConnectionPoolEntry
from sqlmodel import Session, SQLModel

from storage import _pgarrays, tables
from storage._prepared import driver_connection

log = logging.getLogger(__name__)

# The database whose `session(ping=False)` is open, in this thread, task or greenlet (the ingest
# runs groups as greenlets on the loop's thread: a thread-local would be shared by them).
_UNPINGED: ContextVar[Database | None] = ContextVar("unpinged", default=None)

DATABASE_URL_ENV = "ESCALATIONS_DATABASE_URL"
DEFAULT_SQLITE_PATH = Path("var") / "escalations.db"
# How long a SQLite writer waits for another writer's lock before giving up.
SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_WAL_CHECKPOINT_PAGES = 10_000  # see `_on_connect`
# A fixed key so that replicas starting together run migrations one at a time.
_MIGRATION_LOCK_KEY = 0x45534341  # "ESCA"

Migration = Callable[[Connection], None]


def _mark_fresh(_dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry) -> None:
    record.info["fresh"] = True


def _register_arrays(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    # The ingest statements send their text arrays ready-made (`storage._pgarrays`).
    _pgarrays.register(cast(Any, dbapi_connection))


def _create_latest_schema(connection: Connection) -> None:
    SQLModel.metadata.create_all(connection, tables=list(tables.ALL_TABLES))


def _add_digests_and_sla_steps(connection: Connection) -> None:
    tables.digests.create(connection, checkfirst=True)
    tables.sla_steps.create(connection, checkfirst=True)


def _drop_events_timeline_index(connection: Connection) -> None:
    # See `tables.Event`: the events' unique index serves their reads; this one only slowed
    # their inserts.
    connection.execute(text("DROP INDEX IF EXISTS ix_events_conversation_timestamp"))


def _state_as_json_text(connection: Connection) -> None:
    # See `tables.Conversation.state`: kept as the text written. JSONB gives back its own text,
    # so a state read back never matched the one saved, and was decoded at every post. (SQLite
    # keeps JSON as text already.) This rewrites the table, once.
    if connection.dialect.name == "postgresql":
        connection.execute(
            text("ALTER TABLE conversations ALTER COLUMN state TYPE json USING state::json")
        )


# Numbered migrations, applied in order to bring an existing database up to date. A fresh
# database gets the latest schema in one step from the models (version 1 does exactly that) and
# is stamped with the highest number, so a later change adds `2: _add_something` here (an ALTER
# written for both dialects) *and* changes the model; never edit a published migration.
MIGRATIONS: dict[int, Migration] = {
    1: _create_latest_schema,
    2: _add_digests_and_sla_steps,
    3: _drop_events_timeline_index,
    4: _state_as_json_text,
}
LATEST_VERSION = max(MIGRATIONS)


def default_database_url() -> str:
    """The URL from ESCALATIONS_DATABASE_URL, else a SQLite file at var/escalations.db."""
    url = os.environ.get(DATABASE_URL_ENV, "").strip()
    if url:
        return url
    DEFAULT_SQLITE_PATH.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{DEFAULT_SQLITE_PATH}"


def normalize_url(url: str) -> str:
    """Point plain `postgresql://` (and `postgres://`) URLs at the psycopg 3 driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def redact_url(url: str) -> str:
    """The URL with its password masked, safe to log or show."""
    return make_url(normalize_url(url)).render_as_string(hide_password=True)


# Any one argument in, None out, in C: sqlite3's adapter for None (see `_sqlite_engine`).
_NONE = cast("Callable[[object], None]", {}.get)


class WriteLockBusy(Exception):
    """A session that was not to wait (`Database.session(wait=False)`) found the SQLite
    database's write lock taken, by another thread of this process or by another process."""


def _begin_without_waiting(driver: Any) -> None:
    """BEGIN IMMEDIATE on a sqlite3 connection, failing at once if another writer holds the
    lock instead of waiting in SQLite's busy handler."""
    driver.execute("PRAGMA busy_timeout=0")
    try:
        driver.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as error:
        if getattr(error, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            raise WriteLockBusy("another writer holds the SQLite database") from error
        raise
    finally:
        driver.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")


class Database:
    """One database (SQLite file or PostgreSQL) and its connection pool.

    The service calls storage from a worker thread, so the engine is synchronous.
    """

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = make_url(normalize_url(url))
        self.dialect = self.url.get_backend_name()
        self._write_lock: threading.RLock | None = None
        if self.dialect == "sqlite":
            self.engine = self._sqlite_engine(echo=echo)
            self._write_lock = threading.RLock()
        elif self.dialect == "postgresql":
            # A pooled connection is checked (a ping, one round trip) before each use, as
            # SQLAlchemy's pool_pre_ping does, except in `session(ping=False)`.
            # psycopg does not prepare statements by itself: it would keep whatever plan the
            # statistics of the moment gave (the ingest's statements choose which plans to keep,
            # `storage._pgpipeline`), and it drops every prepared statement of its connection
            # (DEALLOCATE ALL) at each rollback once it has prepared one, the ingest's included.
            self.engine = create_engine(
                self.url, echo=echo, connect_args={"prepare_threshold": None}
            )
            event.listen(self.engine, "connect", _mark_fresh)
            event.listen(self.engine, "connect", _register_arrays)
            event.listen(self.engine, "checkout", self._ping_on_checkout)
        else:
            raise ValueError(f"unsupported database {redact_url(url)!r}: use sqlite or postgresql")

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"

    def _sqlite_engine(self, *, echo: bool) -> Engine:
        # sqlite3 looks for an adapter for every parameter that is not an int, float or str,
        # and finding none for None costs about 0.25 µs a parameter (failed attribute look-ups)
        # before it binds NULL: an event row has five or six. With an adapter that gives None
        # back (a C function, no Python frame), it costs half that; NULL is bound either way.
        sqlite3.register_adapter(type(None), _NONE)
        database = self.url.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            self.url,
            echo=echo,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
            # Take transaction control away from the sqlite3 module so that BEGIN is ours (below)
            # and SAVEPOINTs nest inside it.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            # Copy the WAL back into the database every 10,000 pages (about 40 MB) instead of
            # SQLite's 1,000: a busy service writes a few MB of WAL a second, mostly the same
            # hot pages (table tails, index nodes) again and again, and a checkpoint copies each
            # page once however often it was written since the last.
            cursor.execute(f"PRAGMA wal_autocheckpoint={SQLITE_WAL_CHECKPOINT_PAGES}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Connection) -> None:
            # A deferred transaction that reads and then writes cannot be upgraded while another
            # writer holds the lock: both fail with "database is locked". Taking the write lock
            # up front makes the second writer wait its turn instead. Read-only sessions opt out.
            # Sent straight to sqlite3 (its errors still come out as SQLAlchemy's): through
            # `exec_driver_sql` it cost about as much as a small group's whole commit.
            options = connection.get_execution_options()
            read_only = options.get("read_only")
            sql = "BEGIN" if read_only else "BEGIN IMMEDIATE"
            with driver_connection(connection, sql) as driver:
                if options.get("nowait") and not read_only:
                    _begin_without_waiting(driver)
                else:
                    driver.execute(sql)

        return engine

    def _ping_on_checkout(
        self, dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry, _proxy: Any
    ) -> None:
        # As pool_pre_ping: a connection just made is not pinged; a lost one makes the pool
        # drop every connection made before it and check out a new one.
        fresh = record.info.pop("fresh", False)
        if fresh or _UNPINGED.get() is self:
            return
        dialect = self.engine.dialect
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            if dialect.is_disconnect(error, dbapi_connection, None):
                raise InvalidatePoolError(str(error)) from error
            raise

    @contextmanager
    def session(
        self, *, read_only: bool = False, ping: bool = True, wait: bool = True
    ) -> Iterator[Session]:
        """A session that commits when the block succeeds and rolls back when it raises.

        `read_only=True` lets SQLite readers run beside a writer (no write lock up front); do not
        write in such a session. `ping=False` uses a pooled PostgreSQL connection without
        checking it first (which costs a round trip): for a caller that does the work again,
        in a new session, when its connection turns out to be lost (the ingest writer).
        `wait=False` (SQLite only) takes the write lock before the block starts, or raises
        `WriteLockBusy` at once if another writer holds it: for a caller that must not be kept
        waiting (the event loop's own thread).
        """
        if not wait and (read_only or self._write_lock is None):
            raise ValueError("session(wait=False) is for SQLite writers")
        # SQLite writers of this process queue on a lock of ours instead of in SQLite's busy
        # handler, which polls with sleeps of up to 100 ms: under a steady ingest load a second
        # writer (the delivery worker) would otherwise wait seconds for a free moment. A writer
        # in another process still meets the busy handler. Reentrant: sessions may nest.
        locked = False
        if self._write_lock is not None and not read_only:
            if wait:
                locked = self._write_lock.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
            elif not self._write_lock.acquire(blocking=False):
                raise WriteLockBusy("another thread of this process is writing to the database")
            else:
                locked = True
        unpinged = _UNPINGED.set(self) if not ping and _UNPINGED.get() is not self else None
        try:
            with Session(self.engine, expire_on_commit=False) as session:
                if read_only:
                    session.connection(execution_options={"read_only": True})
                elif not wait:
                    session.connection(execution_options={"nowait": True})
                try:
                    yield session
                    session.commit()
                except BaseException:
                    session.rollback()
                    raise
        finally:
            if unpinged is not None:
                _UNPINGED.reset(unpinged)
            if locked:
                assert self._write_lock is not None
                self._write_lock.release()

    def schema_version(self) -> int | None:
        """The schema version in force, or None when the database has never been migrated."""
        with self.engine.connect() as connection:
            if not self.engine.dialect.has_table(connection, tables.schema_version.name):
                return None
            version = connection.execute(select(func.max(tables.schema_version.c.version)))
            return version.scalar_one_or_none()

    def migrate(self) -> list[int]:
        """Create or upgrade the schema to the latest version; returns the versions applied.

        Idempotent, and safe when several replicas start at once (they take turns).
        """
        with self.engine.begin() as connection:
            if self.dialect == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                )
            # On SQLite the transaction already holds the write lock (BEGIN IMMEDIATE).
            current = self._current_version(connection)
            now = datetime.now(UTC)
            if current is None:
                _create_latest_schema(connection)
                connection.execute(
                    insert(tables.schema_version),
                    [{"version": LATEST_VERSION, "applied_at": now}],
                )
                log.info("created schema version %d in %s", LATEST_VERSION, self)
                return [LATEST_VERSION]
            applied: list[int] = []
            for version in sorted(MIGRATIONS):
                if version <= current:
                    continue
                MIGRATIONS[version](connection)
                connection.execute(
                    insert(tables.schema_version), [{"version": version, "applied_at": now}]
                )
                applied.append(version)
                log.info("applied schema migration %d to %s", version, self)
            return applied

    def _current_version(self, connection: Connection) -> int | None:
        if not self.engine.dialect.has_table(connection, tables.schema_version.name):
            return None
        version: Any = connection.execute(
            select(func.max(tables.schema_version.c.version))
        ).scalar_one_or_none()
        return int(version) if version is not None else 0

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
