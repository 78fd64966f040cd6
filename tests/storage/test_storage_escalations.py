"""Escalations: one active per conversation, claims that cannot both win, who may close."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from storage import escalations, tables
from storage.db import Database
from storage.escalations import EscalationAlreadyActive, EscalationStatus, Refusal
from tests.storage.conftest import OpenEscalation
from tests.storage.storage_helpers import T0, assessment, minutes


def _claim(
    session: Session, escalation_id: int, who: str, *, at: int = 1
) -> escalations.ClaimOutcome:
    return escalations.claim(
        session=session,
        escalation_id=escalation_id,
        actor_id=who.lower(),
        actor_name=who,
        surface="slack",
        now=T0 + minutes(at),
    )


def test_an_escalation_opens_with_the_engines_verdict(
    database: Database, open_escalation: OpenEscalation
) -> None:
    record = open_escalation()
    assert record.status is EscalationStatus.OPEN
    assert (record.level, record.score, record.team, record.mention) == (
        "high",
        6.0,
        "tier-1",
        "@here",
    )
    assert record.reasons == assessment().reasons
    assert record.snapshot == {"route": "default", "sla": [{"after_minutes": 5}]}
    assert record.summary == {"wants": ["a refund"]}
    assert record.opened_at == T0
    with database.session() as session:
        assert escalations.active_escalation(session=session, conversation_id="conv-1") == record
        assert escalations.get_escalation(session=session, escalation_id=record.id) == record
        history = escalations.handoff_history(session=session, escalation_id=record.id)
    assert [(step.kind, step.from_status, step.to_status) for step in history] == [
        ("opened", None, "open")
    ]


def test_a_conversation_cannot_have_two_active_escalations(
    database: Database, open_escalation: OpenEscalation
) -> None:
    first = open_escalation()
    with database.session() as session:
        with pytest.raises(EscalationAlreadyActive) as refused:
            escalations.open_escalation(
                session=session,
                conversation_id="conv-1",
                assessment=assessment(),
                summary={},
                snapshot={},
                now=T0 + minutes(1),
            )
        assert refused.value.escalation_id == first.id
        # The database itself refuses it too, whoever writes the row.
        with pytest.raises(IntegrityError), session.begin_nested():
            session.connection().execute(
                insert(tables.escalations).values(
                    conversation_id="conv-1",
                    status="claimed",
                    level="high",
                    score=1.0,
                    opened_at=T0,
                    updated_at=T0,
                )
            )
        assert escalations.active_escalation(session=session, conversation_id="conv-1") == first


def test_a_new_escalation_may_open_once_the_last_one_is_closed(
    database: Database, open_escalation: OpenEscalation
) -> None:
    first = open_escalation()
    with database.session() as session:
        assert escalations.close_unclaimed(
            session=session,
            escalation_id=first.id,
            status="recovered",
            now=T0 + minutes(2),
            detail={"event_id": "e9"},
        )
    second = open_escalation(now=T0 + minutes(5))
    assert second.id != first.id
    with database.session() as session:
        closed = escalations.get_escalation(session=session, escalation_id=first.id)
    assert closed is not None
    assert closed.status is EscalationStatus.RECOVERED
    assert closed.closed_at == T0 + minutes(2)


def test_an_agent_claims_an_open_escalation(
    database: Database, open_escalation: OpenEscalation
) -> None:
    record = open_escalation()
    with database.session() as session:
        outcome = _claim(session, record.id, "Ana", at=3)
        history = escalations.handoff_history(session=session, escalation_id=record.id)
    assert outcome.ok
    assert outcome.won
    assert outcome.escalation is not None
    assert outcome.escalation.status is EscalationStatus.CLAIMED
    assert (outcome.escalation.claimed_by, outcome.escalation.claimed_by_name) == ("ana", "Ana")
    assert outcome.escalation.claimed_at == T0 + minutes(3)
    claimed = history[-1]
    assert (claimed.kind, claimed.actor_id, claimed.actor_name, claimed.surface) == (
        "claimed",
        "ana",
        "Ana",
        "slack",
    )
    assert (claimed.from_status, claimed.to_status, claimed.at) == (
        "open",
        "claimed",
        T0 + minutes(3),
    )


def test_second_agent_cannot_claim_a_claimed_escalation(
    database: Database, open_escalation: OpenEscalation
) -> None:
    record = open_escalation()
    with database.session() as session:
        _claim(session, record.id, "Ana")
    with database.session() as session:
        outcome = _claim(session, record.id, "Bruno")
    assert not outcome.ok
    assert outcome.refusal is Refusal.ALREADY_CLAIMED
    assert outcome.escalation is not None
    assert outcome.escalation.claimed_by_name == "Ana"
    assert outcome.message == "Ana has already claimed this escalation."


def test_two_agents_clicking_claim_at_once_exactly_one_wins(
    database: Database, open_escalation: OpenEscalation
) -> None:
    record = open_escalation()
    both_ready = threading.Barrier(2)
    outcomes: dict[str, escalations.ClaimOutcome] = {}

    def click(who: str) -> None:
        with database.session() as session:
            both_ready.wait()
            outcomes[who] = _claim(session, record.id, who)

    agents = [threading.Thread(target=click, args=(who,)) for who in ("Ana", "Bruno")]
    for agent in agents:
        agent.start()
    for agent in agents:
        agent.join()
    winners = [who for who, outcome in outcomes.items() if outcome.ok]
    losers = [outcome for outcome in outcomes.values() if not outcome.ok]
    assert len(winners) == 1
    assert len(losers) == 1
    assert losers[0].refusal is Refusal.ALREADY_CLAIMED
    assert losers[0].escalation is not None
    assert losers[0].escalation.claimed_by_name == winners[0]
    with database.session() as session:
        history = escalations.handoff_history(session=session, escalation_id=record.id)
    assert [step.kind for step in history].count("claimed") == 1


def test_claiming_an_unknown_escalation_says_so(database: Database) -> None:
    with database.session() as session:
        outcome = _claim(session, 999, "Ana")
    assert (outcome.ok, outcome.refusal, outcome.escalation) == (False, Refusal.UNKNOWN, None)


def test_the_bot_recovering_after_a_claim_does_not_close_it(
    database: Database, open_escalation: OpenEscalation
) -> None:
    record = open_escalation()
    with database.session() as session:
        _claim(session, record.id, "Ana")
        closed = escalations.close_unclaimed(
            session=session, escalation_id=record.id, status="recovered", now=T0 + minutes(2)
        )
        current = escalations.get_escalation(session=session, escalation_id=record.id)
    assert closed is False
    assert current is not None
    assert current.status is EscalationStatus.CLAIMED


def test_a_claim_after_the_conversation_ended_is_told_it_is_closed(
    database: Database, open_escalation: OpenEscalation
) -> None:
    record = open_escalation()
    with database.session() as session:
        escalations.close_unclaimed(
            session=session, escalation_id=record.id, status="expired", now=T0 + minutes(1)
        )
        outcome = _claim(session, record.id, "Ana", at=2)
    assert outcome.refusal is Refusal.CLOSED
    assert outcome.message == "This escalation is already expired."


def test_only_expired_or_recovered_close_an_unclaimed_escalation(
    database: Database, open_escalation: OpenEscalation
) -> None:
    record = open_escalation()
    with pytest.raises(ValueError, match="'expired' or 'recovered'"), database.session() as session:
        escalations.close_unclaimed(
            session=session, escalation_id=record.id, status="resolved", now=T0
        )


def _release(
    session: Session, escalation_id: int, who: str, *, admin: bool = False
) -> escalations.TransitionOutcome:
    return escalations.release(
        session=session,
        escalation_id=escalation_id,
        actor_id=who.lower(),
        actor_name=who,
        surface="teams",
        now=T0 + minutes(5),
        allow_admin=admin,
    )


def _resolve(
    session: Session, escalation_id: int, who: str, *, admin: bool = False
) -> escalations.TransitionOutcome:
    return escalations.resolve(
        session=session,
        escalation_id=escalation_id,
        actor_id=who.lower(),
        actor_name=who,
        surface="teams",
        now=T0 + minutes(9),
        outcome="refunded",
        note="refund issued",
        allow_admin=admin,
    )


def test_someone_else_cannot_release_or_resolve_my_escalation(
    database: Database, open_escalation: OpenEscalation
) -> None:
    record = open_escalation()
    with database.session() as session:
        _claim(session, record.id, "Ana")
        released = _release(session, record.id, "Bruno")
        resolved = _resolve(session, record.id, "Bruno")
        current = escalations.get_escalation(session=session, escalation_id=record.id)
    assert released.refusal is Refusal.NOT_CLAIMER
    assert resolved.refusal is Refusal.NOT_CLAIMER
    assert resolved.message == "Only Ana, who claimed it, or an admin can do that."
    assert current is not None
    assert current.status is EscalationStatus.CLAIMED


def test_an_admin_may_release_someone_elses_escalation(
    database: Database, open_escalation: OpenEscalation
) -> None:
    record = open_escalation()
    with database.session() as session:
        _claim(session, record.id, "Ana")
        released = _release(session, record.id, "Lead", admin=True)
        history = escalations.handoff_history(session=session, escalation_id=record.id)
    assert released.ok
    assert released.escalation is not None
    assert released.escalation.status is EscalationStatus.OPEN
    assert released.escalation.claimed_by is None
    last = history[-1]
    assert (last.kind, last.actor_name, last.from_status, last.to_status) == (
        "released",
        "Lead",
        "claimed",
        "open",
    )
    assert last.detail == {"claimed_by": "ana"}


def test_the_claimer_resolves_with_an_outcome_and_a_note(
    database: Database, open_escalation: OpenEscalation
) -> None:
    record = open_escalation()
    with database.session() as session:
        _claim(session, record.id, "Ana")
        resolved = _resolve(session, record.id, "Ana")
        again = _resolve(session, record.id, "Ana")
    assert resolved.ok
    assert resolved.escalation is not None
    assert resolved.escalation.status is EscalationStatus.RESOLVED
    assert (resolved.escalation.outcome, resolved.escalation.note) == ("refunded", "refund issued")
    assert (resolved.escalation.closed_by, resolved.escalation.closed_at) == (
        "ana",
        T0 + minutes(9),
    )
    assert again.refusal is Refusal.CLOSED


def test_an_admin_resolves_for_an_absent_agent(
    database: Database, open_escalation: OpenEscalation
) -> None:
    record = open_escalation()
    with database.session() as session:
        _claim(session, record.id, "Ana")
        resolved = _resolve(session, record.id, "Lead", admin=True)
    assert resolved.ok


def test_nobody_can_release_an_unclaimed_escalation(
    database: Database, open_escalation: OpenEscalation
) -> None:
    record = open_escalation()
    with database.session() as session:
        outcome = _release(session, record.id, "Ana", admin=True)
    assert outcome.refusal is Refusal.NOT_CLAIMED


def test_a_worse_turn_upgrades_the_open_escalation(
    database: Database, open_escalation: OpenEscalation
) -> None:
    record = open_escalation()
    with database.session() as session:
        upgraded = escalations.upgrade_escalation(
            session=session,
            escalation_id=record.id,
            assessment=assessment("e7", score=9.5, level="critical"),
            summary={"wants": ["a refund", "a manager"]},
            now=T0 + minutes(4),
        )
        history = escalations.handoff_history(session=session, escalation_id=record.id)
    assert upgraded is not None
    assert (upgraded.level, upgraded.score) == ("critical", 9.5)
    assert upgraded.summary == {"wants": ["a refund", "a manager"]}
    assert history[-1].kind == "upgraded"
    assert history[-1].detail["from_level"] == "high"
    assert history[-1].detail["to_level"] == "critical"


def test_sla_steps_and_platform_calls_are_logged(
    database: Database, open_escalation: OpenEscalation
) -> None:
    record = open_escalation()
    with database.session() as session:
        escalations.record_handoff_event(
            session=session,
            escalation_id=record.id,
            kind="sla_realert",
            now=T0 + minutes(5),
            detail={"notice": "SLA: re-alerted @here at 09:05"},
        )
        history = escalations.handoff_history(session=session, escalation_id=record.id)
    assert [step.kind for step in history] == ["opened", "sla_realert"]
    assert history[-1].detail == {"notice": "SLA: re-alerted @here at 09:05"}


def test_escalations_are_listed_by_status_team_and_claimer(
    database: Database, open_escalation: OpenEscalation
) -> None:
    first = open_escalation("c1", now=T0, team="tier-1")
    second = open_escalation("c2", now=T0 + minutes(1), team="billing")
    third = open_escalation("c3", now=T0 + minutes(2), team="tier-1")
    with database.session() as session:
        _claim(session, second.id, "Ana")

        def ids(**filters: object) -> list[int]:
            return [
                record.id
                for record in escalations.list_escalations(session=session, **filters)  # type: ignore[arg-type]
            ]

        assert ids() == [third.id, second.id, first.id]
        assert ids(status="open", oldest_first=True) == [first.id, third.id]
        assert ids(status=["open", "claimed"], team="billing") == [second.id]
        assert ids(claimed_by="ana") == [second.id]
        assert ids(since=T0 + minutes(1)) == [third.id, second.id]
        assert ids(until=T0 + minutes(1)) == [first.id]
        assert ids(limit=1, offset=1) == [second.id]


def test_where_a_card_was_posted_is_remembered(
    database: Database, open_escalation: OpenEscalation
) -> None:
    record = open_escalation()
    with database.session() as session:
        for surface, channel, message_id in [
            ("slack", "C1", "1710406800.000100"),
            ("teams", "19:abc@thread.tacv2", "m-1"),
            ("slack", "C1", "1710406800.000200"),  # re-posted after the first was deleted
        ]:
            escalations.record_card_message(
                session=session,
                escalation_id=record.id,
                surface=surface,
                channel=channel,
                message_id=message_id,
                now=T0,
            )
        cards = escalations.card_messages(session=session, escalation_id=record.id)
    assert sorted((card.surface, card.channel, card.message_id) for card in cards) == [
        ("slack", "C1", "1710406800.000200"),
        ("teams", "19:abc@thread.tacv2", "m-1"),
    ]


def test_todays_numbers(database: Database, open_escalation: OpenEscalation) -> None:
    """A hand-computed day: four opened today, one yesterday still waiting.

    claimed after 2, 4 and 10 minutes -> median 4 minutes; one resolved; two still open
    (yesterday's and today's unclaimed one).
    """
    day_start = T0.replace(hour=0)
    day_end = day_start + minutes(24 * 60)
    open_escalation("yesterday", now=day_start - minutes(30))
    fast = open_escalation("fast", now=T0)
    medium = open_escalation("medium", now=T0 + minutes(10))
    slow = open_escalation("slow", now=T0 + minutes(20))
    open_escalation("waiting", now=T0 + minutes(30))
    with database.session() as session:
        _claim(session, fast.id, "Ana", at=2)
        _claim(session, medium.id, "Bruno", at=14)
        _claim(session, slow.id, "Ana", at=30)
        _resolve(session, fast.id, "Ana")
        stats = escalations.today_stats(session=session, day_start=day_start, day_end=day_end)
    assert stats == escalations.EscalationStats(
        opened=4,
        claimed=3,
        resolved=1,
        open_unclaimed=2,
        median_time_to_claim_seconds=240.0,
    )


def test_a_quiet_day_has_no_median(database: Database) -> None:
    with database.session() as session:
        stats = escalations.today_stats(
            session=session, day_start=T0, day_end=T0 + minutes(24 * 60)
        )
    assert stats == escalations.EscalationStats(0, 0, 0, 0, None)


def test_the_active_escalations_of_several_conversations_come_in_one_look_up(
    database: Database, open_escalation: OpenEscalation
) -> None:
    first = open_escalation("conv-1")
    closed = open_escalation("conv-2")
    with database.session() as session:
        assert escalations.close_unclaimed(
            session=session, escalation_id=closed.id, status="recovered", now=T0 + minutes(1)
        )
    again = open_escalation("conv-2", now=T0 + minutes(2))
    with database.session() as session:
        found = escalations.active_escalations(
            session=session, conversation_ids=["conv-1", "conv-2", "conv-3", "conv-1"]
        )
        whole = {
            conversation_id: escalations.active_escalation(
                session=session, conversation_id=conversation_id
            )
            for conversation_id in ("conv-1", "conv-2")
        }
        assert found == {
            conversation_id: escalations.ActiveEscalation.of(record)
            for conversation_id, record in whole.items()
            if record is not None
        }
    assert [found["conv-1"].id, found["conv-2"].id] == [first.id, again.id]
