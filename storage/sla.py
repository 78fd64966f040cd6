"""SLA chains in storage: the open escalations waiting, and the guard that fires a step once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session

from storage import tables
from storage._sql import connection, is_postgres, upsert

_e = tables.escalations
_h = tables.handoff_events
_steps = tables.sla_steps


@dataclass(frozen=True, slots=True)
class WaitingEscalation:
    """An open escalation, how long it has waited, and the chain steps already fired."""

    id: int
    conversation_id: str
    team: str | None
    level: str
    snapshot: dict[str, Any]
    opened_at: datetime
    waiting_since: datetime  # opened, or last released: a release restarts the chain
    fired: frozenset[str]  # steps fired since `waiting_since`


def waiting_escalations(*, session: Session) -> list[WaitingEscalation]:
    """Every open escalation, oldest first, with the steps of its current chain already fired."""
    db = connection(session)
    released = (
        select(_h.c.escalation_id, func.max(_h.c.at).label("released_at"))
        .where(_h.c.kind == "released")
        .group_by(_h.c.escalation_id)
        .subquery()
    )
    rows = db.execute(
        select(
            _e.c.id,
            _e.c.conversation_id,
            _e.c.team,
            _e.c.level,
            _e.c.snapshot,
            _e.c.opened_at,
            released.c.released_at,
        )
        .select_from(_e.outerjoin(released, released.c.escalation_id == _e.c.id))
        .where(_e.c.status == "open")
        .order_by(_e.c.opened_at, _e.c.id)
    ).all()
    if not rows:
        return []
    fired: dict[tuple[int, datetime], set[str]] = {}
    for escalation_id, since, step in db.execute(
        select(_steps.c.escalation_id, _steps.c.waiting_since, _steps.c.step).where(
            _steps.c.escalation_id.in_([row.id for row in rows])
        )
    ):
        fired.setdefault((escalation_id, since), set()).add(step)
    waiting = []
    for row in rows:
        since = max(row.opened_at, row.released_at) if row.released_at else row.opened_at
        waiting.append(
            WaitingEscalation(
                id=row.id,
                conversation_id=row.conversation_id,
                team=row.team,
                level=row.level,
                snapshot=row.snapshot or {},
                opened_at=row.opened_at,
                waiting_since=since,
                fired=frozenset(fired.get((row.id, since), ())),
            )
        )
    return waiting


def mark_step(
    *, session: Session, escalation_id: int, waiting_since: datetime, step: str, now: datetime
) -> bool:
    """Claim the right to fire one step; False when it fired already or the escalation left
    `open` (a claim that committed first wins).

    The escalation row is locked first (FOR UPDATE on PostgreSQL; SQLite's write transaction
    already serialises writers), so a concurrent claim waits for this transaction or has won.
    """
    db = connection(session)
    still_open = select(_e.c.id).where(_e.c.id == escalation_id, _e.c.status == "open")
    if is_postgres(session):
        still_open = still_open.with_for_update()
    if db.execute(still_open).scalar_one_or_none() is None:
        return False
    inserted = db.execute(
        upsert(session, _steps)
        .values(escalation_id=escalation_id, waiting_since=waiting_since, step=step, fired_at=now)
        .on_conflict_do_nothing(
            index_elements=[_steps.c.escalation_id, _steps.c.waiting_since, _steps.c.step]
        )
        .returning(_steps.c.id)
    ).scalar_one_or_none()
    return inserted is not None
