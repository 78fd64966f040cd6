"""Scheduled jobs: one APScheduler (3.x, asyncio) per process, jobs registered in one place.

Every job gets the time from the injected clock, never from APScheduler, so a test moves the
clock and runs a job at once with `run_now` (through the real scheduler). With several replicas
on one PostgreSQL only the replica holding a session-level advisory lock runs the jobs; the
lock dies with its connection, so when that replica dies another one takes over at its next tick.
On SQLite (one process) this process always leads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from bot.digest import run_digests
from bot.idle import run_idle
from bot.pipeline import Clock, utc_now
from bot.sla import run_sla
from engine.rules import Rules
from storage.db import Database

if TYPE_CHECKING:
    from bot.handback import PlatformCalls

log = logging.getLogger(__name__)

# A fixed key: every replica of one deployment competes for the same lock ("ESCJ").
SCHEDULER_LOCK_KEY = 0x45534A4A

SLA_JOB = "sla-chains"
DIGEST_JOB = "handoff-digests"
IDLE_JOB = "idle-claims"

JobFunction = Callable[[datetime], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class ScheduledJob:
    """A job with a stable name (its APScheduler id), a trigger and what it does at `now`."""

    name: str
    trigger: BaseTrigger
    run: JobFunction
    run_at_start: bool = True  # catch up at once after a (re)start: missed digests, overdue steps


def every_minute() -> CronTrigger:
    """On the minute, every minute (UTC)."""
    return CronTrigger(second=0, timezone=UTC)


def service_jobs(
    database: Database,
    rules: Callable[[], Rules],
    surfaces: Callable[[], frozenset[str]],
    base_url: str,
    on_change: Callable[[], None] | None = None,
    platform_calls: PlatformCalls | None = None,
) -> list[ScheduledJob]:
    """Every scheduled job of the service, in one place.

    `platform_calls` lets an automatic release resume the bot on its platform, as a Release does.
    """

    def changed(result: list[Any]) -> None:
        if result and on_change is not None:
            on_change()  # new outbox rows: let the delivery worker look now

    async def sla_chains(now: datetime) -> object:
        fired = await asyncio.to_thread(run_sla, database, rules(), surfaces(), now)
        changed(fired)
        return fired

    async def idle_claims(now: datetime) -> object:
        taken = await asyncio.to_thread(
            run_idle, database, rules(), surfaces(), now, platform_calls
        )
        changed(taken)
        return taken

    async def handoff_digests(now: datetime) -> object:
        posted = await asyncio.to_thread(run_digests, database, rules(), surfaces(), base_url, now)
        changed(posted)
        return posted

    return [
        ScheduledJob(SLA_JOB, every_minute(), sla_chains),
        # Due periods come from each team's cron and the digests record (bot/digest.py), so
        # checking every minute posts on time, after a restart, and after a rules reload.
        ScheduledJob(DIGEST_JOB, every_minute(), handoff_digests),
        # Claimed escalations nobody answers: remind the claimer, then release (bot/idle.py).
        ScheduledJob(IDLE_JOB, every_minute(), idle_claims),
    ]


class Leadership:
    """Whether this process runs the scheduled jobs (PostgreSQL: holds the advisory lock)."""

    def __init__(self, database: Database, key: int = SCHEDULER_LOCK_KEY) -> None:
        self._database = database
        self._key = key
        self._connection: Connection | None = None
        # Jobs check from worker threads at the same moment; one connection must try, not two.
        self._lock = threading.Lock()

    @property
    def is_leader(self) -> bool:
        """Whether this process led at its last check."""
        return self._database.dialect != "postgresql" or self._connection is not None

    def check(self) -> bool:
        """Keep or try to take the lead; blocking (call it in a thread)."""
        if self._database.dialect != "postgresql":
            return True
        with self._lock:
            return self._check()

    def _check(self) -> bool:
        if self._connection is not None:
            try:
                self._connection.execute(text("SELECT 1"))
                return True
            except DBAPIError:
                log.warning("lost the scheduler lock's connection; no longer leading")
                self._drop()
        connection = self._database.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            won = connection.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": self._key}
            ).scalar_one()
        except DBAPIError:
            connection.close()
            raise
        if not won:
            connection.close()
            return False
        log.info("this replica now runs the scheduled jobs")
        self._connection = connection
        return True

    def resign(self) -> None:
        """Give the lead up (shutdown), so another replica takes over at once."""
        with self._lock:
            self._resign()

    def _resign(self) -> None:
        if self._connection is None:
            return
        # When the connection is gone, so is the lock.
        with contextlib.suppress(DBAPIError):
            self._connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self._key})
        self._drop()

    def _drop(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(DBAPIError):
                self._connection.invalidate()
                self._connection.close()
            self._connection = None


class JobScheduler:
    """The service's APScheduler, running the registered jobs while this replica leads."""

    def __init__(
        self,
        jobs: Sequence[ScheduledJob],
        leadership: Leadership,
        *,
        clock: Clock = utc_now,
    ) -> None:
        names = [job.name for job in jobs]
        if len(set(names)) != len(names):
            raise ValueError(f"job names must be unique: {names}")
        self._jobs = {job.name: job for job in jobs}
        self._leadership = leadership
        self._clock = clock
        self._scheduler: AsyncIOScheduler | None = None
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._in_flight: set[asyncio.Future[None]] = set()
        self.last_results: dict[str, object] = {}

    @property
    def job_names(self) -> list[str]:
        """The registered jobs' names."""
        return list(self._jobs)

    @property
    def leadership(self) -> Leadership:
        """Who leads."""
        return self._leadership

    def trigger(self, name: str) -> BaseTrigger:
        """The trigger the named job runs on."""
        return self._jobs[name].trigger

    def start(self) -> None:
        """Start the scheduler on the running event loop."""
        scheduler = AsyncIOScheduler(timezone=UTC)
        for job in self._jobs.values():
            options: dict[str, Any] = {}
            if job.run_at_start:
                options["next_run_time"] = datetime.now(UTC)
            scheduler.add_job(
                self._run,
                job.trigger,
                args=[job.name],
                id=job.name,
                name=job.name,
                coalesce=True,  # after a pause run once, not once per missed minute
                max_instances=1,
                misfire_grace_time=None,
                replace_existing=True,
                **options,
            )
        scheduler.start()
        self._scheduler = scheduler

    async def shutdown(self) -> None:
        """Stop running jobs and give up the lead."""
        if self._scheduler is not None:
            self._scheduler.pause()
            # Let runs under way finish their transaction rather than cancel them mid-way.
            await asyncio.gather(*self._in_flight, return_exceptions=True)
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        await asyncio.to_thread(self._leadership.resign)
        for waiters in self._waiters.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.cancel()
        self._waiters.clear()

    async def run_now(self, name: str) -> object:
        """Have the scheduler run the named job at once and wait for it (tests, wake-ups).

        Returns the job's result, or None when this replica does not lead.
        """
        if self._scheduler is None:
            raise RuntimeError("the scheduler is not running")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(name, []).append(done)
        self._scheduler.modify_job(name, next_run_time=datetime.now(UTC))
        await done
        return self.last_results.get(name)

    async def _run(self, name: str) -> None:
        # Callers of run_now waiting before this run started are answered when it ends.
        waiters = self._waiters.pop(name, [])
        self.last_results[name] = None
        failure: BaseException | None = None
        finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._in_flight.add(finished)
        try:
            if await asyncio.to_thread(self._leadership.check):
                self.last_results[name] = await self._jobs[name].run(self._clock())
        except Exception as error:
            log.exception("scheduled job %s failed", name)
            failure = error
        finally:
            self._in_flight.discard(finished)
            finished.set_result(None)
        for waiter in waiters:
            if waiter.done():
                continue
            if failure is not None:
                waiter.set_exception(failure)
            else:
                waiter.set_result(None)
        if self._waiters.get(name) and self._scheduler is not None:
            # Asked for while this run was under way (max_instances=1 skipped it): run again.
            self._scheduler.modify_job(name, next_run_time=datetime.now(UTC))
