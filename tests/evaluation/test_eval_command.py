"""`escalations eval`: the engine and two baselines scored on labelled files, in text or JSON."""

import io
import json
from pathlib import Path
from typing import Any

import pytest

from bot.evaluate import enabled_signals, main, without_signal
from engine.rules_loader import load_rules

RULES = """\
version: 1
levels:
  - name: escalate
    min_score: 50
teams:
  support:
    slack:
      channel: "#support"
routes:
  team: support
"""


def labelled(
    conversation_id: str, texts: list[str], needs_human: bool, needs_human_from: str | None = None
) -> dict[str, Any]:
    events = [
        {
            "id": f"e{index}",
            "type": "message",
            "role": "customer" if index % 2 == 0 else "bot",
            "text": text,
            "timestamp": f"2026-03-02T09:{index:02d}:00Z",
        }
        for index, text in enumerate(texts)
    ]
    label: dict[str, Any] = {"needs_human": needs_human, "source": "test"}
    if needs_human_from is not None:
        label["needs_human_from"] = needs_human_from
    return {"conversation_id": conversation_id, "events": events, "label": label}


ASKS_FOR_A_PERSON = labelled(
    "asks-for-a-person",
    [
        "My invoice has a charge I don't recognise.",
        "You can find invoices under Billing.",
        "Can I talk to a real person please?",
        "Let me see what I can do.",
    ],
    True,
    "e2",
)
HAPPY = labelled(
    "happy",
    ["Are you open on Sunday?", "Yes, from 10am to 4pm.", "Great, see you then."],
    False,
)
GRUMPY_BUT_FINE = labelled(
    "grumpy-but-fine",
    [
        "What a horrible, miserable, awful rainy day. Do you deliver to Leeds?",
        "Yes, we deliver to Leeds in 1-2 days.",
        "Cool.",
    ],
    False,
)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "rules.yaml").write_text(RULES, encoding="utf-8")
    data = tmp_path / "data"
    data.mkdir()
    write_jsonl(data / "requests.jsonl", [ASKS_FOR_A_PERSON, HAPPY])
    write_jsonl(data / "moods.jsonl", [GRUMPY_BUT_FINE])
    return tmp_path


def write_jsonl(path: Path, objects: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(obj) + "\n" for obj in objects), encoding="utf-8")


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_json_report_scores_each_file_then_all_of_them(workspace: Path) -> None:
    code, out, err = run(
        ["--rules", str(workspace / "rules.yaml"), "--format", "json", str(workspace / "data")]
    )

    assert (code, err) == (0, "")
    report = json.loads(out)
    assert set(report) == {"note", "vader_threshold", "datasets"}
    assert "proxies" in report["note"]
    assert report["vader_threshold"] == -0.5
    assert [d["dataset"] for d in report["datasets"]] == ["moods", "requests", "overall"]
    overall = report["datasets"][2]
    assert set(overall) == {
        "dataset",
        "conversations",
        "need_human",
        "engine",
        "baselines",
        "ablation",
    }
    assert (overall["conversations"], overall["need_human"]) == (3, 1)
    assert set(overall["engine"]) == {
        "precision",
        "recall",
        "f1",
        "true_positives",
        "false_positives",
        "false_negatives",
        "true_negatives",
        "earliness",
        "false_positive_ids",
        "false_negative_ids",
    }
    assert set(overall["baselines"]) == {"vader", "human_request"}
    assert set(overall["ablation"]["human_request"]) == {"f1", "f1_change"}


def test_the_request_baseline_escalates_on_the_request_and_vader_on_the_grumpy_weather(
    workspace: Path,
) -> None:
    code, out, _ = run(
        ["--rules", str(workspace / "rules.yaml"), "--format", "json", str(workspace / "data")]
    )
    overall = json.loads(out)["datasets"][2]
    request = overall["baselines"]["human_request"]
    vader = overall["baselines"]["vader"]

    assert code == 0
    assert (request["precision"], request["recall"], request["f1"]) == (1.0, 1.0, 1.0)
    assert request["earliness"]["on_time"] == 1
    assert (vader["true_positives"], vader["false_positives"]) == (0, 1)
    assert vader["false_positive_ids"] == ["grumpy-but-fine"]
    assert vader["false_negative_ids"] == ["asks-for-a-person"]


def test_the_engine_escalates_an_explicit_request_and_switching_the_signal_off_loses_it(
    workspace: Path,
) -> None:
    _, out, _ = run(
        ["--rules", str(workspace / "rules.yaml"), "--format", "json", str(workspace / "data")]
    )
    requests = json.loads(out)["datasets"][1]

    assert requests["engine"]["true_positives"] == 1
    assert requests["engine"]["earliness"]["median_offset"] == 0.0
    assert requests["ablation"]["human_request"] == {"f1": 0.0, "f1_change": -1.0}


def test_no_ablation_skips_the_per_signal_runs(workspace: Path) -> None:
    _, out, _ = run(
        [
            "--rules",
            str(workspace / "rules.yaml"),
            "--format",
            "json",
            "--no-ablation",
            str(workspace / "data" / "requests.jsonl"),
        ]
    )
    datasets = json.loads(out)["datasets"]

    assert [d["dataset"] for d in datasets] == ["requests"]
    assert datasets[0]["ablation"] == {}


def test_text_report_has_a_table_per_file_and_names_the_mistakes(workspace: Path) -> None:
    code, out, _ = run(
        ["--rules", str(workspace / "rules.yaml"), "--list-errors", str(workspace / "data")]
    )

    assert code == 0
    assert out.startswith("The public datasets are proxies")
    assert "moods: 1 conversations, 0 need a human" in out
    assert "requests: 2 conversations, 1 need a human" in out
    assert "overall: 3 conversations, 1 need a human" in out
    assert "  VADER alone (< -0.50)" in out
    assert "  human request alone" in out
    assert "F1 with one signal off" in out


def test_a_line_without_a_label_is_refused_with_its_file_and_conversation(
    workspace: Path,
) -> None:
    unlabelled = dict(HAPPY)
    del unlabelled["label"]
    path = workspace / "data" / "unlabelled.jsonl"
    write_jsonl(path, [unlabelled])

    code, out, err = run(["--rules", str(workspace / "rules.yaml"), str(path)])

    assert (code, out) == (2, "")
    assert err == (
        f'error: {path}: happy: label: missing; expected {{"needs_human": true|false}}\n'
    )


def test_a_labelled_point_must_be_one_of_the_conversations_events(workspace: Path) -> None:
    wrong = labelled("wrong-point", ["agent please", "One moment."], True, "e7")
    path = workspace / "data" / "wrong.jsonl"
    write_jsonl(path, [wrong])

    code, _, err = run(["--rules", str(workspace / "rules.yaml"), str(path)])

    assert code == 2
    assert err == f"error: {path}: wrong-point: label.needs_human_from: no event with id 'e7'\n"


def test_a_broken_rules_file_stops_the_run_with_the_loaders_message(workspace: Path) -> None:
    (workspace / "broken.yaml").write_text("version: 1\nlevels: []\nsurprise: 1\n", "utf-8")

    code, out, err = run(["--rules", str(workspace / "broken.yaml"), str(workspace / "data")])

    assert (code, out) == (2, "")
    assert err.startswith(f"error: {workspace / 'broken.yaml'}")


def test_switching_one_signal_off_leaves_the_others_as_they_were() -> None:
    rules = load_rules(RULES)
    quieter = without_signal(rules, "sentiment")

    assert quieter.signals.sentiment.enabled is False
    assert quieter.signals.sentiment.weight == rules.signals.sentiment.weight
    assert quieter.signals.human_request == rules.signals.human_request
    assert "sentiment" not in enabled_signals(quieter)
    assert enabled_signals(rules)[:3] == ["sentiment", "human_request", "fallbacks"]
