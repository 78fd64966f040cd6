"""Factories for scheduler stories: escalations written straight into the tables."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert

from storage import tables
from storage.db import Database


def seed_escalation(
    database: Database,
    conversation_id: str,
    *,
    opened_at: datetime,
    team: str = "support",
    level: str = "escalate",
    score: float = 60.0,
    status: str = "open",
    signals: tuple[str, ...] = ("fallbacks",),
    claimed_at: datetime | None = None,
    claimed_by: str | None = None,
    closed_at: datetime | None = None,
    snapshot: dict[str, Any] | None = None,
) -> int:
    """One conversation with one escalation (and its claim event when claimed); returns its id."""
    reasons = [
        {"signal": signal, "points": 10.0, "text": f"{signal} fired", "event_ids": []}
        for signal in signals
    ]
    with database.session() as session:
        connection = session.connection()
        connection.execute(
            insert(tables.conversations).values(
                id=conversation_id,
                platform="generic",
                status="active",
                score=score,
                link=f"https://inbox.example.com/{conversation_id}",
                first_event_at=opened_at,
                last_event_at=opened_at,
                created_at=opened_at,
                updated_at=opened_at,
            )
        )
        escalation_id = connection.execute(
            insert(tables.escalations)
            .values(
                conversation_id=conversation_id,
                status=status,
                level=level,
                score=score,
                reasons=reasons,
                team=team,
                summary={},
                snapshot=snapshot,
                opened_at=opened_at,
                claimed_at=claimed_at,
                claimed_by=claimed_by,
                claimed_by_name=claimed_by.title() if claimed_by else None,
                closed_at=closed_at,
                updated_at=opened_at,
            )
            .returning(tables.escalations.c.id)
        ).scalar_one()
        if claimed_at is not None:
            connection.execute(
                insert(tables.handoff_events).values(
                    escalation_id=escalation_id,
                    at=claimed_at,
                    kind="claimed",
                    actor_id=claimed_by,
                    actor_name=claimed_by.title() if claimed_by else None,
                )
            )
    return int(escalation_id)


def seed_quiet_conversation(database: Database, conversation_id: str, at: datetime) -> None:
    """A conversation the bot handled alone."""
    with database.session() as session:
        session.connection().execute(
            insert(tables.conversations).values(
                id=conversation_id,
                platform="generic",
                status="ended",
                score=0.0,
                first_event_at=at,
                last_event_at=at,
                created_at=at,
                updated_at=at,
            )
        )
