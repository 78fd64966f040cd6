"""Digest numbers against a hand-computed period, and the periods a team's cron gives."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from bot.digest import Period, build_report, period_posted_on, render_text
from engine.rules import Digest
from storage.db import Database
from tests.scheduler.helpers import seed_escalation, seed_quiet_conversation

BERLIN_WEEKDAYS = Digest(cron="0 9 * * 1-5", timezone="Europe/Berlin")
BERLIN_DAILY = Digest(cron="0 9 * * *", timezone="Europe/Berlin")
BASE_URL = "https://escalations.example.com"
REPO = Path(__file__).resolve().parents[2]


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# Tuesday 10 March 2026, 09:00 in Berlin (CET, UTC+1): the digest covers Monday 08:00 UTC to
# Tuesday 08:00 UTC and compares with Friday 08:00 UTC to Monday 08:00 UTC.
TUESDAY = Period(
    team="support",
    timezone="Europe/Berlin",
    start=utc(2026, 3, 9, 8),
    end=utc(2026, 3, 10, 8),
    previous_start=utc(2026, 3, 6, 8),
)


def test_tuesdays_digest_covers_monday_nine_to_tuesday_nine_berlin_time() -> None:
    assert period_posted_on("support", BERLIN_WEEKDAYS, date(2026, 3, 10)) == TUESDAY


def test_mondays_digest_covers_the_weekend_from_friday_nine() -> None:
    period = period_posted_on("support", BERLIN_WEEKDAYS, date(2026, 3, 9))
    assert (period.start, period.end) == (utc(2026, 3, 6, 8), utc(2026, 3, 9, 8))
    assert period.previous_start == utc(2026, 3, 5, 8)


def test_the_day_clocks_go_forward_has_a_23_hour_period() -> None:
    # Summer time starts in Berlin on Sunday 29 March 2026 at 02:00 local (01:00 UTC).
    sunday = period_posted_on("support", BERLIN_DAILY, date(2026, 3, 29))
    assert (sunday.start, sunday.end) == (utc(2026, 3, 28, 8), utc(2026, 3, 29, 7))
    monday = period_posted_on("support", BERLIN_DAILY, date(2026, 3, 30))
    assert (monday.start, monday.end) == (utc(2026, 3, 29, 7), utc(2026, 3, 30, 7))


def seed_the_fixture_period(database: Database) -> None:
    start = TUESDAY.start
    seed_escalation(  # 10:00 Berlin, claimed after 2 min, resolved after 32 min
        database,
        "c1",
        opened_at=start + timedelta(hours=1),
        level="urgent",
        score=90,
        status="resolved",
        signals=("human_request", "fallbacks"),
        claimed_at=start + timedelta(hours=1, minutes=2),
        claimed_by="ana",
        closed_at=start + timedelta(hours=1, minutes=32),
    )
    seed_escalation(  # 10:30 Berlin, claimed after 4 min, still with Ana
        database,
        "c2",
        opened_at=start + timedelta(hours=1, minutes=30),
        score=70,
        status="claimed",
        claimed_at=start + timedelta(hours=1, minutes=34),
        claimed_by="ana",
    )
    seed_escalation(  # 14:10 Berlin, claimed after 10 min, resolved after 70 min
        database,
        "c3",
        opened_at=start + timedelta(hours=5, minutes=10),
        score=55,
        status="resolved",
        signals=("sentiment",),
        claimed_at=start + timedelta(hours=5, minutes=20),
        claimed_by="ben",
        closed_at=start + timedelta(hours=6, minutes=20),
    )
    seed_escalation(  # 14:20 Berlin, nobody has claimed it
        database,
        "c4",
        opened_at=start + timedelta(hours=5, minutes=20),
        score=50,
        signals=("fallbacks", "sentiment"),
    )
    seed_escalation(  # 08:59 Berlin on Tuesday, the customer left before anyone claimed
        database,
        "c5",
        opened_at=TUESDAY.end - timedelta(minutes=1),
        score=65,
        status="expired",
        signals=("human_request",),
    )
    # Outside the period: on its end (next period), just before its start and on Friday (the
    # period before), and another team's.
    seed_escalation(database, "c6", opened_at=TUESDAY.end, score=99)
    seed_escalation(database, "c7", opened_at=start - timedelta(seconds=1))
    seed_escalation(database, "c8", opened_at=utc(2026, 3, 6, 10))
    seed_escalation(database, "c9", opened_at=start + timedelta(hours=2), team="billing")
    for index in range(4):
        seed_quiet_conversation(database, f"quiet-{index}", start + timedelta(hours=3 + index))


def test_the_digest_numbers_match_the_hand_computed_period(database: Database) -> None:
    seed_the_fixture_period(database)
    with database.session(read_only=True) as session:
        report = build_report(session, TUESDAY, BASE_URL)

    assert (report.handoffs, report.previous_handoffs, report.change) == (5, 2, 3)
    # c1-c5, c9 (billing) and the four quiet ones had activity in the period.
    assert report.conversations == 10
    assert report.share == 0.5
    assert report.by_level == (("escalate", 4), ("urgent", 1))
    assert report.top_reasons == (("fallbacks", 3), ("human_request", 2), ("sentiment", 2))
    # Claimed after 2, 4 and 10 minutes: median 4 min; 90th 4 + 0.8 * 6 = 8.8 min.
    assert report.claim_count == 3
    assert report.claim_median_seconds == pytest.approx(240)
    assert report.claim_p90_seconds == pytest.approx(528)
    # Resolved after 32 and 70 minutes: median 51 min; 90th 32 + 0.9 * 38 = 66.2 min.
    assert report.resolved_count == 2
    assert report.resolution_median_seconds == pytest.approx(3060)
    assert report.resolution_p90_seconds == pytest.approx(3972)
    assert (report.still_open, report.expired, report.recovered) == (1, 1, 0)
    expected_hours = [0] * 24
    expected_hours[8], expected_hours[10], expected_hours[14] = 1, 2, 2
    assert list(report.hours) == expected_hours
    assert report.claimers == (("Ana", 2), ("Ben", 1))
    assert [item.conversation_id for item in report.worst] == ["c1", "c2", "c5", "c3", "c4"]
    assert report.worst[0].transcript_url == f"{BASE_URL}/conversations/c1"
    assert report.worst[0].platform_url == "https://inbox.example.com/c1"
    assert report.worst[0].reason == "human_request fired"


def test_hours_are_local_across_the_change_to_summer_time(database: Database) -> None:
    sunday = period_posted_on("support", BERLIN_DAILY, date(2026, 3, 29))
    seed_escalation(database, "before", opened_at=utc(2026, 3, 28, 23, 30))  # 00:30 CET
    seed_escalation(database, "after", opened_at=utc(2026, 3, 29, 2, 30))  # 04:30 CEST
    seed_escalation(database, "next", opened_at=utc(2026, 3, 29, 7, 30))  # next period
    with database.session(read_only=True) as session:
        report = build_report(session, sunday, BASE_URL)
    assert report.handoffs == 2
    assert [hour for hour, count in enumerate(report.hours) if count] == [0, 4]


def test_an_empty_day_reads_as_nothing_happened(database: Database) -> None:
    with database.session(read_only=True) as session:
        report = build_report(session, TUESDAY, BASE_URL)
    assert (report.handoffs, report.conversations, report.share) == (0, 0, None)
    assert report.claim_median_seconds is None
    assert report.resolution_p90_seconds is None
    assert report.hours == (0,) * 24
    assert report.worst == ()
    assert report.claimers == ()
    text = render_text(report)
    assert "0 hand-offs (±0 vs the period before)" in text
    assert "median —, 90th — (0 claimed)" in text


def test_a_day_with_one_escalation_has_its_times_as_median_and_90th(database: Database) -> None:
    seed_escalation(
        database,
        "only",
        opened_at=TUESDAY.start + timedelta(hours=2),
        status="resolved",
        claimed_at=TUESDAY.start + timedelta(hours=2, seconds=45),
        claimed_by="ana",
        closed_at=TUESDAY.start + timedelta(hours=3),
    )
    with database.session(read_only=True) as session:
        report = build_report(session, TUESDAY, BASE_URL)
    assert report.handoffs == 1
    assert report.claim_median_seconds == report.claim_p90_seconds == pytest.approx(45)
    assert report.resolution_median_seconds == report.resolution_p90_seconds == pytest.approx(3600)
    assert report.hours[11] == 1  # 10:00 UTC is 11:00 in Berlin
