"""Many conversations in one call (a round of the group commit): `lock_conversations` and `store`
send one statement each on PostgreSQL, whatever the number of rows, and must store exactly what
one conversation at a time would, on both backends."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import DataError, IntegrityError

from engine.assessment import Assessment, Decision
from engine.events import ConversationEvent, ConversationMeta, Customer, EventType, Role
from storage import _pgpipeline, conversations, escalations
from storage.conversations import ConversationRecord, EventRows, LockRequest, StateUpdate
from storage.db import Database
from tests.storage.storage_helpers import (
    META,
    T0,
    assessment,
    create_escalation,
    message,
    minutes,
)

LATER = T0 + minutes(5)
SAO_PAULO = timezone(timedelta(hours=-3))


def _lock(database: Database, *requests: LockRequest) -> dict[str, ConversationRecord]:
    with database.session() as session:
        return conversations.lock_conversations(session=session, requests=list(requests))


def test_a_round_creates_new_conversations_and_merges_into_known_ones(database: Database) -> None:
    _lock(
        database,
        LockRequest("known", META, T0),
        LockRequest("bare", ConversationMeta(), T0),
    )
    new_meta = ConversationMeta(
        platform="whatsapp",
        customer=Customer(id="u-7", name="Zoë Ñúñez 日本"),
        metadata={"fila": "cobrança", "emoji": "🙂"},
        language="pt-BR",
    )
    records = _lock(
        database,
        # Out of id order, and a new conversation with nothing but defaults.
        LockRequest("new-ü", new_meta, LATER),
        LockRequest(
            "known",
            ConversationMeta(
                platform="generic",
                customer=Customer(tier="platinum"),
                metadata={"order": "A-2", "channel": "web"},
            ),
            LATER,
        ),
        LockRequest("empty", ConversationMeta(), LATER.astimezone(SAO_PAULO)),
        LockRequest("bare", new_meta, LATER),
    )
    assert sorted(records) == ["bare", "empty", "known", "new-ü"]

    new = records["new-ü"]
    assert new.meta == new_meta
    assert (new.state, new.score, new.level, new.status) == (None, 0.0, None, "active")
    assert (new.first_event_at, new.last_event_at) == (None, None)
    assert new.created_at == new.updated_at == LATER

    empty = records["empty"]
    assert empty.meta == ConversationMeta()
    assert empty.created_at == LATER
    assert empty.created_at.tzinfo is UTC

    # Fields left empty keep what was stored; metadata merges, the new value winning.
    known = records["known"]
    assert known.meta == ConversationMeta(
        platform="generic",
        customer=Customer(id="cust-1", name="Ana Lima", tier="platinum", email="ana@example.com"),
        metadata={"order": "A-2", "channel": "web"},
        language="en",
        link="https://inbox.example.com/c/1",
    )
    assert (known.created_at, known.updated_at) == (T0, LATER)

    # NULLs stored earlier are filled in.
    bare = records["bare"]
    assert bare.meta == new_meta
    assert (bare.created_at, bare.updated_at) == (T0, LATER)

    # Every record is the row as stored (SQLite builds a new conversation's from its values).
    with database.session() as session:
        stored = {
            cid: conversations.get_conversation(session=session, conversation_id=cid)
            for cid in records
        }
    assert stored == records


def test_a_conversation_created_earlier_in_the_transaction_is_read_back_when_locked_again(
    database: Database,
) -> None:
    # A record is built from the request only for a row the lock itself created (on PostgreSQL:
    # the upsert inserted it); one created earlier in the same transaction, and given a state
    # since, is read back as stored, as is one from an earlier transaction.
    with database.session() as session:
        first = conversations.lock_conversations(
            session=session, requests=[LockRequest("c", META, T0), LockRequest("d", META, T0)]
        )
        assert first["c"].state is None
        conversations.save_state(
            session=session,
            conversation_id="c",
            state={"turns": 1},
            score=2.0,
            level="watch",
            status="active",
            last_event_at=T0,
            now=T0,
        )
        again = conversations.lock_conversations(
            session=session, requests=[LockRequest("c", META, LATER), LockRequest("e", META, LATER)]
        )
    assert (again["c"].state, again["c"].score, again["c"].level) == ({"turns": 1}, 2.0, "watch")
    assert (again["c"].created_at, again["c"].updated_at) == (T0, LATER)
    assert again["e"].state is None
    assert again["e"].created_at == LATER
    later = _lock(database, LockRequest("d", META, LATER))
    assert (later["d"].created_at, later["d"].updated_at) == (T0, LATER)


def test_a_round_locks_its_conversations_in_code_point_order_of_their_ids(
    database: Database,
) -> None:
    # Code point order, not the database's collation: "B" and "Z" before "a", "é" last.
    ids = ["b", "é", "Z", "a", "B", "e"]
    records = _lock(database, *(LockRequest(cid, META, T0) for cid in ids))
    assert list(records) == ["B", "Z", "a", "b", "e", "é"]
    records = _lock(database, *(LockRequest(cid, META, LATER) for cid in reversed(ids)))
    assert list(records) == ["B", "Z", "a", "b", "e", "é"]


def _bot_reply(event_id: str, at: datetime) -> ConversationEvent:
    return ConversationEvent(
        event_id=event_id,
        type=EventType.MESSAGE,
        timestamp=at,
        role=Role.BOT,
        text="Não entendi — pode repetir? 🤖",
        intent="fallback",
        confidence=1,  # an int where a float goes
        fallback=False,
        outcome="no_match",
        extra={"node": "n-7", "path": ["início", "fim"]},
    )


def test_events_of_several_conversations_are_stored_once_each(database: Database) -> None:
    _lock(database, LockRequest("a", META, T0), LockRequest("b", META, T0))
    with database.session() as session:
        conversations.insert_events(
            session=session, conversation_id="a", rows=[(message("e1"), None)], received_at=T0
        )
    end = ConversationEvent(event_id="end", type=EventType.SESSION_END, timestamp=T0 + minutes(1))
    reply = _bot_reply("r1", T0.astimezone(SAO_PAULO))
    verdict = Assessment(
        event_id="c1",
        score=3,  # an int where a float goes
        level=None,
        notify=False,
        reasons=(),
        team=None,
        decision=Decision.NONE,
    )
    # At the same time as the bot's reply: the order of arrival breaks the tie.
    customer = message("c1", "quero falar com alguém, já!", at=T0)
    with database.session() as session:
        inserted = conversations.store(
            session=session,
            events=[
                EventRows(
                    "b",
                    [(reply, None), (customer, verdict), (end, assessment("end", score=6.5))],
                    LATER.astimezone(SAO_PAULO),
                ),
                # Already stored, new, and new twice in the same call.
                EventRows("a", [(message("e1"), None), (message("e2"), None)], LATER),
                EventRows("a", [(message("e2", "again"), None)], LATER + minutes(1)),
            ],
            states=(),
        )
    assert inserted == 4
    with database.session() as session:
        stored_a = conversations.transcript(session=session, conversation_id="a")
        stored_b = conversations.transcript(session=session, conversation_id="b")
    assert [(item.event.event_id, item.event.text, item.received_at) for item in stored_a] == [
        ("e1", "hello", T0),
        ("e2", "hello", LATER),
    ]
    assert [item.event for item in stored_b] == [reply, customer, end]
    assert [item.received_at for item in stored_b] == [LATER] * 3
    assert all(item.received_at.tzinfo is UTC for item in stored_b)
    assert stored_b[0].event.timestamp.tzinfo is UTC
    assert stored_b[0].event.confidence == 1.0
    assert (stored_b[0].score, stored_b[0].level, stored_b[0].reasons) == (None, None, ())
    assert stored_b[0].decision is None
    assert (stored_b[1].score, stored_b[1].level) == (3.0, None)
    assert stored_b[1].decision is Decision.NONE
    assert stored_b[1].event.extra == {}  # no extra is stored as NULL
    assert (stored_b[2].event.role, stored_b[2].event.text) == (None, None)
    assert stored_b[2].reasons == assessment().reasons
    assert stored_b[2].decision is Decision.OPEN


def test_states_of_several_conversations_are_saved_in_one_call(database: Database) -> None:
    _lock(database, *(LockRequest(cid, META, T0) for cid in ("a", "b", "c")))
    with database.session() as session:
        conversations.save_state(
            session=session,
            conversation_id="a",
            state={"turns": 1},
            score=1.0,
            level="watch",
            status="active",
            first_event_at=T0 + minutes(5),
            last_event_at=T0 + minutes(10),
            now=T0,
        )
    with database.session() as session:
        conversations.store(
            session=session,
            events=(),
            states=[
                StateUpdate(
                    "a",
                    {"turns": 2, "texto": "ação"},
                    2.5,
                    None,
                    "active",
                    last_event_at=(T0 + minutes(12)).astimezone(SAO_PAULO),
                    first_event_at=T0 + minutes(2),
                    now=LATER,
                ),
                # No times given: the stored ones (none yet) stay.
                StateUpdate("b", {}, 0.0, "high", "active", last_event_at=None, now=LATER),
                # Given already as its JSON text (`ConversationState.to_json`): stored as JSON.
                StateUpdate("c", '{"n": [1, 2]}', 4.0, "watch", "active", T0 + minutes(3)),
                # The same conversation again, later in the call: applied after the first.
                StateUpdate(
                    "a",
                    {"turns": 3},
                    7,  # an int where a float goes
                    "high",
                    "ended",
                    last_event_at=T0 + minutes(20),
                    first_event_at=T0 + minutes(8),  # later than the start: ignored
                    now=LATER + minutes(1),
                ),
            ],
        )
    with database.session() as session:
        found = {
            cid: conversations.get_conversation(session=session, conversation_id=cid)
            for cid in ("a", "b", "c")
        }
    a, b, c = found["a"], found["b"], found["c"]
    assert a is not None
    assert b is not None
    assert c is not None
    assert (a.state, a.score, a.level, a.status) == ({"turns": 3}, 7.0, "high", "ended")
    assert (a.first_event_at, a.last_event_at) == (T0 + minutes(2), T0 + minutes(20))
    assert a.updated_at == LATER + minutes(1)
    assert (b.state, b.score, b.level, b.status) == ({}, 0.0, "high", "active")
    assert (b.first_event_at, b.last_event_at, b.updated_at) == (None, None, LATER)
    assert (c.state, c.first_event_at, c.last_event_at) == (
        {"n": [1, 2]},
        T0 + minutes(3),
        T0 + minutes(3),
    )
    assert a.meta == META  # a state leaves the meta alone
    assert a.last_event_at is not None
    assert a.last_event_at.tzinfo is UTC


def test_a_state_for_a_conversation_never_locked_changes_nothing(database: Database) -> None:
    with database.session() as session:
        conversations.save_state(
            session=session,
            conversation_id="ghost",
            state={},
            score=0.0,
            level=None,
            status="active",
            last_event_at=T0,
        )
        assert conversations.get_conversation(session=session, conversation_id="ghost") is None


@pytest.mark.postgres
def test_json_and_times_are_stored_as_postgres_types(postgres_database: Database) -> None:
    _lock(postgres_database, LockRequest("c", META, T0.astimezone(SAO_PAULO)))
    with postgres_database.session() as session:
        conversations.store(
            session=session,
            events=[EventRows("c", [(_bot_reply("r1", T0), assessment("r1"))], T0)],
            states=[StateUpdate("c", '{"turns": 1}', 1.0, None, "active", T0, now=T0)],
        )
        row = session.execute(
            text(
                "SELECT jsonb_typeof(c.metadata), json_typeof(c.state), c.state::text,"
                " jsonb_typeof(e.extra), jsonb_typeof(e.reasons),"
                " c.created_at = '2025-03-14 09:00:00+00',"
                " e.timestamp = '2025-03-14 09:00:00+00'"
                " FROM conversations c JOIN events e ON e.conversation_id = c.id"
            )
        ).one()
    # The state is JSON kept as the text written (`json`): the ingest compares it with its own.
    assert tuple(row) == ("object", "object", '{"turns": 1}', "object", "array", True, True)


@pytest.mark.postgres
def test_a_value_too_long_for_its_column_is_refused_not_cut(postgres_database: Database) -> None:
    with pytest.raises(DataError), postgres_database.session() as session:
        conversations.lock_conversation(
            session=session, conversation_id="c" * 256, meta=META, now=T0
        )
    _lock(postgres_database, LockRequest("c", META, T0))
    with pytest.raises(DataError), postgres_database.session() as session:
        conversations.insert_events(
            session=session, conversation_id="c", rows=[(message("e" * 256), None)], received_at=T0
        )
    with pytest.raises(DataError), postgres_database.session() as session:
        conversations.save_state(
            session=session,
            conversation_id="c",
            state={},
            score=0.0,
            level="l" * 65,
            status="active",
            last_event_at=T0,
        )
    with postgres_database.session() as session:
        assert conversations.transcript(session=session, conversation_id="c") == []
        record = conversations.get_conversation(session=session, conversation_id="c")
    assert record is not None
    assert record.level is None


@pytest.mark.postgres
def test_the_lock_statement_itself_takes_the_rows_in_code_point_order(
    postgres_database: Database,
) -> None:
    # Two replicas locking overlapping conversations must take the row locks in the same order
    # or they can deadlock; the statement sorts its rows whatever order its arrays come in.
    ids = ["é", "e", "b", "a", "Z", "B"]
    with postgres_database.session() as session:
        conn = session.connection()
        statement = conversations._postgres(conn.dialect).lock
        values = [conversations._lock_values(LockRequest(cid, META, T0)) for cid in ids]
        driver = conn.connection.driver_connection
        assert driver is not None
        (result,) = _pgpipeline.run(driver, [statement.parameters(values)], commit=False)
        locked = [row[0] for row in result.rows()]
    assert locked == ["B", "Z", "a", "b", "e", "é"]


def test_a_state_given_as_text_is_stored_as_the_same_text_as_its_dict(
    sqlite_database: Database,
) -> None:
    state = {"turns": 2, "quote": 'say "hi" \\ ação 😀', "mean": -0.25, "none": None}
    for cid in ("as-dict", "as-text"):
        _lock(sqlite_database, LockRequest(cid, META, T0))
    with sqlite_database.session() as session:
        conversations.store(
            session=session,
            events=(),
            states=[
                StateUpdate("as-dict", state, 1.0, None, "active", T0, now=T0),
                StateUpdate("as-text", json.dumps(state), 1.0, None, "active", T0, now=T0),
            ],
        )
        stored = dict(
            session.execute(text("SELECT id, state FROM conversations ORDER BY id")).all()
        )
    assert stored == {"as-dict": json.dumps(state), "as-text": json.dumps(state)}


def _row(database: Database, cid: str) -> dict[str, object]:
    with database.session(read_only=True) as session:
        row = (
            session.connection()
            .execute(text("SELECT * FROM conversations WHERE id = :id"), {"id": cid})
            .mappings()
            .one()
        )
    return dict(row)


def test_a_conversation_created_by_its_state_is_the_row_a_lock_and_a_save_leave(
    database: Database,
) -> None:
    # lock_for_store leaves a new conversation for `store` to insert whole (SQLite) or locks it
    # as lock_conversations does (PostgreSQL); either way the row ends up exactly as a lock
    # followed by a saved state leaves it.
    meta = ConversationMeta(
        platform="whatsapp",
        customer=Customer(id="u-7", name="Zoë", tier="gold", email="z@example.com"),
        metadata={"fila": "cobrança", "n": "2"},
        language="pt-BR",
        link="https://inbox.example.com/c/9",
    )
    first, last = T0.astimezone(SAO_PAULO), LATER

    def change(cid: str, create: LockRequest | None) -> StateUpdate:
        return StateUpdate(
            cid, json.dumps({"turns": 3}), 42.5, "watch", "ended", last, first, LATER, create
        )

    with database.session() as session:
        conversations.lock_conversations(session=session, requests=[LockRequest("old", meta, T0)])
        conversations.store(session=session, events=(), states=[change("old", None)])
    with database.session() as session:
        locked = conversations.lock_for_store(
            session=session, requests=[LockRequest("new", meta, T0)]
        )
        record = locked.records["new"]
        if database.dialect == "sqlite":
            assert locked.unstored == {"new": LockRequest("new", meta, T0)}
            assert conversations.get_conversation(session=session, conversation_id="new") is None
        else:
            assert locked.unstored == {}
        conversations.store(
            session=session, events=(), states=[change("new", locked.unstored.get("new"))]
        )
    assert replace(record, id="x") == _lock(database, LockRequest("x", meta, T0))["x"]
    old, new = _row(database, "old"), _row(database, "new")
    assert {**new, "id": "old"} == old
    assert old["state"] is not None
    assert old["status"] == "ended"


def test_a_new_conversation_stored_before_another_row_names_it_gets_its_state_saved(
    sqlite_database: Database,
) -> None:
    # create_unstored inserts it as a lock would (an escalation may then name it); its state is
    # saved as any stored conversation's. Left unstored, an event naming it is refused.
    with sqlite_database.session() as session:
        locked = conversations.lock_for_store(
            session=session, requests=[LockRequest("a", META, T0), LockRequest("b", META, T0)]
        )
        assert sorted(locked.unstored) == ["a", "b"]
        conversations.create_unstored(session=session, requests=[locked.unstored["a"]])
        conversations.store(
            session=session,
            events=[EventRows("a", [(message("m1"), None)], T0)],
            states=[StateUpdate("a", {"turns": 1}, 1.0, None, "active", T0, now=LATER)],
        )
        with pytest.raises(IntegrityError, match="FOREIGN KEY"):
            conversations.store(
                session=session,
                events=[EventRows("b", [(message("m1"), None)], T0)],
                states=(),
            )
    record = _lock(sqlite_database, LockRequest("a", META, LATER))["a"]
    assert (record.state, record.score, record.first_event_at) == ({"turns": 1}, 1.0, T0)
    assert _lock(sqlite_database, LockRequest("b", META, LATER))["b"].created_at == LATER


def test_a_state_creates_only_its_own_conversation_and_only_on_sqlite(database: Database) -> None:
    with database.session() as session:
        conversations.lock_for_store(session=session, requests=[LockRequest("a", META, T0)])
        wrong = StateUpdate("a", {}, 0.0, None, "active", T0, create=LockRequest("b", META, T0))
        with pytest.raises(ValueError, match="state of 'a' creates 'b'"):
            conversations.store(session=session, events=(), states=[wrong])
        if database.dialect == "postgresql":
            right = StateUpdate("a", {}, 0.0, None, "active", T0, create=LockRequest("a", META, T0))
            with pytest.raises(ValueError, match=r"StateUpdate\.create is for SQLite"):
                conversations.store(session=session, events=(), states=[right])


def _with_events(database: Database, cids: Sequence[str], event_ids: Sequence[str]) -> None:
    """Conversations `cids`, each with the messages `event_ids` stored."""
    with database.session() as session:
        for cid in cids:
            conversations.lock_conversation(session=session, conversation_id=cid, meta=META, now=T0)
            conversations.insert_events(
                session=session,
                conversation_id=cid,
                rows=[(message(event_id), None) for event_id in event_ids],
                received_at=T0,
            )


def test_the_reads_sent_together_answer_as_the_reads_on_their_own(
    database: Database,
) -> None:
    # The ingest writer reads a round's stored event ids and active escalations in one round
    # trip on PostgreSQL (`known_and_active`); they must give what the separate look-ups give.
    escalated = create_escalation(database, "c-escalated")
    _with_events(database, ("c-escalated", "c-calm"), ["e1", "e2"])
    event_ids = {
        "c-calm": ["e2", "e3", "e2"],
        "c-escalated": ["e1", "e9"],
        "c-new": ["e1"],
    }
    with database.session() as session:
        known, active = escalations.known_and_active(session=session, event_ids=event_ids)
        assert known == conversations.known_event_ids_of(session=session, event_ids=event_ids)
        assert known == {"c-calm": {"e2"}, "c-escalated": {"e1"}, "c-new": set()}
        assert active == escalations.active_escalations(
            session=session, conversation_ids=list(event_ids)
        )
        assert active == {"c-escalated": escalations.ActiveEscalation.of(escalated)}


def test_reads_sent_together_are_for_postgresql_only(sqlite_database: Database) -> None:
    with sqlite_database.session() as session, pytest.raises(ValueError, match="PostgreSQL"):
        conversations.run_postgres(session=session, statements=[])


def test_on_sqlite_the_stored_event_ids_are_looked_up_in_the_index(
    sqlite_database: Database,
) -> None:
    # SQLite reads `(conversation_id, event_id) IN (VALUES ...)` by scanning every stored event;
    # the look-up is a join that searches the unique index for each pair.
    _with_events(sqlite_database, ("a", "b"), [f"e{number}" for number in range(30)])
    with sqlite_database.session() as session:
        conn = session.connection()
        conn.exec_driver_sql("ANALYZE")
        sql = conversations._known_pairs_sqlite(3)
        plan = [row[3] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", ("a",) * 6)]
        assert any(step.startswith("SEARCH e USING") for step in plan), plan
        assert not any(step.startswith(("SCAN e ", "SCAN events")) for step in plan), plan
        known = conversations.known_event_ids_of(
            session=session, event_ids={"a": ["e1", "e40", "e29"], "b": ["e0"], "c": ["e1"]}
        )
    assert known == {"a": {"e1", "e29"}, "b": {"e0"}, "c": set()}


def test_on_sqlite_the_active_escalations_are_read_through_the_one_active_index(
    sqlite_database: Database,
) -> None:
    # SQLite uses the partial index only when the query names its condition in the same words.
    escalated = create_escalation(sqlite_database, "c-escalated")
    with sqlite_database.session() as session:
        conn = session.connection()
        sent: list[tuple[str, Any]] = []

        def record(*args: Any) -> None:
            sent.append((args[2], args[3]))

        event.listen(conn, "before_cursor_execute", record)
        one = escalations.active_escalation(session=session, conversation_id="c-escalated")
        event.remove(conn, "before_cursor_execute", record)
        # The ingest's look-up of a group's conversations, run on the driver (for a list of
        # more than a few, SQLite would rather read every open escalation by status).
        group = ["c-escalated", *(f"c-calm-{number}" for number in range(29))]
        sent.append((escalations._active_sqlite(len(group)), tuple(group)))
        active = escalations.active_escalations(session=session, conversation_ids=group)
        assert active == {"c-escalated": escalations.ActiveEscalation.of(escalated)}
        assert one == escalated
        assert len(sent) == 2
        for sql, parameters in sent:
            plan = [row[3] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", parameters)]
            assert plan == [
                "SEARCH escalations USING INDEX uq_escalations_one_active (conversation_id=?)"
            ]


def test_the_ingest_lock_hands_over_a_stored_state_as_the_text_it_was_saved_as(
    database: Database,
) -> None:
    # On both databases the state comes back undecoded, exactly as saved, not ASCII-escaped
    # and not rewritten (the ingest compares it with the text of the state it kept); the
    # other callers of the lock get it decoded.
    saved = json.dumps({"turns": 3, "note": "Zoë", "a": [1, 2.50]}, ensure_ascii=False)
    with database.session() as session:
        conversations.lock_conversations(session=session, requests=[LockRequest("a", META, T0)])
        conversations.store(
            session=session,
            events=(),
            states=[StateUpdate("a", saved, 1.0, None, "active", T0, now=T0)],
        )
    with database.session() as session:
        locked = conversations.lock_for_store(
            session=session, requests=[LockRequest("a", META, LATER), LockRequest("b", META, LATER)]
        )
    assert locked.state_texts == {"a": saved}
    assert locked.records["a"].state is None
    with database.session() as session:
        record = conversations.lock_conversation(
            session=session, conversation_id="a", meta=META, now=LATER
        )
    assert record.state == {"turns": 3, "note": "Zoë", "a": [1, 2.5]}
    assert locked.records["a"].score == 1.0
    assert locked.records["b"].state is None
