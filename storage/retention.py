"""Retention: forget old transcripts and the personal data around them, keep the numbers.

A conversation last written to before the cut-off, and which no agent still holds (no
open or claimed escalation), loses its events, its customer fields, its metadata and the engine's
running state (which quotes the customer). Its escalations stay, with their times, levels,
teams, scores, statuses and the signal behind each reason, so that digests and dashboard
charts for past periods keep their numbers; the summary, the reasons' wording and agents' notes,
which quote the customer, are removed. Finished outbox rows older than the cut-off go as well
(thread replies carry customer text).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, exists, select, update
from sqlmodel import Session

from storage import tables
from storage._sql import chunks, connection

_conversations = tables.conversations
_events = tables.events
_escalations = tables.escalations
_outbox = tables.outbox

REMOVED = "(removed after the retention period)"
# How many conversations one statement touches (keeps parameter lists short on SQLite).
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class RetentionResult:
    """What one purge removed."""

    conversations: int  # conversations whose transcript and personal data were removed
    events: int  # event rows deleted
    escalations_scrubbed: int  # escalations whose summary and reason wording were removed
    outbox_rows: int  # finished deliveries deleted


def _expired_conversations(session: Session, cutoff: datetime) -> list[str]:
    held = exists().where(
        _escalations.c.conversation_id == _conversations.c.id,
        _escalations.c.status.in_(tables.ACTIVE_ESCALATION_STATUSES),
    )
    statement = select(_conversations.c.id).where(
        # The service's own clock, not the platform's event times: a sender's wrong clock must
        # neither keep a transcript forever nor delete a fresh one.
        _conversations.c.updated_at < cutoff,
        # Already purged rows have no state left: skip them so a purge is cheap to repeat.
        _conversations.c.state.is_not(None),
        ~held,
    )
    return [str(row[0]) for row in connection(session).execute(statement)]


def _anonymous_reasons(reasons: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    return [
        {"signal": item.get("signal"), "points": item.get("points"), "text": REMOVED}
        for item in reasons or []
    ]


def purge_expired(*, session: Session, cutoff: datetime) -> RetentionResult:
    """Remove transcripts and personal data last touched before `cutoff`; keep aggregates."""
    ids = _expired_conversations(session, cutoff)
    db = connection(session)
    events_deleted = 0
    scrubbed = 0
    for chunk in chunks(ids, _CHUNK):
        events_deleted += db.execute(
            delete(_events).where(_events.c.conversation_id.in_(chunk))
        ).rowcount
        db.execute(
            update(_conversations)
            .where(_conversations.c.id.in_(chunk))
            .values(
                customer_id=None,
                customer_name=None,
                customer_email=None,
                metadata=None,
                link=None,
                state=None,
                status="ended",
            )
        )
        rows = db.execute(
            select(_escalations.c.id, _escalations.c.reasons).where(
                _escalations.c.conversation_id.in_(chunk)
            )
        ).all()
        for escalation_id, reasons in rows:
            db.execute(
                update(_escalations)
                .where(_escalations.c.id == escalation_id)
                .values(summary=None, note=None, reasons=_anonymous_reasons(reasons))
            )
        scrubbed += len(rows)
    outbox_deleted = db.execute(
        delete(_outbox).where(and_(_outbox.c.status != "pending", _outbox.c.created_at < cutoff))
    ).rowcount
    return RetentionResult(
        conversations=len(ids),
        events=int(events_deleted),
        escalations_scrubbed=scrubbed,
        outbox_rows=int(outbox_deleted),
    )
