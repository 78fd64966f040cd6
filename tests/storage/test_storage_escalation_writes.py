"""Every column of the rows written when a conversation escalates and its escalation changes:
opening, the hand-off log, upgrading, closing unclaimed, and the deliveries queued for them.

Rows are read back whole, so a value dropped, swapped or converted differently fails here;
JSON columns are also checked for SQL NULL (not a JSON `null`) where nothing was given.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Column, Table, select, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from engine.assessment import Assessment, Reason
from storage import conversations, escalations, outbox, tables
from storage.codec import reasons_to_json
from storage.db import Database
from tests.storage.storage_helpers import META, T0, assessment, minutes

REASONS = (
    Reason("fallback", 3.0, "3 bot fallbacks in a row", ("e1", "e2", "e3")),
    Reason("anger", 2.5, "angry words", ("e3",)),
)


def _assessment(event_id: str = "e3", **changes: Any) -> Assessment:
    """`storage_helpers.assessment` with this file's defaults (two reasons, team billing)."""
    values: dict[str, Any] = {"score": 5.5, "team": "billing", "reasons": REASONS, **changes}
    return assessment(event_id, **values)


def _row(session: Session, table: Table, row_id: int) -> dict[str, Any]:
    found = session.connection().execute(select(table).where(table.c.id == row_id))
    return dict(found.mappings().one())


def _is_null(session: Session, column: Column[Any], row_id: int) -> bool:
    table = column.table
    found = session.connection().execute(select(column.is_(None)).where(table.c.id == row_id))
    return bool(found.scalar_one())


def _handoff_rows(session: Session, escalation_id: int) -> list[dict[str, Any]]:
    found = session.connection().execute(
        select(tables.handoff_events)
        .where(tables.handoff_events.c.escalation_id == escalation_id)
        .order_by(tables.handoff_events.c.id)
    )
    return [dict(row) for row in found.mappings()]


def _open(
    session: Session,
    conversation_id: str = "conv-w",
    *,
    at: datetime = T0,
    assessment: Assessment | None = None,
    cards: tuple[tuple[str, str], ...] = (),
) -> escalations.EscalationRecord:
    conversations.lock_conversation(
        session=session, conversation_id=conversation_id, meta=META, now=at
    )
    return escalations.open_escalation(
        session=session,
        conversation_id=conversation_id,
        assessment=assessment if assessment is not None else _assessment(),
        summary={"wants": ["a refund"], "tries": 2},
        snapshot={"team": "billing", "sla": [{"after_minutes": 5}]},
        now=at,
        cards=cards,
    )


def _outbox_rows(session: Session) -> list[dict[str, Any]]:
    found = session.connection().execute(select(tables.outbox).order_by(tables.outbox.c.id))
    return [dict(row) for row in found.mappings()]


def _card_row(escalation_id: int, surface: str, channel: str, at: datetime = T0) -> dict[str, Any]:
    """The outbox row that asks for an escalation's card in a channel, without its id."""
    return {
        "kind": "post_card",
        "surface": surface,
        "escalation_id": escalation_id,
        "payload": {"channel": channel},
        "status": "pending",
        "attempts": 0,
        "due_at": at,
        "leased_until": None,
        "last_error": None,
        "created_at": at,
        "done_at": None,
        "dedupe_key": outbox.post_card_key(escalation_id, surface, channel),
    }


def _opened_step(escalation_id: int, event_id: str, at: datetime = T0) -> dict[str, Any]:
    """The "opened" step of an escalation opened by `_assessment(event_id)`, without its id."""
    return {
        "escalation_id": escalation_id,
        "at": at,
        "kind": "opened",
        "actor_id": None,
        "actor_name": None,
        "surface": None,
        "from_status": None,
        "to_status": "open",
        "detail": {"level": "high", "score": 5.5, "event_id": event_id},
    }


def _without_ids(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{key: value for key, value in row.items() if key != "id"} for row in rows]


OPENED_ROW = {
    "conversation_id": "conv-w",
    "status": "open",
    "level": "high",
    "score": 5.5,
    "reasons": reasons_to_json(REASONS),
    "team": "billing",
    "mention": "@here",
    "summary": {"wants": ["a refund"], "tries": 2},
    "snapshot": {"team": "billing", "sla": [{"after_minutes": 5}]},
    "opened_at": T0,
    "opened_at_event_id": "e3",
    "claimed_by": None,
    "claimed_by_name": None,
    "claimed_at": None,
    "closed_at": None,
    "closed_by": None,
    "outcome": None,
    "note": None,
    "updated_at": T0,
}


def test_opening_stores_every_value_of_the_verdict_and_logs_it(database: Database) -> None:
    with database.session() as session:
        record = _open(session)
        row = _row(session, tables.escalations, record.id)
        history = _handoff_rows(session, record.id)
        stored_at = session.connection().execute(
            text("SELECT opened_at, updated_at FROM escalations WHERE id = :id"),
            {"id": record.id},
        )
        raw_times = stored_at.one()
    assert row == {"id": record.id, **OPENED_ROW}
    assert (
        escalations.EscalationRecord(
            id=record.id,
            conversation_id="conv-w",
            status=escalations.EscalationStatus.OPEN,
            level="high",
            score=5.5,
            reasons=REASONS,
            team="billing",
            mention="@here",
            summary={"wants": ["a refund"], "tries": 2},
            snapshot={"team": "billing", "sla": [{"after_minutes": 5}]},
            opened_at=T0,
            opened_at_event_id="e3",
            claimed_by=None,
            claimed_by_name=None,
            claimed_at=None,
            closed_at=None,
            closed_by=None,
            outcome=None,
            note=None,
            updated_at=T0,
        )
        == record
    )
    assert _without_ids(history) == [_opened_step(record.id, "e3")]
    if database.engine.dialect.name == "sqlite":  # naive UTC text, as every other time on SQLite
        assert tuple(raw_times) == ("2025-03-14 09:00:00.000000",) * 2


def test_opening_without_team_mention_or_reasons_stores_nulls_and_an_empty_list(
    database: Database,
) -> None:
    bare = _assessment(team=None, mention=None, reasons=())
    with database.session() as session:
        record = _open(session, assessment=bare)
        row = _row(session, tables.escalations, record.id)
        reasons_null = _is_null(session, tables.escalations.c.reasons, record.id)
    assert (row["team"], row["mention"], row["reasons"]) == (None, None, [])
    assert not reasons_null
    assert (record.team, record.mention, record.reasons) == (None, None, ())


def test_the_opened_record_is_the_row_as_read_back(database: Database) -> None:
    # The record is built from the values written, not read back: it must equal a read, for
    # a time in another zone with microseconds, an int score and int reason points too.
    at = datetime(2025, 3, 14, 11, 30, 5, 123456, tzinfo=timezone(timedelta(hours=2)))
    verdict = _assessment(score=7, reasons=(Reason("anger", 2, "angry words", ("e3",)),))
    with database.session() as session:
        record = _open(session, at=at, assessment=verdict)
        read = escalations.get_escalation(session=session, escalation_id=record.id)
    assert read == record
    assert record.opened_at.tzinfo is UTC
    assert record.opened_at == at
    assert isinstance(record.score, float)
    assert record.reasons[0].points == 2.0


def test_opening_asks_for_the_card_in_each_channel_in_order(database: Database) -> None:
    cards = (("slack", "C-billing"), ("teams", "19:billing@thread.tacv2"), ("console", "billing"))
    with database.session() as session:
        record = _open(session, cards=cards)
        other = _open(session, "conv-x", at=T0 + minutes(1), cards=cards[:1])
        rows = _outbox_rows(session)
        history = _handoff_rows(session, other.id)
    assert _without_ids(rows) == [
        _card_row(record.id, "slack", "C-billing"),
        _card_row(record.id, "teams", "19:billing@thread.tacv2"),
        _card_row(record.id, "console", "billing"),
        _card_row(other.id, "slack", "C-billing", T0 + minutes(1)),
    ]
    assert rows[0]["dedupe_key"] == f"post:{record.id}:slack:C-billing"
    assert [step["kind"] for step in history] == ["opened"]
    assert other.id > record.id


def test_a_refused_opening_writes_nothing(database: Database) -> None:
    with database.session() as session:
        first = _open(session)
        with pytest.raises(escalations.EscalationAlreadyActive) as refused:
            _open(
                session,
                at=T0 + minutes(1),
                assessment=_assessment("e9", level="critical"),
                cards=(("slack", "C-billing"),),
            )
        count = session.connection().execute(text("SELECT count(*) FROM escalations")).scalar_one()
        history = _handoff_rows(session, first.id)
        queued = _outbox_rows(session)
    assert refused.value.escalation_id == first.id
    assert str(refused.value) == f"conversation 'conv-w' already has active escalation {first.id}"
    assert count == 1
    assert [step["kind"] for step in history] == ["opened"]
    assert queued == []


def _new(conversation_id: str, event_id: str, cards: tuple[tuple[str, str], ...]) -> Any:
    return escalations.NewEscalation(
        conversation_id=conversation_id,
        assessment=_assessment(event_id),
        summary={"wants": [conversation_id]},
        snapshot={"team": "billing"},
        now=T0,
        cards=cards,
    )


@pytest.mark.postgres
def test_one_statement_opens_several_escalations_each_with_its_step_and_cards(
    postgres_database: Database,
) -> None:
    # The ingest sends the escalations its posts open with the rest of its writes: each gets
    # its own step and cards, and the ids are taken in the order given.
    new = [
        _new("conv-b", "b3", (("slack", "C-1"), ("teams", "19:t"))),
        _new("conv-a", "a3", ()),
        _new("conv-c", "c3", (("slack", "C-2"),)),
    ]
    with postgres_database.session() as session:
        for escalation in new:
            conversations.lock_conversation(
                session=session, conversation_id=escalation.conversation_id, meta=META, now=T0
            )
        statement = escalations.open_statement(session=session, escalations=new)
        (answer,) = conversations.run_postgres(session=session, statements=[statement])
        opened = escalations.opened_ids(answer)
        records = {
            cid: escalations.get_escalation(session=session, escalation_id=escalation_id)
            for cid, escalation_id in opened.items()
        }
        steps = {
            cid: _handoff_rows(session, escalation_id) for cid, escalation_id in opened.items()
        }
        rows = _outbox_rows(session)
    assert sorted(opened) == ["conv-a", "conv-b", "conv-c"]
    assert opened["conv-b"] < opened["conv-a"] < opened["conv-c"]
    for escalation in new:
        cid = escalation.conversation_id
        assert records[cid] == escalation.record(opened[cid])
        assert _without_ids(steps[cid]) == [_opened_step(opened[cid], cid[-1] + "3")]
    assert _without_ids(rows) == [
        _card_row(opened["conv-b"], "slack", "C-1"),
        _card_row(opened["conv-b"], "teams", "19:t"),
        _card_row(opened["conv-c"], "slack", "C-2"),
    ]


@pytest.mark.postgres
def test_the_ingests_statement_fails_for_a_conversation_already_escalated(
    postgres_database: Database,
) -> None:
    # In the ingest's transaction the conversation is locked and its active escalation known:
    # an opening refused there is a fault, and it fails the transaction rather than leaving a
    # post's state without its escalation. Asked to, the statement leaves it out instead.
    with postgres_database.session() as session:
        _open(session)
        again = [_new("conv-w", "e9", (("slack", "C-1"),))]
        quiet = escalations.open_statement(session=session, escalations=again, refused_quietly=True)
        (answer,) = conversations.run_postgres(session=session, statements=[quiet])
        assert escalations.opened_ids(answer) == {}
        assert _outbox_rows(session) == []
        loud = escalations.open_statement(session=session, escalations=again)
        with pytest.raises(IntegrityError, match="uq_escalations_one_active"):
            conversations.run_postgres(session=session, statements=[loud])
        session.rollback()  # (the whole transaction, the first escalation with it)
    with postgres_database.session() as session:
        count = session.connection().execute(text("SELECT count(*) FROM escalations")).scalar_one()
    assert count == 0


@pytest.mark.postgres
def test_one_statement_opens_one_escalation_a_conversation(postgres_database: Database) -> None:
    twice = [_new("conv-a", "a3", ()), _new("conv-a", "a4", ())]
    with postgres_database.session() as session, pytest.raises(ValueError, match="named twice"):
        escalations.open_statement(session=session, escalations=twice)


def test_the_lock_takes_statements_of_its_own_only_on_postgresql(
    sqlite_database: Database,
) -> None:
    request = conversations.LockRequest("conv-l", META, T0)
    statement = conversations.known_event_ids_statement({"conv-l": ["e1"]})
    with sqlite_database.session() as session:
        with pytest.raises(ValueError, match="is for PostgreSQL"):
            conversations.lock_for_store(session=session, requests=[request], also=[statement])
        with pytest.raises(ValueError, match="needs a conversation to lock"):
            conversations.lock_for_store(session=session, requests=[], also=[statement])


def test_on_sqlite_escalations_open_one_by_one(sqlite_database: Database) -> None:
    with sqlite_database.session() as session:
        assert not escalations.opens_later(session)
        with pytest.raises(ValueError, match="open_statement is for PostgreSQL"):
            escalations.open_statement(session=session, escalations=[_new("c", "e", ())])


def test_a_logged_step_keeps_every_field_and_no_detail_is_sql_null(database: Database) -> None:
    with database.session() as session:
        record = _open(session)
        full = escalations.record_handoff_event(
            session=session,
            escalation_id=record.id,
            kind="platform_handoff",
            now=T0 + minutes(3),
            actor_id="u-7",
            actor_name="Ana Lima",
            surface="slack",
            from_status="open",
            to_status="claimed",
            detail={"call": "assign", "ok": True},
        )
        bare = escalations.record_handoff_event(
            session=session, escalation_id=record.id, kind="sla_realert", now=T0 + minutes(5)
        )
        full_row = _row(session, tables.handoff_events, full)
        bare_row = _row(session, tables.handoff_events, bare)
        bare_detail_null = _is_null(session, tables.handoff_events.c.detail, bare)
    assert full_row == {
        "id": full,
        "escalation_id": record.id,
        "at": T0 + minutes(3),
        "kind": "platform_handoff",
        "actor_id": "u-7",
        "actor_name": "Ana Lima",
        "surface": "slack",
        "from_status": "open",
        "to_status": "claimed",
        "detail": {"call": "assign", "ok": True},
    }
    assert bare_row == {
        "id": bare,
        "escalation_id": record.id,
        "at": T0 + minutes(5),
        "kind": "sla_realert",
        "actor_id": None,
        "actor_name": None,
        "surface": None,
        "from_status": None,
        "to_status": None,
        "detail": None,
    }
    assert bare_detail_null
    assert bare > full


def test_an_upgrade_changes_only_the_verdict_and_keeps_an_unset_level_and_mention(
    database: Database,
) -> None:
    with database.session() as session:
        record = _open(session)
        # No level and no mention: the stored ones stay.
        kept = escalations.upgrade_escalation(
            session=session,
            escalation_id=record.id,
            assessment=_assessment("e5", score=7.0, level=None, mention=None, reasons=REASONS[:1]),
            summary={"wants": ["a manager"]},
            now=T0 + minutes(2),
        )
        after_kept = _row(session, tables.escalations, record.id)
        # A level only.
        escalations.upgrade_escalation(
            session=session,
            escalation_id=record.id,
            assessment=_assessment("e6", score=8.0, level="urgent", mention=None),
            summary={"wants": ["a call"]},
            now=T0 + minutes(3),
        )
        after_level = _row(session, tables.escalations, record.id)
        # A mention only.
        escalations.upgrade_escalation(
            session=session,
            escalation_id=record.id,
            assessment=_assessment("e7", score=8.5, level=None, mention="@oncall"),
            summary={"wants": ["a call back"]},
            now=T0 + minutes(4),
        )
        after_mention = _row(session, tables.escalations, record.id)
        # Both.
        both = escalations.upgrade_escalation(
            session=session,
            escalation_id=record.id,
            assessment=_assessment("e8", score=9.5, level="critical", mention="@channel"),
            summary={"wants": ["a refund", "a manager"]},
            now=T0 + minutes(6),
        )
        after_both = _row(session, tables.escalations, record.id)
        history = _handoff_rows(session, record.id)
    assert after_kept == {
        "id": record.id,
        **OPENED_ROW,
        "score": 7.0,
        "reasons": reasons_to_json(REASONS[:1]),
        "summary": {"wants": ["a manager"]},
        "updated_at": T0 + minutes(2),
    }
    assert kept is not None
    assert kept.reasons == REASONS[:1]
    assert (kept.level, kept.mention, kept.score) == ("high", "@here", 7.0)
    assert after_level == {
        **after_kept,
        "level": "urgent",
        "score": 8.0,
        "reasons": reasons_to_json(REASONS),
        "summary": {"wants": ["a call"]},
        "updated_at": T0 + minutes(3),
    }
    assert after_mention == {
        **after_level,
        "mention": "@oncall",
        "score": 8.5,
        "summary": {"wants": ["a call back"]},
        "updated_at": T0 + minutes(4),
    }
    assert after_both == {
        **after_mention,
        "level": "critical",
        "mention": "@channel",
        "score": 9.5,
        "summary": {"wants": ["a refund", "a manager"]},
        "updated_at": T0 + minutes(6),
    }
    assert both is not None
    assert (both.level, both.mention, both.updated_at) == ("critical", "@channel", T0 + minutes(6))

    def step(at: int, from_level: str, to_level: str, score: float, event_id: str) -> Any:
        return {
            "escalation_id": record.id,
            "at": T0 + minutes(at),
            "kind": "upgraded",
            "actor_id": None,
            "actor_name": None,
            "surface": None,
            "from_status": "open",
            "to_status": "open",
            "detail": {
                "from_level": from_level,
                "to_level": to_level,
                "score": score,
                "event_id": event_id,
            },
        }

    assert _without_ids(history[1:]) == [
        step(2, "high", "high", 7.0, "e5"),
        step(3, "high", "urgent", 8.0, "e6"),
        step(4, "urgent", "urgent", 8.5, "e7"),
        step(6, "urgent", "critical", 9.5, "e8"),
    ]


def test_a_claimed_escalation_is_upgraded_but_a_closed_one_is_left_alone(
    database: Database,
) -> None:
    with database.session() as session:
        claimed = _open(session, "conv-c")
        escalations.claim(
            session=session,
            escalation_id=claimed.id,
            actor_id="ana",
            actor_name="Ana",
            surface="slack",
            now=T0 + minutes(1),
        )
        upgraded = escalations.upgrade_escalation(
            session=session,
            escalation_id=claimed.id,
            assessment=_assessment("e4", score=9.0, level="critical"),
            summary={},
            now=T0 + minutes(2),
        )
        closed = _open(session, "conv-x")
        assert escalations.close_unclaimed(
            session=session, escalation_id=closed.id, status="expired", now=T0 + minutes(1)
        )
        before = _row(session, tables.escalations, closed.id)
        refused = escalations.upgrade_escalation(
            session=session,
            escalation_id=closed.id,
            assessment=_assessment("e4", score=9.0, level="critical"),
            summary={},
            now=T0 + minutes(2),
        )
        after = _row(session, tables.escalations, closed.id)
        claimed_history = _handoff_rows(session, claimed.id)
        closed_history = _handoff_rows(session, closed.id)
    assert upgraded is not None
    assert (upgraded.status, upgraded.level, upgraded.claimed_by) == ("claimed", "critical", "ana")
    assert upgraded.summary == {}
    assert (claimed_history[-1]["from_status"], claimed_history[-1]["to_status"]) == (
        "claimed",
        "claimed",
    )
    assert refused is None
    assert after == before
    assert [step["kind"] for step in closed_history] == ["opened", "expired"]


def test_closing_unclaimed_sets_status_and_times_and_logs_it(database: Database) -> None:
    with database.session() as session:
        expired = _open(session, "conv-e")
        recovered = _open(session, "conv-r")
        assert escalations.close_unclaimed(
            session=session,
            escalation_id=expired.id,
            status="expired",
            now=T0 + minutes(8),
            detail={"event_id": "e12"},
        )
        assert escalations.close_unclaimed(
            session=session,
            escalation_id=recovered.id,
            status=escalations.EscalationStatus.RECOVERED,
            now=T0 + minutes(9),
        )
        # Already closed: nothing more happens.
        assert not escalations.close_unclaimed(
            session=session, escalation_id=expired.id, status="recovered", now=T0 + minutes(10)
        )
        expired_row = _row(session, tables.escalations, expired.id)
        recovered_row = _row(session, tables.escalations, recovered.id)
        expired_history = _handoff_rows(session, expired.id)
        recovered_history = _handoff_rows(session, recovered.id)
        no_detail = _is_null(session, tables.handoff_events.c.detail, recovered_history[-1]["id"])
    assert expired_row == {
        "id": expired.id,
        **OPENED_ROW,
        "conversation_id": "conv-e",
        "status": "expired",
        "closed_at": T0 + minutes(8),
        "updated_at": T0 + minutes(8),
    }
    assert recovered_row == {
        "id": recovered.id,
        **OPENED_ROW,
        "conversation_id": "conv-r",
        "status": "recovered",
        "closed_at": T0 + minutes(9),
        "updated_at": T0 + minutes(9),
    }
    assert _without_ids(expired_history[1:]) == [
        {
            "escalation_id": expired.id,
            "at": T0 + minutes(8),
            "kind": "expired",
            "actor_id": None,
            "actor_name": None,
            "surface": None,
            "from_status": "open",
            "to_status": "expired",
            "detail": {"event_id": "e12"},
        }
    ]
    assert _without_ids(recovered_history[1:]) == [
        {
            "escalation_id": recovered.id,
            "at": T0 + minutes(9),
            "kind": "recovered",
            "actor_id": None,
            "actor_name": None,
            "surface": None,
            "from_status": "open",
            "to_status": "recovered",
            "detail": None,
        }
    ]
    assert no_detail


def test_a_claimed_escalation_is_not_closed_as_unclaimed(database: Database) -> None:
    with database.session() as session:
        record = _open(session)
        escalations.claim(
            session=session,
            escalation_id=record.id,
            actor_id="ana",
            actor_name="Ana",
            surface="teams",
            now=T0 + minutes(1),
        )
        before = _row(session, tables.escalations, record.id)
        assert not escalations.close_unclaimed(
            session=session, escalation_id=record.id, status="expired", now=T0 + minutes(2)
        )
        after = _row(session, tables.escalations, record.id)
        history = _handoff_rows(session, record.id)
    assert after == before
    assert [step["kind"] for step in history] == ["opened", "claimed"]


def _outbox_row(session: Session, item_id: int) -> dict[str, Any]:
    return _row(session, tables.outbox, item_id)


def test_a_queued_delivery_stores_every_value(database: Database) -> None:
    with database.session() as session:
        record = _open(session)
        posted = outbox.enqueue(
            session=session,
            kind="thread_reply",
            surface="slack",
            escalation_id=record.id,
            payload={"messages": [{"event_id": "e4", "text": "hello"}]},
            due_at=T0 + minutes(1),
            now=T0,
        )
        unaddressed = outbox.enqueue(
            session=session,
            kind="digest",
            surface=None,
            escalation_id=None,
            payload={},
            due_at=T0 + minutes(2),
        )
        posted_row = _outbox_row(session, posted)
        unaddressed_row = _outbox_row(session, unaddressed)
        empty_payload_null = _is_null(session, tables.outbox.c.payload, unaddressed)
    assert posted_row == {
        "id": posted,
        "kind": "thread_reply",
        "surface": "slack",
        "escalation_id": record.id,
        "payload": {"messages": [{"event_id": "e4", "text": "hello"}]},
        "status": "pending",
        "attempts": 0,
        "due_at": T0 + minutes(1),
        "leased_until": None,
        "last_error": None,
        "created_at": T0,
        "done_at": None,
        "dedupe_key": None,
    }
    # Without `now`, created when due.
    assert unaddressed_row == {
        "id": unaddressed,
        "kind": "digest",
        "surface": None,
        "escalation_id": None,
        "payload": {},
        "status": "pending",
        "attempts": 0,
        "due_at": T0 + minutes(2),
        "leased_until": None,
        "last_error": None,
        "created_at": T0 + minutes(2),
        "done_at": None,
        "dedupe_key": None,
    }
    assert not empty_payload_null
    assert unaddressed > posted


def test_a_coalesced_delivery_takes_the_new_payload_and_the_earlier_time_only(
    database: Database,
) -> None:
    with database.session() as session:
        record = _open(session)
        first = outbox.enqueue(
            session=session,
            kind="update_card",
            surface="slack",
            escalation_id=record.id,
            payload={"version": 1},
            due_at=T0 + minutes(5),
            dedupe_key="update:k",
            now=T0,
        )
        created = _outbox_row(session, first)
        later = outbox.enqueue(
            session=session,
            kind="post_card",
            surface="teams",
            escalation_id=None,
            payload={"version": 2},
            due_at=T0 + minutes(9),
            dedupe_key="update:k",
            now=T0 + minutes(1),
        )
        after_later = _outbox_row(session, later)
        earlier = outbox.enqueue(
            session=session,
            kind="update_card",
            surface="slack",
            escalation_id=record.id,
            payload={"version": 3},
            due_at=T0 + minutes(2),
            dedupe_key="update:k",
            now=T0 + minutes(2),
        )
        after_earlier = _outbox_row(session, earlier)
        other = outbox.enqueue(
            session=session,
            kind="update_card",
            surface="slack",
            escalation_id=record.id,
            payload={"version": 1},
            due_at=T0,
            dedupe_key="update:other",
        )
        count = session.connection().execute(text("SELECT count(*) FROM outbox")).scalar_one()
    assert created == {
        "id": first,
        "kind": "update_card",
        "surface": "slack",
        "escalation_id": record.id,
        "payload": {"version": 1},
        "status": "pending",
        "attempts": 0,
        "due_at": T0 + minutes(5),
        "leased_until": None,
        "last_error": None,
        "created_at": T0,
        "done_at": None,
        "dedupe_key": "update:k",
    }
    assert first == later == earlier != other
    # Only the payload (newest wins) and the due time (earliest wins) change.
    assert after_later == {**created, "payload": {"version": 2}}
    assert after_earlier == {**created, "payload": {"version": 3}, "due_at": T0 + minutes(2)}
    assert count == 2


def test_a_leased_delivery_no_longer_absorbs_a_new_one(database: Database) -> None:
    with database.session() as session:
        record = _open(session)
        first = outbox.enqueue(
            session=session,
            kind="update_card",
            surface="slack",
            escalation_id=record.id,
            payload={"version": 1},
            due_at=T0,
            dedupe_key="update:k",
        )
        [leased] = outbox.lease_due(session=session, now=T0, limit=5, lease_seconds=30)
        second = outbox.enqueue(
            session=session,
            kind="update_card",
            surface="slack",
            escalation_id=record.id,
            payload={"version": 2},
            due_at=T0,
            dedupe_key="update:k",
        )
        second_row = _outbox_row(session, second)
    assert leased.id == first != second
    assert (second_row["payload"], second_row["dedupe_key"]) == ({"version": 2}, "update:k")
