"""The delivery outbox: coalesced card edits, leases that come back, workers that never collide."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any, cast

import pytest
from sqlalchemy import delete, select
from sqlmodel import Session

from storage import conversations, outbox, tables, teams_channels
from storage.db import Database
from storage.outbox import OutboxStats
from tests.storage.conftest import OpenEscalation
from tests.storage.storage_helpers import T0, create_escalation, enqueue, minutes


def _update_card(database: Database, escalation_id: int, version: int, *, at: int = 0) -> int:
    with database.session() as session:
        return enqueue(
            session,
            escalation_id,
            kind="update_card",
            payload={"version": version},
            due_at=T0 + minutes(at),
            dedupe_key=f"update_card:{escalation_id}:slack",
        )


def test_quick_card_edits_coalesce_into_one_delivery(
    database: Database, open_escalation: OpenEscalation
) -> None:
    record = open_escalation()
    first = _update_card(database, record.id, 1, at=2)
    second = _update_card(database, record.id, 2, at=1)
    third = _update_card(database, record.id, 3, at=5)
    with database.session() as session:
        waiting = outbox.pending(session=session)
    assert first == second == third
    assert len(waiting) == 1
    # The newest content, delivered as early as any of the requests asked.
    assert waiting[0].payload == {"version": 3}
    assert waiting[0].due_at == T0 + minutes(1)


def test_edits_for_different_surfaces_do_not_coalesce(
    database: Database, open_escalation: OpenEscalation
) -> None:
    record = open_escalation()
    with database.session() as session:
        for surface in ("slack", "teams"):
            enqueue(
                session,
                record.id,
                kind="update_card",
                surface=surface,
                dedupe_key=f"update_card:{record.id}:{surface}",
            )
        assert len(outbox.pending(session=session, escalation_id=record.id)) == 2


def test_an_edit_made_while_a_delivery_is_in_flight_is_delivered_after_it(
    database: Database, open_escalation: OpenEscalation
) -> None:
    record = open_escalation()
    _update_card(database, record.id, 1)
    with database.session() as session:
        [in_flight] = outbox.lease_due(session=session, now=T0, limit=10, lease_seconds=60)
    _update_card(database, record.id, 2)
    with database.session() as session:
        outbox.complete(session=session, item_id=in_flight.id, now=T0 + timedelta(seconds=1))
        [next_item] = outbox.lease_due(
            session=session, now=T0 + timedelta(seconds=1), limit=10, lease_seconds=60
        )
    assert next_item.id != in_flight.id
    assert next_item.payload == {"version": 2}


def test_a_leased_item_is_not_handed_out_again_until_its_lease_runs_out(
    database: Database, open_escalation: OpenEscalation
) -> None:
    record = open_escalation()
    with database.session() as session:
        item_id = enqueue(session, record.id, payload={"channel": "C1"})
        [leased] = outbox.lease_due(session=session, now=T0, limit=10, lease_seconds=30)
        assert leased.id == item_id
        assert leased.leased_until == T0 + timedelta(seconds=30)
        assert (
            outbox.lease_due(
                session=session, now=T0 + timedelta(seconds=29), limit=10, lease_seconds=30
            )
            == []
        )
        assert outbox.next_due_at(session=session) == T0 + timedelta(seconds=30)
        # The worker crashed: the item comes back once the lease is over.
        [returned] = outbox.lease_due(
            session=session, now=T0 + timedelta(seconds=30), limit=10, lease_seconds=30
        )
    assert returned.id == item_id


def test_items_wait_until_they_are_due_and_come_oldest_first(
    database: Database, open_escalation: OpenEscalation
) -> None:
    record = open_escalation()
    with database.session() as session:
        later = enqueue(
            session,
            record.id,
            kind="thread_reply",
            payload={"text": "later"},
            due_at=T0 + minutes(5),
        )
        sooner = enqueue(
            session,
            record.id,
            kind="thread_reply",
            payload={"text": "sooner"},
            due_at=T0 + minutes(1),
        )
        assert outbox.next_due_at(session=session) == T0 + minutes(1)
        assert outbox.lease_due(session=session, now=T0, limit=10, lease_seconds=30) == []
        leased = outbox.lease_due(session=session, now=T0 + minutes(10), limit=10, lease_seconds=30)
    assert [item.id for item in leased] == [sooner, later]


def test_a_failed_delivery_is_retried_later_and_counted(
    database: Database, open_escalation: OpenEscalation
) -> None:
    record = open_escalation()
    with database.session() as session:
        enqueue(session, record.id, surface="teams", payload={"channel": "19:x"})
        [item] = outbox.lease_due(session=session, now=T0, limit=1, lease_seconds=30)
        assert item.attempts == 0
        outbox.retry_later(
            session=session,
            item_id=item.id,
            due_at=T0 + minutes(1),
            error="rate limited; retry after 60s",
        )
        assert outbox.lease_due(session=session, now=T0, limit=1, lease_seconds=30) == []
        [again] = outbox.lease_due(session=session, now=T0 + minutes(1), limit=1, lease_seconds=30)
    assert again.id == item.id
    assert again.attempts == 1
    assert again.last_error == "rate limited; retry after 60s"


def test_outbox_health_numbers(database: Database, open_escalation: OpenEscalation) -> None:
    record = open_escalation()
    with database.session() as session:
        assert outbox.stats(session=session, now=T0) == OutboxStats(0, None, 0)
        assert outbox.next_due_at(session=session) is None
        ids = [
            enqueue(
                session,
                record.id,
                payload={"channel": f"C{index}"},
                due_at=T0 + minutes(index),
                now=T0 + minutes(index),
            )
            for index in range(3)
        ]
        [first] = outbox.lease_due(session=session, now=T0, limit=1, lease_seconds=30)
        outbox.give_up(session=session, item_id=first.id, error="channel_not_found", now=T0)
        [second] = outbox.lease_due(session=session, now=T0 + minutes(1), limit=1, lease_seconds=30)
        outbox.complete(session=session, item_id=second.id, now=T0 + minutes(1))
        stats = outbox.stats(session=session, now=T0 + minutes(10))
    assert [first.id, second.id] == ids[:2]
    assert stats == OutboxStats(depth=1, oldest_age_seconds=8 * 60.0, failed=1)


@pytest.mark.postgres
def test_two_replicas_never_take_the_same_row(postgres_database: Database) -> None:
    database = postgres_database
    record = create_escalation(database)
    with database.session() as session:
        for index in range(4):
            enqueue(session, record.id, payload={"channel": f"C{index}"})
    # The first replica's lease is not committed yet; the second skips its locked rows
    # instead of waiting for them or taking them too.
    with database.session() as first_replica:
        taken_first = outbox.lease_due(session=first_replica, now=T0, limit=2, lease_seconds=30)
        with database.session() as second_replica:
            taken_second = outbox.lease_due(
                session=second_replica, now=T0, limit=10, lease_seconds=30
            )
    assert len(taken_first) == 2
    assert len(taken_second) == 2
    assert {item.id for item in taken_first}.isdisjoint(item.id for item in taken_second)


def test_concurrent_workers_deliver_every_row_exactly_once(
    database: Database, open_escalation: OpenEscalation
) -> None:
    record = open_escalation()
    with database.session() as session:
        for index in range(60):
            enqueue(session, record.id, kind="thread_reply", payload={"n": index})
    delivered: list[list[int]] = [[], [], []]

    def worker(number: int) -> None:
        while True:
            with database.session() as session:
                items = outbox.lease_due(session=session, now=T0, limit=4, lease_seconds=300)
                for item in items:
                    outbox.complete(session=session, item_id=item.id, now=T0)
            if not items:
                return
            delivered[number].extend(item.payload["n"] for item in items)

    workers = [threading.Thread(target=worker, args=(number,)) for number in range(3)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    everything = [n for batch in delivered for n in batch]
    assert sorted(everything) == list(range(60))


def test_teams_channel_references_are_kept_per_channel(database: Database) -> None:
    reference = {"conversation": {"id": "19:abc@thread.tacv2"}, "serviceUrl": "https://smba/"}
    with database.session() as session:
        teams_channels.save_teams_channel(
            session=session, channel_id="19:abc", reference={"old": True}, now=T0
        )
        teams_channels.save_teams_channel(
            session=session, channel_id="19:abc", reference=reference, now=T0 + minutes(1)
        )
        teams_channels.save_teams_channel(
            session=session, channel_id="19:def", reference={"x": 1}, now=T0
        )
    with database.session() as session:
        assert teams_channels.teams_channels(session=session) == {
            "19:abc": reference,
            "19:def": {"x": 1},
        }


def test_after_an_outage_backed_off_deliveries_come_due_but_rate_limited_ones_keep_their_time(
    database: Database, open_escalation: OpenEscalation
) -> None:
    record = open_escalation()
    with database.session() as session:
        for channel in ("#down", "#slow", "#teams"):
            surface = "teams" if channel == "#teams" else "slack"
            enqueue(session, record.id, surface=surface, payload={"channel": channel})
        down, slow, teams = outbox.lease_due(session=session, now=T0, limit=3, lease_seconds=30)
        outbox.retry_later(
            session=session, item_id=down.id, due_at=T0 + minutes(4), error="Slack: HTTP 500"
        )
        outbox.retry_later(
            session=session,
            item_id=slow.id,
            due_at=T0 + minutes(4),
            error=f"{outbox.RATE_LIMITED}Slack asked to wait 240s",
        )
        outbox.retry_later(
            session=session, item_id=teams.id, due_at=T0 + minutes(4), error="Teams: HTTP 502"
        )

        assert outbox.bring_forward(session=session, surface="slack", now=T0 + minutes(1)) == 1

        due = outbox.lease_due(session=session, now=T0 + minutes(1), limit=3, lease_seconds=30)
    assert [item.payload["channel"] for item in due] == ["#down"]


def test_deliveries_enqueued_together_are_the_rows_enqueued_one_by_one(
    database: Database, open_escalation: OpenEscalation
) -> None:
    # The ingest enqueues a round's thread messages in one statement (`enqueue_many`).
    first, second = open_escalation("conv-1"), open_escalation("conv-2")
    deliveries = [
        outbox.NewDelivery("thread_reply", "slack", first.id, {"messages": [{"text": "é?"}]}, T0),
        outbox.NewDelivery("thread_reply", "teams", first.id, {"messages": []}, T0 + minutes(1)),
        outbox.NewDelivery("thread_reply", None, second.id, {"n": [1, 2.5, None]}, T0),
    ]

    def rows_written(write: Callable[[Session], object]) -> list[tuple[Any, ...]]:
        with database.session() as session:
            session.execute(delete(tables.outbox))
            write(session)
        with database.session() as session:
            rows = session.execute(select(tables.outbox).order_by(tables.outbox.c.id)).mappings()
            return [tuple(value for key, value in row.items() if key != "id") for row in rows]

    def one_by_one(session: Session) -> None:
        for delivery in deliveries:
            enqueue(
                session,
                cast(int, delivery.escalation_id),
                kind=delivery.kind,
                surface=cast(str, delivery.surface),
                payload=delivery.payload,
                due_at=delivery.due_at,
            )

    def with_the_writes(session: Session) -> None:
        # The ingest's way: on PostgreSQL the statement goes in the round trip of its writes.
        unsent = outbox.enqueue_many(session=session, deliveries=deliveries, later=True)
        conversations.store(session=session, events=[], states=[], also=unsent)

    together = rows_written(
        lambda session: outbox.enqueue_many(session=session, deliveries=deliveries)
    )
    assert together == rows_written(one_by_one)
    assert together == rows_written(with_the_writes)
    assert [row[:3] for row in together] == [
        ("thread_reply", "slack", first.id),
        ("thread_reply", "teams", first.id),
        ("thread_reply", None, second.id),
    ]
    with database.session() as session:
        outbox.enqueue_many(session=session, deliveries=[])  # nothing to do
        assert outbox.stats(session=session, now=T0).depth == 3
