"""Ingest writers: on PostgreSQL two groups commit at once, and store what one writer would."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session

from bot.config import Settings, SettingsError
from bot.pipeline import Ingestor, IngestPipeline, IngestResult
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
        self, session: Session, posts: Sequence[Sequence[InboundBatch]], *, commit: bool = False
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
        return super().apply_group(session, posts, commit=commit)


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


def test_a_pipeline_needs_a_writer(sqlite_database: Database) -> None:
    ingestor = Ingestor(lambda: RULES, frozenset, lambda: T0)
    with pytest.raises(ValueError, match="writers must be at least 1, got 0"):
        IngestPipeline(sqlite_database, ingestor, writers=0)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("0", "ESCALATIONS_INGEST_WRITERS: must be at least 1, got 0"),
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


async def test_the_service_runs_two_writers_on_postgres_and_one_on_sqlite(
    database: Database, make_service: Callable[..., AsyncIterator[Running]]
) -> None:
    expected = 2 if database.dialect == "postgresql" else 1
    async for running in make_service():
        assert running.service.pipeline.writers == expected
        status, answer = await running.post(
            conversation("c-1", message("m1", "customer", "hello", 0))
        )
        assert (status, answer["stored"]) == (200, 1)
    async for running in make_service(ESCALATIONS_INGEST_WRITERS="3"):
        assert running.service.pipeline.writers == 3
