"""Conversations: the per-conversation lock, events stored once, transcripts with verdicts."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.dialects import sqlite

from engine.assessment import Assessment, Decision, Reason
from engine.events import ConversationEvent, ConversationMeta, Customer, EventType, Role
from storage import _pgarrays, conversations
from storage._prepared import prepared
from storage.codec import ReasonsText, reasons_to_json
from storage.db import Database
from tests.storage.storage_helpers import META, T0, assessment, message


def test_first_event_creates_the_conversation_with_its_meta(database: Database) -> None:
    with database.session() as session:
        record = conversations.lock_conversation(
            session=session, conversation_id="conv-1", meta=META, now=T0
        )
    assert record.id == "conv-1"
    assert record.meta == META
    assert record.state is None
    assert record.status == "active"
    assert record.created_at == T0


def test_later_posts_fill_in_meta_without_forgetting_what_was_known(database: Database) -> None:
    later = ConversationMeta(
        platform="generic",
        customer=Customer(tier="platinum"),
        metadata={"channel": "web"},
        link=None,
    )
    with database.session() as session:
        conversations.lock_conversation(
            session=session, conversation_id="conv-1", meta=META, now=T0
        )
    with database.session() as session:
        record = conversations.lock_conversation(
            session=session, conversation_id="conv-1", meta=later, now=T0 + timedelta(minutes=1)
        )
    assert record.meta.customer == Customer(
        id="cust-1", name="Ana Lima", tier="platinum", email="ana@example.com"
    )
    assert record.meta.metadata == {"order": "A-100", "channel": "web"}
    assert record.meta.link == META.link
    assert record.created_at == T0
    assert record.updated_at == T0 + timedelta(minutes=1)
    # What a card reads of it: the same merged meta, without the state.
    with database.session() as session:
        assert conversations.get_meta(session=session, conversation_id="conv-1") == record.meta
        assert conversations.get_meta(session=session, conversation_id="nobody") is None


def test_a_retried_webhook_does_not_store_its_events_twice(database: Database) -> None:
    batch = [(message("e1", "my order is late"), None), (message("e2", "hello?"), None)]
    with database.session() as session:
        conversations.lock_conversation(session=session, conversation_id="c", meta=META, now=T0)
        assert (
            conversations.insert_events(
                session=session, conversation_id="c", rows=batch, received_at=T0
            )
            == 2
        )
    with database.session() as session:
        known = conversations.known_event_ids(
            session=session, conversation_id="c", event_ids=["e1", "e2", "e3"]
        )
        assert known == {"e1", "e2"}
        retried = [*batch, (message("e3", "anyone?"), None)]
        assert (
            conversations.insert_events(
                session=session, conversation_id="c", rows=retried, received_at=T0
            )
            == 1
        )
        texts = [
            stored.event.text
            for stored in conversations.transcript(session=session, conversation_id="c")
        ]
    assert texts == ["my order is late", "hello?", "anyone?"]


def test_the_same_event_id_in_two_conversations_is_two_events(database: Database) -> None:
    with database.session() as session:
        for conversation_id in ("a", "b"):
            conversations.lock_conversation(
                session=session, conversation_id=conversation_id, meta=META, now=T0
            )
            conversations.insert_events(
                session=session,
                conversation_id=conversation_id,
                rows=[(message("1"), None)],
                received_at=T0,
            )
        assert conversations.known_event_ids(
            session=session, conversation_id="b", event_ids=["1"]
        ) == {"1"}


def test_transcript_is_in_time_order_with_each_verdict(database: Database) -> None:
    customer = message("late-arrival", "I want a human", at=T0 + timedelta(seconds=30))
    bot = ConversationEvent(
        event_id="bot-1",
        type=EventType.MESSAGE,
        timestamp=T0 + timedelta(seconds=10),
        role=Role.BOT,
        text="Sorry, I did not get that.",
        intent="fallback",
        confidence=0.12,
        fallback=True,
        extra={"node": "n-7"},
    )
    same_time_as_bot = message("tie", "hm", at=T0 + timedelta(seconds=10))
    verdict = assessment("late-arrival")
    with database.session() as session:
        conversations.lock_conversation(session=session, conversation_id="c", meta=META, now=T0)
        conversations.insert_events(
            session=session,
            conversation_id="c",
            rows=[(customer, verdict), (bot, None)],
            received_at=T0 + timedelta(minutes=1),
        )
        conversations.insert_events(
            session=session,
            conversation_id="c",
            rows=[(same_time_as_bot, None)],
            received_at=T0 + timedelta(minutes=2),
        )
        stored = conversations.transcript(session=session, conversation_id="c")
    # By timestamp; events with the same timestamp in the order they arrived.
    assert [item.event.event_id for item in stored] == ["bot-1", "tie", "late-arrival"]
    assert stored[0].event == bot
    assert stored[0].decision is None
    assert stored[2].event == customer
    assert stored[2].score == verdict.score
    assert stored[2].level == "high"
    assert stored[2].reasons == verdict.reasons
    assert stored[2].decision is Decision.OPEN
    assert stored[2].received_at == T0 + timedelta(minutes=1)


def test_each_event_keeps_its_own_reasons_when_a_run_shares_them(database: Database) -> None:
    # The engine hands one tuple of reasons from event to event while they hold; the store
    # encodes a run of them once. Every event must still read back its own reasons.
    shared = (
        Reason("fallbacks", 3.0, 'the bot failed 3 times "in a row"', ("e1", "e2")),
        Reason("sentiment", 1.5, "negative sentiment \u00e9 -0.6", ()),
    )
    later = (shared[0],)
    rows = [
        (message("e1"), assessment("e1", reasons=shared)),
        (message("e2"), assessment("e2", reasons=shared)),
        (message("e3"), assessment("e3", reasons=later)),
        (message("e4"), assessment("e4", reasons=())),
        (message("e5"), assessment("e5", reasons=shared)),
    ]
    with database.session() as session:
        conversations.lock_conversation(session=session, conversation_id="c", meta=META, now=T0)
        conversations.insert_events(session=session, conversation_id="c", rows=rows, received_at=T0)
        stored = conversations.transcript(session=session, conversation_id="c")
    assert {item.event.event_id: item.reasons for item in stored} == {
        "e1": shared,
        "e2": shared,
        "e3": later,
        "e4": (),
        "e5": shared,
    }


def test_reasons_that_weigh_the_same_as_the_events_before_are_stored_once(
    database: Database,
) -> None:
    # A loop rewords its reasons at every event (the turns, the counts) without changing their
    # weights: only an event whose signals or points differ from the one before it in its post
    # stores them; the others read back the reasons before them, in the order they were stored.
    def loop(turns: str, *more: Reason) -> tuple[Reason, ...]:
        return (Reason("repetition", 50.0, f"the bot repeated itself ({turns})", ("b",)), *more)

    long = Reason("long_conversation", 10.0, "40 messages so far", ())
    first_post = [
        (message("e1", at=T0 + timedelta(seconds=1)), assessment("e1", reasons=loop("turns 1-2"))),
        (message("e2", at=T0 + timedelta(seconds=2)), assessment("e2", reasons=loop("turns 1-3"))),
        (message("e3", at=T0 + timedelta(seconds=3)), assessment("e3", reasons=loop("1-4", long))),
        (message("e4", at=T0 + timedelta(seconds=4)), None),
        (message("e5", at=T0 + timedelta(seconds=5)), assessment("e5", reasons=loop("1-4", long))),
    ]
    # A later post whose first event is older than all of the above.
    second_post = [
        (message("late", at=T0), assessment("late", reasons=loop("turns 7-8"))),
        (message("e6", at=T0 + timedelta(seconds=6)), assessment("e6", reasons=loop("turns 7-9"))),
    ]
    with database.session() as session:
        conversations.lock_conversation(session=session, conversation_id="c", meta=META, now=T0)
        for rows in (first_post, second_post):
            conversations.insert_events(
                session=session, conversation_id="c", rows=rows, received_at=T0
            )
        stored = conversations.transcript(session=session, conversation_id="c")
        kept = {
            event_id: bool(stored)
            for event_id, stored in session.connection().execute(
                text("SELECT event_id, reasons IS NOT NULL FROM events WHERE conversation_id = 'c'")
            )
        }
    assert kept == {
        "e1": True,
        "e2": False,
        "e3": True,
        "e4": False,  # no verdict
        "e5": True,  # the event before it had no verdict
        "late": True,  # the first of its post
        "e6": False,
    }
    assert [item.event.event_id for item in stored] == ["late", "e1", "e2", "e3", "e4", "e5", "e6"]
    by_id = {item.event.event_id: item for item in stored}
    assert by_id["e2"].reasons == loop("turns 1-2")
    assert by_id["e2"].score == 6.0
    assert by_id["e3"].reasons == by_id["e5"].reasons == loop("1-4", long)
    assert by_id["e4"].reasons == ()
    assert by_id["e4"].score is None
    # The reasons before e6 in the order stored are the late event's, not e5's (before it in time).
    assert by_id["e6"].reasons == loop("turns 7-8")


def test_reasons_are_as_before_only_with_the_same_signals_for_the_same_points() -> None:
    def reason(signal: str, points: float, words: str = "") -> Reason:
        return Reason(signal, points, words, ())

    loop = (reason("repetition", 50.0, "turns 1-3"), reason("long_conversation", 10.0))
    steps: list[tuple[tuple[Reason, ...] | None, bool]] = [
        (loop, False),  # the first
        (loop, True),  # the same tuple
        ((reason("repetition", 50.0, "turns 1-4"), loop[1]), True),  # other words only
        ((reason("repetition", 40.0), loop[1]), False),  # other points
        ((reason("sentiment", 40.0), loop[1]), False),  # another signal, same points
        ((loop[1], reason("sentiment", 40.0)), False),  # the same two, in another order
        (None, False),  # no verdict
        ((loop[1], reason("sentiment", 40.0)), False),  # after no verdict
        ((), False),
        ((), True),
    ]
    rows = [
        (message(f"e{index}"), None if reasons is None else assessment(reasons=reasons))
        for index, (reasons, _) in enumerate(steps)
    ]
    assert [as_before for _, _, as_before in conversations._weighed(rows)] == [
        as_before for _, as_before in steps
    ]


@pytest.mark.parametrize(
    "values",
    [
        ["plain", "", None, "caf\u00e9 \U0001f620", "x" * 5000, "quote ' \" \\ {a,b} NULL", None],
        [None, None],
        ["one"],
        ["NULL", "null"],
    ],
)
def test_text_arrays_reach_postgresql_as_they_are(
    postgres_database: Database, values: list[str | None]
) -> None:
    # The ingest statements send their text columns as arrays built in PostgreSQL's binary
    # format; the server must read back each element, NULLs and the empty string apart.
    with postgres_database.engine.connect() as connection:
        driver = connection.connection.driver_connection
        assert driver is not None
        rows = driver.execute(
            "SELECT value, ordinality FROM unnest(%(a)b::text[]) WITH ORDINALITY AS t(value)",
            {"a": _pgarrays.text_array(values)},
        ).fetchall()
    assert [value for value, _ in sorted(rows, key=lambda row: row[1])] == values


def test_reasons_text_is_the_json_of_the_tuple_it_is_given() -> None:
    text_of = ReasonsText()
    first = (Reason("repetition", 2.0, "the customer repeated themselves", ("e1",)),)
    second = (Reason("repetition", 2.5, "the customer repeated themselves 2 times", ("e1", "e3")),)
    awkward = (
        Reason(
            "frustration",
            7,
            'said "this is useless\\" \u2014 caf\u00e9 \U0001f620\n',
            ('a"b', "\u00e9"),
        ),
        Reason("sentiment", float("inf"), "", ()),
        Reason("sentiment", -0.0, "x", ("e1",) * 3),
    )
    # `first` again (the kept text), then an equal tuple that is another object.
    for reasons in (first, first, second, (), first, tuple(list(first)), awkward):
        assert json.loads(text_of(reasons)) == reasons_to_json(reasons)
        assert text_of(reasons) == json.dumps(reasons_to_json(reasons))


def test_a_big_batch_is_stored_whole(database: Database) -> None:
    rows = [(message(f"e{index}", at=T0 + timedelta(seconds=index)), None) for index in range(3000)]
    with database.session() as session:
        conversations.lock_conversation(session=session, conversation_id="c", meta=META, now=T0)
        inserted = conversations.insert_events(
            session=session, conversation_id="c", rows=rows, received_at=T0
        )
        known = conversations.known_event_ids(
            session=session, conversation_id="c", event_ids=[event.event_id for event, _ in rows]
        )
    assert inserted == 3000
    assert len(known) == 3000


def test_engine_state_is_saved_and_comes_back(database: Database) -> None:
    state = {"turns": 3, "fallback_streak": 2, "sentiment": [-0.2, -0.5]}
    with database.session() as session:
        conversations.lock_conversation(session=session, conversation_id="c", meta=META, now=T0)
        conversations.save_state(
            session=session,
            conversation_id="c",
            state=state,
            score=4.5,
            level="watch",
            status="active",
            last_event_at=T0 + timedelta(minutes=3),
            now=T0 + timedelta(minutes=3),
        )
    with database.session() as session:
        conversations.save_state(
            session=session,
            conversation_id="c",
            state={**state, "turns": 4},
            score=1.0,
            level=None,
            status="ended",
            last_event_at=T0 + timedelta(minutes=9),
            now=T0 + timedelta(minutes=9),
        )
        record = conversations.lock_conversation(
            session=session, conversation_id="c", meta=META, now=T0 + timedelta(minutes=10)
        )
    assert record.state == {**state, "turns": 4}
    assert (record.score, record.level, record.status) == (1.0, None, "ended")
    assert record.first_event_at == T0 + timedelta(minutes=3)
    assert record.last_event_at == T0 + timedelta(minutes=9)


def test_conversations_are_listed_most_recent_first(database: Database) -> None:
    with database.session() as session:
        for index, conversation_id in enumerate(["old", "newest", "middle"]):
            conversations.lock_conversation(
                session=session, conversation_id=conversation_id, meta=META, now=T0
            )
            conversations.save_state(
                session=session,
                conversation_id=conversation_id,
                state={},
                score=0.0,
                level=None,
                status="ended" if conversation_id == "old" else "active",
                last_event_at=T0 + timedelta(minutes=[0, 20, 10][index]),
            )
        listed = conversations.list_conversations(session=session)
        active = conversations.list_conversations(session=session, status="active")
        page_two = conversations.list_conversations(session=session, limit=1, offset=1)
        recent = conversations.list_conversations(session=session, since=T0 + timedelta(minutes=5))
    assert [record.id for record in listed] == ["newest", "middle", "old"]
    assert [record.id for record in active] == ["newest", "middle"]
    assert [record.id for record in page_two] == ["middle"]
    assert [record.id for record in recent] == ["newest", "middle"]


def _add_one_turn(database: Database, before_saving: Callable[[], None] = lambda: None) -> None:
    with database.session() as session:
        record = conversations.lock_conversation(
            session=session, conversation_id="c", meta=META, now=T0
        )
        turns = (record.state or {}).get("turns", 0)
        before_saving()
        conversations.save_state(
            session=session,
            conversation_id="c",
            state={"turns": turns + 1},
            score=0.0,
            level=None,
            status="active",
            last_event_at=T0,
        )


def test_concurrent_posts_to_one_conversation_lose_no_update(database: Database) -> None:
    def post_many() -> None:
        for _ in range(15):
            _add_one_turn(database)

    workers = [threading.Thread(target=post_many) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    with database.session() as session:
        record = conversations.get_conversation(session=session, conversation_id="c")
    assert record is not None
    assert record.state == {"turns": 45}


@pytest.mark.postgres
def test_a_second_post_waits_for_the_first_to_commit(postgres_database: Database) -> None:
    """The first post holds the row lock; the second sees its result, not the state before."""
    database = postgres_database
    _add_one_turn(database)
    second_done = threading.Event()
    errors: list[BaseException] = []

    def second_post() -> None:
        try:
            _add_one_turn(database)
        except BaseException as error:  # reported by the main thread
            errors.append(error)
        finally:
            second_done.set()

    second = threading.Thread(target=second_post)

    def start_second_and_see_it_blocked() -> None:
        second.start()
        with database.engine.connect() as observer:
            # Poll the server's own view until the second post waits on our row lock.
            while not second_done.is_set():
                waiting = observer.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    )
                ).scalar_one()
                if waiting:
                    return
                observer.rollback()
        raise AssertionError("the second post did not wait for the conversation lock")

    _add_one_turn(database, before_saving=start_second_and_see_it_blocked)
    second.join()
    assert errors == []
    with database.session() as session:
        record = conversations.get_conversation(session=session, conversation_id="c")
    assert record is not None
    assert record.state == {"turns": 3}


_ZONE = timezone(timedelta(hours=-5))


@settings(max_examples=300, deadline=None)
@given(
    text=st.one_of(st.none(), st.text(max_size=20)),
    role=st.one_of(st.none(), st.sampled_from(Role)),
    kind=st.sampled_from(EventType),
    confidence=st.one_of(st.none(), st.floats(0, 1), st.integers(0, 1)),
    fallback=st.one_of(st.none(), st.booleans()),
    extra=st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    verdict=st.one_of(
        st.none(),
        st.builds(
            assessment,
            score=st.floats(0, 100),
            level=st.one_of(st.none(), st.just("high")),
            decision=st.sampled_from(Decision),
            reasons=st.lists(
                st.builds(
                    Reason,
                    st.sampled_from(["repetition", "sentiment"]),
                    st.floats(0, 50),
                    st.text(max_size=10),
                    st.tuples(st.text(max_size=4)),
                ),
                max_size=3,
            ).map(tuple),
        ),
    ),
    as_before=st.booleans(),
    minute=st.integers(0, 59),
)
def test_the_sqlite_event_row_is_what_the_generic_conversions_give(
    text: str | None,
    role: Role | None,
    kind: EventType,
    confidence: float | None,
    fallback: bool | None,
    extra: dict[str, int],
    verdict: Assessment | None,
    as_before: bool,
    minute: int,
) -> None:
    # The SQLite insert builds each event's row directly; it must be the row SQLAlchemy's own
    # conversions of the column values give, reasons JSON (or NULL, as the event before it)
    # included.
    event = ConversationEvent(
        event_id="e1",
        type=kind,
        timestamp=datetime(2026, 3, 2, 9, minute, 7, 123, tzinfo=_ZONE),
        role=role,
        text=text,
        intent="billing",
        confidence=confidence,
        fallback=fallback,
        outcome=None,
        extra=extra,
    )
    inserting = prepared(conversations._INSERT_EVENTS, sqlite.dialect(), conversations._EVENT_KEYS)
    direct = conversations._SqliteEventRow.of(inserting)
    values = conversations._event_values("c-1", event, verdict, T0, as_before)
    assert direct("c-1", event, verdict, T0, as_before) == inserting.parameters(values)


_maybe_text = st.one_of(st.none(), st.text(max_size=8))
_aware_time = st.datetimes(timezones=st.sampled_from([UTC, _ZONE]))
_customers = st.builds(
    Customer, id=_maybe_text, name=_maybe_text, tier=_maybe_text, email=_maybe_text
)
_metadata = st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3)
# A state given as its dict or already as its JSON text; a verdict's score, level and status.
_states = st.one_of(
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2).map(json.dumps),
)
_scores = st.one_of(st.floats(0, 100), st.integers(0, 100))
_levels = st.one_of(st.none(), st.just("high"))
_statuses = st.sampled_from(["active", "ended"])


@settings(max_examples=200, deadline=None)
@given(
    customer=_customers,
    metadata=_metadata,
    language=_maybe_text,
    link=_maybe_text,
    zone=st.sampled_from([UTC, _ZONE]),
    micro=st.integers(0, 999_999),
)
def test_the_sqlite_new_conversation_row_is_what_the_generic_conversions_give(
    customer: Customer,
    metadata: dict[str, str],
    language: str | None,
    link: str | None,
    zone: timezone,
    micro: int,
) -> None:
    # A new conversation's row is built directly; it must be the row SQLAlchemy's own
    # conversions of the column values give, metadata JSON and times included.
    meta = ConversationMeta(
        platform="acme", customer=customer, metadata=metadata, language=language, link=link
    )
    request = conversations.LockRequest("c-1", meta, datetime(2026, 3, 2, 9, 5, 7, micro, zone))
    creating = prepared(conversations._CREATE, sqlite.dialect(), conversations._LOCK_KEYS)
    direct = conversations._SqliteCreateRow.of(creating)
    assert direct(request) == creating.parameters(conversations._lock_values(request))


_maybe_time = st.one_of(st.none(), _aware_time)


def _state_updates(
    create: st.SearchStrategy[conversations.LockRequest | None],
) -> st.SearchStrategy[conversations.StateUpdate]:
    """States of conversation "c-1" with any verdict and times (`create`: what creates it)."""
    return st.builds(
        conversations.StateUpdate,
        st.just("c-1"),
        _states,
        _scores,
        _levels,
        _statuses,
        _maybe_time,
        _maybe_time,
        _aware_time,
        create,
    )


@settings(max_examples=200, deadline=None)
@given(change=_state_updates(st.none()))
def test_the_sqlite_state_row_is_what_the_generic_conversions_give(
    change: conversations.StateUpdate,
) -> None:
    # A state's parameters are built directly; they must be those SQLAlchemy's own conversions
    # of the values give (the state as its JSON text, given as a dict or already as text).
    saving = prepared(conversations._SAVE_STATE, sqlite.dialect(), ())
    direct = conversations._SqliteStateRow.of(saving)
    assert direct(change) == saving.parameters(conversations._state_values(change))


_creating = st.builds(
    conversations.LockRequest,
    st.just("c-1"),
    st.builds(
        ConversationMeta,
        platform=st.just("acme"),
        customer=_customers,
        metadata=_metadata,
        link=_maybe_text,
    ),
    _aware_time,
)


@settings(max_examples=200, deadline=None)
@given(change=_state_updates(_creating))
def test_the_sqlite_row_of_a_conversation_created_with_its_state_is_the_generic_one(
    change: conversations.StateUpdate,
) -> None:
    # A new conversation's whole row with its first state is built directly; it must be the
    # row SQLAlchemy's own conversions of the column values give.
    creating = prepared(
        conversations._CREATE_WITH_STATE, sqlite.dialect(), conversations._CREATE_WITH_STATE_KEYS
    )
    direct = conversations._SqliteCreateStateRow.of(creating)
    assert direct(change) == creating.parameters(conversations._create_with_state_values(change))


def test_a_row_builder_refuses_a_statement_it_was_not_written_for() -> None:
    # Each builder writes its statement's placeholders in a fixed order; given another
    # statement (or one whose placeholders changed) it says so instead of misplacing values.
    creating = prepared(conversations._CREATE, sqlite.dialect(), conversations._LOCK_KEYS)
    with pytest.raises(ValueError, match=r"^state update placeholders changed: \('id', "):
        conversations._SqliteStateRow(creating)
    saving = prepared(conversations._SAVE_STATE, sqlite.dialect(), ())
    assert conversations._SqliteStateRow.of(saving) is conversations._SqliteStateRow.of(saving)
