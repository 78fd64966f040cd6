"""Ingest: canonical events -> engine -> one durable transaction, with group commit.

Every webhook post is answered only after its events, the conversation's new state, any
escalation and its outbox rows are committed. Posts that arrive while a commit is running are
gathered into the next transaction, so that many concurrent posts share one commit, and their
statements are shared too: all their conversations locked in one statement, all their events
inserted and all their states saved in one more (see `Ingestor.apply_group`). A group in which a
post fails is done again one savepoint per post, so one bad post spoils none of the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from engine import ConversationState, assess, reset_escalation, summarize
from engine.assessment import Assessment, Decision
from engine.events import ConversationEvent, EventType, InboundBatch, Role
from engine.redact import redact
from engine.rules import Rules
from storage import _pgpipeline, conversations, escalations, outbox
from storage.codec import summary_to_json
from storage.db import Database, WriteLockBusy
from storage.escalations import ActiveEscalation
from storage.loopwait import run_on_loop

log = logging.getLogger(__name__)

# Enum members read at every event, as globals (the enum class's look-up costs more: engine.assess).
_MESSAGE, _SESSION_END, _CUSTOMER = EventType.MESSAGE, EventType.SESSION_END, Role.CUSTOMER
_NO_DECISION, _OPEN = Decision.NONE, Decision.OPEN

Clock = Callable[[], datetime]
_timestamp = attrgetter("timestamp")


def utc_now() -> datetime:
    """The wall clock, in UTC (injectable everywhere a time is needed)."""
    return datetime.now(UTC)


@dataclass
class IngestResult:
    """What one webhook post changed."""

    events_received: int = 0
    events_stored: int = 0
    duplicates: int = 0
    opened: list[int] = field(default_factory=list)  # escalation ids
    opened_levels: list[str] = field(default_factory=list)  # their levels, for the metrics
    decisions: list[tuple[str, str, Decision]] = field(default_factory=list)
    queued: bool = False  # whether it queued deliveries (cards, card redraws, thread messages)


@dataclass(slots=True)
class _Work:
    """One batch of a post, with the rules and the time its post is ingested under."""

    batch: InboundBatch
    result: IngestResult
    rules: Rules
    now: datetime


@dataclass
class _Pending:
    batches: Sequence[InboundBatch]
    future: asyncio.Future[IngestResult]
    events: int  # how many events its batches hold


def team_surfaces(rules: Rules, team: str, enabled: frozenset[str]) -> list[tuple[str, str]]:
    """The (surface, channel) pairs a team's cards go to; the console when none is usable."""
    targets: list[tuple[str, str]] = []
    config = rules.teams.get(team)
    if config is not None:
        if config.slack is not None and "slack" in enabled:
            targets.append(("slack", config.slack.channel))
        if config.teams is not None and "teams" in enabled:
            targets.append(("teams", config.teams.channel))
    if not targets:
        targets.append(("console", team))
    return targets


# An escalation to open with the round's writes, and the result of the post that opens it.
_Opening = tuple[escalations.NewEscalation, IngestResult]

# A state saved, for `SavedStates`: (conversation id, its JSON text as stored, the state).
Saved = tuple[str, str, ConversationState]


_V = TypeVar("_V")


def _keep_last(entries: OrderedDict[str, _V], new: Iterable[tuple[str, _V]], limit: int) -> None:
    """Add `new` (key, value) pairs to `entries` as the latest, in order; then drop the oldest
    beyond `limit`."""
    for key, value in new:
        entries[key] = value
        entries.move_to_end(key)
    while len(entries) > limit:
        entries.popitem(last=False)


class SavedStates:
    """The engine states this process saved last, each with the JSON text it was saved as.

    A post to a conversation whose stored state is still that very text goes on from the state
    object, with what the engine derived from it, instead of decoding the text and rebuilding
    the state (a quarter of the writer's instructions for a post to a conversation already
    seen) and every reason with it. The text is the check: a state changed by anyone else (a
    claim, a reset, another process) is stored as another text, and decoded. An entry is taken
    out while a post works on its state and put back only once the post's transaction has
    committed, so that an entry is always a state exactly as stored: a post rolled back leaves
    none, and the next decodes the text.

    States are kept from a conversation's second post on, and only the last `limit` saved: a
    state takes 20-40 KiB, and every full collection of the heap walks the objects kept.
    """

    LIMIT = 1024

    def __init__(self, limit: int = LIMIT) -> None:
        self._limit = limit
        # Oldest saved first (a dict would find its first entry past every one deleted).
        self._entries: OrderedDict[str, tuple[str, ConversationState]] = OrderedDict()
        self._lock = threading.Lock()  # (a writer thread and the loop's thread both use it)
        self.reused = 0  # states taken as saved (the others were decoded)

    def __len__(self) -> int:
        return len(self._entries)

    def take(self, conversation_id: str, text: str) -> ConversationState | None:
        """The conversation's state saved as `text`, now the caller's; None when there is none
        (or it was saved as another text)."""
        with self._lock:
            entry = self._entries.pop(conversation_id, None)
            if entry is None or entry[0] != text:
                return None
            self.reused += 1
        return entry[1]

    def put(self, saved: Iterable[Saved]) -> None:
        """Keep states whose transaction has committed, in the order they were saved."""
        with self._lock:
            _keep_last(
                self._entries, ((cid, (text, state)) for cid, text, state in saved), self._limit
            )


class RecentConversations:
    """The ids of the conversations this process wrote last (on PostgreSQL), the last `limit`.

    A post to one of them most likely continues a stored conversation: its stored event ids and
    its active escalation are read in the round trip that locks it, where a conversation not
    known here is looked up after the lock, in a round trip of its own, only once the lock has
    shown it stored (most are new). A wrong guess costs nothing but the reads: a conversation
    named here but never committed (its transaction rolled back) reads as new.
    """

    LIMIT = 16_384

    def __init__(self, limit: int = LIMIT) -> None:
        self._limit = limit
        self._ids: OrderedDict[str, None] = OrderedDict()  # oldest written first
        self._lock = threading.Lock()  # (writer threads and the loop's thread share it)

    def __contains__(self, conversation_id: object) -> bool:
        return conversation_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, conversation_ids: Iterable[str]) -> None:
        """Remember conversations written now."""
        with self._lock:
            _keep_last(self._ids, ((cid, None) for cid in conversation_ids), self._limit)


class Ingestor:
    """Applies batches to the database inside a session (the synchronous core of ingest)."""

    def __init__(
        self, rules: Callable[[], Rules], surfaces: Callable[[], frozenset[str]], clock: Clock
    ) -> None:
        self._rules = rules
        self._surfaces = surfaces
        self._clock = clock
        self.saved_states = SavedStates()
        self.recent = RecentConversations()

    def apply(self, session: Session, batches: Sequence[InboundBatch]) -> IngestResult:
        """Store one post's batches; the caller owns the transaction."""
        return self.apply_group(session, [batches])[0]

    def apply_group(
        self,
        session: Session,
        posts: Sequence[Sequence[InboundBatch]],
        *,
        commit: bool = False,
        saved: list[Saved] | None = None,
    ) -> list[IngestResult]:
        """Store several posts' batches, each post as `apply` would, in a few statements for all.

        The caller owns the transaction: a post that fails fails them all (see `IngestPipeline`).
        The batches go in phases: every conversation locked, then the engine (and whatever its
        decisions write), then all the events inserted and all the states saved. A conversation
        named a second time starts a new round of phases, so that its later batch sees the
        earlier one stored, exactly as one post after the other would. `commit=True` commits the
        transaction with the last statements (on PostgreSQL in the same round trip): the
        caller's own commit then has nothing left to do. Given `saved`, the states saved are
        added to it: hand it to `saved_states.put` once the transaction has
        committed, and the next posts to those conversations go on from those objects.
        """
        results: list[IngestResult] = []
        work: list[_Work] = []
        for batches in posts:
            result = IngestResult()
            results.append(result)
            rules = self._rules()
            now = self._clock()
            work.extend(
                _Work(batch, result, rules, now)
                for batch in sorted(batches, key=lambda b: b.conversation_id)
            )
        round_: list[_Work] = []
        named: set[str] = set()
        for item in work:
            cid = item.batch.conversation_id
            if cid in named:
                self._apply_round(session, round_, commit=False, saved=saved)
                round_, named = [], set()
            named.add(cid)
            round_.append(item)
        self._apply_round(session, round_, commit=commit, saved=saved)
        return results

    def _apply_round(
        self, session: Session, work: Sequence[_Work], *, commit: bool, saved: list[Saved] | None
    ) -> None:
        # One statement (one round trip) locks every conversation of the round; the locks are
        # taken in the order of the conversation ids, which keeps two replicas from
        # deadlocking on the same pair.
        requests = [
            conversations.LockRequest(item.batch.conversation_id, item.batch.meta, item.now)
            for item in work
        ]
        event_ids = {
            item.batch.conversation_id: [event.event_id for event in item.batch.events]
            for item in work
        }
        # On PostgreSQL (where escalations open with the writes: `escalations.opens_later`), the
        # stored event ids and the active escalations of the conversations this process wrote
        # lately are read in the lock's round trip, after the lock.
        postgres = escalations.opens_later(session)
        recent = self.recent
        hinted = {cid: ids for cid, ids in event_ids.items() if cid in recent} if postgres else {}
        reads: list[_pgpipeline.Result] = []
        locked = conversations.lock_for_store(
            session=session,
            requests=requests,
            also=escalations.known_and_active_statements(hinted) if hinted else (),
            answers=reads,
        )
        if postgres:
            recent.add(event_ids)
        # A conversation the engine has never seen (no state yet) has no stored events and no
        # escalation: its first post skips both look-ups.
        texts = locked.state_texts
        seen = {
            cid: ids
            for cid, ids in event_ids.items()
            if cid not in hinted
            and (locked.records[cid].state is not None or (texts is not None and cid in texts))
        }
        # Their stored event ids, and their open or claimed escalations (kept current as
        # decisions open and close them): one round trip on PostgreSQL.
        known, active = escalations.known_and_active(session=session, event_ids=seen)
        if hinted:
            known_before, active_before = escalations.known_and_active_from(reads, hinted)
            known.update(known_before)
            active.update(active_before)
        records, unstored = locked.records, locked.unstored
        events: list[conversations.EventRows] = []
        states: list[conversations.StateUpdate] = []
        deliveries: list[outbox.NewDelivery] = []
        # On PostgreSQL, the escalations the round's last events open: sent with its writes.
        opening: list[_Opening] | None = [] if postgres else None
        for item in work:
            cid = item.batch.conversation_id
            stored = self._assess_batch(
                session,
                item,
                records[cid],
                texts,
                saved,
                known.get(cid, set()),
                active.get(cid),
                unstored.get(cid),
                events,
                states,
                deliveries,
                opening,
            )
            item.result.events_stored += stored
        if unstored and len(states) < len(work):
            # A new conversation whose batch held no event has no state to create it with.
            stated = {change.conversation_id for change in states}
            conversations.create_unstored(
                session=session,
                requests=[request for cid, request in unstored.items() if cid not in stated],
            )
        # The round's customer messages for the cards' threads, in one statement: on PostgreSQL
        # sent with the round's writes, in their round trip.
        also = outbox.enqueue_many(session=session, deliveries=deliveries, later=True)
        if opening:  # (first: its answer is `answers[0]`)
            new = [escalation for escalation, _ in opening]
            also.insert(0, escalations.open_statement(session=session, escalations=new))
        answers: list[_pgpipeline.Result] = []
        conversations.store(
            session=session, events=events, states=states, commit=commit, also=also, answers=answers
        )
        if opening:
            opened = escalations.opened_ids(answers[0])
            for escalation, result in opening:
                result.opened.append(opened[escalation.conversation_id])
                result.opened_levels.append(escalation.level)

    def _assess_batch(
        self,
        session: Session,
        item: _Work,
        record: conversations.ConversationRecord,
        texts: dict[str, str] | None,
        saved: list[Saved] | None,
        known: set[str],
        active: ActiveEscalation | None,
        create: conversations.LockRequest | None,
        events: list[conversations.EventRows],
        states: list[conversations.StateUpdate],
        deliveries: list[outbox.NewDelivery],
        opening: list[_Opening] | None,
    ) -> int:
        """Run the engine over a batch's new events and apply its decisions; the rows to
        insert and the state to save are added to `events` and `states` (with `create`, the
        request of a conversation not stored yet, whose row the state creates). Returns how
        many. `texts` are the stored states not decoded (`Locked.state_texts`);
        the state saved is added to `saved`, when given (`apply_group`). Given `opening`, an
        escalation that the batch's last event opens is added to it, for the round to open
        with its writes; the others are opened at once (a later event may need its id)."""
        batch, result, rules, now = item.batch, item.result, item.rules, item.now
        cid = batch.conversation_id
        result.events_received += len(batch.events)
        fresh: dict[str, ConversationEvent] = {}
        for event in batch.events:
            if event.event_id not in known and event.event_id not in fresh:
                fresh[event.event_id] = event
        result.duplicates += len(batch.events) - len(fresh)
        if not fresh:
            return 0
        # Late events are assessed in time order among themselves; the engine never lets
        # time run backwards, so an old straggler cannot reopen a closed chapter.
        ordered = list(fresh.values())
        if len(ordered) > 1:
            ordered.sort(key=_timestamp)
        text = texts.get(cid) if texts is not None else None
        # The state this process saved as the stored text, if it still has it; or decoded.
        state = self.saved_states.take(cid, text) if text is not None else None
        if state is None:
            stored = json.loads(text) if text is not None else record.state
            state = ConversationState.from_dict(stored) if stored else ConversationState.new()
        rows: list[tuple[ConversationEvent, Assessment | None]] = []
        last: Assessment | None = None
        ended = record.status == "ended"
        meta = record.meta
        # Customer messages for the cards' threads: one outbox row per card and post, not per
        # message (a chatty customer posting a batch costs one row, and one thread message).
        replies: dict[int, tuple[ActiveEscalation, list[dict[str, str]]]] = {}
        for event in ordered:
            state, assessment = assess(state, event, rules, meta)
            rows.append((event, assessment))
            last = assessment
            if event.type is _SESSION_END:
                ended = True
            decision = assessment.decision
            if decision is not _NO_DECISION:  # (no decision changes nothing: no call)
                if create is not None:
                    # The decision writes rows that name the conversation: it is stored first.
                    conversations.create_unstored(session=session, requests=[create])
                    create = None
                result.decisions.append((cid, event.event_id, decision))
                if (
                    decision is _OPEN
                    and active is None
                    and opening is not None
                    and event is ordered[-1]
                ):
                    opening.append(
                        (self._new_escalation(cid, assessment, state, rules, now), result)
                    )
                    result.queued = True
                    continue
                state, active = self._apply_decision(
                    session, cid, event, assessment, state, active, rules, now, result
                )
            elif (
                active is not None
                and event.type is _MESSAGE
                and event.role is _CUSTOMER
                and event.text
            ):
                replies.setdefault(active.id, (active, []))[1].append(
                    self._thread_message(event, rules)
                )
        for escalation, messages in replies.values():
            self._thread_deliveries(escalation, messages, rules, now, deliveries)
            result.queued = True
        assert last is not None
        last_at = ordered[-1].timestamp  # the latest: `ordered` is in time order
        events.append(conversations.EventRows(cid, rows, now))
        keep = saved if text is not None else None
        state_text = state.to_json(remember=keep is not None)
        if keep is not None:
            # (Kept only for a conversation stored before this post: one seen once may never
            # post again, and a state kept is walked by every full collection of the heap.)
            keep.append((cid, state_text, state))
        states.append(
            conversations.StateUpdate(
                conversation_id=cid,
                state=state_text,
                score=last.score,
                level=last.level,
                status="ended" if ended else "active",
                last_event_at=(
                    last_at
                    if record.last_event_at is None or record.last_event_at <= last_at
                    else record.last_event_at
                ),
                first_event_at=ordered[0].timestamp,
                now=now,
                create=create,
            )
        )
        return len(rows)

    def _apply_decision(
        self,
        session: Session,
        cid: str,
        event: ConversationEvent,
        assessment: Assessment,
        state: ConversationState,
        active: ActiveEscalation | None,
        rules: Rules,
        now: datetime,
        result: IngestResult,
    ) -> tuple[ConversationState, ActiveEscalation | None]:
        decision = assessment.decision
        if decision is Decision.OPEN:
            if active is None:
                active = self._open(session, cid, assessment, state, rules, now)
                result.queued = True
                result.opened.append(active.id)
                result.opened_levels.append(active.level)
            return state, active
        if active is None:
            return state, None
        if decision is Decision.UPGRADE:
            escalations.upgrade_escalation(
                session=session,
                escalation_id=active.id,
                assessment=assessment,
                summary=summary_to_json(summarize(state, rules)),
                now=now,
            )
            # A card opened in this very post is not out yet: its post will show the upgrade.
            if active.id not in result.opened:
                self._enqueue_update(session, active.id, now, result)
        elif decision in (Decision.RECOVERED, Decision.ENDED):
            status = "recovered" if decision is Decision.RECOVERED else "expired"
            closed = escalations.close_unclaimed(
                session=session,
                escalation_id=active.id,
                status=status,
                now=now,
                detail={"event_id": event.event_id},
            )
            if closed:
                self._enqueue_update(session, active.id, now, result)
                return reset_escalation(state), None
        return state, active

    def _open(
        self,
        session: Session,
        cid: str,
        assessment: Assessment,
        state: ConversationState,
        rules: Rules,
        now: datetime,
    ) -> ActiveEscalation:
        escalation = self._new_escalation(cid, assessment, state, rules, now)
        return ActiveEscalation.of(escalations.open_new(session=session, escalation=escalation))

    def _new_escalation(
        self,
        cid: str,
        assessment: Assessment,
        state: ConversationState,
        rules: Rules,
        now: datetime,
    ) -> escalations.NewEscalation:
        """The escalation an OPEN decision opens: its summary, the team's settings as they are
        now, and the channels its card goes to."""
        team = assessment.team or rules.routes.team or "default"
        team_config = rules.teams.get(team)
        snapshot: dict[str, Any] = {
            "team": team,
            "team_config": team_config.model_dump(mode="json") if team_config else None,
            "level": assessment.level,
        }
        return escalations.NewEscalation(
            conversation_id=cid,
            assessment=assessment,
            summary=summary_to_json(summarize(state, rules)),
            snapshot=snapshot,
            now=now,
            cards=team_surfaces(rules, team, self._surfaces()),
        )

    def _enqueue_update(
        self, session: Session, escalation_id: int, now: datetime, result: IngestResult
    ) -> None:
        enqueue_card_update(session, escalation_id, now, self._surfaces())
        result.queued = True

    @staticmethod
    def _thread_message(event: ConversationEvent, rules: Rules) -> dict[str, str]:
        text = event.text or ""
        if rules.redaction.enabled:
            text = redact(text, rules.redaction.kinds)
        return {"event_id": event.event_id, "at": event.timestamp.isoformat(), "text": text}

    def _thread_deliveries(
        self,
        escalation: ActiveEscalation,
        messages: list[dict[str, str]],
        rules: Rules,
        now: datetime,
        deliveries: list[outbox.NewDelivery],
    ) -> None:
        """Add the replies that post `messages` in the threads of the escalation's cards to
        `deliveries` (enqueued at the end of the round, `outbox.enqueue_many`)."""
        # The surfaces the team's card went to; a surface without the card has no thread.
        targets = team_surfaces(rules, escalation.team or "", self._surfaces())
        for surface in sorted({surface for surface, _ in targets}):
            deliveries.append(
                outbox.NewDelivery(
                    kind="thread_reply",
                    surface=surface,
                    escalation_id=escalation.id,
                    payload={"messages": messages},
                    due_at=now,
                )
            )


def enqueue_card_update(
    session: Session, escalation_id: int, now: datetime, surfaces: frozenset[str]
) -> None:
    """Ask every surface showing the card to redraw it (coalesced while one is pending)."""
    for surface in sorted(surfaces | {"console"}):
        outbox.enqueue(
            session=session,
            kind="update_card",
            surface=surface,
            escalation_id=escalation_id,
            payload={},
            due_at=now,
            dedupe_key=f"update:{escalation_id}:{surface}",
        )


class IngestPipeline:
    """Async front of the ingestor: group commit, on the event loop's thread or on writer
    threads.

    With `writers=0` (the service's default, on both databases) each group is committed on the
    event loop's own thread. On one core a thread gains nothing: the interpreter runs one of them
    at a time, and every hand-off between the loop and a thread costs (the interpreter's lock
    passed back and forth, a future completed across threads, the loop woken through its pipe).
    On SQLite, which hands the interpreter back and forth at every row, a writer thread cost
    5-10% of the throughput. On PostgreSQL two writer threads left 8% of the service's core idle,
    all of them waiting, where the loop alone uses 93% of it: 5% more posts a second (the median
    of 7 paired runs, 1 event/post, 64 connections; -5% to +7%), and about 2% fewer when 1 post
    in 6 escalates (its statements hold the loop, below).

    - On SQLite the loop waits for each group's commit, between two of its turns; a group is kept
      to `max_group_events` events (unless a single post has more) so that the wait stays short
      (under 40 ms for a full group on the benchmarks' machine; about 100 ms for the rare commit
      that also checkpoints SQLite's WAL). The loop never waits for another writer: when the
      database's write lock is taken (a delivery, a claim, another process), that group is
      committed on a writer thread, which waits its turn.
    - On PostgreSQL a group is run as a greenlet on the loop's thread (`storage.loopwait`):
      while it waits for the server (its round trips, the commit's WAL flush) the loop serves
      requests and works the next group, up to `loop_groups` groups at once. The database keeps
      them apart as it keeps replicas apart (conversations locked in id order, a failed group
      redone post by post). Only the round trips sent through `storage._pgpipeline` give the
      loop back: the lock, the writes, and an escalation's opening (sent with the writes when a
      batch's last event opens it, `Ingestor._apply_round`). The statements of a change to an
      open escalation (an upgrade, a close, a card redraw), rarer, hold it for their round trip.

    With `writers >= 1` groups are committed on that many threads instead.
    """

    def __init__(
        self,
        database: Database,
        ingestor: Ingestor,
        *,
        max_group: int = 256,
        max_group_events: int = 1000,
        writers: int = 1,
        loop_groups: int = 2,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        if writers < 0:
            raise ValueError(f"writers must be at least 0, got {writers}")
        if loop_groups < 1:
            raise ValueError(f"loop_groups must be at least 1, got {loop_groups}")
        if max_group < 1 or max_group_events < 1:
            raise ValueError(
                f"a group needs room for a post, got max_group={max_group}, "
                f"max_group_events={max_group_events}"
            )
        self._database = database
        self._ingestor = ingestor
        self._max_group = max_group
        self._max_group_events = max_group_events
        self._writers = writers
        self._on_commit = on_commit
        # With writers=0, the groups worked at once on the loop's thread (one on SQLite, which
        # holds the loop for the whole commit).
        self._loop_groups = 1 if database.dialect == "sqlite" else loop_groups
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        # With writers=0, the thread of the groups that find the write lock taken (started
        # only when first needed).
        self._executor = ThreadPoolExecutor(
            max_workers=writers or 1, thread_name_prefix="ingest-writer"
        )
        self._task: asyncio.Task[None] | None = None
        self._groups: set[asyncio.Task[None]] = set()

    @property
    def writers(self) -> int:
        """How many writer threads commit groups (0: the event loop's thread does)."""
        return self._writers

    async def start(self) -> None:
        """Start the writer loop."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="ingest-writer")

    async def stop(self) -> None:
        """Finish what is queued, then stop the writers."""
        if self._task is not None:
            await self._queue.join()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
            await asyncio.gather(*self._groups)  # their last steps after answering
        self._executor.shutdown(wait=True)

    async def submit(self, batches: Sequence[InboundBatch]) -> IngestResult:
        """Store a post's batches; returns once they are committed (or raises)."""
        future: asyncio.Future[IngestResult] = asyncio.get_running_loop().create_future()
        events = sum(len(batch.events) for batch in batches)
        self._queue.put_nowait(_Pending(batches, future, events))  # (unbounded: never waits)
        return await future

    async def _run(self) -> None:
        # A group is gathered only once a writer is free, so that the posts arriving while every
        # writer is busy make one group, not one each.
        free = asyncio.Semaphore(self._writers or self._loop_groups)
        queue, max_group, max_events = self._queue, self._max_group, self._max_group_events
        while True:
            await free.acquire()
            try:
                first = await queue.get()
            except BaseException:
                free.release()
                raise
            group, events = [first], first.events
            while len(group) < max_group and events < max_events and not queue.empty():
                pending = queue.get_nowait()
                group.append(pending)
                events += pending.events
            task = asyncio.create_task(self._commit_and_answer(group))
            self._groups.add(task)
            task.add_done_callback(self._groups.discard)
            task.add_done_callback(lambda _: free.release())

    async def _commit_and_answer(self, group: list[_Pending]) -> None:
        outcomes: list[IngestResult | BaseException] | None = None
        try:
            if not self._writers and self._database.dialect != "sqlite":
                # On this thread, the loop running while the group waits for the server.
                outcomes = await run_on_loop(self._commit_group, group)
            elif not self._writers:  # on this thread: the loop waits for the commit
                # Another writer holds the lock, or the database failed the group: nothing was
                # committed, and a writer thread does the group again (waiting for the lock,
                # redoing a failed group post by post).
                try:
                    outcomes = self._commit_group(group, wait=False)
                except WriteLockBusy:
                    pass
                except DBAPIError as error:
                    log.warning(
                        "group commit of %d posts failed (%s); doing it again on a writer thread",
                        len(group),
                        error,
                    )
            if outcomes is None:
                loop = asyncio.get_running_loop()
                outcomes = await loop.run_in_executor(self._executor, self._commit_group, group)
        except Exception as error:  # the commit itself failed: every post in it failed
            log.exception("ingest commit failed for %d posts", len(group))
            outcomes = [error] * len(group)
        for pending, outcome in zip(group, outcomes, strict=True):
            if pending.future.done():
                pass
            elif isinstance(outcome, BaseException):
                pending.future.set_exception(outcome)
            else:
                pending.future.set_result(outcome)
            self._queue.task_done()
        # The delivery worker is woken when the group queued something for it; rows that
        # fall due later (retries) it finds by itself, as it polls.
        if self._on_commit is not None and any(
            isinstance(outcome, IngestResult) and outcome.queued for outcome in outcomes
        ):
            self._on_commit()

    def _commit_group(
        self, group: list[_Pending], wait: bool = True
    ) -> list[IngestResult | BaseException]:
        """Commit a group. With `wait=False`, raise `WriteLockBusy` if another writer holds the
        SQLite database, and the database's error if it fails the group, having committed
        nothing either way."""
        try:
            return self._commit_once(group, wait)
        except DBAPIError as error:
            if not wait:
                raise
            # A deadlock or serialization failure between replicas aborts the whole group:
            # retry each post on its own so one unlucky post cannot fail its neighbours.
            log.warning(
                "group commit of %d posts failed (%s); retrying one by one", len(group), error
            )
            return [self._commit_single(pending) for pending in group]

    def _commit_once(self, group: list[_Pending], wait: bool) -> list[IngestResult | BaseException]:
        # Posts almost never fail, and a savepoint per post costs two statements each: try the
        # group without them first; if any post raises, the whole transaction is rolled back
        # and (for more than one post) the group is done again below, one savepoint per post.
        try:
            # No check of the pooled connection first (a round trip): a lost one fails the
            # group with a DBAPIError, and `_commit_group` does it again, post by post.
            saved: list[Saved] = []
            with self._database.session(ping=False, wait=wait) as session:
                posts = [pending.batches for pending in group]
                results: list[IngestResult | BaseException] = list(
                    self._ingestor.apply_group(session, posts, commit=True, saved=saved)
                )
            self._ingestor.saved_states.put(saved)  # (committed)
            return results
        except (DBAPIError, WriteLockBusy):
            raise
        except Exception as error:
            if len(group) == 1:
                log.exception("ingest of one post failed")
                return [error]
            log.info("a post failed in a group of %d; redoing it post by post", len(group))
        outcomes: list[IngestResult | BaseException] = []
        with self._database.session(wait=wait) as session:
            for pending in group:
                try:
                    with session.begin_nested():
                        outcomes.append(self._ingestor.apply(session, pending.batches))
                except DBAPIError:
                    raise
                except Exception as error:  # one bad post: its savepoint is rolled back
                    log.exception("ingest of one post failed")
                    outcomes.append(error)
        return outcomes

    def _commit_single(self, pending: _Pending) -> IngestResult | BaseException:
        try:
            with self._database.session() as session:
                return self._ingestor.apply(session, pending.batches)
        except Exception as error:
            return error
