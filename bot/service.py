"""The hand-off operations behind every button: claim, release, resolve, and the card they show."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from sqlmodel import Session

from bot.cards import HANDED_BACK, Card, CardStatus, format_wait
from bot.handoff import ActionResult, Actor, QueueStats
from bot.idle import call_off_after_claim, call_off_after_release, reminder_open
from bot.idle import still_on_it as record_still_on_it
from bot.pipeline import Clock, enqueue_card_update, utc_now
from engine import ConversationState, reset_escalation
from engine.rules import Rules
from storage import conversations, escalations
from storage.codec import summary_from_json
from storage.db import Database
from storage.escalations import EscalationRecord, Refusal

if TYPE_CHECKING:
    from bot.handback import PlatformCalls

log = logging.getLogger(__name__)

T = TypeVar("T")

UNKNOWN = "This escalation no longer exists."
_CLOSED_CARDS = (CardStatus.RESOLVED, CardStatus.EXPIRED, CardStatus.RECOVERED)
BACK_IN_QUEUE = "This escalation is back in the queue: claim it again to take it."


def reason_texts(record: EscalationRecord) -> tuple[str, ...]:
    """The escalation's reasons as card lines."""
    return tuple(reason.text for reason in record.reasons if reason.text)


def build_card(session: Session, record: EscalationRecord, base_url: str) -> Card:
    """The neutral card for an escalation as it stands in the database."""
    meta = conversations.get_meta(session=session, conversation_id=record.conversation_id)
    history = escalations.handoff_history(session=session, escalation_id=record.id)
    # A platform hand-off call answers once per attempt: the card shows only its latest answer.
    last_call = max((e.id for e in history if e.kind == "platform_call"), default=None)
    notices = tuple(
        str(event.detail.get("notice"))
        for event in history
        if isinstance(event.detail, dict)
        and event.detail.get("notice")
        and (event.kind != "platform_call" or event.id == last_call)
    )
    return Card(
        escalation_id=record.id,
        conversation_id=record.conversation_id,
        status=CardStatus(record.status),
        level=record.level or "escalate",
        score=float(record.score or 0.0),
        mention=record.mention,
        team=record.team or "",
        platform=meta.platform if meta else "generic",
        customer_name=meta.customer.name if meta else None,
        customer_tier=meta.customer.tier if meta else None,
        opened_at=record.opened_at,
        reasons=reason_texts(record),
        summary=summary_from_json(record.summary or {}),
        transcript_url=f"{base_url}/conversations/{record.conversation_id}",
        platform_url=meta.link if meta else None,
        claimed_by=record.claimed_by_name or record.claimed_by,
        claimed_at=record.claimed_at,
        # closed_by is a surface user id; the card shows the name the closer acted under.
        closed_by=next(
            (e.actor_name for e in reversed(history) if e.kind == "resolved" and e.actor_name),
            record.closed_by,
        ),
        closed_at=record.closed_at,
        outcome=record.outcome,
        note=record.note,
        notices=notices,
        reminder_open=record.status == "claimed" and reminder_open(history),
    )


class HandoffService:
    """The real `Handoff`: each operation is one compare-and-set in storage plus card updates."""

    def __init__(
        self,
        database: Database,
        rules: Callable[[], Rules],
        surfaces: Callable[[], frozenset[str]],
        base_url: str,
        clock: Clock = utc_now,
        on_change: Callable[[], None] | None = None,
        platform_calls: PlatformCalls | None = None,
    ) -> None:
        self._database = database
        # Tells the source platform a human has the conversation (or not); None: nobody is told.
        self._platform_calls = platform_calls
        self._rules = rules
        self._surfaces = surfaces
        self._base_url = base_url
        self._clock = clock
        self._on_change = on_change

    async def _run(self, work: Callable[[Session], T]) -> T:
        def in_thread() -> T:
            with self._database.session() as session:
                return work(session)

        return await asyncio.to_thread(in_thread)

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()

    def _is_admin(self, record: EscalationRecord, actor: Actor) -> bool:
        snapshot: dict[str, Any] = record.snapshot or {}
        team_config = snapshot.get("team_config") or {}
        admins = set(team_config.get("admins", ()))
        current = self._rules().teams.get(record.team or "")
        if current is not None:
            admins.update(current.admins)
        return actor.user_id in admins

    async def claim(self, escalation_id: int, actor: Actor) -> ActionResult:
        """Take an open escalation; exactly one of two concurrent claims wins."""
        now = self._clock()

        def work(session: Session) -> ActionResult:
            outcome = escalations.claim(
                session=session,
                escalation_id=escalation_id,
                actor_id=actor.user_id,
                actor_name=actor.display_name,
                surface=actor.surface,
                now=now,
            )
            record = outcome.escalation
            if record is None:
                return ActionResult(False, UNKNOWN, None)
            if outcome.ok:
                # Nothing queued to call people to an unclaimed card may go out after this.
                call_off_after_claim(session, record.id, now)
                if self._platform_calls is not None:
                    self._platform_calls.on_transition(session, record, now, actor.display_name)
                enqueue_card_update(session, record.id, now, self._surfaces())
                waited = format_wait((now - record.opened_at).total_seconds())
                return ActionResult(
                    True,
                    f"You have it: the customer waited {waited}.",
                    build_card(session, record, self._base_url),
                )
            if outcome.refusal is Refusal.CLOSED:
                # The clicker saw a stale card (closed meanwhile): redraw it for everyone.
                enqueue_card_update(session, record.id, now, self._surfaces())
            return ActionResult(
                False,
                _refusal(record, actor, now, outcome.refusal),
                build_card(session, record, self._base_url),
            )

        result = await self._run(work)
        if result.ok or (result.card is not None and result.card.status in _CLOSED_CARDS):
            self._changed()
        return result

    async def release(self, escalation_id: int, actor: Actor) -> ActionResult:
        """Give a claimed escalation back to the queue (claimer or team admin only)."""
        return await self._close_or_release(escalation_id, actor, None, None)

    async def resolve(
        self, escalation_id: int, actor: Actor, outcome: str, note: str | None
    ) -> ActionResult:
        """Close a claimed escalation with an outcome and a note (claimer or team admin only)."""
        return await self._close_or_release(escalation_id, actor, outcome, note)

    async def hand_back(self, escalation_id: int, actor: Actor) -> ActionResult:
        """Give the conversation back to the bot: resolve it as handed back, resume the bot."""
        return await self._close_or_release(escalation_id, actor, HANDED_BACK, None)

    async def _close_or_release(
        self, escalation_id: int, actor: Actor, outcome: str | None, note: str | None
    ) -> ActionResult:
        now = self._clock()

        def work(session: Session) -> ActionResult:
            record = escalations.get_escalation(session=session, escalation_id=escalation_id)
            if record is None:
                return ActionResult(False, UNKNOWN, None)
            admin = self._is_admin(record, actor)
            if outcome is None:
                done = escalations.release(
                    session=session,
                    escalation_id=escalation_id,
                    actor_id=actor.user_id,
                    actor_name=actor.display_name,
                    surface=actor.surface,
                    now=now,
                    allow_admin=admin,
                )
            else:
                done = escalations.resolve(
                    session=session,
                    escalation_id=escalation_id,
                    actor_id=actor.user_id,
                    actor_name=actor.display_name,
                    surface=actor.surface,
                    outcome=outcome,
                    note=note,
                    now=now,
                    allow_admin=admin,
                )
            record = done.escalation
            if record is None:
                return ActionResult(False, UNKNOWN, None)
            card = build_card(session, record, self._base_url)
            if not done.ok:
                return ActionResult(False, _refusal(record, actor, now, done.refusal), card)
            call_off_after_release(session, record.id, now)
            if outcome is not None:
                _reset_engine(session, record.conversation_id)
            if self._platform_calls is not None:
                self._platform_calls.on_transition(session, record, now, actor.display_name)
            enqueue_card_update(session, record.id, now, self._surfaces())
            verb = "Resolved" if outcome is not None else "Released to the queue"
            if outcome == HANDED_BACK:
                verb = "Handed back to the bot"
            return ActionResult(True, f"{verb}.", card)

        result = await self._run(work)
        if result.ok:
            self._changed()
        return result

    async def still_on_it(self, escalation_id: int, actor: Actor) -> ActionResult:
        """Answer an idle reminder: the claimer (or a team admin) is still working on it."""
        now = self._clock()

        def work(session: Session) -> ActionResult:
            record = escalations.get_escalation(session=session, escalation_id=escalation_id)
            if record is None:
                return ActionResult(False, UNKNOWN, None)
            done, message = record_still_on_it(
                session,
                record,
                actor,
                self._rules(),
                self._surfaces(),
                now,
                allow_admin=self._is_admin(record, actor),
            )
            if done.escalation is None:
                return ActionResult(False, UNKNOWN, None)
            card = build_card(session, done.escalation, self._base_url)
            if done.refusal is Refusal.NOT_CLAIMED:
                return ActionResult(False, BACK_IN_QUEUE, card)
            if not done.ok:
                return ActionResult(
                    False, _refusal(done.escalation, actor, now, done.refusal), card
                )
            return ActionResult(True, message, card)

        result = await self._run(work)
        if result.ok:
            self._changed()
        return result

    async def card(self, escalation_id: int) -> Card | None:
        """The card as it stands now, or None for an unknown id."""

        def work(session: Session) -> Card | None:
            record = escalations.get_escalation(session=session, escalation_id=escalation_id)
            return build_card(session, record, self._base_url) if record else None

        return await self._run(work)

    async def claimed_by(self, actor: Actor) -> list[Card]:
        """Escalations the actor holds, newest first."""

        def work(session: Session) -> list[Card]:
            records = escalations.list_escalations(
                session=session, status="claimed", claimed_by=actor.user_id, limit=50
            )
            records.sort(key=lambda r: r.opened_at, reverse=True)
            return [build_card(session, r, self._base_url) for r in records]

        return await self._run(work)

    async def teams_of(self, actor: Actor) -> list[str] | None:
        """The teams listing the actor as agent or admin; None when none does (show all)."""
        mine = [
            name
            for name, team in self._rules().teams.items()
            if actor.user_id in team.agents or actor.user_id in team.admins
        ]
        return sorted(mine) or None

    async def open_queue(self, teams: list[str] | None = None) -> list[Card]:
        """Open (unclaimed) escalations, oldest first; all teams when `teams` is None."""

        def work(session: Session) -> list[Card]:
            records = escalations.list_escalations(session=session, status="open", limit=200)
            if teams is not None:
                records = [r for r in records if r.team in teams]
            records.sort(key=lambda r: r.opened_at)
            return [build_card(session, r, self._base_url) for r in records]

        return await self._run(work)

    async def today(self) -> QueueStats:
        """Today's numbers (UTC day)."""
        now = self._clock()
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)

        def work(session: Session) -> QueueStats:
            stats = escalations.today_stats(
                session=session, day_start=start, day_end=start + timedelta(days=1)
            )
            return QueueStats(
                opened=stats.opened,
                claimed=stats.claimed,
                resolved=stats.resolved,
                open_unclaimed=stats.open_unclaimed,
                median_time_to_claim_seconds=stats.median_time_to_claim_seconds,
            )

        return await self._run(work)


def _refusal(record: EscalationRecord, actor: Actor, now: datetime, refusal: Refusal | None) -> str:
    """What to tell, privately, someone whose action was refused."""
    if refusal is Refusal.NOT_CLAIMER:
        who = record.claimed_by_name or record.claimed_by or "someone else"
        return f"Only {who} (who claimed it) or a team admin can do that."
    if refusal is Refusal.NOT_CLAIMED and record.status == "open":
        return "Nobody has claimed this escalation yet."
    if record.status == "claimed":
        who = record.claimed_by_name or record.claimed_by or "someone"
        if record.claimed_by == actor.user_id:
            return "You already have this one."
        ago = format_wait((now - record.claimed_at).total_seconds()) if record.claimed_at else ""
        return f"{who} claimed this {ago} ago." if ago else f"{who} has claimed this."
    if record.status == "resolved":
        # closed_by is a surface user id; show the name when the claimer closed it themselves.
        closer = record.closed_by
        if closer is not None and closer == record.claimed_by and record.claimed_by_name:
            closer = record.claimed_by_name
        return f"Already resolved by {closer or 'someone'}."
    if record.status == "recovered":
        return "Closed: the bot recovered before anyone claimed it."
    if record.status == "expired":
        return "Closed: the conversation ended before anyone claimed it."
    return f"This escalation is {record.status}."


def _reset_engine(session: Session, conversation_id: str) -> None:
    """After a resolve the conversation may escalate again later: clear the engine's marker."""
    record = conversations.get_conversation(session=session, conversation_id=conversation_id)
    if record is None or not record.state:
        return
    state = reset_escalation(ConversationState.from_dict(record.state))
    conversations.save_state(
        session=session,
        conversation_id=conversation_id,
        state=state.to_dict(),
        score=record.score,
        level=record.level,
        status=record.status,
        last_event_at=record.last_event_at,
    )
