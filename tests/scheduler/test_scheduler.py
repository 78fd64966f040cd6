"""The real APScheduler: stable job names, exactly one digest per period across restarts and
replicas, and leadership passing to another replica when the leader dies."""

from __future__ import annotations

import io
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Connection, text

from bot.console import ConsoleNotifier
from bot.delivery import DeliveryWorker
from bot.digest import ConsoleDigestPublisher, DigestDelivery, run_digests
from bot.scheduler import (
    DIGEST_JOB,
    IDLE_JOB,
    SCHEDULER_LOCK_KEY,
    SLA_JOB,
    JobScheduler,
    Leadership,
    service_jobs,
)
from engine.rules import Rules
from engine.rules_loader import load_rules_file
from storage import digests, outbox
from storage.db import Database
from tests.bot.conftest import Clock
from tests.scheduler.helpers import seed_escalation

REPO = Path(__file__).resolve().parents[2]
BASE_URL = "https://escalations.example.com"
# Tuesday 10 March 2026, 11:00 in Berlin: the service was down at 09:00.
LATE_TUESDAY = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)
MONDAY_NINE_BERLIN = datetime(2026, 3, 9, 8, 0, tzinfo=UTC)
TUESDAY_NINE_BERLIN = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)
# How long a terminated backend may take to exit and free its locks (a bound, not a speed check).
LOCK_RELEASE_LIMIT_SECONDS = 30.0


@pytest.fixture
def rules() -> Rules:
    return load_rules_file(REPO / "rules.yaml")


def scheduler_for(database: Database, rules: Rules, clock: Clock) -> JobScheduler:
    jobs = service_jobs(database, lambda: rules, frozenset, BASE_URL)
    return JobScheduler(jobs, Leadership(database), clock=clock)


async def running(scheduler: JobScheduler) -> AsyncIterator[JobScheduler]:
    scheduler.start()
    try:
        yield scheduler
    finally:
        await scheduler.shutdown()


def digest_posts(database: Database) -> list[str | None]:
    with database.session(read_only=True) as session:
        rows = outbox.pending(session=session)
    return [row.surface for row in rows if row.kind == "post_digest"]


def test_the_jobs_have_stable_names(sqlite_database: Database, rules: Rules) -> None:
    scheduler = scheduler_for(sqlite_database, rules, Clock(LATE_TUESDAY))
    assert scheduler.job_names == [SLA_JOB, DIGEST_JOB, IDLE_JOB]
    assert scheduler.job_names == ["sla-chains", "handoff-digests", "idle-claims"]


async def test_a_missed_digest_is_posted_when_the_service_comes_back(
    database: Database, rules: Rules
) -> None:
    seed_escalation(database, "c1", opened_at=MONDAY_NINE_BERLIN.replace(hour=12))
    clock = Clock(LATE_TUESDAY)
    async for scheduler in running(scheduler_for(database, rules, clock)):
        await scheduler.run_now(DIGEST_JOB)
    with database.session(read_only=True) as session:
        (posted,) = digests.list_digests(session=session)
    assert (posted.team, posted.period_start, posted.period_end) == (
        "support",
        MONDAY_NINE_BERLIN,
        TUESDAY_NINE_BERLIN,
    )
    assert posted.content["handoffs"] == 1
    assert digest_posts(database) == ["console"]

    # Restarted again the same morning: nothing new to post.
    async for scheduler in running(scheduler_for(database, rules, clock)):
        assert await scheduler.run_now(DIGEST_JOB) == []
    assert digest_posts(database) == ["console"]


async def test_the_sla_job_runs_on_the_driven_clock(database: Database, rules: Rules) -> None:
    snapshot = {"team": "support", "team_config": rules.teams["support"].model_dump(mode="json")}
    seed_escalation(database, "c1", opened_at=LATE_TUESDAY, snapshot=snapshot)
    clock = Clock(LATE_TUESDAY)
    async for scheduler in running(scheduler_for(database, rules, clock)):
        clock.advance(minutes=9)
        assert await scheduler.run_now(SLA_JOB) == []
        clock.advance(minutes=1)
        fired = await scheduler.run_now(SLA_JOB)
        assert isinstance(fired, list)
        assert [step.key for step in fired] == ["step:0"]


@pytest.mark.postgres
async def test_two_replicas_on_one_postgres_post_one_digest(
    postgres_url_factory: Callable[[], str], rules: Rules
) -> None:
    url = postgres_url_factory()
    first, second = Database(url), Database(url)
    first.migrate()
    clock = Clock(LATE_TUESDAY)
    try:
        async for one in running(scheduler_for(first, rules, clock)):
            async for other in running(scheduler_for(second, rules, clock)):
                await one.run_now(DIGEST_JOB)
                await other.run_now(DIGEST_JOB)
                leaders = [one.leadership.is_leader, other.leadership.is_leader]
                assert sorted(leaders) == [False, True]
        with first.session(read_only=True) as session:
            assert len(digests.list_digests(session=session)) == 1
        assert digest_posts(first) == ["console"]
    finally:
        first.dispose()
        second.dispose()


def scheduler_lock_holders(connection: Connection) -> list[int]:
    """The backends holding the scheduler lock in this test's database (none, or the leader)."""
    # A bigint advisory key shows in pg_locks split into classid (high half) and objid (low half).
    rows = connection.execute(
        text(
            "SELECT pid FROM pg_locks "
            "WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND ((classid::bigint << 32) | objid::bigint) = :key"
        ),
        {"key": SCHEDULER_LOCK_KEY},
    )
    return [pid for (pid,) in rows]


@pytest.mark.postgres
def test_another_replica_takes_over_when_the_leader_dies(
    postgres_url_factory: Callable[[], str],
) -> None:
    url = postgres_url_factory()
    first, second = Database(url), Database(url)
    leader, standby = Leadership(first), Leadership(second)
    try:
        assert leader.check() is True
        assert standby.check() is False
        # The leader's process dies: its connection, and the lock with it, go away.
        with second.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as observer:
            (leader_pid,) = scheduler_lock_holders(observer)
            terminate = text("SELECT pg_terminate_backend(:pid)")
            assert observer.execute(terminate, {"pid": leader_pid}).scalar_one() is True
            # pg_terminate_backend only signals the backend; it frees its locks as it exits.
            # The standby's next check comes after that, as a tick a minute later would.
            deadline = time.monotonic() + LOCK_RELEASE_LIMIT_SECONDS
            while scheduler_lock_holders(observer):
                if time.monotonic() > deadline:
                    pytest.fail(f"the lock outlived its dead holder {LOCK_RELEASE_LIMIT_SECONDS} s")
                time.sleep(0.05)
        assert standby.check() is True
        assert leader.check() is False
    finally:
        leader.resign()
        standby.resign()
        first.dispose()
        second.dispose()


def test_on_sqlite_the_single_process_always_leads(sqlite_database: Database) -> None:
    assert Leadership(sqlite_database).check() is True


async def test_the_delivery_worker_posts_the_recorded_digest(
    sqlite_database: Database, rules: Rules
) -> None:
    seed_escalation(sqlite_database, "c1", opened_at=MONDAY_NINE_BERLIN.replace(hour=12))
    run_digests(sqlite_database, rules, frozenset(), BASE_URL, LATE_TUESDAY)
    printed = io.StringIO()
    worker = DeliveryWorker(
        sqlite_database,
        {"console": ConsoleNotifier(io.StringIO())},
        BASE_URL,
        clock=Clock(LATE_TUESDAY),
    )
    worker.digests = DigestDelivery({"console": ConsoleDigestPublisher(printed)})
    assert await worker.run_once() == 1
    assert printed.getvalue().startswith(
        "Hand-off digest · support · Mon 09 Mar 09:00 → Tue 10 Mar 09:00 (Europe/Berlin)\n"
        "1 hand-offs (+1 vs the period before)"
    )
    assert digest_posts(sqlite_database) == []
