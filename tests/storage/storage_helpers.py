"""Factories for storage tests: one per model, with the values a story does not care about."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool, QueuePool
from sqlmodel import Session

from engine.assessment import Assessment, Decision, Reason
from engine.events import ConversationEvent, ConversationMeta, Customer, EventType, Role
from storage import conversations, escalations, outbox
from storage.db import Database
from storage.escalations import EscalationRecord

T0 = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)


def message(
    event_id: str,
    text: str = "hello",
    *,
    at: datetime | None = None,
    role: Role = Role.CUSTOMER,
) -> ConversationEvent:
    """A message event, at T0 unless `at` says otherwise."""
    return ConversationEvent(
        event_id=event_id,
        type=EventType.MESSAGE,
        timestamp=at if at is not None else T0,
        role=role,
        text=text,
    )


def assessment(
    event_id: str = "e1",
    *,
    score: float = 6.0,
    level: str | None = "high",
    team: str | None = "tier-1",
    decision: Decision = Decision.OPEN,
    mention: str | None = "@here",
    reasons: tuple[Reason, ...] = (
        Reason("fallback", 3.0, "3 bot fallbacks in a row", ("e1", "e2", "e3")),
    ),
) -> Assessment:
    """An engine verdict that asks for a human."""
    return Assessment(
        event_id=event_id,
        score=score,
        level=level,
        notify=level is not None,
        reasons=reasons,
        team=team,
        decision=decision,
        mention=mention,
    )


META = ConversationMeta(
    platform="generic",
    customer=Customer(id="cust-1", name="Ana Lima", tier="gold", email="ana@example.com"),
    metadata={"order": "A-100"},
    language="en",
    link="https://inbox.example.com/c/1",
)


def minutes(count: float) -> timedelta:
    """A readable duration for timelines."""
    return timedelta(minutes=count)


def create_escalation(
    database: Database,
    conversation_id: str = "conv-1",
    *,
    now: datetime = T0,
    team: str | None = "tier-1",
) -> EscalationRecord:
    """Open an escalation on a (new) conversation and commit it."""
    with database.session() as session:
        conversations.lock_conversation(
            session=session, conversation_id=conversation_id, meta=META, now=now
        )
        return escalations.open_escalation(
            session=session,
            conversation_id=conversation_id,
            assessment=assessment(team=team),
            summary={"wants": ["a refund"]},
            snapshot={"route": "default", "sla": [{"after_minutes": 5}]},
            now=now,
        )


def enqueue(
    session: Session,
    escalation_id: int,
    *,
    kind: str = "post_card",
    surface: str = "slack",
    payload: dict[str, Any] | None = None,
    due_at: datetime = T0,
    dedupe_key: str | None = None,
    now: datetime | None = None,
) -> int:
    """Queue one delivery for the escalation: a Slack card post due at T0 unless told otherwise."""
    return outbox.enqueue(
        session=session,
        kind=kind,
        surface=surface,
        escalation_id=escalation_id,
        payload=payload if payload is not None else {},
        due_at=due_at,
        dedupe_key=dedupe_key,
        now=now,
    )


def kill_pooled_connection(database: Database) -> None:
    """Leave the pool holding one connection, whose server side has ended (as after a server
    restart), having waited until the server let it go."""
    database.dispose()
    with database.engine.connect() as victim:
        pid = victim.execute(text("SELECT pg_backend_pid()")).scalar_one()
        victim.commit()
        end_backend(database, pid)
    assert cast(QueuePool, database.engine.pool).checkedin() == 1


def end_backend(database: Database, pid: int) -> None:
    """End the server side of the connection whose backend is `pid`, and wait until the
    server has let it go."""
    killer = create_engine(database.url, poolclass=NullPool)
    try:
        with killer.connect() as other:
            other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            other.commit()
            while other.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
            ).scalar_one():
                other.rollback()
    finally:
        killer.dispose()
