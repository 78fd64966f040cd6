"""The digest as Slack Block Kit and as a Teams Adaptive Card, both valid for their clients."""

from __future__ import annotations

import json
import warnings
from datetime import UTC, datetime
from pathlib import Path

import jsonschema  # type: ignore[import-untyped]  # no stubs in the dev dependencies
import pytest
from slack_sdk.models.blocks import Block

from bot.digest import DigestReport, WorstLink, histogram, render_adaptive_card, render_blocks

SCHEMAS = Path(__file__).resolve().parents[1] / "teams" / "schemas"


def busy_report() -> DigestReport:
    hours = [0] * 24
    hours[9], hours[10], hours[14] = 3, 7, 1
    return DigestReport(
        team="support",
        timezone="Europe/Berlin",
        period_start=datetime(2026, 3, 9, 8, tzinfo=UTC),
        period_end=datetime(2026, 3, 10, 8, tzinfo=UTC),
        handoffs=11,
        previous_handoffs=14,
        conversations=220,
        by_level=(("escalate", 8), ("urgent", 3)),
        top_reasons=(("fallbacks", 6), ("human_request", 4)),
        claim_count=10,
        claim_median_seconds=240,
        claim_p90_seconds=528,
        resolved_count=8,
        resolution_median_seconds=3060,
        resolution_p90_seconds=3972,
        still_open=1,
        expired=0,
        recovered=0,
        hours=tuple(hours),
        claimers=(("Ana <ops>", 6), ("Ben", 4)),
        worst=tuple(
            WorstLink(
                escalation_id=index,
                conversation_id=f"conv-{index}",
                level="urgent",
                score=95 - index,
                status="resolved",
                reason="Customer asked for a person & got <no> answer",
                transcript_url=f"https://escalations.example.com/conversations/conv-{index}",
                platform_url=None,
            )
            for index in range(5)
        ),
    )


def test_the_digest_is_valid_block_kit() -> None:
    blocks = render_blocks(busy_report())
    for block in blocks:
        parsed = Block.parse(block)
        assert parsed is not None, block
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert parsed.to_dict() == block
    text = json.dumps(blocks)
    assert "Ana &lt;ops&gt;" in text  # names cannot mention or link anyone
    assert "<https://escalations.example.com/conversations/conv-0|conv-0>" in text


def test_the_digest_is_a_valid_adaptive_card() -> None:
    schema = json.loads((SCHEMAS / "adaptive-card-1.5.json").read_text(encoding="utf-8"))
    card = render_adaptive_card(busy_report())
    jsonschema.Draft6Validator(schema).validate(card)
    facts = {fact["title"]: fact["value"] for fact in card["body"][2]["facts"]}
    assert facts["Hand-offs"] == "11 (-3)"
    assert facts["Time to claim"] == "median 4m 00s, 90th 8m 48s (10 claimed)"


def test_the_hour_chart_is_one_bar_per_hour_scaled_to_the_peak() -> None:
    bars, axis, _ = histogram(busy_report().hours)
    assert len(bars) == 24
    assert (bars[9], bars[10], bars[14], bars[0]) == ("▄", "█", "▂", " ")
    assert axis.index("12") == 12


def test_a_report_survives_being_stored_and_read_back() -> None:
    report = busy_report()
    stored = json.loads(json.dumps(report.to_json()))
    assert DigestReport.from_json(stored) == report


@pytest.mark.parametrize("peak", [1, 8, 1000])
def test_bars_stay_inside_the_chart_whatever_the_peak(peak: int) -> None:
    (bars, _, _) = histogram((peak,) + (0,) * 23)
    assert bars[0] == "█"
