"""Claimed escalations in storage: since when each is held, what the agent and the customer said
since the claim, and the guards that make each idle-claim step happen once.

The steps share the `sla_steps` guard table with the SLA chain: a row per (escalation, round,
step), where the round of an idle step is the moment its clock started (the claim, a "Still on
it", or the agent's last reply), so a new claim or a new round can fire its steps again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ScalarSelect, func, select, update
from sqlmodel import Session

from engine.events import EventType, Role
from storage import escalations, tables
from storage._sql import connection, is_postgres, upsert
from storage.escalations import EscalationStatus, Refusal, TransitionOutcome

_e = tables.escalations
_h = tables.handoff_events
_events = tables.events
_steps = tables.sla_steps
_outbox = tables.outbox

# The hand-off event kind of a claimer's "Still on it": it restarts the idle clock.
STILL_ON_IT = "still_on_it"
# The outbox status of a notification a transition made pointless before it went out (a claim
# cancels pending SLA messages); the retention job deletes such rows like delivered ones.
CANCELLED = "cancelled"
_PENDING = "pending"
_STEP_PREFIX = "idle:"


@dataclass(frozen=True, slots=True)
class ClaimedEscalation:
    """A claimed escalation and what has happened since the claim."""

    id: int
    conversation_id: str
    team: str | None
    snapshot: dict[str, Any]
    claimed_by: str
    claimed_by_name: str | None
    claimed_at: datetime
    claim_surface: str | None  # where the claimer clicked: where a mention reaches them
    still_on_it_at: datetime | None  # the claimer's last "Still on it" since the claim
    last_agent_at: datetime | None  # the last agent message since the claim
    last_customer_at: datetime | None  # the last customer message since the claim
    fired: Mapping[tuple[datetime, str], datetime]  # (round, step) -> when it fired

    @property
    def display_name(self) -> str:
        """The claimer as the card names them."""
        return self.claimed_by_name or self.claimed_by


def _last_message(role: Role) -> ScalarSelect[Any]:
    # Correlated: each claimed escalation costs a search of its conversation's events (through
    # their unique index on (conversation_id, event_id)).
    return (
        select(func.max(_events.c.timestamp))
        .where(
            _events.c.conversation_id == _e.c.conversation_id,
            _events.c.timestamp >= _e.c.claimed_at,
            _events.c.type == EventType.MESSAGE.value,
            _events.c.role == role.value,
        )
        .scalar_subquery()
    )


def claimed_escalations(
    *, session: Session, escalation_id: int | None = None, lock: bool = False
) -> list[ClaimedEscalation]:
    """Every claimed escalation (or the one named), oldest claim first.

    With `lock` the escalation rows are locked first (FOR UPDATE on PostgreSQL; SQLite's write
    transaction already serialises writers), so a click that changes them waits or has won.
    """
    db = connection(session)
    claim_surface = (
        select(_h.c.surface)
        .where(_h.c.escalation_id == _e.c.id, _h.c.kind == "claimed")
        .order_by(_h.c.at.desc(), _h.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    still_on_it = (
        select(func.max(_h.c.at))
        .where(
            _h.c.escalation_id == _e.c.id,
            _h.c.kind == STILL_ON_IT,
            _h.c.at >= _e.c.claimed_at,
        )
        .scalar_subquery()
    )
    statement = select(
        _e.c.id,
        _e.c.conversation_id,
        _e.c.team,
        _e.c.snapshot,
        _e.c.claimed_by,
        _e.c.claimed_by_name,
        _e.c.claimed_at,
        claim_surface.label("claim_surface"),
        still_on_it.label("still_on_it_at"),
        _last_message(Role.AGENT).label("last_agent_at"),
        _last_message(Role.CUSTOMER).label("last_customer_at"),
    ).where(
        _e.c.status == EscalationStatus.CLAIMED.value,
        _e.c.claimed_at.is_not(None),
        _e.c.claimed_by.is_not(None),
    )
    if escalation_id is not None:
        statement = statement.where(_e.c.id == escalation_id)
    if lock and is_postgres(session):
        # Lock first, read after, in two statements: under READ COMMITTED a statement that waited
        # for the lock would still read the other tables as they were when it began, and miss
        # the "Still on it" that the transaction it waited for has just committed.
        locked = select(_e.c.id).where(_e.c.status == EscalationStatus.CLAIMED.value)
        if escalation_id is not None:
            locked = locked.where(_e.c.id == escalation_id)
        db.execute(locked.order_by(_e.c.id).with_for_update()).all()
    rows = db.execute(statement.order_by(_e.c.claimed_at, _e.c.id)).all()
    if not rows:
        return []
    fired: dict[int, dict[tuple[datetime, str], datetime]] = {}
    for row_id, since, step, fired_at in db.execute(
        select(_steps.c.escalation_id, _steps.c.waiting_since, _steps.c.step, _steps.c.fired_at)
        .where(_steps.c.escalation_id.in_([row.id for row in rows]))
        .where(_steps.c.step.startswith(_STEP_PREFIX))
    ):
        fired.setdefault(row_id, {})[(since, step)] = fired_at
    return [
        ClaimedEscalation(
            id=row.id,
            conversation_id=row.conversation_id,
            team=row.team,
            snapshot=row.snapshot or {},
            claimed_by=row.claimed_by,
            claimed_by_name=row.claimed_by_name,
            claimed_at=row.claimed_at,
            claim_surface=row.claim_surface,
            still_on_it_at=row.still_on_it_at,
            last_agent_at=row.last_agent_at,
            last_customer_at=row.last_customer_at,
            fired=fired.get(row.id, {}),
        )
        for row in rows
    ]


def mark_step(
    *, session: Session, escalation_id: int, round_start: datetime, step: str, now: datetime
) -> bool:
    """Claim the right to take one idle step of one round; False when it was taken already.

    `step` is "idle:<name>"; call it after `claimed_escalations(lock=True)` in the same
    transaction, having checked the step is still due.
    """
    if not step.startswith(_STEP_PREFIX):
        raise ValueError(f"idle steps are named 'idle:…', not {step!r}")
    inserted = (
        connection(session)
        .execute(
            upsert(session, _steps)
            .values(escalation_id=escalation_id, waiting_since=round_start, step=step, fired_at=now)
            .on_conflict_do_nothing(
                index_elements=[_steps.c.escalation_id, _steps.c.waiting_since, _steps.c.step]
            )
            .returning(_steps.c.id)
        )
        .scalar_one_or_none()
    )
    return inserted is not None


def record_still_on_it(
    *,
    session: Session,
    escalation_id: int,
    actor_id: str,
    actor_name: str,
    surface: str,
    now: datetime,
    notice: str,
    allow_admin: bool = False,
) -> TransitionOutcome:
    """The claimer (or an admin, with `allow_admin`) says they are still on it.

    A compare-and-set on the claim like release: of this and a concurrent auto-release exactly
    one happens. The hand-off event restarts the idle clock; its `notice` shows on the card.
    """
    held = escalations.held_by(actor_id, allow_admin)
    touched = connection(session).execute(
        update(_e).where(_e.c.id == escalation_id, held).values(updated_at=now).returning(_e.c.id)
    )
    if touched.scalar_one_or_none() is None:
        return _refused(session, escalation_id, actor_id)
    escalations.record_handoff_event(
        session=session,
        escalation_id=escalation_id,
        kind=STILL_ON_IT,
        now=now,
        actor_id=actor_id,
        actor_name=actor_name,
        surface=surface,
        detail={"notice": notice},
    )
    return TransitionOutcome(
        ok=True, escalation=escalations.get_escalation(session=session, escalation_id=escalation_id)
    )


def _refused(session: Session, escalation_id: int, actor_id: str) -> TransitionOutcome:
    current = escalations.get_escalation(session=session, escalation_id=escalation_id)
    if current is None:
        return TransitionOutcome(ok=False, escalation=None, refusal=Refusal.UNKNOWN)
    if current.status is EscalationStatus.CLAIMED:
        refusal = Refusal.NOT_CLAIMER
    elif current.status is EscalationStatus.OPEN:
        refusal = Refusal.NOT_CLAIMED
    else:
        refusal = Refusal.CLOSED
    return TransitionOutcome(ok=False, escalation=current, refusal=refusal)


def cancel_notifications(
    *, session: Session, escalation_id: int, kinds: Sequence[str], now: datetime, reason: str
) -> int:
    """Call off the escalation's pending outbox rows of `kinds`; returns how many."""
    result = connection(session).execute(
        update(_outbox)
        .where(
            _outbox.c.escalation_id == escalation_id,
            _outbox.c.status == _PENDING,
            _outbox.c.kind.in_(list(kinds)),
        )
        .values(status=CANCELLED, done_at=now, leased_until=None, last_error=reason)
        .returning(_outbox.c.id)
    )
    return len(result.all())
