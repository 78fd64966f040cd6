"""Closing the hand-off loop on the platform side: pause the bot on claim, give it back after.

On every claim, release, resolve and hand-back, `PlatformCalls.on_transition` runs inside the
transition's own transaction and decides, from the team settings in the escalation's snapshot
(`pause_bot_on_claim`), whether the source platform must be told; if so it adds a
`platform_call` outbox row. The delivery worker runs the row through `deliver`, which calls the
platform's client and records its answer as a handoff event whose `notice` shows on the card
("bot paused on Sunshine", "bot still active: Sunshine answered 503, retrying"). A failed call is
retried by the worker like any delivery; it never blocks or undoes the claim.

The bot should be paused exactly while the escalation is claimed. A row whose action no longer
matches that (a claim released before its pause went out) is dropped unsent, so retries and
races settle on the latest state instead of replaying history.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from sqlmodel import Session

from bot.notifier import DeliveryError
from bot.notifier import Forbidden as SurfaceForbidden
from bot.notifier import NotFound as SurfaceNotFound
from bot.notifier import RateLimited as SurfaceRateLimited
from bot.notifier import Unavailable as SurfaceUnavailable
from bot.pipeline import Clock, enqueue_card_update, utc_now
from connectors.outbound import (
    PLATFORM_LABELS,
    SETTINGS_HINT,
    Forbidden,
    HandoffTarget,
    NotFound,
    PlatformCallError,
    PlatformClient,
    RateLimited,
)
from storage import conversations, escalations, outbox
from storage.db import Database
from storage.escalations import EscalationRecord, EscalationStatus
from storage.outbox import OutboxItem

log = logging.getLogger(__name__)

T = TypeVar("T")

PLATFORM_CALL = "platform_call"
PAUSE = "pause"
RESUME = "resume"
# Handoff event kinds: a call asked for (no notice), a call's answer, a signal-only platform.
CALL_REQUESTED = "platform_call_requested"
CALL_RESULT = "platform_call"
SIGNAL = "platform_signal"
# Platforms without a hand-off API: their fulfillment code reads GET /api/conversations/{id}/status.
SIGNAL_ONLY_PLATFORMS: Mapping[str, str] = {
    "dialogflow-cx": "Dialogflow CX",
    "dialogflow-es": "Dialogflow ES",
    "lex-v2": "Lex",
}


def pauses_bot(record: EscalationRecord) -> bool:
    """Whether the escalation's team (as it was when it opened) pauses the bot on claim."""
    team_config: Any = (record.snapshot or {}).get("team_config")
    if not isinstance(team_config, dict):
        return True  # the model's default (escalations opened before snapshots were kept)
    return bool(team_config.get("pause_bot_on_claim", True))


def wanted_action(record: EscalationRecord) -> str:
    """What the platform should be told now: paused while a human holds the conversation."""
    return PAUSE if record.status is EscalationStatus.CLAIMED else RESUME


class PlatformCalls:
    """Decides, enqueues and runs the platform side of claim / release / resolve / hand-back."""

    def __init__(
        self,
        database: Database,
        clients: Mapping[str, PlatformClient],
        surfaces: Callable[[], frozenset[str]],
        clock: Clock = utc_now,
    ) -> None:
        self._database = database
        self._clients = dict(clients)
        self._surfaces = surfaces
        self._clock = clock

    # --- inside the transition's transaction ---------------------------------------------------

    def on_transition(
        self, session: Session, record: EscalationRecord, now: datetime, actor_name: str | None
    ) -> None:
        """After a claim, release, resolve or hand-back: enqueue the platform call it asks for."""
        if not pauses_bot(record):
            return
        conversation = conversations.get_conversation(
            session=session, conversation_id=record.conversation_id
        )
        platform = conversation.meta.platform if conversation is not None else ""
        action = wanted_action(record)
        if platform in SIGNAL_ONLY_PLATFORMS:
            label = SIGNAL_ONLY_PLATFORMS[platform]
            flag = "true" if action == PAUSE else "false"
            self._record(
                session,
                record.id,
                SIGNAL,
                now,
                {"action": action, "platform": platform},
                f"{label} fulfillment reads handoff: {flag} from the status endpoint",
            )
            return
        if platform not in PLATFORM_LABELS:
            return  # a custom bot: the status endpoint is its signal
        label = PLATFORM_LABELS[platform]
        if action == RESUME and not self._pause_was_asked(session, record.id):
            return  # nothing was paused (or could not be): nothing to give back
        if platform not in self._clients:
            if action == PAUSE:
                self._record(
                    session,
                    record.id,
                    CALL_RESULT,
                    now,
                    {"action": action, "platform": platform, "ok": False},
                    f"bot still active: {label} calls are not configured "
                    f"(set {SETTINGS_HINT[platform]})",
                )
            return
        self._record(
            session, record.id, CALL_REQUESTED, now, {"action": action, "platform": platform}
        )
        outbox.enqueue(
            session=session,
            kind=PLATFORM_CALL,
            surface=platform,
            escalation_id=record.id,
            payload={
                "action": action,
                "platform": platform,
                "conversation_id": record.conversation_id,
                "agent": actor_name,
            },
            due_at=now,
        )

    def _pause_was_asked(self, session: Session, escalation_id: int) -> bool:
        history = escalations.handoff_history(session=session, escalation_id=escalation_id)
        return any(
            event.kind == CALL_REQUESTED and event.detail.get("action") == PAUSE
            for event in history
        )

    def _record(
        self,
        session: Session,
        escalation_id: int,
        kind: str,
        now: datetime,
        detail: dict[str, Any],
        notice: str | None = None,
    ) -> None:
        if notice is not None:
            detail = {**detail, "notice": notice}
        escalations.record_handoff_event(
            session=session, escalation_id=escalation_id, kind=kind, now=now, detail=detail
        )

    # --- in the delivery worker ----------------------------------------------------------------

    async def deliver(self, item: OutboxItem, *, last_attempt: bool = False) -> None:
        """Make the row's call and record the platform's answer on the card.

        Raises the surfaces' delivery errors (RateLimited, Unavailable, NotFound, Forbidden) so the
        worker retries or gives up by its one policy; `last_attempt` only changes the wording.
        """
        action = str(item.payload.get("action", ""))
        platform = str(item.payload.get("platform", ""))
        label = PLATFORM_LABELS.get(platform, platform)
        client = self._clients.get(platform)
        if client is None:
            raise SurfaceForbidden(f"no {label} client is configured")
        if item.escalation_id is None:
            raise SurfaceNotFound("the platform call names no escalation")
        target = await self._db(lambda s: self._target(s, item))
        if target is None:
            log.info("platform call %s (%s %s) superseded; not sent", item.id, action, platform)
            return
        try:
            answer = await (client.pause(target) if action == PAUSE else client.resume(target))
        except PlatformCallError as error:
            final = last_attempt or isinstance(error, (NotFound, Forbidden))
            state = "bot still active" if action == PAUSE else "bot still paused"
            tail = "not retrying" if final else "retrying"
            await self._answer(item, action, platform, False, f"{state}: {error}, {tail}")
            raise _surface_error(error) from None
        done = "bot paused on" if action == PAUSE else "bot resumed on"
        await self._answer(item, action, platform, True, f"{done} {label}", answer)

    def _target(self, session: Session, item: OutboxItem) -> HandoffTarget | None:
        """The conversation to call about, or None when the call is no longer wanted."""
        assert item.escalation_id is not None
        record = escalations.get_escalation(session=session, escalation_id=item.escalation_id)
        if record is None or wanted_action(record) != item.payload.get("action"):
            return None
        conversation = conversations.get_conversation(
            session=session, conversation_id=record.conversation_id
        )
        if conversation is None:
            return None
        if item.payload.get("action") == RESUME:
            # A newer escalation of the same conversation may hold the bot paused now.
            current = escalations.active_escalation(
                session=session, conversation_id=record.conversation_id
            )
            if (
                current is not None
                and current.id != record.id
                and current.status is EscalationStatus.CLAIMED
                and pauses_bot(current)
            ):
                return None
        agent = item.payload.get("agent")
        return HandoffTarget(
            conversation_id=record.conversation_id,
            customer_id=conversation.meta.customer.id,
            metadata=dict(conversation.meta.metadata),
            agent_name=str(agent) if agent else None,
        )

    async def _answer(
        self,
        item: OutboxItem,
        action: str,
        platform: str,
        ok: bool,
        notice: str,
        answer: str | None = None,
    ) -> None:
        assert item.escalation_id is not None
        escalation_id = item.escalation_id
        now = self._clock()
        detail: dict[str, Any] = {
            "action": action,
            "platform": platform,
            "ok": ok,
            "attempt": item.attempts + 1,
        }
        if answer is not None:
            detail["answer"] = answer

        def work(session: Session) -> None:
            self._record(session, escalation_id, CALL_RESULT, now, detail, notice)
            enqueue_card_update(session, escalation_id, now, self._surfaces())

        await self._db(work)

    async def _db(self, work: Callable[[Session], T]) -> T:
        def in_thread() -> T:
            with self._database.session() as session:
                return work(session)

        return await asyncio.to_thread(in_thread)


def _surface_error(error: PlatformCallError) -> DeliveryError:
    """The delivery worker's error for a platform's answer (same retry semantics)."""
    if isinstance(error, RateLimited):
        return SurfaceRateLimited(error.retry_after, str(error))
    if isinstance(error, NotFound):
        return SurfaceNotFound(str(error))
    if isinstance(error, Forbidden):
        return SurfaceForbidden(str(error))
    return SurfaceUnavailable(str(error))
