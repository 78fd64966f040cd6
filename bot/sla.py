"""SLA chains: nudge, mention, then hand an unclaimed escalation to another team.

`run_sla(now)` is a function of the clock, the open escalations (each with the team settings in
force when it opened, from its snapshot) and the steps already fired, so a test drives it with
a hand-moved clock. Each step fires once: a unique row in `sla_steps`, the `sla_step` hand-off
event (its `notice` shows on the card) and the outbox rows that show it, all in one transaction
that first checks the escalation is still open, so a claim that committed first stops it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlmodel import Session

from bot.pipeline import enqueue_card_update, team_surfaces
from engine.rules import WEEKDAYS, BusinessHours, Rules, Team
from storage import escalations, outbox
from storage import sla as sla_storage
from storage.db import Database
from storage.sla import WaitingEscalation

log = logging.getLogger(__name__)

SLA_STEP = "sla_step"  # the hand-off event kind, and the outbox kind of a thread message
AFTER_HOURS = "after_hours"


@dataclass(frozen=True, slots=True)
class PlannedStep:
    """A step that is due for one escalation."""

    escalation_id: int
    waiting_since: datetime
    key: str  # "step:0", "step:1", ... or "after_hours"
    action: str  # remind, mention or handoff
    target: str | None  # the mention, or the team handed to
    waited_minutes: float  # counted in business hours when the team has them

    def notice(self, now: datetime, zone: ZoneInfo) -> str:
        """The line shown on the card."""
        at = now.astimezone(zone).strftime("%H:%M")
        waited = f"{self.waited_minutes:.0f} min unclaimed"
        if self.key == AFTER_HOURS:
            return f"SLA: outside business hours, handed to {self.target} at {at} ({waited})"
        if self.action == "handoff":
            return f"SLA: handed to {self.target} at {at} ({waited})"
        if self.action == "mention":
            return f"SLA: mentioned {self.target} at {at} ({waited})"
        return f"SLA: reminder at {at} ({waited})"


# --- business hours -----------------------------------------------------------------------------


def _working_window(hours: BusinessHours, day: date) -> tuple[datetime, datetime] | None:
    zone = ZoneInfo(hours.timezone)
    if WEEKDAYS[day.weekday()] not in hours.days or day.isoformat() in hours.holidays:
        return None
    start = datetime.combine(day, time.fromisoformat(hours.start), tzinfo=zone)
    end = datetime.combine(day, time.fromisoformat(hours.end), tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def in_business_hours(hours: BusinessHours, moment: datetime) -> bool:
    """Whether `moment` falls in the team's working hours (not a holiday)."""
    day = moment.astimezone(ZoneInfo(hours.timezone)).date()
    window = _working_window(hours, day)
    return window is not None and window[0] <= moment < window[1]


def business_minutes(hours: BusinessHours, start: datetime, end: datetime) -> float:
    """Minutes of working time between `start` and `end`."""
    if end <= start:
        return 0.0
    zone = ZoneInfo(hours.timezone)
    day = start.astimezone(zone).date()
    last = end.astimezone(zone).date()
    total = 0.0
    while day <= last:
        window = _working_window(hours, day)
        if window is not None:
            overlap = min(end, window[1]) - max(start, window[0])
            total += max(0.0, overlap.total_seconds() / 60)
        day += timedelta(days=1)
    return total


# --- planning (pure) ----------------------------------------------------------------------------


def team_settings(waiting: WaitingEscalation, rules: Rules) -> Team | None:
    """The team settings the escalation opened under; the current ones for old snapshots."""
    snapshot = waiting.snapshot.get("team_config")
    if isinstance(snapshot, dict):
        try:
            return Team.model_validate_json(json.dumps(snapshot))
        except ValidationError:
            log.warning("escalation %d has an unreadable team snapshot", waiting.id)
    return rules.teams.get(waiting.team or "")


def plan(waiting: WaitingEscalation, team: Team, now: datetime) -> list[PlannedStep]:
    """The steps of the escalation's chain that are due at `now` and have not fired."""
    sla = team.sla
    wall = (now - waiting.waiting_since).total_seconds() / 60
    hours = sla.business_hours
    waited = business_minutes(hours, waiting.waiting_since, now) if hours else wall
    due: list[PlannedStep] = []
    for index, step in enumerate(sla.steps):
        key = f"step:{index}"
        if key not in waiting.fired and waited >= step.after_minutes:
            due.append(
                PlannedStep(
                    waiting.id, waiting.waiting_since, key, step.action, step.target, waited
                )
            )
    if (
        hours is not None
        and sla.after_hours is not None
        and AFTER_HOURS not in waiting.fired
        and not in_business_hours(hours, now)
        and wall >= sla.claim_within_minutes
    ):
        due.append(
            PlannedStep(
                waiting.id, waiting.waiting_since, AFTER_HOURS, "handoff", sla.after_hours, wall
            )
        )
    return due


# --- firing -------------------------------------------------------------------------------------


def fire(
    session: Session,
    step: PlannedStep,
    rules: Rules,
    surfaces: frozenset[str],
    now: datetime,
    zone: ZoneInfo,
) -> bool:
    """Record one step and queue what shows it; False when it fired already or was claimed."""
    if not sla_storage.mark_step(
        session=session,
        escalation_id=step.escalation_id,
        waiting_since=step.waiting_since,
        step=step.key,
        now=now,
    ):
        return False
    notice = step.notice(now, zone)
    escalations.record_handoff_event(
        session=session,
        escalation_id=step.escalation_id,
        kind=SLA_STEP,
        now=now,
        actor_name="SLA",
        detail={
            "step": step.key,
            "action": step.action,
            "target": step.target,
            "notice": notice,
            "waited_minutes": round(step.waited_minutes, 1),
        },
    )
    if step.action == "handoff" and step.target:
        for surface, channel in team_surfaces(rules, step.target, surfaces):
            outbox.enqueue_card_post(
                session=session,
                escalation_id=step.escalation_id,
                surface=surface,
                channel=channel,
                now=now,
            )
    else:
        text = notice if step.action == "remind" else f"{step.target} {notice}"
        for surface in sorted(surfaces | {"console"}):
            outbox.enqueue(
                session=session,
                kind=SLA_STEP,
                surface=surface,
                escalation_id=step.escalation_id,
                payload={
                    "text": text,
                    "mention": step.target if step.action == "mention" else None,
                },
                due_at=now,
                now=now,
            )
    enqueue_card_update(session, step.escalation_id, now, surfaces)
    return True


def run_sla(
    database: Database, rules: Rules, surfaces: frozenset[str], now: datetime
) -> list[PlannedStep]:
    """The SLA job: fire every due step of every open escalation; returns the steps fired."""
    with database.session(read_only=True) as session:
        waiting = sla_storage.waiting_escalations(session=session)
    fired: list[PlannedStep] = []
    for item in waiting:
        team = team_settings(item, rules)
        if team is None:
            continue
        hours = team.sla.business_hours
        zone = ZoneInfo(hours.timezone if hours else "UTC")
        for step in plan(item, team, now):
            # One transaction per step: each is recorded with exactly the rows that show it.
            with database.session() as session:
                if fire(session, step, rules, surfaces, now, zone):
                    fired.append(step)
    if fired:
        log.info("SLA: %d step(s) fired", len(fired))
    return fired
