"""Claimed but idle: nothing falls through after a claim.

`run_idle(now)` is run every minute by the scheduler. For each claimed escalation whose team (as
it was when the escalation opened, from its snapshot) has `idle` settings, it plans, from the
clock and what storage says happened since the claim, the steps that are due:

- **remind**: no agent message `remind_after_minutes` after the claim (or the claimer's last
  "Still on it"): the claimer is mentioned in the card's thread and the card offers *Still on it*
  (restarts the clock) next to *Release*;
- **release**: still no agent message `release_after_minutes` after that reminder: the
  escalation goes back to the queue, like a Release, with a notice on the card saying why;
- **answered**: the agent wrote after a reminder: the card drops its *Still on it* button;
- **re-alert**: a customer message nobody has answered since the claim (or since the agent's
  last reply) mentions the claimer once.

The agent's first message after the claim ends the reminder clock for that claim. Each step
happens once: it is re-planned on the locked escalation inside its transaction and guarded by
a unique row, so a click that committed first (Still on it, Release, Resolve) wins, and two
replicas cannot both take it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlmodel import Session

from bot.handoff import Actor
from bot.pipeline import enqueue_card_update
from bot.sla import SLA_STEP
from engine.rules import Idle, Rules, Team
from storage import escalations, outbox
from storage import idle as idle_storage
from storage.db import Database
from storage.escalations import EscalationRecord, HandoffEventRecord, TransitionOutcome
from storage.idle import STILL_ON_IT, ClaimedEscalation

if TYPE_CHECKING:
    from bot.handback import PlatformCalls

log = logging.getLogger(__name__)

# The outbox kind of a thread message to the claimer, and the hand-off event of a reminder.
IDLE_REMINDER = "idle_reminder"
IDLE_REALERT = "idle_realert"
IDLE_ANSWERED = "idle_answered"
AUTO_RELEASED = "auto_released"
# Who an automatic release is recorded under.
AUTO_RELEASE_ACTOR = "auto-release"
AUTO_RELEASE_SURFACE = "scheduler"

REMIND = "idle:remind"
RELEASE = "idle:release"
ANSWERED = "idle:answered"
REALERT = "idle:realert"


@dataclass(frozen=True, slots=True)
class IdleStep:
    """A step that is due for one claimed escalation."""

    escalation_id: int
    key: str  # REMIND, RELEASE, ANSWERED or REALERT
    round_start: datetime  # when this step's clock started
    idle_minutes: float  # how long the agent has been silent (since the round started)


# --- settings and planning (pure) ---------------------------------------------------------------


def team_settings(snapshot: dict[str, object], team: str | None, rules: Rules) -> Team | None:
    """The team settings the escalation opened under; the current ones for old snapshots."""
    config = snapshot.get("team_config")
    if isinstance(config, dict):
        try:
            return Team.model_validate_json(json.dumps(config))
        except ValidationError:
            log.warning("an escalation of team %s has an unreadable team snapshot", team)
    return rules.teams.get(team or "")


def _zone(team: Team) -> ZoneInfo:
    hours = team.sla.business_hours
    return ZoneInfo(hours.timezone if hours else "UTC")


def round_start(claimed: ClaimedEscalation) -> datetime:
    """When the reminder clock of the current claim last started."""
    if claimed.still_on_it_at is not None and claimed.still_on_it_at > claimed.claimed_at:
        return claimed.still_on_it_at
    return claimed.claimed_at


def plan(claimed: ClaimedEscalation, idle: Idle, now: datetime) -> list[IdleStep]:
    """The idle steps due for `claimed` at `now` that have not been taken."""
    due: list[IdleStep] = []
    start = round_start(claimed)
    silent = (now - start).total_seconds() / 60

    def step(key: str, since: datetime = start) -> IdleStep:
        return IdleStep(claimed.id, key, since, silent)

    reminded_at = claimed.fired.get((start, REMIND))
    released = (start, RELEASE) in claimed.fired
    if claimed.last_agent_at is None:
        if reminded_at is None:
            if now >= start + timedelta(minutes=idle.remind_after_minutes):
                due.append(step(REMIND))
        elif (
            idle.release_after_minutes is not None
            and not released
            and now >= reminded_at + timedelta(minutes=idle.release_after_minutes)
        ):
            due.append(step(RELEASE))
    elif reminded_at is not None and not released and (start, ANSWERED) not in claimed.fired:
        due.append(step(ANSWERED))
    # A customer still waiting for the agent: once per unanswered stretch.
    answered_until = claimed.last_agent_at or claimed.claimed_at
    if (
        claimed.last_customer_at is not None
        and claimed.last_customer_at > answered_until
        and (answered_until, REALERT) not in claimed.fired
        and not any(item.key == RELEASE for item in due)
    ):
        due.append(step(REALERT, answered_until))
    return due


def reminder_open(history: list[HandoffEventRecord]) -> bool:
    """Whether the last reminder of the escalation is still unanswered (the card offers
    *Still on it* while it is claimed)."""
    waiting = False
    for event in history:
        if event.kind == IDLE_REMINDER:
            waiting = True
        elif event.kind in (STILL_ON_IT, IDLE_ANSWERED, AUTO_RELEASED, "claimed", "released"):
            waiting = False
    return waiting


# --- taking the steps ---------------------------------------------------------------------------


def _clock(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%H:%M")


def _mention(surface: str, claimed: ClaimedEscalation) -> str:
    """The claimer as the surface calls people: a Slack user id; in Teams "Name <AAD id>"."""
    if surface == "teams":
        return f"{claimed.display_name} <{claimed.claimed_by}>"
    return claimed.claimed_by


def _thread_message(
    session: Session,
    claimed: ClaimedEscalation,
    text: str,
    surfaces: frozenset[str],
    now: datetime,
) -> None:
    """A message to the claimer in the card's thread on every surface showing the card; it
    mentions them where they claimed (a Slack id means nothing in Teams), names them elsewhere."""
    for surface in sorted(surfaces | {"console"}):
        mentioned = surface == claimed.claim_surface and surface != "console"
        outbox.enqueue(
            session=session,
            kind=IDLE_REMINDER,
            surface=surface,
            escalation_id=claimed.id,
            payload={
                "text": text if mentioned else f"{claimed.display_name}: {text}",
                "mention": _mention(surface, claimed) if mentioned else None,
            },
            due_at=now,
            now=now,
        )


def _remind(
    session: Session,
    claimed: ClaimedEscalation,
    step: IdleStep,
    team: Team,
    idle: Idle,
    surfaces: frozenset[str],
    now: datetime,
) -> None:
    zone = _zone(team)
    silent = f"{step.idle_minutes:.0f} min"
    notice = (
        f"Reminder to {claimed.display_name} at {_clock(now, zone)}: no agent reply for {silent}"
    )
    text = f"No agent reply for {silent} since you took this. Still on it? Answer on the card."
    if idle.release_after_minutes is not None:
        back_at = _clock(now + timedelta(minutes=idle.release_after_minutes), zone)
        notice += f"; back to the queue at {back_at} unless Still on it"
        text = (
            f"No agent reply for {silent} since you took this. Still on it? Press "
            f'"Still on it" or "Release" on the card; without an answer it goes back to the '
            f"queue at {back_at}."
        )
    escalations.record_handoff_event(
        session=session,
        escalation_id=claimed.id,
        kind=IDLE_REMINDER,
        now=now,
        actor_name="Idle claim",
        detail={"notice": notice, "claimed_by": claimed.claimed_by, "idle_minutes": silent},
    )
    _thread_message(session, claimed, text, surfaces, now)
    enqueue_card_update(session, claimed.id, now, surfaces)


def _release(
    session: Session,
    claimed: ClaimedEscalation,
    step: IdleStep,
    team: Team,
    surfaces: frozenset[str],
    now: datetime,
    platform_calls: PlatformCalls | None,
) -> bool:
    done = escalations.release(
        session=session,
        escalation_id=claimed.id,
        actor_id=AUTO_RELEASE_ACTOR,
        actor_name=AUTO_RELEASE_ACTOR,
        surface=AUTO_RELEASE_SURFACE,
        now=now,
        allow_admin=True,
    )
    if not done.ok or done.escalation is None:
        return False
    silent = f"{step.idle_minutes:.0f} min"
    notice = (
        f"Released automatically at {_clock(now, _zone(team))}: no agent reply for {silent} "
        f"since {claimed.display_name} took it"
    )
    escalations.record_handoff_event(
        session=session,
        escalation_id=claimed.id,
        kind=AUTO_RELEASED,
        now=now,
        actor_name=AUTO_RELEASE_ACTOR,
        detail={"notice": notice, "claimed_by": claimed.claimed_by, "idle_minutes": silent},
    )
    idle_storage.cancel_notifications(
        session=session,
        escalation_id=claimed.id,
        kinds=(IDLE_REMINDER,),
        now=now,
        reason="superseded by the automatic release",
    )
    _thread_message(
        session,
        claimed,
        f"Back in the queue: no agent reply for {silent} since you took this.",
        surfaces,
        now,
    )
    if platform_calls is not None:
        # The bot was paused for the claim: give the conversation back, as a Release does.
        platform_calls.on_transition(session, done.escalation, now, AUTO_RELEASE_ACTOR)
    enqueue_card_update(session, claimed.id, now, surfaces)
    return True


def _take(
    session: Session,
    claimed: ClaimedEscalation,
    step: IdleStep,
    team: Team,
    idle: Idle,
    surfaces: frozenset[str],
    now: datetime,
    platform_calls: PlatformCalls | None,
) -> bool:
    if not idle_storage.mark_step(
        session=session,
        escalation_id=claimed.id,
        round_start=step.round_start,
        step=step.key,
        now=now,
    ):
        return False
    if step.key == REMIND:
        _remind(session, claimed, step, team, idle, surfaces, now)
    elif step.key == RELEASE:
        return _release(session, claimed, step, team, surfaces, now, platform_calls)
    elif step.key == ANSWERED:
        escalations.record_handoff_event(
            session=session, escalation_id=claimed.id, kind=IDLE_ANSWERED, now=now
        )
        idle_storage.cancel_notifications(
            session=session,
            escalation_id=claimed.id,
            kinds=(IDLE_REMINDER,),
            now=now,
            reason="the agent answered",
        )
        enqueue_card_update(session, claimed.id, now, surfaces)
    elif step.key == REALERT:
        assert claimed.last_customer_at is not None
        wrote = _clock(claimed.last_customer_at, _zone(team))
        escalations.record_handoff_event(
            session=session,
            escalation_id=claimed.id,
            kind=IDLE_REALERT,
            now=now,
            detail={"claimed_by": claimed.claimed_by, "customer_wrote_at": wrote},
        )
        text = f"The customer wrote at {wrote} and is waiting for your reply."
        _thread_message(session, claimed, text, surfaces, now)
    return True


def run_idle(
    database: Database,
    rules: Rules,
    surfaces: frozenset[str],
    now: datetime,
    platform_calls: PlatformCalls | None = None,
) -> list[IdleStep]:
    """The idle-claim job: take every due step of every claimed escalation; returns them.

    `platform_calls` resumes the bot on its platform after an automatic release (None: the
    platform is not told).
    """
    with database.session(read_only=True) as session:
        claimed = idle_storage.claimed_escalations(session=session)
    taken: list[IdleStep] = []
    for item in claimed:
        team = team_settings(item.snapshot, item.team, rules)
        if team is None or team.idle is None or not plan(item, team.idle, now):
            continue
        # One transaction per escalation, on the locked row as it stands now: a click that
        # committed first changes the plan (or ends the claim) before anything is written.
        with database.session() as session:
            fresh = idle_storage.claimed_escalations(
                session=session, escalation_id=item.id, lock=True
            )
            if not fresh or fresh[0].claimed_at != item.claimed_at:
                continue
            current = fresh[0]
            for step in plan(current, team.idle, now):
                if _take(session, current, step, team, team.idle, surfaces, now, platform_calls):
                    taken.append(step)
    if taken:
        log.info("idle claims: %d step(s) taken", len(taken))
    return taken


# --- the button, and what every transition calls off ---------------------------------------------


def still_on_it(
    session: Session,
    record: EscalationRecord,
    actor: Actor,
    rules: Rules,
    surfaces: frozenset[str],
    now: datetime,
    *,
    allow_admin: bool,
) -> tuple[TransitionOutcome, str]:
    """Record a "Still on it" for the claim; returns the outcome and what to tell the clicker."""
    team = team_settings(record.snapshot or {}, record.team, rules)
    zone = _zone(team) if team is not None else ZoneInfo("UTC")
    done = idle_storage.record_still_on_it(
        session=session,
        escalation_id=record.id,
        actor_id=actor.user_id,
        actor_name=actor.display_name,
        surface=actor.surface,
        now=now,
        notice=f"{actor.display_name} is still on it ({_clock(now, zone)})",
        allow_admin=allow_admin,
    )
    if not done.ok:
        return done, ""
    idle_storage.cancel_notifications(
        session=session,
        escalation_id=record.id,
        kinds=(IDLE_REMINDER,),
        now=now,
        reason="the claimer is still on it",
    )
    enqueue_card_update(session, record.id, now, surfaces)
    idle = team.idle if team is not None else None
    if idle is None:
        return done, "Noted."
    next_at = _clock(now + timedelta(minutes=idle.remind_after_minutes), zone)
    return done, f"Noted: you will be reminded again at {next_at} if there is still no reply."


def call_off_after_claim(session: Session, escalation_id: int, now: datetime) -> None:
    """In the claim's transaction: no SLA message or idle reminder queued before it goes out."""
    idle_storage.cancel_notifications(
        session=session,
        escalation_id=escalation_id,
        kinds=(SLA_STEP, IDLE_REMINDER),
        now=now,
        reason=f"claimed at {now.astimezone(UTC).isoformat()}",
    )


def call_off_after_release(session: Session, escalation_id: int, now: datetime) -> None:
    """In a release's or resolve's transaction: the claimer's pending reminders are moot."""
    idle_storage.cancel_notifications(
        session=session,
        escalation_id=escalation_id,
        kinds=(IDLE_REMINDER,),
        now=now,
        reason="the claim ended",
    )
