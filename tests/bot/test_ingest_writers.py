"""Ingest writers: groups are committed on the event loop's own thread (on SQLite a few events at
a time, the loop waiting; on PostgreSQL the loop working a second group while the first waits for
the server), or on writer threads, two groups at once storing what one writer would."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from bot.config import Settings, SettingsError
from bot.pipeline import Ingestor, IngestPipeline, IngestResult, Saved
from engine.events import (
    ConversationEvent,
    ConversationMeta,
    Customer,
    EventType,
    InboundBatch,
    Role,
)
from engine.rules_loader import load_rules_file
from storage import conversations
from storage.db import Database
from tests.bot.conftest import Running, conversation, message

REPO = Path(__file__).resolve().parents[2]
RULES = load_rules_file(REPO / "rules.yaml")
T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
WAIT_S = 10.0


def _post(cid: str, event_id: str, second: int) -> list[InboundBatch]:
    meta = ConversationMeta(platform="acme-bot", customer=Customer(id="u-1"))
    event = ConversationEvent(
        event_id=event_id,
        type=EventType.MESSAGE,
        timestamp=T0 + timedelta(seconds=second),
        role=Role.CUSTOMER,
        text=f"message {event_id}",
    )
    return [InboundBatch(cid, meta, (event,))]


class _Overlapping(Ingestor):
    """Holds the first group until a second one has started, and records who did what."""

    def __init__(self, hold_s: float) -> None:
        super().__init__(lambda: RULES, frozenset, lambda: T0)
        self._hold_s = hold_s
        self.first_entered = threading.Event()
        self.second_entered = threading.Event()
        self.overlapped = False
        self.threads: list[str] = []
        self._lock = threading.Lock()

    def apply_group(
        self,
        session: Session,
        posts: Sequence[Sequence[InboundBatch]],
        *,
        commit: bool = False,
        saved: list[Saved] | None = None,
    ) -> list[IngestResult]:
        with self._lock:
            first = not self.first_entered.is_set()
            self.threads.append(threading.current_thread().name)
        if first:
            self.first_entered.set()
            # With one writer the second group cannot start before this one ends.
            self.overlapped = self.second_entered.wait(self._hold_s)
        else:
            self.second_entered.set()
        return super().apply_group(session, posts, commit=commit, saved=saved)


async def _two_groups(
    database: Database, writers: int, hold_s: float = WAIT_S
) -> tuple[_Overlapping, list[object]]:
    ingestor = _Overlapping(hold_s)
    pipeline = IngestPipeline(database, ingestor, writers=writers)
    await pipeline.start()
    try:
        # The first group: a shared conversation and one of its own.
        first = [
            asyncio.ensure_future(pipeline.submit(_post("shared", "s1", 0))),
            asyncio.ensure_future(pipeline.submit(_post("only-a", "a1", 0))),
        ]
        await asyncio.to_thread(ingestor.first_entered.wait, WAIT_S)
        # Posted while the first group is being worked: the second group.
        second = [
            asyncio.ensure_future(pipeline.submit(_post("shared", "s2", 10))),
            asyncio.ensure_future(pipeline.submit(_post("only-b", "b1", 0))),
        ]
        answers = await asyncio.gather(*first, *second, return_exceptions=True)
    finally:
        await pipeline.stop()
    return ingestor, list(answers)


@pytest.mark.postgres
async def test_two_writers_commit_two_groups_at_once_on_postgres(
    postgres_database: Database,
) -> None:
    ingestor, answers = await _two_groups(postgres_database, writers=2)

    assert ingestor.overlapped, "the second group did not start while the first was held"
    assert len(set(ingestor.threads)) == 2
    assert [type(answer) for answer in answers] == [IngestResult] * 4
    assert [answer.events_stored for answer in answers if isinstance(answer, IngestResult)] == [
        1,
        1,
        1,
        1,
    ]
    # The conversation both groups wrote to holds both events, in one state that counted both
    # (the second group waited for the first's row lock, then read its state).
    with postgres_database.session() as session:
        stored = conversations.transcript(session=session, conversation_id="shared")
        record = conversations.get_conversation(session=session, conversation_id="shared")
    assert sorted(item.event.event_id for item in stored) == ["s1", "s2"]
    assert record is not None
    assert record.state is not None
    assert record.state["turns"] == 2


async def test_one_writer_works_one_group_at_a_time(database: Database) -> None:
    # However long the first group is held, the second cannot start meanwhile.
    ingestor, answers = await _two_groups(database, writers=1, hold_s=0.5)

    assert not ingestor.overlapped
    assert len(set(ingestor.threads)) == 1
    assert [type(answer) for answer in answers] == [IngestResult] * 4


async def test_without_writer_threads_groups_commit_on_the_loops_thread(
    sqlite_database: Database,
) -> None:
    database = sqlite_database
    # The first group holds the loop itself: the second cannot even be gathered meanwhile.
    ingestor, answers = await _two_groups(database, writers=0, hold_s=0.2)

    assert not ingestor.overlapped
    assert ingestor.threads == [threading.current_thread().name] * 2
    assert [type(answer) for answer in answers] == [IngestResult] * 4
    with database.session() as session:
        stored = conversations.transcript(session=session, conversation_id="shared")
    assert sorted(item.event.event_id for item in stored) == ["s1", "s2"]


class _Recording(Ingestor):
    """Records how many posts each group held, and the thread that applied it."""

    def __init__(self) -> None:
        super().__init__(lambda: RULES, frozenset, lambda: T0)
        self.groups: list[int] = []
        self.threads: list[str] = []

    def apply_group(
        self,
        session: Session,
        posts: Sequence[Sequence[InboundBatch]],
        *,
        commit: bool = False,
        saved: list[Saved] | None = None,
    ) -> list[IngestResult]:
        self.groups.append(len(posts))
        self.threads.append(threading.current_thread().name)
        return super().apply_group(session, posts, commit=commit, saved=saved)


async def _ticks_until(done: asyncio.Future[IngestResult]) -> int:
    """How many times a 10 ms sleep of the event loop ended before `done`: none when the loop
    itself was kept waiting."""
    ticks = 0
    while not done.done():
        await asyncio.sleep(0.01)
        ticks += 1
    return ticks


@contextlib.contextmanager
def _holding_the_lock_elsewhere(database: Database, how: str) -> Iterator[Callable[[], None]]:
    """Hold the SQLite write lock from another program or another thread until the returned
    function is called (or the block ends)."""
    if how == "program":
        path = database.url.database
        assert path is not None
        other = sqlite3.connect(path, timeout=0, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")

        def rollback() -> None:
            if other.in_transaction:
                other.execute("ROLLBACK")

        try:
            yield rollback
        finally:
            other.close()
        return
    holding, released = threading.Event(), threading.Event()

    def writer() -> None:
        with database.session() as session:
            session.connection()
            holding.set()
            released.wait(WAIT_S)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert holding.wait(WAIT_S)
        yield released.set
    finally:
        released.set()
        thread.join(WAIT_S)


@pytest.mark.parametrize("how", ["program", "thread"])
async def test_the_loop_never_waits_for_another_writer(sqlite_database: Database, how: str) -> None:
    ingestor = _Recording()
    pipeline = IngestPipeline(sqlite_database, ingestor, writers=0)
    await pipeline.start()
    try:
        with _holding_the_lock_elsewhere(sqlite_database, how) as release:
            answer = asyncio.ensure_future(pipeline.submit(_post("c-1", "m1", 0)))
            asyncio.get_running_loop().call_later(0.3, release)
            ticks = await _ticks_until(answer)
            result = await answer
    finally:
        await pipeline.stop()

    # The group waited for the lock on a writer thread, while the loop went on.
    assert ticks >= 5
    assert result.events_stored == 1
    assert len(ingestor.threads) == 1
    assert ingestor.threads[0].startswith("ingest-writer")


def _long_post(cid: str, events: int) -> list[InboundBatch]:
    (batch,) = _post(cid, "first", 0)
    more = [
        batch.events[0]._replace(event_id=f"e{number}", timestamp=T0 + timedelta(seconds=number))
        for number in range(1, events)
    ]
    return [replace(batch, events=(*batch.events, *more))]


@pytest.mark.parametrize("writers", [0, 1])
async def test_a_group_is_kept_to_its_events(sqlite_database: Database, writers: int) -> None:
    ingestor = _Recording()
    pipeline = IngestPipeline(sqlite_database, ingestor, writers=writers, max_group_events=5)
    # Queued before the pipeline starts: all are waiting when the first group is gathered.
    sizes = [3, 3, 3, 3, 7, 1, 1]
    posts = [
        asyncio.ensure_future(pipeline.submit(_long_post(f"c-{index}", size)))
        for index, size in enumerate(sizes)
    ]
    await asyncio.sleep(0)
    await pipeline.start()
    try:
        answers = await asyncio.gather(*posts)
    finally:
        await pipeline.stop()

    # Posts are added while the group holds fewer than 5 events; a longer post goes alone.
    assert ingestor.groups == [2, 2, 1, 2]
    assert [answer.events_stored for answer in answers] == sizes


class _FailingOnTheLoop(_Recording):
    """The database fails the first group (as a full disk would): an error of the driver."""

    def apply_group(
        self,
        session: Session,
        posts: Sequence[Sequence[InboundBatch]],
        *,
        commit: bool = False,
        saved: list[Saved] | None = None,
    ) -> list[IngestResult]:
        if not self.threads:
            self.threads.append(threading.current_thread().name)
            raise OperationalError("INSERT INTO events", {}, Exception("disk I/O error"))
        return super().apply_group(session, posts, commit=commit, saved=saved)


async def test_a_group_the_database_failed_on_the_loop_is_done_again_on_a_writer_thread(
    sqlite_database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    ingestor = _FailingOnTheLoop()
    pipeline = IngestPipeline(sqlite_database, ingestor, writers=0)
    await pipeline.start()
    try:
        result = await pipeline.submit(_post("c-1", "m1", 0))
    finally:
        await pipeline.stop()

    assert result.events_stored == 1
    assert "group commit of 1 posts failed" in caplog.text
    assert "disk I/O error" in caplog.text
    assert "doing it again on a writer thread" in caplog.text
    assert ingestor.threads[0] == threading.current_thread().name
    assert ingestor.threads[1].startswith("ingest-writer")
    with sqlite_database.session() as session:
        stored = conversations.transcript(session=session, conversation_id="c-1")
    assert [item.event.event_id for item in stored] == ["m1"]


def test_a_pipeline_refuses_a_negative_writer_count_or_an_empty_group(
    sqlite_database: Database,
) -> None:
    ingestor = Ingestor(lambda: RULES, frozenset, lambda: T0)
    with pytest.raises(ValueError, match="writers must be at least 0, got -1"):
        IngestPipeline(sqlite_database, ingestor, writers=-1)
    with pytest.raises(ValueError, match="max_group_events=0"):
        IngestPipeline(sqlite_database, ingestor, max_group_events=0)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("-1", "ESCALATIONS_INGEST_WRITERS: must be at least 0, got -1"),
        ("two", "ESCALATIONS_INGEST_WRITERS: expected a whole number, got 'two'"),
    ],
)
def test_a_bad_writer_count_is_refused_with_its_variable(raw: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({"ESCALATIONS_INGEST_WRITERS": raw})


def test_the_writer_count_is_left_to_the_database_unless_set() -> None:
    assert Settings.from_env({}).ingest_writers is None
    assert Settings.from_env({"ESCALATIONS_INGEST_WRITERS": " "}).ingest_writers is None
    assert Settings.from_env({"ESCALATIONS_INGEST_WRITERS": "3"}).ingest_writers == 3
    assert Settings.from_env({"ESCALATIONS_INGEST_WRITERS": "0"}).ingest_writers == 0


async def test_the_service_commits_on_the_loops_thread_unless_told_otherwise(
    database: Database, make_service: Callable[..., AsyncIterator[Running]]
) -> None:
    async for running in make_service():
        assert running.service.pipeline.writers == 0
        status, answer = await running.post(
            conversation("c-1", message("m1", "customer", "hello", 0))
        )
        assert (status, answer["stored"]) == (200, 1)
    async for running in make_service(ESCALATIONS_INGEST_WRITERS="3"):
        assert running.service.pipeline.writers == 3
        status, answer = await running.post(
            conversation("c-1", message("m2", "customer", "hello again", 5))
        )
        assert (status, answer["stored"]) == (200, 1)


def test_a_pipeline_refuses_no_room_for_a_group_on_the_loop(sqlite_database: Database) -> None:
    with pytest.raises(ValueError, match="loop_groups must be at least 1, got 0"):
        IngestPipeline(
            sqlite_database, Ingestor(lambda: RULES, frozenset, lambda: T0), loop_groups=0
        )


class _Threads(Ingestor):
    """Records the thread that applied each group."""

    def __init__(self) -> None:
        super().__init__(lambda: RULES, frozenset, lambda: T0)
        self.threads: list[str] = []

    def apply_group(
        self,
        session: Session,
        posts: Sequence[Sequence[InboundBatch]],
        *,
        commit: bool = False,
        saved: list[Saved] | None = None,
    ) -> list[IngestResult]:
        self.threads.append(threading.current_thread().name)
        return super().apply_group(session, posts, commit=commit, saved=saved)


async def _waiting_for_a_lock(database: Database, deadline: float) -> bool:
    """Whether a connection of the database waits for a row lock (the held group)."""
    while asyncio.get_running_loop().time() < deadline:
        with database.session() as session:
            waiting = session.connection().exec_driver_sql(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if waiting.scalar_one():
                return True
        await asyncio.sleep(0.02)
    return False


@pytest.mark.postgres
async def test_on_postgres_the_loop_works_a_second_group_while_the_first_waits_for_the_server(
    postgres_database: Database,
) -> None:
    database = postgres_database
    ingestor = _Threads()
    pipeline = IngestPipeline(database, ingestor, writers=0)
    await pipeline.start()
    try:
        assert (await pipeline.submit(_post("held", "h1", 0))).events_stored == 1
        # Another program holds the conversation's row: the next group waits for it at the
        # server, in its lock's round trip.
        with database.session() as holder:
            holder.connection().exec_driver_sql(
                "SELECT id FROM conversations WHERE id = 'held' FOR UPDATE"
            )
            held = asyncio.ensure_future(pipeline.submit(_post("held", "h2", 10)))
            loop = asyncio.get_running_loop()
            assert await _waiting_for_a_lock(database, loop.time() + WAIT_S)
            # Meanwhile the loop answers, and a second group is worked and committed.
            free = await asyncio.wait_for(pipeline.submit(_post("free", "f1", 0)), WAIT_S)
            assert free.events_stored == 1
            assert not held.done()
            holder.rollback()  # the row is let go: the first group goes on
        assert (await asyncio.wait_for(held, WAIT_S)).events_stored == 1
    finally:
        await pipeline.stop()
    # Every group on the loop's own thread.
    assert ingestor.threads == [threading.current_thread().name] * 3
    with database.session() as session:
        record = conversations.get_conversation(session=session, conversation_id="held")
        stored = conversations.transcript(session=session, conversation_id="held")
    assert [item.event.event_id for item in stored] == ["h1", "h2"]
    assert record is not None
    assert record.state is not None
    assert record.state["turns"] == 2


@pytest.mark.postgres
async def test_on_postgres_a_group_on_the_loop_that_fails_is_redone_post_by_post(
    postgres_database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    database = postgres_database
    ingestor = _Threads()
    pipeline = IngestPipeline(database, ingestor, writers=0)
    # Queued before the pipeline starts: one group, whose second post names a conversation id
    # longer than its column: the server refuses the group's lock, and with it the group.
    good = _post("good", "g1", 0)
    bad = [replace(_post("bad", "b1", 0)[0], conversation_id="x" * 300)]
    tasks = [asyncio.ensure_future(pipeline.submit(post)) for post in (good, bad)]
    await asyncio.sleep(0)
    await pipeline.start()
    try:
        answers = await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await pipeline.stop()
    assert isinstance(answers[0], IngestResult)
    assert answers[0].events_stored == 1
    assert isinstance(answers[1], Exception)
    assert "retrying one by one" in caplog.text
    # The group, then each of its posts again, all on the loop's own thread.
    assert ingestor.threads == [threading.current_thread().name] * 3
    with database.session() as session:
        assert conversations.get_conversation(session=session, conversation_id="good")
