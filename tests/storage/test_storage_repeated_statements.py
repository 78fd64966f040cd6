"""A long-lived connection runs the same statements many times: PostgreSQL then switches to
generic plans, which must still find the partial unique indexes behind ON CONFLICT."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlmodel import Session

from engine.assessment import Assessment, Decision
from engine.events import ConversationMeta
from storage import conversations, escalations, outbox
from storage.db import Database
from tests.storage.storage_helpers import message

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
ASSESSMENT = Assessment(
    event_id="e1",
    score=60.0,
    level="escalate",
    notify=True,
    reasons=(),
    team="support",
    decision=Decision.OPEN,
)


@pytest.mark.postgres
def test_opening_many_escalations_on_one_connection_keeps_working(
    postgres_database: Database,
) -> None:
    with postgres_database.session() as session:
        for number in range(30):
            cid = f"c-{number}"
            conversations.lock_conversation(
                session=session, conversation_id=cid, meta=ConversationMeta(), now=NOW
            )
            opened = escalations.open_escalation(
                session=session,
                conversation_id=cid,
                assessment=ASSESSMENT,
                summary={},
                snapshot={},
                now=NOW,
            )
            with pytest.raises(escalations.EscalationAlreadyActive):
                escalations.open_escalation(
                    session=session,
                    conversation_id=cid,
                    assessment=ASSESSMENT,
                    summary={},
                    snapshot={},
                    now=NOW,
                )
            for _ in range(2):  # the second coalesces into the first
                outbox.enqueue(
                    session=session,
                    kind="update_card",
                    surface="slack",
                    escalation_id=opened.id,
                    payload={},
                    due_at=NOW,
                    dedupe_key=f"update:{opened.id}:slack",
                )
        assert len(outbox.pending(session=session)) == 30
        assert len(escalations.list_escalations(session=session, limit=100)) == 30


def _store_one(session: Session, cid: str, *, commit: bool = False) -> int:
    """A new conversation with one event and its state, as the ingest writer stores it."""
    conversations.lock_conversations(
        session=session, requests=[conversations.LockRequest(cid, ConversationMeta(), NOW)]
    )
    return conversations.store(
        session=session,
        events=[conversations.EventRows(cid, [(message(f"{cid}-e1"), None)], NOW)],
        states=[conversations.StateUpdate(cid, {"n": 1}, 1.0, None, "active", NOW)],
        commit=commit,
    )


@pytest.mark.postgres
def test_the_ingest_keeps_the_plans_of_its_inserts_and_plans_the_state_afresh(
    postgres_database: Database,
) -> None:
    # The lock and the events' INSERT have one plan whatever the data, and are prepared once per
    # connection; the state's UPDATE joins conversations, whose kept plan could be a sequential
    # scan made while the table was small, so it is planned each time (`storage._pgpipeline`).
    with postgres_database.session() as session:
        for number in range(8):
            assert _store_one(session, f"c-{number}", commit=True) == 1
        prepared = session.connection().exec_driver_sql(
            "SELECT statement, generic_plans + custom_plans FROM pg_prepared_statements"
        )
        runs = {statement.split("(")[0].split()[-1]: count for statement, count in prepared}
        # (psycopg itself prepares nothing on the database's connections: `storage.db`.)
        assert runs == {"conversations": 8, "events": 8}
        assert (
            session.connection()
            .exec_driver_sql("SELECT count(*) FROM conversations WHERE state IS NOT NULL")
            .scalar_one()
            == 8
        )


@pytest.mark.postgres
def test_a_rollback_keeps_the_ingests_prepared_statements(postgres_database: Database) -> None:
    # psycopg, once it has prepared a statement of its own (any statement run five times),
    # drops every prepared statement of the connection at each rollback: the database's
    # connections do not let it prepare any.
    with postgres_database.session() as session:
        for number in range(3):
            _store_one(session, f"r-{number}")
            for _ in range(6):
                conversations.get_conversation(session=session, conversation_id="r-0")
            session.rollback()  # (the first rollback drops what psycopg prepared, if it did)
        _store_one(session, "r-9")
        session.commit()
        prepared = (
            session.connection()
            .exec_driver_sql(
                "SELECT count(*), sum(generic_plans + custom_plans) FROM pg_prepared_statements"
            )
            .one()
        )
        assert tuple(prepared) == (2, 8)  # the lock and the events' INSERT, each run 4 times
        assert conversations.get_conversation(session=session, conversation_id="r-9") is not None
