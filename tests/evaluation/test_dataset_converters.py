"""The dataset converters turn small literal excerpts into labelled generic conversations."""

import json
from pathlib import Path
from typing import Any

from connectors.generic import parse_generic_object
from evaluation import convert_dbdc3, convert_sgd, convert_taskmaster4


def dbdc3_turn(index: int, speaker: str, text: str, o: int = 0, t: int = 0, x: int = 0) -> Any:
    turn: dict[str, Any] = {"turn-index": index, "speaker": speaker, "utterance": text}
    if speaker == "S":
        turn["breakdown_counts"] = {"O": o, "T": t, "X": x}
    return turn


def test_dbdc3_needs_a_human_from_the_second_breakdown_most_annotators_mark() -> None:
    dialogue = {
        "dialogue-id": "CIC9001",
        "turns": [
            dbdc3_turn(0, "S", "Hello! Ask me about the text.", o=28, t=2),
            dbdc3_turn(1, "U", "What is the text about?"),
            dbdc3_turn(2, "S", "I like trains.", o=4, t=10, x=16),
            dbdc3_turn(3, "U", "That is not an answer."),
            # X is the largest group here but not most annotators: it does not count.
            dbdc3_turn(4, "S", "Okay.", o=7, t=11, x=12),
            dbdc3_turn(5, "U", "Hello?"),
            dbdc3_turn(6, "S", "No, no, no, no.", o=2, t=8, x=20),
        ],
    }
    record = convert_dbdc3.convert_dialogue(dialogue)

    assert record["conversation_id"] == "dbdc3-CIC9001"
    assert record["label"] == {
        "needs_human": True,
        "needs_human_from": "t06",
        "source": "dbdc3: system turns most annotators mark as breakdown (X): t02, t06",
    }
    assert [event["role"] for event in record["events"][:2]] == ["bot", "customer"]
    assert record["events"][6]["timestamp"] == "2026-01-05T09:02:00Z"


def test_dbdc3_one_breakdown_is_not_enough() -> None:
    dialogue = {
        "dialogue-id": "TKTK9002",
        "turns": [
            dbdc3_turn(0, "S", "Hi.", o=30),
            dbdc3_turn(1, "U", "Do you like music?"),
            dbdc3_turn(2, "S", "Potatoes.", o=1, t=5, x=24),
            dbdc3_turn(3, "U", "Funny. Do you like jazz?"),
            dbdc3_turn(4, "S", "Yes, I love jazz.", o=27, t=3),
        ],
    }
    label = convert_dbdc3.convert_dialogue(dialogue)["label"]

    assert label == {
        "needs_human": False,
        "source": "dbdc3: system turns most annotators mark as breakdown (X): t02",
    }


def test_dbdc3_upstream_files_are_counted_from_each_annotators_mark() -> None:
    marks = ["X", "X", "T", "X", "O"]
    turn = {
        "speaker": "S",
        "utterance": "Thank you.",
        "annotations": [{"breakdown": m} for m in marks],
    }

    assert convert_dbdc3.breakdown_counts(turn) == {"X": 3, "T": 1, "O": 1}
    assert convert_dbdc3.is_agreed_breakdown(turn)


def tm4_dialogue(scenario: str) -> dict[str, Any]:
    return {
        "conversation_id": "dlg-0001",
        "scenario": scenario,
        "instructions": "...",
        "utterances": [
            {"index": 0, "speaker": "user", "text": "Can I get a flat white?"},
            {"index": 1, "speaker": "assistant", "text": "Sorry, we don't have that."},
            {"index": 2, "speaker": "user", "text": "Can I see the menu again?"},
            {"index": 3, "speaker": "assistant", "text": "Here you go."},
        ],
    }


def test_taskmaster4_no_results_scenario_needs_a_human_from_the_first_reply() -> None:
    record = convert_taskmaster4.convert_dialogue(
        tm4_dialogue("Auto template 11 order a coffee drink no results")
    )

    assert record["conversation_id"] == "tm4-dlg-0001"
    assert record["label"] == {
        "needs_human": True,
        "needs_human_from": "t01",
        "source": "taskmaster4 scenario: Auto template 11 order a coffee drink no results",
    }
    assert record["metadata"]["scenario"] == "Auto template 11 order a coffee drink no results"


def test_taskmaster4_off_topic_and_ordinary_orders_are_negatives() -> None:
    for scenario in (
        "Auto template 13 completely off topic",
        "Auto template 2 order a coffee drink specify milk",
    ):
        assert (
            convert_taskmaster4.convert_dialogue(tm4_dialogue(scenario))["label"]["needs_human"]
            is False
        )
    assert convert_taskmaster4.is_failure_scenario(
        "Auto template 12 order a coffee drink wrong results"
    )


def sgd_turn(speaker: str, text: str, *acts: str) -> dict[str, Any]:
    actions = [{"act": act, "slot": "", "values": []} for act in acts]
    return {"speaker": speaker, "utterance": text, "frames": [{"actions": actions}]}


def sgd_dialogue(turns: list[dict[str, Any]]) -> dict[str, Any]:
    return {"dialogue_id": "1_00001", "services": ["Restaurants_1"], "turns": turns}


def test_sgd_failure_without_recovery_needs_a_human_from_the_failure() -> None:
    record = convert_sgd.convert_dialogue(
        sgd_dialogue(
            [
                sgd_turn("USER", "Book a table at Addis for 7pm.", "INFORM"),
                sgd_turn("SYSTEM", "Sorry, the reservation failed.", "NOTIFY_FAILURE"),
                sgd_turn("USER", "No thanks, goodbye.", "NEGATE", "GOODBYE"),
            ]
        )
    )

    assert record["conversation_id"] == "sgd-1_00001"
    assert record["label"] == {
        "needs_human": True,
        "needs_human_from": "t01",
        "source": "sgd: NOTIFY_FAILURE at t01, no recovery",
    }


def test_sgd_failure_repaired_by_a_later_success_is_a_negative() -> None:
    label = convert_sgd.convert_dialogue(
        sgd_dialogue(
            [
                sgd_turn("USER", "Book it for 5:15.", "INFORM"),
                sgd_turn("SYSTEM", "That failed. Anything else?", "NOTIFY_FAILURE", "REQ_MORE"),
                sgd_turn("USER", "Try 5:30 then.", "INFORM"),
                sgd_turn("SYSTEM", "Your table has been reserved.", "NOTIFY_SUCCESS"),
            ]
        )
    )["label"]

    assert label == {
        "needs_human": False,
        "source": "sgd: NOTIFY_FAILURE at t01, then the bot recovers",
    }


def test_sgd_a_second_failure_after_an_accepted_alternative_counts_from_itself() -> None:
    turns = [
        sgd_turn("SYSTEM", "That show is sold out.", "NOTIFY_FAILURE"),
        sgd_turn("SYSTEM", "How about the 9 pm show?", "OFFER"),
        sgd_turn("USER", "Sure, that one.", "SELECT"),
        sgd_turn("SYSTEM", "Sorry, the purchase failed.", "NOTIFY_FAILURE"),
    ]

    assert convert_sgd.unrecovered_failure(turns) == 3


def test_a_converter_writes_one_parseable_line_per_dialogue(tmp_path: Path, capsys: Any) -> None:
    raw = tmp_path / "tm4.json"
    raw.write_text(
        json.dumps(
            [
                tm4_dialogue("Auto template 12 order a coffee drink wrong results"),
                tm4_dialogue("Auto template 8 order hot tea no mods"),
            ]
        ),
        encoding="utf-8",
    )
    out = tmp_path / "tm4.jsonl"

    assert convert_taskmaster4.main([str(raw), str(out)]) == 0
    assert capsys.readouterr().out == f"2 conversations, 1 need a human -> {out}\n"
    lines = out.read_text(encoding="utf-8").splitlines()
    batches = [parse_generic_object(json.loads(line), f"line {n}") for n, line in enumerate(lines)]
    assert [len(batch.events) for batch in batches] == [4, 4]


def test_a_converter_without_both_paths_prints_its_usage(capsys: Any) -> None:
    assert convert_sgd.main(["only-one.json"]) == 2
    assert "usage: python -m evaluation.convert_sgd RAW.json OUT.jsonl" in capsys.readouterr().err
