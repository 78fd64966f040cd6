"""The delivery worker: takes outbox rows and shows them on chat surfaces, exactly once.

Retry, backoff with jitter, `Retry-After`, per-channel throttling and coalescing live here and
nowhere else; the surfaces only translate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlmodel import Session

from bot.cards import Card
from bot.digest import POST_DIGEST, DigestDelivery
from bot.handback import PLATFORM_CALL, PlatformCalls
from bot.idle import IDLE_REMINDER
from bot.metrics import Metrics
from bot.notifier import (
    DeliveryError,
    FindsPostedCards,
    Forbidden,
    MessageRef,
    NotFound,
    Notifier,
    RateLimited,
)
from bot.pipeline import Clock, utc_now
from bot.service import build_card
from storage import escalations, outbox
from storage.db import Database
from storage.outbox import OutboxItem

log = logging.getLogger(__name__)

T = TypeVar("T")

# The handoff event recording that a card reached a channel (as the rules name it).
CARD_POSTED = "card_posted"
# Committed before each post: a later attempt that finds one without CARD_POSTED knows an
# earlier attempt may have reached the surface, and asks it before posting again.
CARD_POSTING = "card_posting"
# A search for such a card starts this long before the earlier attempt: the surface's clock
# and ours may differ a little.
POSTED_SEARCH_MARGIN = timedelta(minutes=5)


@dataclass(frozen=True)
class DeliveryPolicy:
    """How hard and how fast the worker tries."""

    lease_seconds: float = 60.0
    batch_size: int = 50
    max_attempts: int = 30
    backoff_base: float = 1.0
    backoff_cap: float = 300.0
    # Slack allows about one message per second per channel with short bursts; Teams about
    # seven per second per conversation. One token bucket per (surface, channel).
    channel_rate: Mapping[str, float] = field(
        default_factory=lambda: {"slack": 1.0, "teams": 4.0, "console": 50.0}
    )
    channel_burst: int = 3
    idle_poll_seconds: float = 1.0
    # A row that failed this often posts even when the surface cannot say whether an earlier
    # attempt's card is there: a possible duplicate rather than a card held back for hours.
    search_attempts: int = 5

    def rate_for(self, surface: str) -> float:
        """Messages per second allowed on one channel of the surface."""
        return self.channel_rate.get(surface, 50.0)

    def backoff(self, attempts: int) -> float:
        """Exponential backoff with full jitter, capped."""
        ceiling = min(self.backoff_cap, self.backoff_base * (2 ** max(0, attempts - 1)))
        return random.uniform(ceiling / 2, ceiling)


class _Bucket:
    def __init__(self, rate: float, burst: int, now: datetime) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.updated = now
        self.blocked_until: datetime | None = None

    def take(self, now: datetime) -> datetime | None:
        """Take a token; or return when the next one (or the end of a block) is due."""
        if self.blocked_until is not None and now < self.blocked_until:
            return self.blocked_until
        elapsed = max(0.0, (now - self.updated).total_seconds())
        self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return None
        return now + timedelta(seconds=(1.0 - self.tokens) / self.rate)


class DeliveryWorker:
    """Delivers due outbox rows to the surfaces' notifiers."""

    def __init__(
        self,
        database: Database,
        notifiers: Mapping[str, Notifier],
        base_url: str,
        *,
        clock: Clock = utc_now,
        policy: DeliveryPolicy | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._database = database
        self._notifiers = notifiers
        self._base_url = base_url
        self._clock = clock
        self._policy = policy or DeliveryPolicy()
        self._metrics = metrics or Metrics()
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        # Surfaces whose last delivery failed transiently: their first success ends an outage.
        self._failing: set[str] = set()
        self._recovered: set[str] = set()
        self._aliases: dict[tuple[str, str], str] = {}
        self._wake = asyncio.Event()
        self._stopping = False
        # Posts `post_digest` rows; set by the service when digests are on.
        self.digests: DigestDelivery | None = None
        # Runs `platform_call` rows (pause / resume the bot on its platform); set by the service.
        self.platform_calls: PlatformCalls | None = None

    def wake(self) -> None:
        """Look at the outbox now (called after a commit that may have added rows)."""
        self._wake.set()

    def stop(self) -> None:
        """Ask `run` to return after the current round."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Deliver until stopped; never raises for a delivery failure."""
        while not self._stopping:
            try:
                delivered = await self.run_once()
            except Exception:
                log.exception("delivery round failed; trying again shortly")
                delivered = 0
            if delivered == 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._policy.idle_poll_seconds)

    async def run_once(self) -> int:
        """Deliver what is due now; return how many rows were finished or rescheduled."""
        now = self._clock()
        items = await self._db(
            lambda s: outbox.lease_due(
                session=s,
                now=now,
                limit=self._policy.batch_size,
                lease_seconds=self._policy.lease_seconds,
            )
        )
        # Thread messages for the same card and surface are merged into one post.
        replies: dict[tuple[int, str], list[OutboxItem]] = {}
        for item in items:
            if item.kind == "thread_reply":
                replies.setdefault((item.escalation_id or 0, _surface(item)), []).append(item)
            else:
                await self._deliver(item)
        for group in replies.values():
            await self._deliver_replies(group)
        await self._bring_forward_recovered()
        return len(items)

    async def _db(self, work: Callable[[Session], T], *, read_only: bool = False) -> T:
        """`work` in a session of its own, on a thread. A `read_only` one (it must not write)
        leaves SQLite's write lock to the ingest: a group that finds the lock taken is
        handed to a writer thread, which costs the loop a switch of threads."""

        def in_thread() -> T:
            with self._database.session(read_only=read_only) as session:
                return work(session)

        return await asyncio.to_thread(in_thread)

    def _bucket(self, surface: str, channel: str, now: datetime) -> _Bucket:
        key = (surface, self._aliases.get((surface, channel), channel))
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(self._policy.rate_for(surface), self._policy.channel_burst, now)
            self._buckets[key] = bucket
        return bucket

    async def _card(self, escalation_id: int) -> Card | None:
        def work(session: Session) -> Card | None:
            record = escalations.get_escalation(session=session, escalation_id=escalation_id)
            return build_card(session, record, self._base_url) if record else None

        return await self._db(work, read_only=True)

    async def _refs(self, escalation_id: int, surface: str) -> list[MessageRef]:
        rows = await self._db(
            lambda s: escalations.card_messages(session=s, escalation_id=escalation_id),
            read_only=True,
        )
        return [
            MessageRef(row.surface, row.channel, row.message_id)
            for row in rows
            if row.surface == surface
        ]

    async def _deliver(self, item: OutboxItem) -> None:
        if item.kind == POST_DIGEST:
            await self._deliver_digest(item)
            return
        if item.kind == PLATFORM_CALL:
            await self._deliver_platform_call(item)
            return
        notifier = self._notifiers.get(_surface(item))
        if notifier is None:
            await self._give_up(item, f"surface {_surface(item)!r} is not configured")
            return
        if item.escalation_id is None:
            await self._give_up(item, "outbox row names no escalation")
            return
        card = await self._card(item.escalation_id)
        if card is None:
            await self._give_up(item, f"escalation {item.escalation_id} does not exist")
            return
        if item.kind == outbox.POST_CARD:
            channel = str(item.payload.get("channel", ""))
            if await self._already_posted(card.escalation_id, _surface(item), channel):
                await self._complete(item)  # posted before a crash; never post twice
                return
            if not await self._throttle(item, channel):
                return
            await self._attempt(item, self._post(notifier, item, card, channel), [channel])
        elif item.kind == "update_card":
            refs = await self._refs(card.escalation_id, _surface(item))
            # No message yet: the pending post will render the card as it stands then.
            for ref in refs:
                if not await self._throttle(item, ref.channel):
                    return
            await self._attempt(
                item, _update_all(notifier, refs, card), [ref.channel for ref in refs]
            )
        elif item.kind in ("sla_step", IDLE_REMINDER):
            # An SLA reminder or mention, or a word to an idle claimer, in the card's thread;
            # without a posted card the notice on the card (drawn when it is posted) says it.
            refs = await self._refs(card.escalation_id, _surface(item))
            for ref in refs:
                if not await self._throttle(item, ref.channel):
                    return
            text = str(item.payload.get("text", ""))
            called = item.payload.get("mention")
            mention = str(called) if called else None
            await self._attempt(
                item, _reply_all(notifier, refs, text, mention), [ref.channel for ref in refs]
            )
        else:
            await self._give_up(item, f"unknown outbox kind {item.kind!r}")

    async def _deliver_digest(self, item: OutboxItem) -> None:
        if self.digests is None:
            await self._give_up(item, "digests are not configured on this service")
            return
        channel = str(item.payload.get("channel", ""))
        if not await self._throttle(item, channel):
            return
        await self._attempt(item, self.digests.deliver(item), [channel])

    async def _deliver_platform_call(self, item: OutboxItem) -> None:
        if self.platform_calls is None:
            await self._give_up(item, "platform calls are not configured on this service")
            return
        last_attempt = item.attempts + 1 >= self._policy.max_attempts
        await self._attempt(item, self.platform_calls.deliver(item, last_attempt=last_attempt), [])

    async def _post(self, notifier: Notifier, item: OutboxItem, card: Card, channel: str) -> None:
        ref = await self._find_earlier_post(notifier, item, card, channel)
        found = ref is not None
        if ref is None:
            if isinstance(notifier, FindsPostedCards):  # an intent only a search can use
                await self._record_posting(item, card, channel)
            ref = await notifier.post(card, channel)
        now = self._clock()

        # Surfaces answer with their own channel id ("#support" -> "C0123"): one bucket for both.
        self._aliases[(ref.surface, channel)] = ref.channel

        def work(session: Session) -> None:
            escalations.record_card_message(
                session=session,
                escalation_id=card.escalation_id,
                surface=ref.surface,
                channel=ref.channel,
                message_id=ref.message_id,
                now=now,
            )
            # The channel as the rules name it, so a retried post can tell it was done.
            escalations.record_handoff_event(
                session=session,
                escalation_id=card.escalation_id,
                kind=CARD_POSTED,
                now=now,
                surface=ref.surface,
                detail={"channel": channel, "channel_id": ref.channel}
                | ({"found_after_earlier_attempt": True} if found else {}),
            )
            outbox.complete(session=session, item_id=item.id, now=now)

        await self._db(work)
        self._succeeded(item, now)

    async def _find_earlier_post(
        self, notifier: Notifier, item: OutboxItem, card: Card, channel: str
    ) -> MessageRef | None:
        """The card as an earlier, unrecorded attempt posted it, if the surface can tell."""
        if not isinstance(notifier, FindsPostedCards):
            return None
        history = await self._db(
            lambda s: escalations.handoff_history(session=s, escalation_id=card.escalation_id),
            read_only=True,
        )
        since = min(
            (
                event.at
                for event in history
                if event.kind == CARD_POSTING
                and event.surface == _surface(item)
                and event.detail.get("channel") == channel
            ),
            default=None,
        )
        if since is None:
            return None
        try:
            return await notifier.find_posted(card, channel, since - POSTED_SEARCH_MARGIN)
        except DeliveryError as error:
            can_never_tell = isinstance(error, (Forbidden, NotFound))
            if not can_never_tell and item.attempts + 1 < self._policy.search_attempts:
                raise  # not now (RateLimited, Unavailable): retried, never posted blind
            log.warning(
                "outbox row %s: cannot look for an earlier post of escalation %s in %s (%s); "
                "posting, which may show the card twice",
                item.id,
                card.escalation_id,
                channel,
                error,
            )
            return None

    async def _record_posting(self, item: OutboxItem, card: Card, channel: str) -> None:
        now = self._clock()
        await self._db(
            lambda s: escalations.record_handoff_event(
                session=s,
                escalation_id=card.escalation_id,
                kind=CARD_POSTING,
                now=now,
                surface=_surface(item),
                detail={"channel": channel, "outbox_id": item.id},
            )
        )

    async def _deliver_replies(self, group: list[OutboxItem]) -> None:
        first = group[0]
        notifier = self._notifiers.get(_surface(first))
        if notifier is None or first.escalation_id is None:
            for item in group:
                await self._give_up(item, f"surface {_surface(first)!r} is not configured")
            return
        refs = await self._refs(first.escalation_id, _surface(first))
        if not refs and not await self._post_pending(first.escalation_id, _surface(first)):
            # This surface does not show the card (the team's card went elsewhere): no thread.
            for item in group:
                await self._complete(item)
            return
        if not refs:
            # The card is not posted yet (its post is being retried): keep the messages.
            for item in group:
                if item.attempts + 1 >= self._policy.max_attempts:
                    await self._give_up(item, "the card was never posted")
                else:
                    await self._retry(
                        item, self._policy.backoff(item.attempts), "card not posted yet"
                    )
            return
        lines = []
        messages = [message for item in group for message in _thread_messages(item)]
        for message in sorted(messages, key=lambda m: str(m.get("at", ""))):
            at = str(message.get("at", ""))[11:16]
            lines.append(f"Customer ({at}): {message.get('text', '')}")
        text = "\n".join(lines)
        for ref in refs:
            if not await self._throttle_group(group, ref.channel):
                return
        try:
            for ref in refs:
                await notifier.reply(ref, text)
        except DeliveryError as error:
            for item in group:
                await self._failed(item, error, [ref.channel for ref in refs])
            return
        now = self._clock()
        for item in group:
            await self._complete(item)
            self._succeeded(item, now, counted=False)
        self._metrics.deliveries.inc(_surface(first), first.kind, "delivered")

    async def _throttle(self, item: OutboxItem, channel: str) -> bool:
        now = self._clock()
        wait_until = self._bucket(_surface(item), channel, now).take(now)
        if wait_until is None:
            return True
        await self._reschedule(item, wait_until, "throttled")
        return False

    async def _throttle_group(self, group: list[OutboxItem], channel: str) -> bool:
        now = self._clock()
        wait_until = self._bucket(_surface(group[0]), channel, now).take(now)
        if wait_until is None:
            return True
        for item in group:
            await self._reschedule(item, wait_until, "throttled")
        return False

    async def _attempt(
        self, item: OutboxItem, action: Awaitable[None], channels: Sequence[str]
    ) -> None:
        try:
            await action
        except DeliveryError as error:
            await self._failed(item, error, channels)
            return
        except Exception as error:  # a bug or an unmapped SDK error: retry, but say so
            log.exception("delivery of outbox row %s failed unexpectedly", item.id)
            await self._failed(item, error, channels)
            return
        if item.kind != outbox.POST_CARD:
            await self._complete(item)
            self._succeeded(item, self._clock())

    async def _failed(
        self, item: OutboxItem, error: BaseException, channels: Sequence[str]
    ) -> None:
        surface = _surface(item)
        if isinstance(error, RateLimited):
            until = self._clock() + timedelta(seconds=error.retry_after)
            # Everything else for the channels that said "slow down" waits as well.
            for channel in channels:
                self._bucket(surface, channel, self._clock()).blocked_until = until
            self._metrics.deliveries.inc(surface, item.kind, "rate_limited")
            await self._reschedule(item, until, f"{outbox.RATE_LIMITED}{error}")
        elif isinstance(error, (NotFound, Forbidden)):
            self._metrics.deliveries.inc(surface, item.kind, "failed")
            await self._give_up(item, f"{type(error).__name__}: {error}")
        elif item.attempts + 1 >= self._policy.max_attempts:
            self._metrics.deliveries.inc(surface, item.kind, "failed")
            await self._give_up(item, f"gave up after {item.attempts + 1} attempts: {error}")
        else:
            self._metrics.deliveries.inc(surface, item.kind, "retry")
            self._failing.add(surface)
            await self._retry(item, self._policy.backoff(item.attempts + 1), str(error))

    async def _retry(self, item: OutboxItem, delay: float, error: str) -> None:
        await self._reschedule(item, self._clock() + timedelta(seconds=delay), error)

    async def _reschedule(self, item: OutboxItem, due_at: datetime, error: str) -> None:
        log.info(
            "outbox row %s (%s to %s) retried at %s: %s",
            item.id,
            item.kind,
            _surface(item),
            due_at.isoformat(),
            error,
        )
        await self._db(
            lambda s: outbox.retry_later(session=s, item_id=item.id, due_at=due_at, error=error)
        )

    async def _already_posted(self, escalation_id: int, surface: str, channel: str) -> bool:
        history = await self._db(
            lambda s: escalations.handoff_history(session=s, escalation_id=escalation_id),
            read_only=True,
        )
        return any(
            event.kind == CARD_POSTED
            and event.surface == surface
            and event.detail.get("channel") == channel
            for event in history
        )

    async def _post_pending(self, escalation_id: int, surface: str) -> bool:
        rows = await self._db(
            lambda s: outbox.pending(session=s, escalation_id=escalation_id), read_only=True
        )
        return any(row.kind == outbox.POST_CARD and row.surface == surface for row in rows)

    async def _complete(self, item: OutboxItem) -> None:
        now = self._clock()
        await self._db(lambda s: outbox.complete(session=s, item_id=item.id, now=now))

    async def _give_up(self, item: OutboxItem, error: str) -> None:
        log.error(
            "outbox row %s (%s to %s) abandoned: %s", item.id, item.kind, _surface(item), error
        )
        now = self._clock()
        await self._db(lambda s: outbox.give_up(session=s, item_id=item.id, error=error, now=now))

    def _succeeded(self, item: OutboxItem, now: datetime, *, counted: bool = True) -> None:
        if counted:
            self._metrics.deliveries.inc(_surface(item), item.kind, "delivered")
        self._metrics.delivery_latency.observe(max(0.0, (now - item.created_at).total_seconds()))
        surface = _surface(item)
        if surface in self._failing:
            self._failing.discard(surface)
            self._recovered.add(surface)

    async def _bring_forward_recovered(self) -> None:
        """After an outage, what waited out a backoff for a surface that answers again is due."""
        now = self._clock()
        while self._recovered:
            surface = self._recovered.pop()

            def work(session: Session, surface: str = surface) -> int:
                return outbox.bring_forward(session=session, surface=surface, now=now)

            moved = await self._db(work)
            if moved:
                log.info("%s answers again: %d waiting deliveries are due now", surface, moved)


async def _update_all(notifier: Notifier, refs: list[MessageRef], card: Card) -> None:
    for ref in refs:
        await notifier.update(ref, card)


async def _reply_all(
    notifier: Notifier, refs: list[MessageRef], text: str, mention: str | None = None
) -> None:
    for ref in refs:
        await notifier.reply(ref, text, mention=mention)


def _surface(item: OutboxItem) -> str:
    """The surface an outbox row is for ("" when it names none: such a row is given up)."""
    return item.surface or ""


def _thread_messages(item: OutboxItem) -> list[dict[str, Any]]:
    """The customer messages a thread_reply row carries (one per row in older rows)."""
    messages = item.payload.get("messages")
    if isinstance(messages, list):
        return [message for message in messages if isinstance(message, dict)]
    return [item.payload]
