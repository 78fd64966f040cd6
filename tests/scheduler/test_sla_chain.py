"""SLA chains under a driven clock: when each step fires, and what stops it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.sla import run_sla
from engine.rules import Rules
from engine.rules_loader import load_rules_file
from storage import escalations, outbox
from storage import sla as sla_storage
from storage.db import Database
from tests.scheduler.helpers import seed_escalation

REPO = Path(__file__).resolve().parents[2]
NO_SURFACES: frozenset[str] = frozenset()
# Friday 13 March 2026, 10:00 UTC (11:00 in Berlin).
OPENED = datetime(2026, 3, 13, 10, 0, tzinfo=UTC)


@pytest.fixture
def rules() -> Rules:
    return load_rules_file(REPO / "rules.yaml")


def support_snapshot(rules: Rules, **sla: Any) -> dict[str, Any]:
    """The support team's settings as an escalation records them when it opens."""
    team = rules.teams["support"].model_dump(mode="json")
    team["sla"].update(sla)
    return {"team": "support", "team_config": team, "level": "escalate"}


def card_notices(database: Database, escalation_id: int) -> list[str]:
    with database.session(read_only=True) as session:
        history = escalations.handoff_history(session=session, escalation_id=escalation_id)
    return [str(event.detail["notice"]) for event in history if event.kind == "sla_step"]


def pending_kinds(database: Database, escalation_id: int) -> list[tuple[str, str | None]]:
    with database.session(read_only=True) as session:
        rows = outbox.pending(session=session, escalation_id=escalation_id)
    return [(row.kind, row.payload.get("channel") or row.payload.get("text")) for row in rows]


def test_the_chain_mentions_at_ten_minutes_and_hands_to_leads_at_twenty(
    database: Database, rules: Rules
) -> None:
    escalation = seed_escalation(database, "c1", opened_at=OPENED, snapshot=support_snapshot(rules))

    assert run_sla(database, rules, NO_SURFACES, OPENED + timedelta(minutes=9, seconds=59)) == []
    fired = run_sla(database, rules, NO_SURFACES, OPENED + timedelta(minutes=10))
    assert [(step.key, step.action, step.target) for step in fired] == [
        ("step:0", "mention", "@here")
    ]
    assert card_notices(database, escalation) == [
        "SLA: mentioned @here at 10:10 (10 min unclaimed)"
    ]
    assert pending_kinds(database, escalation) == [
        ("sla_step", "@here SLA: mentioned @here at 10:10 (10 min unclaimed)"),
        ("update_card", None),
    ]

    # The next minute changes nothing: a step fires once.
    assert run_sla(database, rules, NO_SURFACES, OPENED + timedelta(minutes=11)) == []

    fired = run_sla(database, rules, NO_SURFACES, OPENED + timedelta(minutes=20))
    assert [(step.key, step.target) for step in fired] == [("step:1", "leads")]
    assert card_notices(database, escalation)[-1] == (
        "SLA: handed to leads at 10:20 (20 min unclaimed)"
    )
    # With no chat surface configured the leads' card goes to the console.
    assert ("post_card", "leads") in pending_kinds(database, escalation)
    assert run_sla(database, rules, NO_SURFACES, OPENED + timedelta(hours=5)) == []


def test_claiming_stops_the_chain(database: Database, rules: Rules) -> None:
    escalation = seed_escalation(database, "c1", opened_at=OPENED, snapshot=support_snapshot(rules))
    run_sla(database, rules, NO_SURFACES, OPENED + timedelta(minutes=10))
    with database.session() as session:
        escalations.claim(
            session=session,
            escalation_id=escalation,
            actor_id="U1",
            actor_name="Ana",
            surface="slack",
            now=OPENED + timedelta(minutes=12),
        )
    assert run_sla(database, rules, NO_SURFACES, OPENED + timedelta(minutes=30)) == []
    assert len(card_notices(database, escalation)) == 1


def test_a_step_cannot_fire_after_a_claim_that_committed_first(
    database: Database, rules: Rules
) -> None:
    escalation = seed_escalation(database, "c1", opened_at=OPENED, snapshot=support_snapshot(rules))
    with database.session(read_only=True) as session:
        (waiting,) = sla_storage.waiting_escalations(session=session)
    with database.session() as session:  # the claim lands between the read and the step
        escalations.claim(
            session=session,
            escalation_id=escalation,
            actor_id="U1",
            actor_name="Ana",
            surface="slack",
            now=OPENED + timedelta(minutes=10),
        )
    with database.session() as session:
        fired = sla_storage.mark_step(
            session=session,
            escalation_id=escalation,
            waiting_since=waiting.waiting_since,
            step="step:0",
            now=OPENED + timedelta(minutes=10),
        )
    assert fired is False


def test_a_release_starts_the_chain_again(database: Database, rules: Rules) -> None:
    escalation = seed_escalation(database, "c1", opened_at=OPENED, snapshot=support_snapshot(rules))
    with database.session() as session:
        escalations.claim(
            session=session,
            escalation_id=escalation,
            actor_id="U1",
            actor_name="Ana",
            surface="slack",
            now=OPENED + timedelta(minutes=5),
        )
        escalations.release(
            session=session,
            escalation_id=escalation,
            actor_id="U1",
            actor_name="Ana",
            surface="slack",
            now=OPENED + timedelta(minutes=30),
        )
    assert run_sla(database, rules, NO_SURFACES, OPENED + timedelta(minutes=39)) == []
    fired = run_sla(database, rules, NO_SURFACES, OPENED + timedelta(minutes=40))
    assert [step.key for step in fired] == ["step:0"]


BERLIN_OFFICE = {
    "timezone": "Europe/Berlin",
    "days": ["mon", "tue", "wed", "thu", "fri"],
    "start": "09:00",
    "end": "17:00",
    "holidays": ["2026-03-16"],
}


def test_outside_business_hours_the_chain_waits_for_the_next_working_day(
    database: Database, rules: Rules
) -> None:
    # Friday 16:55 in Berlin; Monday is a holiday, so the clock runs again on Tuesday 09:00.
    friday = datetime(2026, 3, 13, 15, 55, tzinfo=UTC)
    seed_escalation(
        database,
        "c1",
        opened_at=friday,
        snapshot=support_snapshot(rules, business_hours=BERLIN_OFFICE),
    )
    assert run_sla(database, rules, NO_SURFACES, friday + timedelta(minutes=5)) == []
    monday_noon = datetime(2026, 3, 16, 11, 0, tzinfo=UTC)
    assert run_sla(database, rules, NO_SURFACES, monday_noon) == []
    tuesday = datetime(2026, 3, 17, 8, 4, tzinfo=UTC)  # 09:04 Berlin: 9 working minutes
    assert run_sla(database, rules, NO_SURFACES, tuesday) == []
    fired = run_sla(database, rules, NO_SURFACES, tuesday + timedelta(minutes=1))
    assert [(step.key, round(step.waited_minutes)) for step in fired] == [("step:0", 10)]


def test_outside_business_hours_the_after_hours_team_gets_it(
    database: Database, rules: Rules
) -> None:
    friday = datetime(2026, 3, 13, 15, 55, tzinfo=UTC)  # 16:55 in Berlin
    escalation = seed_escalation(
        database,
        "c1",
        opened_at=friday,
        snapshot=support_snapshot(rules, business_hours=BERLIN_OFFICE, after_hours="leads"),
    )
    assert run_sla(database, rules, NO_SURFACES, friday + timedelta(minutes=9)) == []
    fired = run_sla(database, rules, NO_SURFACES, friday + timedelta(minutes=10))
    assert [(step.key, step.target) for step in fired] == [("after_hours", "leads")]
    assert card_notices(database, escalation) == [
        "SLA: outside business hours, handed to leads at 17:05 (10 min unclaimed)"
    ]
    assert ("post_card", "leads") in pending_kinds(database, escalation)
