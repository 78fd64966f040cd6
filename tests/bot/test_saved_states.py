"""Posts to a conversation already seen go on from the state object saved last (both
databases keep the state as the text written): the same verdicts, rows and state as decoding
the stored state at every post, and never a state that is not the one stored."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from sqlmodel import select

from bot.pipeline import Ingestor, IngestPipeline, Saved, SavedStates
from bot.replay import read_conversations
from engine import ConversationState
from engine.events import (
    ConversationEvent,
    ConversationMeta,
    EventType,
    InboundBatch,
    Role,
)
from engine.rules_loader import load_rules_file
from storage import conversations, escalations, tables
from storage.db import Database
from tests.bot.conftest import REPO, T0

RULES = load_rules_file(REPO / "rules.yaml")
DATA = REPO / "evaluation" / "data"


def _ingestor(keep: int = SavedStates.LIMIT) -> Ingestor:
    ingestor = Ingestor(lambda: RULES, frozenset, lambda: T0)
    ingestor.saved_states = SavedStates(keep)
    return ingestor


def _store(database: Database, ingestor: Ingestor, posts: Sequence[list[InboundBatch]]) -> None:
    """Each group of posts in a transaction of its own, as the ingest pipeline commits them."""
    saved: list[Saved] = []
    with database.session() as session:
        ingestor.apply_group(session, posts, commit=True, saved=saved)
    ingestor.saved_states.put(saved)


def _posts_in_turn(per_post: int) -> list[list[InboundBatch]]:
    """The evaluation conversations cut into posts of `per_post` events, the conversations
    taking turns (a busy service's posts)."""
    split = []
    for path in sorted(DATA.glob("*.jsonl")):
        for batch, _raw in read_conversations(path):
            split.append(
                [
                    InboundBatch(
                        batch.conversation_id, batch.meta, batch.events[at : at + per_post]
                    )
                    for at in range(0, len(batch.events), per_post)
                ]
            )
    split = split[::3]
    posts: list[list[InboundBatch]] = []
    for turn in range(max(len(parts) for parts in split)):
        posts.extend([parts[turn]] for parts in split if turn < len(parts))
    return posts


def _everything(database: Database) -> list[object]:
    with database.session() as session:
        ids = session.exec(select(tables.Conversation.id)).all()
        found: list[object] = []
        for cid in sorted(ids):
            record = conversations.get_conversation(session=session, conversation_id=cid)
            assert record is not None
            found.append((cid, record.state, record.score, record.level, record.status))
            found.extend(conversations.transcript(session=session, conversation_id=cid))
        found.extend(
            (e.conversation_id, e.status, e.level, e.score, e.reasons, e.summary)
            for e in escalations.list_escalations(session=session, limit=10_000, oldest_first=True)
        )
    return found


def _kept_against_decoded(kept: Database, decoded: Database) -> None:
    for database in (kept, decoded):
        database.migrate()
    reusing, decoding = _ingestor(), _ingestor(keep=0)
    posts = _posts_in_turn(per_post=2)
    for start in range(0, len(posts), 7):
        group = posts[start : start + 7]
        _store(kept, reusing, group)
        _store(decoded, decoding, group)

    assert reusing.saved_states.reused > len(posts) / 2
    assert decoding.saved_states.reused == 0
    assert _everything(kept) == _everything(decoded)


def test_states_saved_last_give_what_decoding_the_stored_state_gives(tmp_path: Path) -> None:
    kept = Database(f"sqlite:///{tmp_path / 'kept.db'}")
    decoded = Database(f"sqlite:///{tmp_path / 'decoded.db'}")
    try:
        _kept_against_decoded(kept, decoded)
    finally:
        kept.dispose()
        decoded.dispose()


@pytest.mark.postgres
def test_states_saved_last_give_what_decoding_the_stored_state_gives_on_postgres(
    postgres_url_factory: Callable[[], str],
) -> None:
    kept, decoded = Database(postgres_url_factory()), Database(postgres_url_factory())
    try:
        _kept_against_decoded(kept, decoded)
    finally:
        kept.dispose()
        decoded.dispose()


def _customer_says(cid: str, event_id: str, second: int) -> list[InboundBatch]:
    event = ConversationEvent(
        event_id, EventType.MESSAGE, T0 + timedelta(seconds=second), Role.CUSTOMER, "hello?"
    )
    return [InboundBatch(cid, ConversationMeta(platform="acme-bot"), (event,))]


def _stored_state(database: Database, cid: str) -> dict[str, Any]:
    with database.session() as session:
        record = conversations.get_conversation(session=session, conversation_id=cid)
    assert record is not None
    assert record.state is not None
    return record.state


def test_a_state_stored_by_anyone_else_is_decoded_not_taken_as_saved(
    database: Database,
) -> None:
    ingestor = _ingestor()
    _store(database, ingestor, [_customer_says("c1", "m1", 0)])
    _store(database, ingestor, [_customer_says("c1", "m2", 1)])
    assert len(ingestor.saved_states) == 1
    # Another writer (another process, a reset) stores a state of its own.
    changed = {**_stored_state(database, "c1"), "turns": 40}
    with database.session() as session:
        session.exec(
            update(tables.Conversation)
            .where(tables.Conversation.id == "c1")  # type: ignore[arg-type]
            .values(state=changed)
        )

    _store(database, ingestor, [_customer_says("c1", "m3", 2)])

    assert ingestor.saved_states.reused == 0
    assert _stored_state(database, "c1")["turns"] == 41


def _work_then_fail(database: Database, ingestor: Ingestor, post: list[InboundBatch]) -> None:
    with database.session() as session:
        ingestor.apply_group(session, [post], saved=[])
        raise RuntimeError("the group failed")


def test_a_post_rolled_back_leaves_no_state_to_go_on_from(database: Database) -> None:
    ingestor = _ingestor()
    _store(database, ingestor, [_customer_says("c1", "m1", 0)])
    _store(database, ingestor, [_customer_says("c1", "m2", 1)])
    # The next post takes the saved state and works on it; its transaction is then rolled back.
    with pytest.raises(RuntimeError, match="the group failed"):
        _work_then_fail(database, ingestor, _customer_says("c1", "m3", 2))
    assert ingestor.saved_states.reused == 1
    assert len(ingestor.saved_states) == 0

    _store(database, ingestor, [_customer_says("c1", "m3", 2)])

    assert ingestor.saved_states.reused == 1  # decoded: the state it had was never stored
    assert _stored_state(database, "c1")["turns"] == 3
    with database.session() as session:
        stored = conversations.transcript(session=session, conversation_id="c1")
    assert [item.event.event_id for item in stored] == ["m1", "m2", "m3"]


def test_states_are_kept_from_a_conversations_second_post(database: Database) -> None:
    # A conversation's first post keeps nothing (many never post again).
    ingestor = _ingestor()
    _store(database, ingestor, [_customer_says("new", "m0", 0)])
    assert len(ingestor.saved_states) == 0
    for second in range(3):
        _store(database, ingestor, [_customer_says("c1", f"m{second}", second)])

    assert (ingestor.saved_states.reused, len(ingestor.saved_states)) == (1, 1)
    assert _stored_state(database, "c1")["turns"] == 3


def test_only_the_states_saved_last_are_kept() -> None:
    states = SavedStates(limit=2)
    first, second, third = (ConversationState.new() for _ in range(3))
    states.put([("a", "1", first), ("b", "1", second)])
    states.put([("a", "2", first), ("c", "1", third)])  # "a" saved again: "b" is the oldest

    assert len(states) == 2
    assert states.take("b", "1") is None
    assert states.take("a", "1") is None  # saved as "2" since
    assert states.take("c", "1") is third
    assert states.take("c", "1") is None  # taken: the caller's until it is put back


async def test_the_pipeline_keeps_the_states_of_the_groups_it_committed(
    database: Database,
) -> None:
    ingestor = _ingestor()
    pipeline = IngestPipeline(database, ingestor)
    await pipeline.start()
    try:
        for second in range(3):
            await pipeline.submit(_customer_says("c1", f"m{second}", second))
    finally:
        await pipeline.stop()

    assert (ingestor.saved_states.reused, len(ingestor.saved_states)) == (1, 1)
    assert _stored_state(database, "c1")["turns"] == 3
