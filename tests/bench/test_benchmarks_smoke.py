"""Each benchmark runs end to end at tiny sizes and prints its figures (no timing is judged)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from bench import (
    _proc,
    growth_bench,
    latency_bench,
    loadgen,
    memory_bench,
    parse_bench,
    replay_bench,
    run_all,
    webhook_bench,
    writer_bench,
)
from bench.chart import throughput_svg

pytestmark = pytest.mark.slow


def _names(report: _proc.Report) -> list[str]:
    return [figure.name for figure in report.figures]


def test_webhook_bench_measures_the_ceiling_and_sqlite_ingest() -> None:
    report = webhook_bench.run(
        [
            "--quick",
            "--no-pin",
            "--database",
            "sqlite",
            "--seconds",
            "0.5",
            "--connections",
            "4",
            "--events-per-post",
            "5",
            "--batch-connections",
            "2",
            "--sweep",
            "2",
        ]
    )
    assert _names(report) == [
        "ceiling: parse + VADER + 200",
        "SQLite, 1 event/post",
        "SQLite, 1 event/post, p99",
        "SQLite, 5 events/post, 2 connections",
    ]
    first_run = report.raw["runs"][0]
    assert first_run["sqlite"]["ok"] > 0
    assert first_run["sqlite"]["failed"] == 0
    assert [point["connections"] for point in report.raw["sweep"]] == [2]
    assert "% of ceiling" in report.render()


def test_webhook_bench_can_post_to_conversations_already_seen() -> None:
    report = webhook_bench.run(
        [
            *("--quick", "--no-pin", "--database", "sqlite", "--seconds", "0.5"),
            *("--connections", "4", "--events-per-post", "1", "--seen"),
        ]
    )
    assert _names(report)[-1] == "SQLite, 1 event/post to conversations already seen"
    seen = report.raw["runs"][0]["sqlite seen"]
    assert seen["ok"] > 0
    assert seen["failed"] == 0


def test_the_load_generators_later_posts_continue_their_conversations() -> None:
    # With --conversations N, post k goes to conversation k mod N, after the posts before it:
    # new event ids, later times, and customer and bot taking turns across posts.
    run = loadgen._Run(loadgen.build_parser().parse_args(["--port", "1", "--conversations", "2"]))
    bodies = [json.loads(run.next_request().split(b"\r\n\r\n", 1)[1]) for _ in range(5)]
    assert [body["conversation_id"].rsplit("-", 1)[1] for body in bodies] == list("01010")
    first = [body for body in bodies if body["conversation_id"].endswith("-0")]
    events = [event for body in first for event in body["events"]]
    assert [event["id"] for event in events] == ["e0", "p1e0", "p2e0"]
    assert [event["role"] for event in events] == ["customer", "bot", "customer"]
    times = [event["timestamp"] for event in events]
    assert times == sorted(times)
    assert len(set(times)) == 3
    # The first post to a conversation is the one every post is without --conversations.
    assert bodies[0]["events"] == json.loads(loadgen.post_body(run.args.prefix, 0, 1))["events"]


@pytest.mark.postgres
def test_webhook_bench_runs_on_postgresql() -> None:
    if not _proc.postgres_available():
        pytest.skip("the local PostgreSQL server does not answer")
    report = webhook_bench.run(
        ["--quick", "--no-pin", "--database", "postgres", "--seconds", "0.5", "--connections", "4"]
    )
    assert _names(report)[-1] == "PostgreSQL, 1 event/post"
    assert report.raw["runs"][0]["postgres"]["failed"] == 0


def test_replay_bench_compares_the_engine_with_vader_and_times_a_replay() -> None:
    report = replay_bench.run(["--quick", "--engine-events", "300", "--replay-events", "400"])
    assert _names(report) == [
        "VADER alone (every message)",
        "engine alone: assess()",
        "`escalations replay` of 400 events",
    ]
    assert report.raw["replay_events"] == 400


def test_growth_bench_compares_a_late_event_with_event_ten() -> None:
    report = growth_bench.run(["--quick", "--late", "30"])
    assert _names(report) == ["event 10", "event 30"]
    assert "x event 10" in report.render()


def test_writer_bench_stores_every_post_through_the_ingestor() -> None:
    report = writer_bench.run(["--quick", "--posts", "60", "--events-per-post", "3", "--angry"])
    assert _names(report) == ["CPU per post", "wall time per post"]
    (figures,) = report.raw["runs"]
    assert figures["conversations"] == writer_bench.WARM_UP_POSTS + 60
    assert figures["events"] == 3 * figures["conversations"]
    assert figures["escalations"] > 0  # the angry mix escalates
    assert figures["cpu_seconds"] > 0
    assert "server_cpu_seconds" not in figures  # (SQLite: no server)


def test_writer_bench_can_post_to_conversations_already_seen() -> None:
    report = writer_bench.run(["--quick", "--posts", "30", "--seen"])
    assert "conversations already seen" in report.title
    (figures,) = report.raw["runs"]
    # The measured posts are each conversation's second: no new conversation, twice the events.
    assert figures["conversations"] == writer_bench.WARM_UP_POSTS + 30
    assert figures["events"] == writer_bench.WARM_UP_POSTS + 2 * 30


def test_writer_bench_can_measure_a_later_post_of_each_conversation() -> None:
    report = writer_bench.run(["--quick", "--posts", "20", "--seen", "--later", "3"])
    assert "(3 post(s) before)" in report.title
    (figures,) = report.raw["runs"]
    # The measured posts are each conversation's fourth.
    assert figures["conversations"] == writer_bench.WARM_UP_POSTS + 20
    assert figures["events"] == writer_bench.WARM_UP_POSTS + 4 * 20


@pytest.mark.postgres
def test_writer_bench_on_postgres_also_reports_the_servers_cpu() -> None:
    report = writer_bench.run(["--quick", "--posts", "40", "--database", "postgres"])
    assert _names(report) == ["CPU per post", "wall time per post", "server CPU per post"]
    (figures,) = report.raw["runs"]
    assert figures["conversations"] == writer_bench.WARM_UP_POSTS + 40
    assert figures["server_cpu_seconds"] > 0


def test_parse_bench_verifies_and_parses_every_post_of_both_sizes() -> None:
    report = parse_bench.run(["--quick", "--posts", "200"])
    assert _names(report) == ["per post, 1 event/post", "per post, 100 events/post"]
    ((one,), (hundred,)) = report.raw["1"], report.raw["100"]
    assert (one["posts"], one["events"]) == (200, 200)
    assert (hundred["posts"], hundred["events"]) == (2, 200)
    assert one["seconds_per_post"] > 0
    assert hundred["seconds_per_post"] > 0


def test_latency_bench_sees_every_card_reach_the_slack_api() -> None:
    report = latency_bench.run(
        ["--quick", "--no-pin", "--seconds", "3", "--rate", "50", "--interval", "1"]
    )
    assert report.raw["latencies_ms"]
    assert report.raw["missing"] == 0


def test_memory_bench_reads_the_service_rss_as_it_goes() -> None:
    report = memory_bench.run(["--quick", "--no-pin", "--conversations", "40", "--steps", "2"])
    assert len(report.raw["samples"]) == 3
    assert report.raw["events"] == 400


def test_run_all_prints_one_table_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_all.main(["--quick", "--only", "growth", "--json", str(tmp_path / "r.json")]) == 0
    printed = capsys.readouterr().out
    assert "results (" in printed
    assert (tmp_path / "r.json").read_text().startswith("{")


def test_chart_is_well_formed_svg() -> None:
    points = [
        {"connections": 1, "ceiling_rps": 900.0, "service_rps": 300.0},
        {"connections": 64, "ceiling_rps": 2000.0, "service_rps": 1200.0},
    ]
    root = ElementTree.fromstring(throughput_svg(points, "throughput"))  # noqa: S314 (our own)
    assert root.tag.endswith("svg")


def test_load_generator_refuses_other_hosts() -> None:
    with pytest.raises(SystemExit):
        loadgen.main_with(["--host", "192.0.2.1", "--port", "80"])
