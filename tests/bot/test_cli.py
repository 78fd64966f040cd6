"""The admin's command line: rules check and offline replay, as an admin runs them."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from bot.cli import main
from bot.replay import replay
from engine.rules_loader import load_rules_file
from tests.bot.conftest import REPO, angry_conversation, conversation, message


def write_jsonl(path: Path, *objects: object) -> Path:
    path.write_text("".join(json.dumps(obj) + "\n" for obj in objects), encoding="utf-8")
    return path


HAPPY = conversation(
    "c-happy",
    message("h1", "customer", "when does my parcel arrive?", 0),
    message("h2", "bot", "Parcel 7731 arrives today before 6pm.", 2, intent="eta"),
)


def test_rules_check_summarises_a_good_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "check", str(REPO / "rules.yaml")]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{REPO / 'rules.yaml'}: OK — ")


def test_rules_check_lists_every_problem_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "rules.yaml"
    broken.write_text(
        "levels:\n"
        "  - {name: escalate, min_score: 50}\n"
        "teams:\n"
        '  support: {slack: {channel: "#support"}}\n'
        "routes:\n"
        "  team: support\n"
        "  routes:\n"
        "    - match: {tier: enterprise}\n"
        "      team: vip\n",
        encoding="utf-8",
    )
    assert main(["rules", "check", str(broken)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"{broken}:8: routes.routes[0].match.tier: unknown key; did you mean 'customer_tier'?",
        f"{broken}:9: routes.routes[0].team: team 'vip' is not defined; defined teams: support",
    ]


def test_replay_prints_one_json_decision_per_conversation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recorded = write_jsonl(tmp_path / "recorded.jsonl", angry_conversation(), HAPPY)
    assert (
        main(["replay", str(recorded), "--format", "json", "--rules", str(REPO / "rules.yaml")])
        == 0
    )
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["conversation_id"] for line in lines] == ["c-angry", "c-happy"]
    angry, happy = lines
    assert angry["escalated"] is True
    # The second failed answer to a repeated question is where a person is needed.
    assert angry["escalated_at_event"] == "m4"
    assert angry["team"] == "support"
    assert angry["level"] in ("escalate", "urgent")
    assert any("human" in reason for reason in angry["reasons"])
    assert happy["escalated"] is False
    assert happy["escalated_at_event"] is None
    assert set(angry) >= {
        "conversation_id",
        "escalated",
        "level",
        "score",
        "team",
        "reasons",
        "escalated_at_event",
    }


def test_replay_explain_shows_the_score_after_every_event(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recorded = write_jsonl(tmp_path / "recorded.jsonl", angry_conversation())
    assert main(["replay", str(recorded), "--explain", "--rules", str(REPO / "rules.yaml")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("c-angry: ESCALATED at event m4 -> level ")
    explained = [
        line for line in out if line.strip().split(" ")[0] in {"m1", "m2", "m3", "m4", "m5"}
    ]
    assert [line.split()[0] for line in explained] == ["m1", "m2", "m3", "m4", "m5"]
    assert explained[3].endswith("<- open")
    assert explained[-1].endswith("<- upgrade")
    assert "human_request +" in explained[-1]
    assert out[-1] == "1 conversations, 1 escalated"


def test_replay_names_the_line_of_a_broken_conversation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recorded = tmp_path / "recorded.jsonl"
    recorded.write_text(json.dumps(HAPPY) + "\n" + '{"conversation_id": "c-2"}\n', encoding="utf-8")
    assert main(["replay", str(recorded), "--rules", str(REPO / "rules.yaml")]) == 2
    assert capsys.readouterr().err == f"error: {recorded}:2: events: missing\n"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_a_replay_shows_a_progress_bar_and_piped_it_does_not(
    tmp_path: Path,
) -> None:
    recorded = write_jsonl(tmp_path / "recorded.jsonl", angry_conversation(), HAPPY)
    rules = load_rules_file(REPO / "rules.yaml")
    terminal, piped, out = _Terminal(), io.StringIO(), io.StringIO()

    assert replay(recorded, rules, fmt="json", out=out, err=terminal) == 0
    assert replay(recorded, rules, fmt="json", out=io.StringIO(), err=piped) == 0

    assert terminal.getvalue().endswith("] 100%  2 conversations\n")
    assert piped.getvalue() == ""
    assert [json.loads(line)["conversation_id"] for line in out.getvalue().splitlines()] == [
        "c-angry",
        "c-happy",
    ]


def test_replay_names_a_line_that_is_not_utf8(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recorded = tmp_path / "recorded.jsonl"
    recorded.write_bytes(json.dumps(HAPPY).encode() + b"\n\xff\xfe{}\n")
    assert main(["replay", str(recorded), "--rules", str(REPO / "rules.yaml")]) == 2
    assert capsys.readouterr().err == f"error: {recorded}:2: not UTF-8 text (invalid start byte)\n"
