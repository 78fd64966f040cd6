"""Conversation references the Teams bot needs to post into a channel proactively."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from storage import tables
from storage._sql import connection, upsert

_teams_channels = tables.teams_channels


def save_teams_channel(
    *, session: Session, channel_id: str, reference: dict[str, Any], now: datetime
) -> None:
    """Store (or replace) the conversation reference for a Teams channel."""
    statement = upsert(session, _teams_channels).values(
        channel_id=channel_id, reference=reference, updated_at=now
    )
    connection(session).execute(
        statement.on_conflict_do_update(
            index_elements=[_teams_channels.c.channel_id],
            set_={
                "reference": statement.excluded.reference,
                "updated_at": statement.excluded.updated_at,
            },
        )
    )


def teams_channels(*, session: Session) -> dict[str, dict[str, Any]]:
    """Every stored conversation reference, by channel id."""
    result = connection(session).execute(
        select(_teams_channels.c.channel_id, _teams_channels.c.reference)
    )
    return {channel_id: reference for channel_id, reference in result.all()}
