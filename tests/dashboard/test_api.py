"""Other tools read the dashboard's figures from its JSON API; they match the seeded database."""

from __future__ import annotations

import json
from typing import Any

from storage import outbox
from tests.dashboard.conftest import TOKEN, Dashboard

BEARER = {"Authorization": f"Bearer {TOKEN}"}


async def get(dashboard: Dashboard, path: str) -> dict[str, Any]:
    response = await dashboard.client.get(path, headers=BEARER)
    assert response.status == 200, await response.text()
    data: dict[str, Any] = await response.json()
    return data


async def test_the_overview_gives_the_figures_of_the_seeded_day(dashboard: Dashboard) -> None:
    data = await get(dashboard, "/api/v1/overview")

    assert (data["since"], data["until"], data["bucket"]) == (
        "2026-11-23T12:00:00Z",
        "2026-11-24T12:00:00Z",
        "hour",
    )
    assert data["escalations"] == 3
    assert (data["conversations"], data["escalated_conversations"]) == (4, 3)
    assert data["handoff_rate"] == 0.75
    # Claims after 60 s and 180 s: percentile_cont gives 120 and 60 + 0.9 * 120.
    assert data["time_to_claim_seconds"] == {"count": 2, "median": 120.0, "p90": 168.0}
    assert data["resolution_time_seconds"] == {"count": 1, "median": 600.0, "p90": 600.0}
    busy = {point["start"]: point["count"] for point in data["frequency"] if point["count"]}
    assert busy == {"2026-11-24T10:00:00Z": 2, "2026-11-24T11:00:00Z": 1}
    assert len(data["frequency"]) == 24
    assert data["by_level"] == [{"key": "urgent", "count": 3}]
    assert data["by_team"] == [{"key": "support", "count": 3}]
    assert data["by_platform"] == [
        {"key": "acme-bot", "count": 2},
        {"key": "other-bot", "count": 1},
    ]
    assert data["by_reason"] == [
        {"key": signal, "count": 3}
        for signal in ("fallbacks", "frustration", "human_request", "repetition")
    ]
    # 24 November 2026 is a Tuesday.
    cells = {
        (day, hour): count
        for day, row in enumerate(data["heatmap"]["counts"])
        for hour, count in enumerate(row)
        if count
    }
    assert cells == {(1, 10): 2, (1, 11): 1}
    assert (data["open_now"], data["unclaimed_now"]) == (2, 1)
    # Nothing was delivered in this seed: every queued card and message is still waiting.
    with dashboard.service.database.session() as session:
        waiting = outbox.pending(session=session)
    oldest = min(item.created_at for item in waiting)
    assert data["deliveries"] == {
        "waiting": len(waiting),
        "oldest_age_seconds": (dashboard.clock() - oldest).total_seconds(),
        "given_up": 0,
    }
    assert len(waiting) > 0


async def test_a_week_in_days_and_an_explicit_window(dashboard: Dashboard) -> None:
    week = await get(dashboard, "/api/v1/overview?range=7d&bucket=day")
    assert week["bucket"] == "day"
    assert len(week["frequency"]) == 7
    assert week["frequency"][-1] == {"start": "2026-11-24T00:00:00Z", "count": 3}

    late = await get(
        dashboard, "/api/v1/overview?since=2026-11-24T11:00:00Z&until=2026-11-24T12:00:00Z"
    )
    assert late["escalations"] == 1
    assert late["by_platform"] == [{"key": "other-bot", "count": 1}]
    assert late["time_to_claim_seconds"] == {"count": 0, "median": None, "p90": None}


async def test_the_queue_lists_who_is_waiting_oldest_first_with_the_age(
    dashboard: Dashboard,
) -> None:
    data = await get(dashboard, "/api/v1/queue")
    rows = [
        (row["conversation_id"], row["status"], row["claimed_by"], row["age_seconds"])
        for row in data["escalations"]
    ]
    assert rows == [("c-2", "claimed", "Ana Agent", 67 * 60.0), ("c-4", "open", None, 7 * 60.0)]

    only_other = await get(dashboard, "/api/v1/queue?platform=other-bot")
    assert [row["conversation_id"] for row in only_other["escalations"]] == ["c-4"]
    unclaimed = await get(dashboard, "/api/v1/queue?status=open")
    assert [row["conversation_id"] for row in unclaimed["escalations"]] == ["c-4"]


async def test_the_transcript_marks_each_signal_at_the_turn_it_fired(
    dashboard: Dashboard,
) -> None:
    data = await get(dashboard, "/api/v1/conversations/c-1")
    fired = {
        turn["event_id"]: [marker["signal"] for marker in turn["markers"]] for turn in data["turns"]
    }
    assert fired == {
        "m1": [],
        "m2": ["fallbacks"],  # one failed answer already counts (a streak of three escalates)
        "m3": ["repetition"],
        "m4": ["fallbacks"],
        "m5": ["human_request", "frustration"],
    }
    assert [turn["decision"] for turn in data["turns"]] == [None, None, None, "open", "upgrade"]
    [escalation] = data["escalations"]
    assert [(step["kind"], step["actor"]) for step in escalation["history"]] == [
        ("opened", None),
        ("upgraded", None),
        ("claimed", "Ana Agent"),
        ("resolved", "Ana Agent"),
    ]


async def test_an_unknown_conversation_is_404(dashboard: Dashboard) -> None:
    response = await dashboard.client.get("/api/v1/conversations/nope", headers=BEARER)
    assert response.status == 404
    assert await response.json() == {"error": "no such conversation"}


async def test_try_it_explains_a_pasted_conversation_like_replay_explain(
    dashboard: Dashboard,
) -> None:
    pasted = {
        "conversation_id": "pasted",
        "events": [
            {
                "id": "p1",
                "type": "message",
                "role": "customer",
                "text": "hi",
                "timestamp": "2026-11-24T10:00:00Z",
            },
            {
                "id": "p2",
                "type": "message",
                "role": "customer",
                "text": "this is useless, let me talk to a human agent",
                "timestamp": "2026-11-24T10:00:05Z",
            },
        ],
    }
    response = await dashboard.client.post(
        "/api/v1/rules/try", data=json.dumps(pasted), headers=BEARER
    )
    assert response.status == 200
    result = await response.json()
    assert result["summary"].startswith("pasted: ESCALATED at event p2 -> level urgent")
    assert [turn["decision"] for turn in result["turns"]] == [None, "open"]
    assert "human_request +70" in result["turns"][1]["moved"]

    broken = await dashboard.client.post("/api/v1/rules/try", data="{", headers=BEARER)
    assert broken.status == 400
    assert (await broken.json())["error"].startswith("not valid JSON")


async def test_the_rules_in_force_and_when_they_were_loaded(dashboard: Dashboard) -> None:
    data = await get(dashboard, "/api/v1/rules")
    assert data["loaded_at"] == "2026-11-24T10:00:00Z"
    assert data["last_rejection"] is None
    assert "support" in data["rules"]["teams"]
