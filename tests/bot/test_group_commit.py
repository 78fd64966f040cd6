"""Group commit: posts committed together store exactly what they would one post at a time.

The same posts go through the database twice, under two prefixes of conversation ids: once one
post per transaction (`Ingestor.apply`), once queued together so the pipeline commits them as
one group (`Ingestor.apply_group`: every conversation locked in one statement, all events and
states stored in one more). The group mixes new and known conversations, a post touching two
conversations, the same conversation in two posts, a retried post, a post that escalates, a
customer writing to an open card, and a post that fails; what is stored, and what each post is
answered, must be the same both ways.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select

from bot.pipeline import Ingestor, IngestPipeline, IngestResult, team_surfaces
from engine.events import (
    ConversationEvent,
    ConversationMeta,
    Customer,
    EventType,
    InboundBatch,
    Role,
)
from engine.rules_loader import load_rules_file
from storage import _pgpipeline, conversations, escalations, outbox, tables
from storage.db import Database
from tests.storage.storage_helpers import kill_pooled_connection

REPO = Path(__file__).resolve().parents[2]
RULES = load_rules_file(REPO / "rules.yaml")
T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
NOW = T0 + timedelta(minutes=5)

Post = list[InboundBatch]


def _meta(tier: str | None = None, **metadata: str) -> ConversationMeta:
    return ConversationMeta(
        platform="acme-bot", customer=Customer(id="u-1", tier=tier), metadata=metadata
    )


def _say(event_id: str, role: Role, text: str, second: int, **fields: Any) -> ConversationEvent:
    return ConversationEvent(
        event_id=event_id,
        type=EventType.MESSAGE,
        timestamp=T0 + timedelta(seconds=second),
        role=role,
        text=text,
        **fields,
    )


def _angry(prefix: str) -> list[ConversationEvent]:
    fallback = {"fallback": True, "intent": "fallback", "confidence": 0.2}
    return [
        _say(f"{prefix}1", Role.CUSTOMER, "where is my refund for order #48213??", 0),
        _say(f"{prefix}2", Role.BOT, "Sorry, I didn't get that.", 2, **fallback),
        _say(f"{prefix}3", Role.CUSTOMER, "my refund for order 48213, where is it", 20),
        _say(f"{prefix}4", Role.BOT, "Sorry, I didn't get that.", 22, **fallback),
        _say(f"{prefix}5", Role.CUSTOMER, "useless. I want to talk to a real person now", 40),
    ]


def _batch(prefix: str, cid: str, events: Sequence[ConversationEvent], **meta: Any) -> InboundBatch:
    return InboundBatch(prefix + cid, _meta(**meta), tuple(events))


def _earlier_posts(p: str) -> list[Post]:
    """What the database holds before the group: two calm conversations and an open card."""
    return [
        [_batch(p, "known", [_say("k1", Role.CUSTOMER, "hi, where is my parcel?", 0)])],
        [_batch(p, "carded", _angry("a"))],
        [_batch(p, "ended", [_say("x1", Role.CUSTOMER, "thanks", 0)], tier="gold")],
    ]


def _group(p: str, *, failing: bool) -> list[Post]:
    """The posts committed together (in this order), with or without the failing one."""
    posts = [
        # A new conversation and a known one in the same post (listed out of id order).
        [
            _batch(p, "new-b", [_say("n1", Role.CUSTOMER, "hello there", 5)]),
            _batch(
                p,
                "known",
                [
                    _say("k2", Role.BOT, "It left the depot this morning.", 3),
                    _say("k1", Role.CUSTOMER, "hi, where is my parcel?", 0),  # a duplicate
                ],
                order="A-1",
            ),
        ],
        # The customer writes to the open card: one thread message for the card.
        [_batch(p, "carded", [_say("a6", Role.CUSTOMER, "hello?? anyone", 60)])],
        # A post that fails when its events are stored (a naive time cannot be): nothing of it
        # may be stored, not its new conversation, nor the card the engine opened for it, nor
        # the event and the state of its known conversation.
        [
            _batch(
                p,
                "failing-new",
                [
                    event._replace(timestamp=event.timestamp.replace(tzinfo=None))
                    for event in _angry("f")
                ],
            ),
            _batch(p, "known", [_say("f2", Role.CUSTOMER, "anyone?", 9)]),
        ],
        # A retried post: all duplicates.
        [_batch(p, "ended", [_say("x1", Role.CUSTOMER, "thanks", 0)], tier="gold")],
        # A new conversation that escalates at once.
        [_batch(p, "new-angry", _angry("b"))],
        # The same conversations again, later in the group: they see the earlier posts stored.
        [_batch(p, "new-b", [_say("n0", Role.CUSTOMER, "earlier, late", 1)], tier="silver")],
        [
            _batch(
                p,
                "known",
                [
                    _say("k3", Role.CUSTOMER, "and when will it arrive?", 30),
                    _say("k2", Role.BOT, "It left the depot this morning.", 3),  # duplicate
                ],
                order="A-2",
            )
        ],
        # The same new conversation in the post's two batches (a second round within a post).
        [
            _batch(p, "twice", [_say("t1", Role.CUSTOMER, "one", 0)]),
            _batch(
                p,
                "twice",
                [_say("t2", Role.CUSTOMER, "two", 1), _say("t1", Role.CUSTOMER, "one", 0)],
            ),
        ],
    ]
    return posts if failing else posts[:FAILING] + posts[FAILING + 1 :]


FAILING = 2  # the index of the failing post in `_group`


def _ingestor() -> Ingestor:
    return Ingestor(lambda: RULES, lambda: frozenset({"slack"}), lambda: NOW)


def _answer(result: IngestResult | BaseException, prefix: str) -> object:
    if isinstance(result, BaseException):
        return type(result)
    return (
        result.events_received,
        result.events_stored,
        result.duplicates,
        len(result.opened),
        result.opened_levels,
        [(cid.removeprefix(prefix), event, decision) for cid, event, decision in result.decisions],
    )


def _stored(database: Database, prefix: str) -> dict[str, Any]:
    """Everything the posts stored under `prefix`, without ids the database picked."""
    with database.session() as session:
        conn = session.connection()
        found: dict[str, Any] = {}
        rows = conn.execute(
            select(tables.conversations)
            .where(tables.conversations.c.id.startswith(prefix))
            .order_by(tables.conversations.c.id)
        ).mappings()
        escalation_of: dict[int, str] = {}
        for row in rows:
            cid = str(row["id"]).removeprefix(prefix)
            record = dict(row)
            record["id"] = cid
            transcript = conversations.transcript(session=session, conversation_id=row["id"])
            cards = escalations.list_escalations(session=session, limit=100)
            mine = [card for card in cards if card.conversation_id == row["id"]]
            for card in mine:
                escalation_of[card.id] = cid
            found[cid] = {
                "conversation": record,
                "transcript": transcript,
                "escalations": [
                    (card.status, card.level, card.score, card.reasons, card.team, card.summary)
                    for card in mine
                ],
            }
        outbox = [
            (
                escalation_of[row["escalation_id"]],
                row["kind"],
                row["surface"],
                row["payload"],
                row["status"],
            )
            for row in conn.execute(select(tables.outbox).order_by(tables.outbox.c.id)).mappings()
            if row["escalation_id"] in escalation_of
        ]
        # In order within each conversation; across them a group's order differs (its customers'
        # thread messages are enqueued together, after the round's other rows).
        found["outbox"] = sorted(outbox, key=lambda row: row[0])
        return found


def _one_by_one(database: Database, ingestor: Ingestor, posts: Sequence[Post]) -> list[Any]:
    answers: list[Any] = []
    for post in posts:
        try:
            with database.session() as session:
                answers.append(ingestor.apply(session, post))
        except Exception as error:  # the failing post: rolled back on its own
            answers.append(error)
    return answers


async def _as_one_group(
    database: Database,
    ingestor: Ingestor,
    posts: Sequence[Post],
    on_commit: Callable[[], None] | None = None,
) -> list[Any]:
    pipeline = IngestPipeline(database, ingestor, on_commit=on_commit)
    # Queue every post before the writer starts, so that it takes them as one group.
    tasks = [asyncio.ensure_future(pipeline.submit(post)) for post in posts]
    await asyncio.sleep(0)
    await pipeline.start()
    try:
        return list(await asyncio.gather(*tasks, return_exceptions=True))
    finally:
        await pipeline.stop()


@pytest.mark.parametrize("failing", [False, True], ids=["all-good", "one-failing"])
async def test_a_group_stores_what_its_posts_would_one_by_one(
    database: Database, failing: bool, caplog: pytest.LogCaptureFixture
) -> None:
    ingestor = _ingestor()
    for prefix in ("s-", "g-"):
        _one_by_one(database, ingestor, _earlier_posts(prefix))

    alone = _one_by_one(database, ingestor, _group("s-", failing=failing))
    with caplog.at_level(logging.INFO, logger="bot.pipeline"):
        together = await _as_one_group(database, ingestor, _group("g-", failing=failing))

    # One group: committed in one go, or (with the failing post) done again post by post.
    posts = len(together)
    redone = f"a post failed in a group of {posts}; redoing it post by post"
    assert (redone in caplog.messages) is failing
    if failing:
        assert isinstance(alone[FAILING], Exception)
        assert isinstance(together[FAILING], Exception)
    assert [_answer(answer, "g-") for answer in together] == [
        _answer(answer, "s-") for answer in alone
    ]
    # (received, stored, duplicates) of each post.
    counted = [
        (answer.events_received, answer.events_stored, answer.duplicates)
        for answer in together
        if not isinstance(answer, BaseException)
    ]
    assert counted == [(3, 2, 1), (1, 1, 0), (1, 0, 1), (5, 5, 0), (1, 1, 0), (2, 1, 1), (3, 2, 1)]
    grouped = _stored(database, "g-")
    assert grouped == _stored(database, "s-")
    # The story did happen: the failing post left nothing, the rest is all there.
    assert "failing-new" not in grouped
    assert [stored.event.event_id for stored in grouped["known"]["transcript"]] == [
        "k1",
        "k2",
        "k3",
    ]
    assert grouped["known"]["conversation"]["metadata"] == {"order": "A-2"}
    assert [stored.event.event_id for stored in grouped["new-b"]["transcript"]] == ["n0", "n1"]
    assert grouped["new-b"]["conversation"]["customer_tier"] == "silver"
    assert [stored.event.event_id for stored in grouped["twice"]["transcript"]] == ["t1", "t2"]
    assert [status for status, *_ in grouped["new-angry"]["escalations"]] == ["open"]
    assert sorted((kind, surface) for _, kind, surface, _, _ in grouped["outbox"]) == [
        ("post_card", "slack"),
        ("post_card", "slack"),
        ("thread_reply", "slack"),
    ]


def test_a_new_conversation_is_stored_with_its_state_whatever_its_first_batch_holds(
    database: Database,
) -> None:
    # On SQLite a new conversation's row is written with its first state; one whose first
    # batch holds no event, and one whose first event escalates (the escalation names it),
    # are stored first, as the lock would have. Each reads back with what its batch gave it,
    # on both backends.
    calm = InboundBatch("calm", _meta(), (_say("c1", Role.CUSTOMER, "hello there", 0),))
    empty = InboundBatch("empty", _meta(tier="gold"), ())
    angry = InboundBatch(
        "angry",
        _meta(),
        (_say("a1", Role.CUSTOMER, "this is useless, get me a human agent now", 0),),
    )
    with database.session() as session:
        answers = _ingestor().apply_group(session, [[calm, empty], [angry]], commit=True)
    assert [answer.events_stored for answer in answers] == [1, 1]
    assert [cid for cid, _, _ in answers[1].decisions] == ["angry"]
    with database.session(read_only=True) as session:
        records = {
            cid: conversations.get_conversation(session=session, conversation_id=cid)
            for cid in ("calm", "empty", "angry")
        }
        opened = escalations.active_escalation(session=session, conversation_id="angry")
    assert all(record is not None for record in records.values())
    assert records["empty"] is not None
    assert (records["empty"].state, records["empty"].meta.customer.tier) == (None, "gold")
    assert records["calm"] is not None
    assert records["calm"].state is not None
    assert records["calm"].state["turns"] == 1
    assert records["calm"].first_event_at == records["calm"].last_event_at == T0
    assert records["angry"] is not None
    assert records["angry"].state is not None
    assert records["angry"].level is not None
    assert opened is not None


def test_a_conversation_named_twice_in_one_lock_is_refused(database: Database) -> None:
    with database.session() as session, pytest.raises(ValueError, match="named twice"):
        conversations.lock_conversations(
            session=session,
            requests=[conversations.LockRequest("c-1", _meta(), NOW)] * 2,
        )


@pytest.mark.postgres
async def test_a_group_on_a_connection_the_server_dropped_is_done_again_post_by_post(
    postgres_database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    # The group's session skips the ping before use (a round trip): the pool's only
    # connection is dead, so the group fails, and each post is done again in its own session.
    database = postgres_database
    kill_pooled_connection(database)

    posts = _earlier_posts("p-")
    with caplog.at_level(logging.WARNING, logger="bot.pipeline"):
        answers = await _as_one_group(database, _ingestor(), posts)
    assert "group commit of 3 posts failed" in caplog.text
    assert all(isinstance(answer, IngestResult) for answer in answers)
    with database.session() as session:
        stored = conversations.list_conversations(session=session)
    assert sorted(record.id for record in stored) == ["p-carded", "p-ended", "p-known"]


async def test_the_delivery_worker_is_woken_after_a_commit_that_queued_deliveries(
    database: Database,
) -> None:
    ingestor = _ingestor()
    wakes: list[str] = []

    async def commit(name: str, posts: Sequence[Post]) -> None:
        await _as_one_group(database, ingestor, posts, lambda: wakes.append(name))

    await commit("calm", [_earlier_posts("w-")[0]])
    await commit("a card", [[_batch("w-", "angry", _angry("a"))]])
    await commit("calm again", [[_batch("w-", "calm", [_say("c1", Role.CUSTOMER, "hi", 0)])]])
    await commit(
        "a thread message", [[_batch("w-", "angry", [_say("a6", Role.CUSTOMER, "??", 60)])]]
    )
    await commit("a retry", [[_batch("w-", "angry", [_say("a6", Role.CUSTOMER, "??", 60)])]])
    assert wakes == ["a card", "a thread message"]


@pytest.mark.postgres
async def test_a_post_the_database_refuses_in_the_last_round_trip_spoils_no_other(
    postgres_database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    # PostgreSQL refuses a NUL character in text when the events are inserted, in the same
    # round trip as the states and the COMMIT: the group fails whole, and is done post by post.
    bad = [_batch("n-", "bad", [_say("b1", Role.CUSTOMER, "nul \x00 here", 0)])]
    posts = [*_earlier_posts("n-"), bad]
    with caplog.at_level(logging.WARNING, logger="bot.pipeline"):
        answers = await _as_one_group(postgres_database, _ingestor(), posts)
    assert "group commit of 4 posts failed" in caplog.text
    assert [type(answer).__name__ for answer in answers] == ["IngestResult"] * 3 + ["DataError"]
    with postgres_database.session() as session:
        stored = conversations.list_conversations(session=session)
    assert sorted(record.id for record in stored) == ["n-carded", "n-ended", "n-known"]


@pytest.fixture
def exchanges(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The round trips sent through `_pgpipeline` from now on (each one's number of commands);
    the real exchange runs."""
    sent: list[int] = []
    exchange = _pgpipeline._exchange

    def counted(pgconn: Any, commands: Any) -> Any:
        sent.append(len(commands))
        return exchange(pgconn, commands)

    monkeypatch.setattr(_pgpipeline, "_exchange", counted)
    return sent


@pytest.mark.postgres
async def test_on_postgresql_the_escalations_a_group_opens_last_go_with_its_writes(
    postgres_database: Database, exchanges: list[int]
) -> None:
    # Three posts each open an escalation with their last event, a fourth with its first, and
    # its customer then writes to the card (the thread message needs the escalation's id). The
    # three are opened in the round trip of the group's writes: with the lock, and the fourth's
    # escalation, three round trips in all, each through `_pgpipeline` (none through SQLAlchemy,
    # whose statements hold the event loop while they wait for the server).
    angry = "this is useless, get me a human agent now"
    posts = [
        [_batch("l-", f"last-{n}", [_say(f"x{n}", Role.CUSTOMER, angry, 0)])] for n in range(3)
    ]
    posts.append(
        [
            _batch(
                "l-",
                "first",
                [_say("f1", Role.CUSTOMER, angry, 0), _say("f2", Role.CUSTOMER, "hello??", 9)],
            )
        ]
    )
    executed: list[str] = []

    def through_sqlalchemy(*args: Any) -> None:
        executed.append(args[2])

    event.listen(postgres_database.engine, "before_cursor_execute", through_sqlalchemy)
    try:
        answers = await _as_one_group(postgres_database, _ingestor(), posts)
    finally:
        event.remove(postgres_database.engine, "before_cursor_execute", through_sqlalchemy)
    assert executed == []
    assert len(exchanges) == 3
    assert all(isinstance(answer, IngestResult) for answer in answers)
    with postgres_database.session(read_only=True) as session:
        opened = {
            cid: escalations.active_escalation(session=session, conversation_id=f"l-{cid}")
            for cid in ("last-0", "last-1", "last-2", "first")
        }
        rows = session.connection().execute(select(tables.outbox).order_by(tables.outbox.c.id))
        queued = [(row["kind"], row["escalation_id"], row["dedupe_key"]) for row in rows.mappings()]
    ids = {cid: record.id for cid, record in opened.items() if record is not None}
    assert [answer.opened for answer in answers] == [
        [ids["last-0"]],
        [ids["last-1"]],
        [ids["last-2"]],
        [ids["first"]],
    ]
    assert [answer.opened_levels for answer in answers] == [
        [record.level] for record in opened.values() if record is not None
    ]
    assert ids["last-0"] < ids["last-1"] < ids["last-2"]
    cards = {
        record.id: team_surfaces(RULES, record.team or "", frozenset({"slack"}))
        for record in opened.values()
        if record is not None
    }
    assert sorted(queued, key=lambda row: (row[0], row[1])) == sorted(
        [
            ("post_card", number, outbox.post_card_key(number, surface, channel))
            for number, targets in cards.items()
            for surface, channel in targets
        ]
        + [("thread_reply", ids["first"], None)],
        key=lambda row: (row[0], row[1]),
    )


@pytest.mark.postgres
async def test_on_postgresql_what_a_conversation_written_lately_holds_is_read_with_its_lock(
    postgres_database: Database, exchanges: list[int]
) -> None:
    # A post to a conversation this process wrote lately: its stored event ids and its active
    # escalation are read in the lock's round trip (two round trips in all). Another process
    # (a fresh ingestor) knows nothing of it: it finds it stored only once locked, and reads
    # them in a round trip of their own. Either way the retried event is known, and the card's
    # thread gets the customer's new message.
    writer = _ingestor()
    await _as_one_group(postgres_database, writer, [[_batch("r-", "angry", _angry("a"))]])
    assert "r-angry" in writer.recent

    def again(event_id: str) -> Post:
        return [
            _batch(
                "r-",
                "angry",
                [_say("a5", Role.CUSTOMER, "x", 40), _say(event_id, Role.CUSTOMER, "hello?", 60)],
            )
        ]

    answers: list[IngestResult] = []
    for ingestor, event_id, trips in ((writer, "a6", 2), (_ingestor(), "a7", 3)):
        exchanges.clear()
        (answer,) = await _as_one_group(postgres_database, ingestor, [again(event_id)])
        assert len(exchanges) == trips
        assert isinstance(answer, IngestResult)
        answers.append(answer)
    assert [(answer.events_stored, answer.duplicates) for answer in answers] == [(1, 1), (1, 1)]
    with postgres_database.session(read_only=True) as session:
        card = escalations.active_escalation(session=session, conversation_id="r-angry")
        rows = session.connection().execute(
            select(tables.outbox.c.kind).where(tables.outbox.c.kind == "thread_reply")
        )
        replies = rows.scalars().all()
    assert card is not None
    assert replies == ["thread_reply", "thread_reply"]
